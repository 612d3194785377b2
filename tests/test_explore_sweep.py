"""Sweeps: spec validation, chunked sampling, Parquet streaming, resume, Dask, mapping selection."""

import itertools
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from test_explore_roofline import roofline

from cosim.cli.main import main
from cosim.engines.hwarrays import HardwareArrays
from cosim.errors import CosimInputError
from cosim.explore.engine import SweepContext
from cosim.explore.sampling import chunk_points, n_chunks
from cosim.explore.spec import sweep_from_dict
from cosim.explore.sweep import parts_dir, run_sweep
from cosim.specs.loader import load_hardware, load_workload

BASE = {
    "hardware": "h100-sxm",
    "workloads": ["llama-3.1-8b"],
    "scenarios": [{"phase": "decode", "batch": 16, "input_len": 1024, "output_len": 64, "precision": "fp8"}],
    "parameters": [
        {"path": "memory.hbm.bandwidth_bytes_per_s", "range": {"low": "1 TB/s", "high": "8 TB/s"}},
        {"path": "compute.peak_flops_per_s.fp8", "range": {"low": "500 TFLOPS", "high": "4000 TFLOPS", "log": True}},
        {"path": "memory.hbm.capacity_bytes", "values": ["16 GB", "80 GB"]},
    ],
    "sampling": {"method": "sobol", "points": 2500, "seed": 7},
    "objectives": ["throughput_tokens_per_s:max", "usd_per_million_tokens:min"],
    "constraints": ["tpot_s <= 0.004"],
    "chunk_size": 1000,
}


def spec(**over):
    return sweep_from_dict({**BASE, **over})


def write(tmp_path, data, name="s.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data))
    return p


# --- spec errors -----------------------------------------------------------------------------------

def test_unknown_field_path_names_close_matches():
    s = spec(parameters=[{"path": "memory.hbm.bandwith_bytes_per_s", "values": [1e12]}])
    with pytest.raises(CosimInputError, match="did you mean memory.hbm.bandwidth_bytes_per_s"):
        SweepContext.build(s, evaluator=roofline)


@pytest.mark.parametrize("bad, message", [
    ({"parameters": [{"path": "memory.hbm.capacity_bytes", "range": {"low": "80 GB", "high": "80 GB"}}]},
     "empty range"),
    ({"constraints": ["ttft_seconds <= 0.5"]}, "unknown result column 'ttft_seconds'"),
    ({"sampling": {"method": "sobol"}}, "needs 'points'"),
    ({"objectives": ["tpot_s:lowest"]}, "COLUMN:max or COLUMN:min"),
])
def test_bad_sweep_specs_exit_2_with_one_line(tmp_path, capsys, bad, message):
    path = write(tmp_path, {**BASE, **bad})
    assert main(["sweep", str(path), "--output", str(tmp_path / "o.parquet"), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err


def test_unknown_path_via_cli_exits_2(tmp_path, capsys):
    path = write(tmp_path, {**BASE, "parameters": [{"path": "compute.systolic.rowz", "values": [64]}]})
    assert main(["sweep", str(path), "--output", str(tmp_path / "o.parquet"), "-q"]) == 2
    assert "did you mean compute.systolic.rows" in capsys.readouterr().err


# --- sampling --------------------------------------------------------------------------------------

def test_grid_enumerates_the_cartesian_product_across_chunks():
    s = spec(parameters=[
        {"path": "memory.hbm.capacity_bytes", "values": [1.0, 2.0, 3.0]},
        {"path": "compute.clock_hz", "range": {"low": 1e9, "high": 2e9, "num": 5}},
        {"path": "power.tdp_w", "values": [300, 700]},
    ], sampling={"method": "grid"}, chunk_size=7)
    assert s.n_points() == 30
    got = [tuple(v) for k in range(n_chunks(s))
           for v in zip(*chunk_points(s, k).values(), strict=True)]
    want = list(itertools.product([1.0, 2.0, 3.0], np.linspace(1e9, 2e9, 5), [300.0, 700.0]))
    assert got == want


@pytest.mark.parametrize("method", ["sobol", "random", "lhs"])
def test_points_stay_in_bounds_and_repeat_with_the_seed(method):
    s = spec(sampling={"method": method, "points": 600, "seed": 3}, chunk_size=256)
    a = chunk_points(s, 1)
    b = chunk_points(s, 1)
    for path in a:
        np.testing.assert_array_equal(a[path], b[path])
    bw = a["memory.hbm.bandwidth_bytes_per_s"]
    assert bw.min() >= 1e12 and bw.max() <= 8e12
    assert set(np.unique(a["memory.hbm.capacity_bytes"])) <= {16e9, 80e9}


def test_sobol_chunks_concatenate_to_the_unchunked_sequence():
    one = chunk_points(spec(sampling={"method": "sobol", "points": 512, "seed": 1}, chunk_size=512), 0)
    small = spec(sampling={"method": "sobol", "points": 512, "seed": 1}, chunk_size=100)
    parts = [chunk_points(small, k) for k in range(n_chunks(small))]
    for path in one:
        np.testing.assert_allclose(np.concatenate([p[path] for p in parts]), one[path], rtol=1e-15)


def test_lhs_single_chunk_is_a_latin_hypercube():
    s = spec(sampling={"method": "lhs", "points": 50, "seed": 0},
             parameters=[{"path": "compute.clock_hz", "range": {"low": 0.0 + 1e-9, "high": 1.0}}])
    u = (chunk_points(s, 0)["compute.clock_hz"] - 1e-9) / (1.0 - 1e-9)
    assert sorted(np.floor(u * 50).astype(int)) == list(range(50))


# --- running ---------------------------------------------------------------------------------------

def test_sweep_rows_match_the_evaluator_and_carry_units(tmp_path):
    s = spec()
    out = tmp_path / "r.parquet"
    summary = run_sweep(s, out, evaluator=roofline, quiet=True)
    table = pq.read_table(out)
    assert table.num_rows == 2500 == summary.rows
    assert not parts_dir(out).exists()
    units = json.loads(table.schema.metadata[b"cosim.units"])
    assert units["tpot_s"] == "s" and units["memory.hbm.bandwidth_bytes_per_s"] == "byte/s"
    df = table.to_pandas()
    hwa = HardwareArrays.from_hardware(load_hardware("h100-sxm"), len(df))
    hwa = hwa.with_column("mem_bandwidth_bytes_per_s", df["memory.hbm.bandwidth_bytes_per_s"].to_numpy())
    hwa = hwa.with_column("peak_flops_per_s.fp8", df["compute.peak_flops_per_s.fp8"].to_numpy())
    hwa = hwa.with_column("mem_capacity_bytes", df["memory.hbm.capacity_bytes"].to_numpy())
    direct = roofline(hwa, load_workload("llama-3.1-8b"), s.scenarios[0].to_scenario())
    np.testing.assert_allclose(df["tpot_s"], direct["tpot_s"])
    np.testing.assert_array_equal(df["meets_constraints"], direct["feasible"] & (direct["tpot_s"] <= 0.004))
    # $/M tokens = $/h / (tokens/s x 3600) x 1e6, at the spec's $12.29/h
    np.testing.assert_allclose(df["usd_per_million_tokens"], 12.29 / (df["throughput_tokens_per_s"] * 3600) * 1e6)
    assert summary.feasible_points == int(df["meets_constraints"].sum())


def test_killed_sweep_resumes_and_matches_a_fresh_run(tmp_path):
    s = spec()
    out = tmp_path / "r.parquet"
    partial = run_sweep(s, out, evaluator=roofline, quiet=True, max_chunks=2)
    assert "resume" in partial.message and not out.exists()
    # a torn part (killed mid-write) is evaluated again rather than trusted
    (parts_dir(out) / "part-000001.parquet").write_bytes(b"PAR1 torn")
    resumed = run_sweep(s, out, evaluator=roofline, quiet=True)
    assert resumed.resumed_chunks == 1
    fresh = tmp_path / "f.parquet"
    run_sweep(s, fresh, evaluator=roofline, quiet=True)
    assert pq.read_table(out).equals(pq.read_table(fresh))


def test_resume_with_another_spec_or_a_corrupt_manifest_exits_2(tmp_path, capsys):
    path = write(tmp_path, BASE)
    out = tmp_path / "r.parquet"
    run_sweep(spec(), out, evaluator=roofline, quiet=True, max_chunks=1)
    other = write(tmp_path, {**BASE, "sampling": {"method": "sobol", "points": 2500, "seed": 8}}, "o.yaml")
    assert main(["sweep", str(other), "--output", str(out), "-q"]) == 2
    assert "different sweep spec" in capsys.readouterr().err
    (parts_dir(out) / "manifest.json").write_text("{not json")
    assert main(["sweep", str(path), "--output", str(out), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "corrupt resume file" in err


def test_no_feasible_point_names_the_tightest_constraint(tmp_path):
    s = spec(constraints=["tpot_s <= 1e-9", "usd_per_hour <= 100"])
    summary = run_sweep(s, tmp_path / "r.parquet", evaluator=roofline, quiet=True)
    assert summary.feasible_points == 0
    assert "no feasible point" in summary.message and "tpot_s <= 1e-09" in summary.message


def test_dask_local_cluster_gives_identical_results(tmp_path):
    distributed = pytest.importorskip("distributed")
    s = spec()
    local = tmp_path / "local.parquet"
    run_sweep(s, local, evaluator=roofline, quiet=True)
    with distributed.LocalCluster(processes=False, n_workers=1, threads_per_worker=1,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        remote = tmp_path / "dask.parquet"
        run_sweep(s, remote, evaluator=roofline, quiet=True, client=client)
    assert pq.read_table(local).equals(pq.read_table(remote))


def test_area_columns_for_a_systolic_design(tmp_path):
    s = spec(hardware="generic-systolic-asic",
             parameters=[{"path": "memory.sram.capacity_bytes", "values": ["64 MiB", "256 MiB"]}],
             sampling={"method": "grid"}, scenarios=[{"phase": "decode", "batch": 1, "precision": "bf16"}],
             constraints=["die_area_mm2 <= 250"], objectives=["die_cost_usd:min", "tpot_s:min"])
    run_sweep(s, tmp_path / "a.parquet", evaluator=roofline, quiet=True)
    df = pq.read_table(tmp_path / "a.parquet").to_pandas()
    # 192 MiB more SRAM at 0.4982 mm2/MiB, over (1 - 0.35) uncore
    delta = df["die_area_mm2"].iloc[1] - df["die_area_mm2"].iloc[0]
    assert delta == pytest.approx(192 * 0.4982 / 0.65, rel=1e-6)
    assert df["die_cost_usd"].iloc[1] > df["die_cost_usd"].iloc[0]


def test_die_area_constraint_on_a_gpu_base_asks_for_the_area_model():
    s = spec(constraints=["die_area_mm2 <= 800"])
    with pytest.raises(CosimInputError, match="area model"):
        SweepContext.build(s, evaluator=roofline)


def test_mapping_best_picks_the_brute_force_best(tmp_path):
    s = spec(mapping={"tp": [1, 2, 4], "batch": [1, 16, 64], "select": "best"},
             objectives=["throughput_tokens_per_s:max", "tpot_s:min"], constraints=["tpot_s <= 0.003"],
             sampling={"method": "sobol", "points": 40, "seed": 2})
    run_sweep(s, tmp_path / "m.parquet", evaluator=roofline, quiet=True)
    df = pq.read_table(tmp_path / "m.parquet").to_pandas()
    hw, wl = load_hardware("h100-sxm"), load_workload("llama-3.1-8b")
    for _, row in df.head(10).iterrows():
        hwa = HardwareArrays.from_hardware(hw)
        hwa = hwa.with_column("mem_bandwidth_bytes_per_s", [row["memory.hbm.bandwidth_bytes_per_s"]])
        hwa = hwa.with_column("peak_flops_per_s.fp8", [row["compute.peak_flops_per_s.fp8"]])
        hwa = hwa.with_column("mem_capacity_bytes", [row["memory.hbm.capacity_bytes"]])
        best = -np.inf
        for tp, batch in itertools.product([1, 2, 4], [1, 16, 64]):
            sc = s.scenarios[0].to_scenario(tp=tp, batch=batch)
            out = roofline(hwa, wl, sc)
            if out["feasible"][0] and out["tpot_s"][0] <= 0.003:
                best = max(best, out["throughput_tokens_per_s"][0])
        if np.isfinite(best):
            assert row["meets_constraints"] and row["throughput_tokens_per_s"] == pytest.approx(best)
        else:
            assert not row["meets_constraints"]


@pytest.mark.slow  # the first call compiles the analytical engine's Numba kernels
def test_cli_sweep_json_summary_with_the_real_engine(tmp_path, capsys):
    path = write(tmp_path, {**BASE, "sampling": {"method": "random", "points": 300, "seed": 1}})
    out = tmp_path / "cli.parquet"
    assert main(["sweep", str(path), "--output", str(out), "--format", "json", "-q"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["rows"] == 300 and pq.read_metadata(out).num_rows == 300


def test_a_sweep_scenario_can_set_the_activations_apart():
    # weight-only INT4 (W4A16): the sweep builds the same scenario `cosim estimate --precision int4
    # --activation-precision bf16` does; without the key the activations follow the weights
    from cosim.cli.common import build_scenario

    s = spec(scenarios=[{"phase": "prefill", "batch": 4, "input_len": 2048, "precision": "int4",
                         "activation_precision": "bf16"}])
    sc = s.scenarios[0].to_scenario()
    cli = build_scenario(phase="prefill", batch=4, input_len=2048, precision="int4", activation_precision="bf16")
    assert (sc.weight_precision, sc.activation_precision, sc.kv_precision) == (
        cli.weight_precision, cli.activation_precision, cli.kv_precision) == ("int4", "bf16", "fp8")
    assert spec().scenarios[0].to_scenario().activation_precision == "fp8"


def test_a_layout_the_model_cannot_take_is_an_infeasible_row_not_a_failed_sweep(tmp_path, capsys):
    """Llama 3.1 8B has 32 heads: TP 64 cannot split them. A sweep over TP 8 and TP 64 keeps the TP 8 rows as
    they are alone and gives each TP 64 point a row, infeasible with reason code 3 (`mapping`), no step time;
    a sweep whose every layout is impossible is an error naming why."""
    from cosim.engines.analytical import REASON_MAPPING, REASONS

    scenario = {"phase": "decode", "batch": 16, "input_len": 1024, "output_len": 64, "precision": "fp8"}
    both = {**BASE, "scenarios": [{**scenario, "tp": 8}, {**scenario, "tp": 64}],
            "sampling": {"method": "random", "points": 20, "seed": 3}, "constraints": []}
    out = tmp_path / "both.parquet"
    assert main(["sweep", str(write(tmp_path, both)), "--output", str(out), "-q", "--format", "json"]) == 0
    df = pq.read_table(out).to_pandas()
    alone = tmp_path / "alone.parquet"
    one = {**both, "scenarios": [{**scenario, "tp": 8}]}
    assert main(["sweep", str(write(tmp_path, one, "one.yaml")), "--output", str(alone), "-q", "--format", "json"]) == 0
    ref = pq.read_table(alone).to_pandas()
    tp8, tp64 = df[df["tp"] == 8].reset_index(drop=True), df[df["tp"] == 64]
    np.testing.assert_array_equal(tp8["tpot_s"], ref["tpot_s"])
    assert len(tp64) == 20 and not tp64["feasible"].any() and tp64["tpot_s"].isna().all()
    assert (tp64["reason_code"] == REASON_MAPPING).all() and REASONS[REASON_MAPPING] == "mapping"
    capsys.readouterr()
    only64 = {**both, "scenarios": [{**scenario, "tp": 64}]}
    assert main(["sweep", str(write(tmp_path, only64, "bad.yaml")), "--output", str(tmp_path / "x.parquet"),
                 "-q"]) == 2
    assert "tp=64 does not divide attention.num_heads=32" in capsys.readouterr().err


def test_mapping_best_skips_a_tp_the_model_cannot_take(tmp_path):
    """`mapping: {tp: [8, 64], select: best}` on a 32-head model: TP 64 is skipped, so every point's best is
    its TP 8 row, the same as a sweep offered TP 8 alone."""
    base = {**BASE, "sampling": {"method": "random", "points": 12, "seed": 5}, "constraints": []}
    run_sweep(sweep_from_dict({**base, "mapping": {"tp": [8, 64], "select": "best"}}), tmp_path / "b.parquet",
              quiet=True)
    run_sweep(sweep_from_dict({**base, "mapping": {"tp": [8], "select": "best"}}), tmp_path / "a.parquet",
              quiet=True)
    best, alone = (pq.read_table(tmp_path / f"{k}.parquet").to_pandas() for k in ("b", "a"))
    assert (best["tp"] == 8).all() and best["feasible"].all()
    np.testing.assert_array_equal(best["tpot_s"], alone["tpot_s"])
