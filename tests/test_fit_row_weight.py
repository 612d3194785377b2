"""Stage one weighs its rows' log errors against the priors on the generations' scales (`ROW_LOG_SIGMA`).

Hand-derived expectation: when every one of n rows asks for the same log factor log r (its prediction at factor
exp(t) is measured x exp(t) / r), stage one minimises n (t - log r)^2 / rho^2 + t^2 / sigma^2 (rho the rows'
log-error sd, sigma the prior's), so t* = n log r / (n + rho^2 / sigma^2). With rows weighed as an e-fold error
(rho = 1, before session 43) a prior of sd 0.35 counts as 8.2 rows and holds 24 rows a quarter of the way back;
at rho = 0.5 it counts as 2.0 rows.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from cosim.validate import fit


def _rows_asking_for(monkeypatch, wanted: float, n: int) -> pd.DataFrame:
    """n Gaudi 3 rows whose prediction at compute scale c is measured x c / wanted; nothing else moves them."""
    table = pd.DataFrame({"id": [f"r{i}" for i in range(n)], "generation": "intel-gaudi3", "stack": "tuned",
                          "hardware": "gaudi3", "measured": np.linspace(100.0, 900.0, n)})

    def predict(sub, thetas, stacks, grouped=None, train_host=None, kernel_s=None):
        compute = math.exp(thetas["intel-gaudi3"][0])
        return sub["measured"].to_numpy(dtype=float) * compute / wanted

    monkeypatch.setattr(fit, "_predict", predict)
    return table


@pytest.mark.parametrize("rho", [1.0, 0.5])
def test_a_tables_rows_move_their_generations_scale_as_far_as_their_weight_against_the_prior(monkeypatch, rho):
    monkeypatch.setattr(fit, "ROW_LOG_SIGMA", rho)
    n, wanted = 24, 0.7
    _, theta, in_sample, loo = fit.fit_joint(_rows_asking_for(monkeypatch, wanted, n), verbose=False)
    sigma = fit.PRIOR_SIGMA[0]
    expected = n * math.log(wanted) / (n + rho**2 / sigma**2)
    assert theta[0] == pytest.approx(expected, abs=1e-4)
    assert np.allclose(in_sample, math.exp(expected) / wanted - 1.0, atol=1e-4)
    # left out, a row is scored at the other n - 1 rows' factor, shrunk by the same prior
    assert np.allclose(loo, math.exp((n - 1) * math.log(wanted) / (n - 1 + rho**2 / sigma**2)) / wanted - 1.0,
                       atol=2e-3)
    # parameters no row moves stay at their prior centre
    assert np.allclose(theta[1:], 0.0, atol=1e-6)


def test_the_stored_weight_lets_a_24_row_table_move_its_scale_most_of_the_way():
    sigma = fit.PRIOR_SIGMA[0]
    share = 24 / (24 + fit.ROW_LOG_SIGMA**2 / sigma**2)  # of the log factor the rows ask for
    assert 0.9 < share < 0.95  # 0.75 when rows weighed as an e-fold error
