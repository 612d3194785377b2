"""Weight-only quantisation: a GEMM whose weights are stored narrower than it multiplies in widens them in the
kernel, which slows it where it is compute-bound (and nowhere else)."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from cosim.engines import analytical as A
from cosim.engines.efficiency import DATA_DIR, engine_params
from cosim.engines.hwarrays import HardwareArrays
from cosim.graph.optable import OpTable
from cosim.specs.hardware import PRECISIONS
from cosim.specs.loader import load_hardware

H100 = load_hardware("h100-sxm")
B200 = load_hardware("b200")
P = engine_params("nvidia-gpu")
BF16, FP8, FP4, INT4 = (PRECISIONS.index(p) for p in ("bf16", "fp8", "fp4", "int4"))
# the family file's figure, read independently of the engine's loader
UPCAST = yaml.safe_load((DATA_DIR / "efficiency" / "nvidia-gpu.yaml").read_text())[
    "weight_upcast_fraction"]["default"]["value"]


def _gemm_time(hw, m: int, k: int, n: int, precision: int, weight_precision: int, weight_bytes: float) -> float:
    """Seconds of one (m x k) @ (k x n) GEMM on `hw`, its weights at `weight_bytes` per element."""
    table = OpTable.from_rows([{"name": "g", "kind": 0, "precision": precision, "weight_precision": weight_precision,
                                "m": m, "k": k, "n": n, "flops": 2.0 * m * k * n, "bytes_weight": k * n * weight_bytes,
                                "bytes_act_in": m * k * 2, "bytes_act_out": m * n * 2}])
    ops = A.run_ops(HardwareArrays.from_hardware(hw), *A.pack_ops(table, P),
                    A.pack_params(P, footprint_bytes=0, weight_footprint_bytes=1e12), P)
    return float(ops["time_s"][0])


def test_the_family_figure_is_a_fraction_with_its_source():
    entry = yaml.safe_load((DATA_DIR / "efficiency" / "nvidia-gpu.yaml").read_text())["weight_upcast_fraction"]
    assert 0.5 <= UPCAST <= 0.8  # the published measurements span 0.60-0.78 of the same-precision GEMM
    assert "11742" in entry["default"]["source"] and entry["default"]["estimate"] is True
    # families without measurements do not model it
    assert list(engine_params("tpu").weight_upcast_fraction) == [1.0] * len(PRECISIONS)


def test_compute_bound_w4a16_gemm_runs_at_the_upcast_share_of_the_bf16_rate():
    # 1408 x 8192 x 3072 on H100: 128 x 256 tiles -> 11 x 12 = 132 tiles, one full wave on 132 SMs (no padding),
    # compute-bound either way; INT4 weights leave the FLOPs, tiles and size curve as they are, so the body
    # time is the BF16 GEMM's divided by the upcast fraction (launch 2 us on top)
    m, k, n = 1408, 8192, 3072
    store = m * n * 2 / (3.35e12 * 0.85)  # the BF16 output's store after the main loop, the same for both
    bf16 = _gemm_time(H100, m, k, n, BF16, BF16, 2.0) - 2e-6 - store
    w4a16 = _gemm_time(H100, m, k, n, BF16, INT4, 0.5) - 2e-6 - store
    assert w4a16 == pytest.approx(bf16 / UPCAST, rel=1e-12)


def test_w4a16_gemv_keeps_the_byte_savings():
    # batch-1 GEMV 8192 x 28672: 117 MB of INT4 weights against 470 MB in BF16. The widening scales with the
    # multiply-adds done (one row), not with the 64-row MMA tile the engine pads a GEMV to, so it adds
    # (1 / f - 1) x 1/64 of the padded compute time at most: under 1% here
    k, n = 8192, 28672
    widened = _gemm_time(H100, 1, k, n, BF16, INT4, 0.5)
    stored_only = _gemm_time(H100, 1, k, n, BF16, BF16, 0.5)  # the same bytes, no widening
    assert stored_only <= widened < stored_only * (1 + (1 / UPCAST - 1) / 64 + 1e-12)
    assert widened < 0.3 * _gemm_time(H100, 1, k, n, BF16, BF16, 2.0)


def test_fp4_weights_against_fp8_run_natively_on_blackwell_but_widen_on_hopper():
    m, k, n = 1408, 8192, 3072  # one full wave of unpadded tiles on H100, as above
    # B200 has an FP4 rate of its own (tcgen05 takes FP4 x FP8): no penalty against FP8 weights
    assert _gemm_time(B200, m, k, n, FP8, FP4, 0.5) == pytest.approx(_gemm_time(B200, m, k, n, FP8, FP8, 1.0),
                                                                     rel=1e-12)
    # H100 has no FP4 datapath: the FP4 weights are widened to FP8 in the kernel
    store = m * n * 2 / (3.35e12 * 0.85)
    h_fp8 = _gemm_time(H100, m, k, n, FP8, FP8, 1.0) - 2e-6 - store
    assert _gemm_time(H100, m, k, n, FP8, FP4, 0.5) - 2e-6 - store == pytest.approx(h_fp8 / UPCAST, rel=1e-12)


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 16384), k=st.integers(64, 16384), n=st.integers(64, 32768))
def test_widening_costs_at_most_the_upcast_share_and_never_speeds_a_gemm(m, k, n):
    # the same INT4 GEMM with and without the widening, and the BF16 GEMM it replaces
    with_upcast = _gemm_time(H100, m, k, n, BF16, INT4, 0.5)
    without = _gemm_time(H100, m, k, n, BF16, BF16, 0.5)  # same bytes, no widening
    bf16 = _gemm_time(H100, m, k, n, BF16, BF16, 2.0)
    assert with_upcast >= without * (1 - 1e-12)
    assert with_upcast <= bf16 / UPCAST * (1 + 1e-12)


def test_gpt_oss_graph_marks_the_experts_and_only_the_experts():
    from cosim.cli.common import build_scenario
    from cosim.graph.build import prefill_graph
    from cosim.specs.loader import load_workload

    sc = build_scenario(phase="prefill", batch=4, input_len=1024, precision="fp4", activation_precision="bf16",
                        dense_precision="bf16", kv_precision="bf16")
    df = prefill_graph(load_workload("gpt-oss-20b"), sc).to_frame()
    experts = df[df.name.str.startswith("moe.experts.") & (df.kind == "grouped_gemm")]
    assert len(experts) == 2 and set(experts.weight_precision) == {"fp4"} and set(experts.precision) == {"bf16"}
    others = df[(df.kind == "gemm")]
    assert len(others) > 0 and (others.weight_precision == others.precision).all()


def test_w4a16_prefill_is_slower_on_hopper_than_the_bytes_alone_suggest():
    # gpt-oss-20b prefill of 8 x 4096 tokens on H100: the routed experts' GEMMs are compute-bound and well
    # filled (~1000 rows per expert), so widening their MXFP4 weights stretches them by nearly 1 / f
    from cosim.cli.common import build_scenario
    from cosim.engines.efficiency import params_for
    from cosim.engines.estimate import estimate

    sc = build_scenario(phase="prefill", batch=8, input_len=4096, precision="fp4", activation_precision="bf16",
                        dense_precision="bf16", kv_precision="bf16")
    base = params_for(H100, calibrated=False)
    widened = estimate("h100-sxm", "gpt-oss-20b", sc, chips=1, params=base)
    native = estimate("h100-sxm", "gpt-oss-20b", sc, chips=1,
                      params=base.with_overrides(weight_upcast_fraction=np.ones(len(PRECISIONS))))

    def experts(res):
        bd = res.breakdown
        rows = bd[bd.name == "moe.experts.gate_up_proj"]
        assert set(rows.bound) == {"compute"}
        return float(rows.time_s.sum())

    assert 0.95 / UPCAST < experts(widened) / experts(native) <= 1 / UPCAST + 1e-9
    # attention and the other BF16 GEMMs are untouched
    bd_w, bd_n = widened.breakdown, native.breakdown
    for name in ("attn.qkv_proj", "attn.o_proj", "attn.attention"):
        assert bd_w[bd_w.name == name].time_s.sum() == pytest.approx(bd_n[bd_n.name == name].time_s.sum(), rel=1e-12)


def test_awq_int4_slows_prefill_and_speeds_small_batch_decode_on_hopper():
    # the trade-off weight-only INT4 is known for (Marlin's bench: ~3x at batch 1-16, 0.6-0.74x from batch 256):
    # a compute-bound prefill gets slower than BF16, a weight-bound batch-1 decode faster
    from cosim.cli.common import build_scenario
    from cosim.engines.efficiency import params_for
    from cosim.engines.estimate import estimate

    params = params_for(H100, calibrated=False)

    def run(phase: str, batch: int, **kw):
        sc = build_scenario(phase=phase, batch=batch, input_len=4096, kv_precision="bf16", **kw)
        res = estimate("h100-sxm", "llama-3.1-8b", sc, chips=1, params=params)
        return res.latency_s if phase == "prefill" else res.tpot_s

    bf16 = {"precision": "bf16"}
    awq = {"precision": "int4", "activation_precision": "bf16"}
    # prefill: the GEMMs stretch by up to 1 / f, attention (BF16 either way) not at all
    assert 1.1 < run("prefill", 8, **awq) / run("prefill", 8, **bf16) < 1 / UPCAST
    assert run("decode", 1, **awq) < 0.5 * run("decode", 1, **bf16)


def test_a_compute_time_from_the_cycle_engine_still_pays_for_the_widening():
    # --mode cycle hands the kernel each GEMM's compute seconds; the widening is added on top, the same
    # (1 / f - 1) x unpadded multiply-add time, and the plain-Python reference agrees
    import numpy as np

    from cosim.engines import reference

    m, k, n = 1408, 8192, 3072
    table = OpTable.from_rows([{"name": "g", "kind": 0, "precision": BF16, "weight_precision": INT4, "m": m, "k": k,
                                "n": n, "flops": 2.0 * m * k * n, "bytes_weight": k * n * 0.5,
                                "bytes_act_in": m * k * 2, "bytes_act_out": m * n * 2}])
    hw = HardwareArrays.from_hardware(H100)
    prm = A.pack_params(P, footprint_bytes=0, weight_footprint_bytes=1e12)
    given = 1e-3  # seconds the other engine says the MMA takes
    opf, opi = A.pack_ops(table, P, np.array([given]))
    with_override = A.run_ops(hw, opf, opi, prm, P)["compute_s"][0]
    native = A.run_ops(hw, *A.pack_ops(table, P), prm, P.with_overrides(
        weight_upcast_fraction=np.ones(len(PRECISIONS))))["compute_s"][0]
    # one full wave of unpadded tiles: the analytical native time is the unpadded multiply-add time plus the
    # output's store (which the cycle engine's own time covers: no store is added to an override)
    store = m * n * 2 / (3.35e12 * 0.85)
    assert with_override == pytest.approx(given + (native - store) * (1 / UPCAST - 1), rel=1e-12)
    ref = reference.evaluate(hw, opf, opi, prm, P)
    assert ref["compute_s"][0] == pytest.approx(A.run_points(hw, opf, opi, prm, P)["compute_s"][0], rel=1e-12)
