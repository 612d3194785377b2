"""The implied-batch diagnostic inverts cosim's offline prediction in the batch (cosim.validate.diagnose)."""

from __future__ import annotations

import pytest

from cosim.errors import CosimInputError
from cosim.validate.diagnose import implied_batch, offline_rate

#: a one-GPU dense table cell (dp = 1) and an attention-DP MoE cell (dp = 8: batches in whole ranks)
DENSE_ROW = "trtllm-perf-llama3.1-8b-h100-tp1-1000-1000"
DEP_ROW = "trtllm-dsr1-maxtput-h200x8"


def _rate(row_id: str, batch: int) -> float:
    return offline_rate(row_id)[2](batch)


@pytest.mark.parametrize("row_id", [DENSE_ROW, DEP_ROW])
def test_implied_batch_is_where_the_rate_crosses_the_measurement(row_id):
    full = implied_batch(row_id, measured=0.0)  # any batch meets a zero rate: the smallest is one per rank
    dp = full.dp
    assert full.implied == dp
    target_batch = full.admitted // (2 * dp) * dp  # about half the admitted batch, in whole ranks
    measured = _rate(row_id, target_batch)
    got = implied_batch(row_id, measured=measured)
    assert got.admitted == full.admitted and got.implied % dp == 0
    # the defining property: the implied batch meets the rate and one sequence fewer per rank does not (a
    # finite run's last wave makes the rate step in the batch, so the crossing found need not be the batch
    # that produced the rate)
    assert _rate(row_id, got.implied) >= measured > _rate(row_id, got.implied - dp)
    assert dp < got.implied < full.admitted
    assert got.ratio == pytest.approx(got.implied / full.admitted)


def test_a_rate_beyond_the_admitted_batch_has_no_implied_batch():
    full = implied_batch(DENSE_ROW, measured=0.0)
    beyond = implied_batch(DENSE_ROW, measured=2.0 * _rate(DENSE_ROW, full.admitted))
    assert beyond.implied is None and beyond.ratio is None


def test_implied_batch_needs_an_offline_throughput_row():
    with pytest.raises(CosimInputError, match="offline_throughput row"):
        implied_batch("trtllm-dsr1-b200x8-minlatency-nomtp")  # a per-user decode row
    with pytest.raises(CosimInputError, match="no such reference row"):
        implied_batch("no-such-row")


def test_the_rate_at_the_admitted_batch_is_what_cosim_validate_predicts():
    from cosim.validate.runner import base_table, predict_rows

    table = base_table([DENSE_ROW, DEP_ROW])
    predicted = dict(zip(table["id"], predict_rows(table), strict=True))
    for row_id in (DENSE_ROW, DEP_ROW):
        admitted, _, rate = offline_rate(row_id)
        assert rate(admitted) == pytest.approx(predicted[row_id], rel=1e-12)
