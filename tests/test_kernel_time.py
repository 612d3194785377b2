"""Every unfused kernel's fixed time (EngineParams.launch_overhead_s): how a step pays it, and how the calibration
fits and applies one value for every chip. Expected values are hand counts of a decoder layer's kernels."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cosim.cli.common import build_scenario
from cosim.engines import calibration
from cosim.engines.efficiency import params_for
from cosim.engines.estimate import estimate
from cosim.specs.loader import load_hardware

H100 = load_hardware("h100-sxm")


def _tpot(kernel_s: float, workload: str = "llama-3.1-8b", tp: int = 1, batch: int = 1) -> float:
    sc = build_scenario(phase="decode", batch=batch, input_len=1024, precision="fp8", tp=tp)
    params = params_for(H100, calibrated=False).with_overrides(launch_overhead_s=kernel_s)
    return estimate(H100, workload, sc, chips=tp, params=params).tpot_s


@pytest.mark.parametrize(("workload", "layers"), [("llama-3.1-8b", 32), ("llama-3.1-70b", 80)])
def test_a_decode_step_pays_the_kernel_time_once_per_unfused_kernel(workload, layers):
    """A Llama layer runs seven kernels of its own: norm, QKV GEMM, attention (rotary fused in), output GEMM, norm,
    gate/up GEMM (SwiGLU fused in its epilogue), down GEMM; the step adds the embedding lookup, the final norm and
    the LM head: 7 L + 3 kernels, each paying the time once (TP1: no all-reduce)."""
    kernels = 7 * layers + 3
    assert _tpot(6e-6, workload) - _tpot(2e-6, workload) == pytest.approx(kernels * 4e-6, rel=1e-9)


def test_collectives_carry_their_own_start_up_not_the_kernel_time():
    """At TP8 the two all-reduces per layer are priced by the fabric's latency (the spec's measured small-message
    time), so the kernel count per step is the same 7 L + 3 as at TP1."""
    assert _tpot(6e-6, "llama-3.1-70b", tp=8) - _tpot(2e-6, "llama-3.1-70b", tp=8) == pytest.approx(
        (7 * 80 + 3) * 4e-6, rel=1e-9)


@settings(max_examples=15, deadline=None)
@given(st.floats(0.5e-6, 30e-6), st.floats(0.0, 20e-6), st.sampled_from([1, 8, 64]))
def test_a_longer_kernel_time_never_makes_a_step_faster(kernel_s, more_s, batch):
    assert _tpot(kernel_s + more_s, batch=batch) >= _tpot(kernel_s, batch=batch)


def test_scaled_params_replaces_the_kernel_time_only_when_given():
    base = params_for(H100, calibrated=False)
    assert calibration.scaled_params(H100, 1.0, 1.0).launch_overhead_s == base.launch_overhead_s
    assert calibration.scaled_params(H100, 1.0, 1.0, launch_overhead_s=7e-6).launch_overhead_s == 7e-6


def test_the_stored_kernel_time_applies_to_every_chip(monkeypatch):
    stored = {"families": {}, "kernels": {"launch_overhead_s": 7.5e-6}}
    monkeypatch.setattr(calibration, "load_calibration", lambda: stored)
    assert calibration.fitted_kernel_launch_s() == 7.5e-6
    for slug in ("h100-sxm", "mi300x", "tpu-v5e", "gaudi3"):
        assert calibration.calibrated_params(load_hardware(slug)).launch_overhead_s == 7.5e-6


def test_before_calibration_the_engine_default_stands(monkeypatch):
    monkeypatch.setattr(calibration, "load_calibration", lambda: {"families": {}})
    assert calibration.fitted_kernel_launch_s() is None
    assert calibration.calibrated_params(H100).launch_overhead_s == params_for(H100, calibrated=False).launch_overhead_s


def test_single_sequence_rows_are_dense_tuned_runs_of_one_sequence():
    """A static batch of one or a single closed-loop client's inter-token latency, on a tuned stack: of AMD's
    latency tables the batch-1 cells of TensorRT-LLM on the H100, of NIM's table its one-client ITL. The MI300X's
    (vLLM, whose factor a later stage fits), the larger batches and concurrencies, the other closed-loop metrics and
    the MoE and speculative rows stay held out. (AMD's H100 cells are low reliability, so `calibrate` never sees
    them: the rule picks from the rows it fits.)"""
    from cosim.validate.fit import HELD_OUT_METRICS, fit_stack_key, generation_of, single_sequence_rows
    from cosim.validate.runner import base_table, query_for

    ids = ["amd-blog-2501-llama3.1-70b-h100-tp8-b1-128-2048", "amd-blog-2501-llama3.1-70b-h100-tp8-b2-128-2048",
           "amd-blog-2501-llama3.1-70b-mi300x-tp8-b1-128-2048", "trtllm-dsr1-b200x8-minlatency-nomtp",
           "trtllm-v0.9-llama2-70b-h100-tp4-b512-128-2048", "nim-1.8-llama3.3-70b-h100-tp2-5000-500-c1-itl",
           "nim-1.8-llama3.3-70b-h100-tp2-5000-500-c5-itl", "nim-1.8-llama3.3-70b-h100-tp2-5000-500-c1-ttft"]
    table = base_table(ids=ids)
    table["generation"] = [generation_of(s) for s in table["hardware"]]
    table["stack"] = [fit_stack_key(query_for(i).stack, g) for i, g in zip(table["id"], table["generation"], strict=True)]
    held = table["metric"].isin(HELD_OUT_METRICS)
    chosen = set(table["id"][single_sequence_rows(table, held)])
    assert chosen == {"amd-blog-2501-llama3.1-70b-h100-tp8-b1-128-2048", "nim-1.8-llama3.3-70b-h100-tp2-5000-500-c1-itl"}
    assert not single_sequence_rows(table, pd.Series(False, index=table.index)).any()  # only rows still held


def test_the_stored_calibration_fits_one_kernel_time_in_stage_one():
    """The fitted value sits inside its bounds and above the engine default (every batch-one row read says a kernel
    costs more than a CUDA graph's launch gap); the single-sequence rows it names (NIM's one-client ITL) were
    fitted, not held out, and carry leave-one-out errors; rows of low reliability (AMD's own H100 runs) are not
    among them."""
    import yaml

    from cosim.validate.fit import KERNEL_BOUNDS_S, default_kernel_s

    cal = yaml.safe_load(calibration.CALIBRATION_PATH.read_text())
    k = cal["kernels"]
    assert KERNEL_BOUNDS_S[0] <= k["launch_overhead_s"] <= KERNEL_BOUNDS_S[1]
    assert k["launch_overhead_s"] > default_kernel_s() == k["default_s"]
    rows = k["single_sequence_rows"]
    from cosim.validate.fit import FIT_RELIABILITY
    from cosim.validate.reference import load_measurements

    reliability = {r.id: r.reliability for r in load_measurements()}
    assert rows and all(("-b1-" in r or r.endswith("-c1-itl")) and reliability[r] in FIT_RELIABILITY for r in rows)
    assert not set(rows) & set(cal["held_out"]["rows"])
    assert all(r in cal["loo_errors"] for r in rows)
