"""The eager-PyTorch training stack: one kernel-efficiency factor, fitted on its trainers' dense training rows.

Hand-derived expectations: a stack factor f scales the GEMM, attention and memory fractions of peak, so a
step whose time is all compute and memory runs 1 / f as long; launches, host time and collectives do not
scale, so a training step slows by at most 1 / f. The fit minimises n (t - log r)^2 + (t / sigma)^2 when
every row's log error is t - log r (t the log factor, r the factor the rows ask for), so
t* = n log r / (n + 1 / sigma^2).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from cosim.cli.main import main
from cosim.engines.calibration import stack_scale
from cosim.validate import fit
from cosim.validate.mapping import load_mapping

TRAIN_ARGS = ["estimate", "--hardware", "h100-sxm", "--workload", "llama-3.1-8b", "--phase", "train", "--batch", "64",
              "--input-len", "4096", "--dp", "8", "--zero", "1", "--microbatch", "2", "--chips", "8",
              "--format", "json"]


def _tokens_per_s(capsys, *extra) -> float:
    assert main([*TRAIN_ARGS, *extra]) == 0
    return json.loads(capsys.readouterr().out)["throughput_tokens_per_s"]


def test_the_pytorch_stack_slows_a_training_step_by_at_most_its_factor(capsys):
    f = stack_scale("pytorch", "h100-sxm")
    assert 0.3 <= f < 1.0  # the stored fit found eager PyTorch trainers slower than the tuned reference
    tuned, eager = _tokens_per_s(capsys), _tokens_per_s(capsys, "--stack", "pytorch")
    assert tuned * f * 0.999999 <= eager < tuned
    assert eager < tuned * (1 - (1 - f) / 2)  # a compute-bound step loses most of 1 - f


def _synthetic(monkeypatch, wanted: dict[str, float], rows_per_group: int = 20) -> pd.DataFrame:
    """Rows in two groups whose predictions at factor s are measured x s / wanted[group] (an exact power law, so
    interpolating log predictions on the grid is exact)."""
    groups = list(wanted)
    table = pd.DataFrame({
        "id": [f"r{i}" for i in range(rows_per_group * len(groups))],
        "stack": "pytorch", "hardware": "h100-sxm",
        "source": [f"{g}, table" for g in groups for _ in range(rows_per_group)],
        "measured": np.linspace(100.0, 900.0, rows_per_group * len(groups)),
    })
    need = np.array([wanted[s.split(",")[0]] for s in table["source"]])

    def predict(sub, thetas, stacks, grouped=None, train_host=None):
        return sub["measured"].to_numpy(dtype=float) * stacks["pytorch"] / need[: len(sub)]

    monkeypatch.setattr(fit, "_predict", predict)
    return table


def test_the_fit_recovers_the_factor_the_rows_ask_for_less_the_priors_pull(monkeypatch):
    table = _synthetic(monkeypatch, {"a": 0.7, "b": 0.7})
    got = fit.fit_training_stack(table, {}, {}, (1.0, 1.0), (0.0, ()), verbose=False)["pytorch"]
    n = len(table)
    expected = math.exp(n * math.log(0.7) / (n + 1 / fit.STACK_PRIOR_SIGMA**2))
    assert got["scale"] == pytest.approx(expected, rel=1e-3)
    assert np.allclose(got["in_sample"], expected / 0.7 - 1.0, atol=1e-9)


def test_a_table_left_out_is_predicted_at_the_factor_the_other_table_fits(monkeypatch):
    """Group a asks for 0.6, group b for 0.8: left out, a is scored at b's factor (shrunk by the prior) and
    the other way round, so the cross-validated errors are of the size the tables disagree by."""
    table = _synthetic(monkeypatch, {"a": 0.6, "b": 0.8})
    got = fit.fit_training_stack(table, {}, {}, (1.0, 1.0), (0.0, ()), verbose=False)["pytorch"]
    n = 20
    without_a = math.exp(n * math.log(0.8) / (n + 1 / fit.STACK_PRIOR_SIGMA**2))
    without_b = math.exp(n * math.log(0.6) / (n + 1 / fit.STACK_PRIOR_SIGMA**2))
    by_group = got["by_group"]
    assert by_group["a on h100-sxm"]["scale_without"] == pytest.approx(without_a, rel=1e-3)
    assert by_group["b on h100-sxm"]["scale_without"] == pytest.approx(without_b, rel=1e-3)
    assert np.allclose(got["loo"][:n], without_a / 0.6 - 1.0, atol=1e-3)
    assert np.allclose(got["loo"][n:], without_b / 0.8 - 1.0, atol=1e-3)


def test_the_stored_factor_holds_when_any_one_table_is_left_out():
    """The stored calibration's pytorch factor, refitted without each source-and-chip table, stays within 10% of
    the full fit: the tables agree on one factor, so it is a property of the stack, not of one table."""
    import yaml

    from cosim.engines.calibration import CALIBRATION_PATH

    entry = yaml.safe_load(CALIBRATION_PATH.read_text())["stacks"]["pytorch"]
    groups = entry["leave_one_group_out"]
    assert len(groups) >= 4
    assert any("llm-foundry" in g for g in groups) and any("torchtitan" in g for g in groups)
    for g, v in groups.items():
        assert v["scale_without"] == pytest.approx(entry["scale"], rel=0.10), g
    assert entry["loo_median_abs_error"] < 0.2


def test_every_eager_pytorch_training_row_is_mapped_to_the_stack():
    rows = load_mapping().rows
    trainers = [rid for rid in rows if rid.startswith(("llmfoundry-", "torchtitan-", "flashattn-gpt3-"))]
    assert len(trainers) >= 200
    assert all(rows[rid].stack == "pytorch" for rid in trainers)
    # the Megatron-Bridge tables stay on the tuned reference
    assert all(q.stack == "tuned" for rid, q in rows.items() if rid.startswith("mbridge"))


def test_a_training_band_draws_on_its_own_trainers_rows():
    """An eager-PyTorch estimate is judged by the PyTorch trainers' cross-validated errors (made at their factor),
    a tuned one by the tuned trainers' rows only: neither borrows the other's track record."""
    from cosim.validate.uncertainty import band, loo_errors

    metric = "training_tokens_per_s_per_gpu"
    on_a100 = {"hardware": "a100-sxm-80gb", "moe": False, "phase": "train"}
    eager = band("throughput_tokens_per_s", 1e5, **on_a100, stack="pytorch")
    tuned = band("throughput_tokens_per_s", 1e5, **on_a100)
    ampere_eager = loo_errors(metric, generation="nvidia-ampere", moe=False, trainer="pytorch")
    assert len(ampere_eager) >= 100  # llm-foundry's A100 tables, flash-attention's and torchtitan's runs
    assert eager["n"] == len(ampere_eager) and "pytorch trainers" in eager["group"]
    # no tuned trainer ran on an A100: the tuned band falls back on the tuned dense rows of every chip
    assert len(loo_errors(metric, generation="nvidia-ampere", moe=False, trainer="tuned")) == 0
    assert tuned["n"] == len(loo_errors(metric, moe=False, trainer="tuned")) and "tuned trainers" in tuned["group"]
    assert tuned["n"] + len(loo_errors(metric, moe=False, trainer="pytorch")) == len(loo_errors(metric, moe=False))


@pytest.mark.parametrize("args", [
    ["serve", "--hardware", "h100-sxm", "--workload", "llama-3.1-8b", "--input-len", "512", "--output-len", "64",
     "--offline", "--num-requests", "4",
     "--stack", "pytorch"],
    ["estimate", "--hardware", "h100-sxm", "--workload", "llama-3.1-8b", "--phase", "decode", "--stack", "pytorch"],
])
def test_the_training_stack_is_refused_outside_a_training_run(capsys, args):
    """Its factor was fitted on training steps only: a serving question gets one readable line, exit 2."""
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--stack pytorch" in err and "--phase train" in err
