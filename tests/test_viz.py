"""cosim.viz figure functions, checked on their traces, axes and values (hand-made inputs)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cosim.viz import (
    breakdown_bars,
    comparison_bars,
    cost_band,
    memory_bars,
    pareto_scatter,
    predicted_vs_measured,
    roofline_figure,
    tornado_chart,
    video_chart,
)


def ops() -> pd.DataFrame:
    # gemm: 1e12 FLOP over 1e9 B in 2 ms; attn: 1e9 FLOP over 1e9 B in 1 ms; comm: no FLOPs (left out)
    return pd.DataFrame({"graph": "decode", "name": ["gemm", "attn", "allreduce"], "flops": [1e12, 1e9, 0.0],
                         "bytes": [1e9, 1e9, 1e8], "time_s": [2e-3, 1e-3, 5e-4], "bound": ["compute", "memory", "network"]})


def test_roofline_places_ops_and_ridge_point():
    fig = roofline_figure(ops(), peak_flops_per_s=1e15, bandwidth_bytes_per_s=2e12)
    roof, ridge, points = fig.data
    assert ridge.x[0] == pytest.approx(500.0) and ridge.y[0] == pytest.approx(1e15)  # 1e15 / 2e12
    assert list(points.text) == ["gemm", "attn"]
    assert list(points.x) == pytest.approx([1000.0, 1.0])  # FLOP per byte
    assert list(points.y) == pytest.approx([5e14, 1e12])  # FLOP / s achieved
    x, y = np.asarray(roof.x), np.asarray(roof.y)
    assert np.allclose(y, np.minimum(1e15, 2e12 * x))
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    assert fig.layout.meta["ops_left_out"] == 1


def test_breakdown_bars_sorted_with_other_bucket():
    fig = breakdown_bars(ops(), top=2)
    bar = fig.data[0]
    # plotly draws the first category at the bottom: the largest op is last
    assert list(bar.y) == ["other", "attn", "gemm"]
    assert list(bar.x) == pytest.approx([5e-4, 1e-3, 2e-3])
    assert bar.customdata[-1] == pytest.approx(2e-3 / 3.5e-3)


def test_comparison_bars_normalise_to_the_largest():
    frame = pd.DataFrame({"hardware": ["a", "b"], "tps": [100.0, 400.0], "usd": [2.0, None]})
    fig = comparison_bars(frame, "hardware", ["tps", "usd"])
    a, b = fig.data
    assert a.name == "a" and list(a.y) == pytest.approx([0.25, 1.0])
    assert b.y[0] == pytest.approx(1.0) and np.isnan(b.y[1])
    raw = comparison_bars(frame, "hardware", ["tps"], normalise=False)
    assert list(raw.data[1].y) == [400.0]


def test_memory_bars_stack_parts_against_capacity():
    fig = memory_bars({"weights": 16e9, "kv_cache": 4e9, "activations": 0.0, "total": 20e9}, 80e9, usable_bytes=72e9)
    assert [t.name for t in fig.data] == ["weights", "kv_cache"]
    assert [t.y[0] for t in fig.data] == pytest.approx([16.0, 4.0])
    lines = sorted(s.y0 for s in fig.layout.shapes)
    assert lines == pytest.approx([72.0, 80.0])
    assert fig.layout.barmode == "stack"


def test_tornado_orders_by_swing_and_bars_start_at_base():
    rows = [
        {"mode": "owned", "input": "pue", "metric": "usd", "metric_at_base": 10.0, "metric_at_low": 9.5,
         "metric_at_high": 11.0, "swing": 1.5},
        {"mode": "owned", "input": "price", "metric": "usd", "metric_at_base": 10.0, "metric_at_low": 7.0,
         "metric_at_high": 14.0, "swing": 7.0},
        {"mode": "cloud", "input": "price", "metric": "usd", "metric_at_base": 20.0, "metric_at_low": 1.0,
         "metric_at_high": 99.0, "swing": 98.0},
    ]
    fig = tornado_chart(rows, mode="owned")
    low, high = fig.data
    assert list(low.y) == ["pue", "price"]  # widest on top (last)
    assert low.base == 10.0 and high.base == 10.0
    assert list(np.asarray(low.x) + 10.0) == pytest.approx([9.5, 7.0])
    assert list(np.asarray(high.x) + 10.0) == pytest.approx([11.0, 14.0])
    assert fig.layout.xaxis.title.text == "usd"


def test_cost_band_error_bars_reach_p10_and_p90():
    mc = {"metric": "usd_per_million_output_tokens", "samples": 100, "cloud": {"p10": 1.0, "p50": 2.0, "p90": 5.0},
          "owned": {"p10": 0.5, "p50": 0.6, "p90": 0.9}}
    (t,) = cost_band(mc).data
    assert list(t.x) == ["cloud", "owned"] and list(t.y) == [2.0, 0.6]
    assert list(t.error_y.array) == pytest.approx([3.0, 0.3])
    assert list(t.error_y.arrayminus) == pytest.approx([1.0, 0.1])


def test_pareto_scatter_highlights_the_front_in_x_order():
    frame = pd.DataFrame({"cost": [3.0, 1.0, 2.0, 4.0], "tps": [30.0, 10.0, 5.0, 20.0]})
    front = np.array([True, True, False, False])
    fig = pareto_scatter(frame, "cost", "tps", front)
    rest, on = fig.data
    assert list(on.x) == [1.0, 3.0] and list(on.customdata) == [1, 0]
    assert sorted(rest.customdata) == [2, 3]
    thin = pareto_scatter(pd.DataFrame({"a": np.arange(100.0), "b": np.arange(100.0)}), "a", "b",
                          np.r_[True, np.zeros(99, bool)], max_background=10)
    assert len(thin.data[0].x) == 10


def test_predicted_vs_measured_is_log_log_with_identity_line():
    rows = pd.DataFrame({"id": ["a", "b", "c"], "predicted": [2.0, 50.0, -1.0], "measured": [1.0, 100.0, 3.0],
                         "metric": ["tps", "tps", "tps"]})
    fig = predicted_vs_measured(rows, color="metric")
    pts, ident = fig.data
    assert list(pts.x) == [1.0, 100.0] and list(pts.y) == [2.0, 50.0]  # the non-positive row is dropped
    assert list(ident.x) == list(ident.y)
    assert ident.x[0] <= 1.0 and ident.x[1] >= 100.0
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"


def test_video_chart_one_line_per_group_sorted_by_x():
    frame = pd.DataFrame({"chips": [4, 1, 2, 1, 2], "s": [10.0, 40.0, 20.0, 90.0, None],
                          "res": ["480p", "480p", "480p", "720p", "720p"]})
    fig = video_chart(frame, "chips", "s", color="res", log_y=True)
    a, b = fig.data
    assert a.name == "480p" and list(a.x) == [1, 2, 4] and list(a.y) == [40.0, 20.0, 10.0]
    assert b.name == "720p" and np.isnan(b.y[1])
    assert fig.layout.yaxis.type == "log"


def test_empty_inputs_give_empty_figures():
    empty = pd.DataFrame(columns=["graph", "name", "flops", "bytes", "time_s", "bound"])
    assert len(breakdown_bars(empty).data) == 0
    assert len(roofline_figure(empty, 1e15, 1e12).data) == 2  # roof and ridge only
    assert len(tornado_chart([]).data) == 0
