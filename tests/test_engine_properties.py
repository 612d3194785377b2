"""Invariants of the analytical engine (Hypothesis): monotonicity, lower bounds, consistency."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cosim.cli.common import build_scenario
from cosim.engines.efficiency import engine_params
from cosim.engines.hwarrays import HardwareArrays
from cosim.engines.vectorized import evaluate_points
from cosim.specs.loader import load_hardware, load_workload

H100 = load_hardware("h100-sxm")
WL = load_workload("llama-3.1-8b")
P = engine_params("nvidia-gpu")


def _points(seed: int, n: int = 16) -> HardwareArrays:
    rng = np.random.default_rng(seed)
    hw = HardwareArrays.from_hardware(H100, n)
    for col in ("mem_bandwidth_bytes_per_s", "scale_up_bandwidth_bytes_per_s", "onchip_capacity_bytes"):
        hw = hw.with_column(col, getattr(hw, col) * rng.uniform(0.2, 5.0, n))
    hw.peak_flops_per_s[:] = hw.peak_flops_per_s * rng.uniform(0.2, 5.0, (n, 1))
    return hw


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**31), f=st.floats(0.05, 1.0), phase=st.sampled_from(["decode", "prefill", "train"]),
       tp=st.sampled_from([1, 2, 4]), batch=st.sampled_from([1, 8, 64]),
       col=st.sampled_from(["mem_bandwidth_bytes_per_s", "peak", "scale_up_bandwidth_bytes_per_s"]))
def test_latency_never_falls_when_a_bandwidth_or_peak_is_reduced(seed, f, phase, tp, batch, col):
    sc = build_scenario(phase=phase, batch=batch, input_len=512, tp=tp)
    hw = _points(seed)
    if col == "peak":
        slow = hw.with_column("mem_bandwidth_bytes_per_s", hw.mem_bandwidth_bytes_per_s)
        slow.peak_flops_per_s[:] = hw.peak_flops_per_s * f
    else:
        slow = hw.with_column(col, getattr(hw, col) * f)
    a = evaluate_points(hw, WL, sc, params=P)["latency_s"]
    b = evaluate_points(slow, WL, sc, params=P)["latency_s"]
    assert np.all(b >= a * (1 - 1e-12))


@settings(max_examples=10, deadline=None)
@given(tp=st.sampled_from([1, 2, 4, 8]), batch=st.integers(1, 512), ctx=st.integers(1, 8192),
       precision=st.sampled_from(["bf16", "fp8"]))
def test_decode_step_never_beats_weight_streaming(tp, batch, ctx, precision):
    from cosim.engines.memory import footprint

    sc = build_scenario(phase="decode", batch=batch, input_len=ctx, tp=tp, precision=precision)
    hw = _points(batch + ctx)
    out = evaluate_points(hw, WL, sc, params=P)
    weights_per_chip = footprint(WL, sc).weights  # = total weight bytes / tp
    assert np.all(out["tpot_s"] >= weights_per_chip / hw.mem_bandwidth_bytes_per_s)


def test_decode_throughput_non_decreasing_in_batch_until_the_memory_limit():
    hw = HardwareArrays.from_hardware(H100)
    last = 0.0
    for b in (1, 2, 4, 8, 16, 32, 64, 128, 256):
        out = evaluate_points(hw, WL, build_scenario(phase="decode", batch=b, input_len=1024), params=P)
        if not out["feasible"][0]:
            break
        thr = float(out["throughput_tokens_per_s"][0])
        assert thr >= last
        last = thr
    assert last > 0


@settings(max_examples=8, deadline=None)
@given(batch=st.integers(1, 64), inp=st.integers(16, 2048), outl=st.integers(1, 512), chips=st.sampled_from([1, 2, 4]))
def test_tokens_per_second_times_latency_is_the_batch(batch, inp, outl, chips):
    hw = HardwareArrays.from_hardware(H100)
    dec = evaluate_points(hw, WL, build_scenario(phase="decode", batch=batch, input_len=inp), chips=chips, params=P)
    np.testing.assert_allclose(dec["throughput_tokens_per_s"] * dec["latency_s"], batch * chips, rtol=1e-12)
    gen = evaluate_points(hw, WL, build_scenario(phase="generate", batch=batch, input_len=inp, output_len=outl),
                          chips=chips, params=P)
    np.testing.assert_allclose(gen["throughput_tokens_per_s"] * gen["latency_s"], batch * outl * chips, rtol=1e-12)
    pre = evaluate_points(hw, WL, build_scenario(phase="prefill", batch=batch, input_len=inp), params=P)
    np.testing.assert_allclose(pre["throughput_tokens_per_s"] * pre["latency_s"], batch * inp, rtol=1e-12)
