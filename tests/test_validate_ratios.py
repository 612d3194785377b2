"""Hardware ratios: the same query on two chips, per chip, measured against predicted."""

import pandas as pd
import pytest

from cosim.validate.ratios import hardware_ratios, query_key


def _row(i, hw, chips, measured, predicted, metric="offline_throughput", source="mlperf_inference"):
    return {"id": i, "hardware": hw, "chips": chips, "metric": metric, "source_class": source,
            "measured": measured, "predicted": predicted}


def test_ratio_is_per_chip_faster_over_slower_with_its_error():
    # h100: 200 tokens/s on 2 chips = 100 per chip measured, 110 predicted; h200: 150 and 132 on one chip.
    # Measured h200/h100 = 1.5, predicted 132 / 110 = 1.2, error 1.2 / 1.5 - 1 = -0.2
    rows = pd.DataFrame([_row("a", "h100", 2, 200.0, 220.0), _row("b", "h200", 1, 150.0, 132.0)])
    r = hardware_ratios(rows, keys={"a": "q", "b": "q"})
    assert len(r) == 1
    line = r.iloc[0]
    assert (line["faster"], line["slower"], line["rows"]) == ("h200", "h100", 2)
    assert line["measured_ratio"] == pytest.approx(1.5)
    assert line["predicted_ratio"] == pytest.approx(1.2)
    assert line["error"] == pytest.approx(-0.2)


def test_rows_of_one_chip_pool_by_geometric_mean():
    # h200 per chip: 150 and 96 measured (geometric mean 120), 132 both predicted; h100 100 / 110.
    # Measured 120 / 100 = 1.2 = predicted 132 / 110: the ratio is right although each row is not
    rows = pd.DataFrame([_row("a", "h100", 1, 100.0, 110.0), _row("b", "h200", 1, 150.0, 132.0),
                         _row("c", "h200", 1, 96.0, 132.0)])
    r = hardware_ratios(rows, keys={"a": "q", "b": "q", "c": "q"})
    assert len(r) == 1 and r.iloc[0]["rows"] == 3
    assert r.iloc[0]["measured_ratio"] == pytest.approx(1.2)
    assert r.iloc[0]["error"] == pytest.approx(0.0, abs=1e-12)


def test_only_same_query_same_source_throughput_rows_with_a_prediction_pair_up():
    rows = pd.DataFrame([
        _row("a", "h100", 1, 100.0, 100.0),
        _row("b", "h200", 1, 150.0, 150.0, source="vendor_benchmark"),  # another source
        _row("c", "b200", 1, 300.0, 300.0),  # another query (key below)
        _row("d", "mi300x", 1, 120.0, float("nan")),  # no prediction
        _row("e", "h200", 1, 2.0, 2.0, metric="energy_per_token"),  # not a throughput
    ])
    keys = {"a": "q", "b": "q", "c": "other", "d": "q", "e": "q"}
    assert hardware_ratios(rows, keys=keys).empty
    keys["c"] = "q"
    r = hardware_ratios(rows, keys=keys)
    assert list(zip(r["faster"], r["slower"], strict=True)) == [("b200", "h100")]
    assert r.iloc[0]["measured_ratio"] == pytest.approx(3.0)


def test_query_key_separates_latency_bounds_and_joins_the_same_table_cell():
    server = query_key("mlperf-v4.1-h100x8-llama2-server")
    interactive = query_key("mlperf-v5.0-h200x8-llama2-interactive")
    assert server and interactive and server != interactive
    assert query_key("trtllm-perf-llama3.3-70b-h200-tp1-1000-1000") == \
        query_key("trtllm-perf-llama3.3-70b-b200-tp1-1000-1000")
    assert query_key("no-such-row") is None
