"""Pareto fronts: exact against brute force (Hypothesis), and the `cosim pareto` command."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from test_explore_roofline import roofline

from cosim.cli.main import main
from cosim.explore.pareto import pareto_mask, pareto_mask_bruteforce
from cosim.explore.spec import sweep_from_dict
from cosim.explore.sweep import run_sweep

# small integer grids make ties and duplicates common, where front algorithms usually go wrong
values = st.integers(1, 40).flatmap(
    lambda n: st.integers(2, 4).flatmap(
        lambda k: st.tuples(
            arrays(np.float64, (n, k), elements=st.sampled_from([0.0, 1.0, 2.0, 3.0, np.nan])),
            st.lists(st.sampled_from(["max", "min"]), min_size=k, max_size=k))))


@settings(max_examples=300, deadline=None)
@given(values)
def test_front_equals_brute_force(case):
    v, senses = case
    np.testing.assert_array_equal(pareto_mask(v, senses), pareto_mask_bruteforce(v, senses))


@settings(max_examples=100, deadline=None)
@given(arrays(np.float64, (60, 2), elements=st.floats(-1e6, 1e6)))
def test_front_2d_continuous_values(v):
    np.testing.assert_array_equal(pareto_mask(v, ["min", "max"]), pareto_mask_bruteforce(v, ["min", "max"]))


def test_known_front():
    v = np.array([[1, 5], [2, 4], [2, 4], [3, 3], [3, 4], [4, 1], [5, 1], [0, 6], [np.nan, 0]], float)
    assert pareto_mask(v, ["min", "min"]).tolist() == [True, True, True, True, False, True, False, True, False]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    spec = sweep_from_dict({
        "hardware": "h100-sxm", "workloads": ["llama-3.1-8b"],
        "scenarios": [{"phase": "decode", "batch": 16, "precision": "fp8"}],
        "parameters": [
            {"path": "memory.hbm.bandwidth_bytes_per_s", "range": {"low": "1 TB/s", "high": "8 TB/s"}},
            {"path": "cost.cloud_price_usd_per_hour", "range": {"low": 1, "high": 10}},
        ],
        "sampling": {"method": "random", "points": 400, "seed": 5},
        "constraints": ["tpot_s <= 0.01"],
    })
    out = tmp_path_factory.mktemp("pareto") / "r.parquet"
    run_sweep(spec, out, evaluator=roofline, quiet=True)
    return out


def test_cli_pareto_json_matches_brute_force(results, capsys, tmp_path):
    import pyarrow.parquet as pq

    args = ["pareto", str(results), "--objective", "throughput_tokens_per_s:max",
            "--objective", "usd_per_hour:min", "--format", "json", "--output", str(tmp_path / "f.csv")]
    assert main(args) == 0
    data = json.loads(capsys.readouterr().out)
    df = pq.read_table(results).to_pandas()
    v = df[["throughput_tokens_per_s", "usd_per_hour"]].to_numpy(float, copy=True)
    v[~df["meets_constraints"].to_numpy()] = np.nan
    expected = set(df["point_id"][pareto_mask_bruteforce(v, ["max", "min"])])
    assert {r["point_id"] for r in data["rows"]} == expected and data["count"] == len(expected)
    assert (tmp_path / "f.csv").read_text().count("\n") == len(expected) + 1


@pytest.mark.parametrize("args, message", [
    (["--objective", "tpot:min", "--objective", "usd_per_hour:min"], "unknown column 'tpot'"),
    (["--objective", "tpot_s:min"], "at least two"),
    (["--objective", "tpot_s:fast", "--objective", "usd_per_hour:min"], "COLUMN:max or COLUMN:min"),
])
def test_cli_pareto_bad_input_exits_2(results, capsys, args, message):
    assert main(["pareto", str(results), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err


def test_cli_pareto_on_a_non_parquet_file_exits_2(tmp_path, capsys):
    bad = tmp_path / "x.parquet"
    bad.write_text("not parquet")
    assert main(["pareto", str(bad), "--objective", "a:min", "--objective", "b:max"]) == 2
    assert "not a readable Parquet file" in capsys.readouterr().err
