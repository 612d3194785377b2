"""Attention rows run at their own achievable fraction of peak (`attention_fraction`), not the GEMMs'."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from kernel_check import assert_kernel_matches_reference

from cosim.engines import analytical as A
from cosim.engines.efficiency import DATA_DIR, EngineParams, engine_params, params_for
from cosim.engines.hwarrays import HardwareArrays
from cosim.graph.optable import OpTable
from cosim.specs.hardware import PRECISIONS
from cosim.specs.loader import load_hardware

H100 = load_hardware("h100-sxm")
P = engine_params("nvidia-gpu")
BF16 = PRECISIONS.index("bf16")
FP8 = PRECISIONS.index("fp8")

# causal prefill attention, 4096 tokens, 32 query heads / 8 KV heads of 128: FlashAttention's FLOP count
S, HEADS, KVH, HD = 4096, 32, 8, 128
ATT_FLOPS = 4.0 * S * S * HEADS * HD / 2.0
GEMM_FLOPS = 2.0 * 8192 * 8192 * 28672
TABLE = OpTable.from_rows([
    {"name": "attn", "kind": 2, "precision": BF16, "q_len": S, "heads": HEADS, "kv_heads": KVH, "flops": ATT_FLOPS,
     "bytes_kv_read": 2 * S * KVH * HD * 2},
    {"name": "gemm", "kind": 0, "precision": BF16, "m": 8192, "k": 8192, "n": 28672, "flops": GEMM_FLOPS,
     "bytes_weight": 8192 * 28672 * 2},
])


def _yaml(family: str) -> dict:
    return yaml.safe_load((DATA_DIR / "efficiency" / f"{family}.yaml").read_text())


def _curve(flops: float, peak: float = 989.4e12) -> float:
    """The family's size curve, read (as the yaml states) at the FLOPs 800 TFLOP/s does in the op's time at `peak`."""
    fam = _yaml("nvidia-gpu")
    xs = np.log10([float(x) for x in fam["size_curve"]["flops"]])
    assert fam["size_curve"]["reference_flops_per_s"] == "800 TFLOPS"
    return float(np.interp(np.log10(flops * 800e12 / peak), xs, fam["size_curve"]["multiplier"]))


def _ops(params: EngineParams) -> dict:
    return A.run_ops(HardwareArrays.from_hardware(H100), *A.pack_ops(TABLE, params),
                     A.pack_params(params, footprint_bytes=0, weight_footprint_bytes=1e12), params)


def test_attention_compute_time_hand_calculation():
    # 16384 packed query rows (4096 x 32/8) fill 128-row tiles exactly: no quantisation loss
    frac = float(_yaml("nvidia-gpu")["attention_fraction"]["default"]["value"])
    assert frac == pytest.approx(615 / 989.4, abs=0.005)  # FA3 head dim 128 on H100, pytorch/benchmark #2391
    ops = _ops(P)
    assert ops["compute_s"][0] == pytest.approx(ATT_FLOPS / (989.4e12 * frac * _curve(ATT_FLOPS)), rel=1e-12)
    assert ops["bound"][0] == 0
    # the GEMM keeps the GEMM fraction, not the attention one
    gemm_frac = float(_yaml("nvidia-gpu")["compute_fraction"]["default"]["value"])
    wave_eff = 7168 / (55 * 132)
    expected = GEMM_FLOPS / (989.4e12 * gemm_frac * _curve(GEMM_FLOPS / wave_eff) * wave_eff)
    assert ops["compute_s"][1] == pytest.approx(expected, rel=1e-12)


@settings(max_examples=20, deadline=None)
@given(f=st.floats(0.05, 1.0))
def test_attention_time_scales_with_inverse_attention_fraction(f):
    base = _ops(P)
    scaled = _ops(P.with_overrides(attention_fraction=P.attention_fraction * f))
    assert scaled["compute_s"][0] == pytest.approx(base["compute_s"][0] / f, rel=1e-12)
    assert scaled["compute_s"][1] == base["compute_s"][1]  # GEMM rows untouched


def test_kernel_matches_reference_with_distinct_attention_fractions():
    rng = np.random.default_rng(3)
    params = P.with_overrides(attention_fraction=rng.uniform(0.2, 0.9, len(PRECISIONS)))
    hw = HardwareArrays.from_hardware(H100, 6)
    hw = hw.with_column("mem_bandwidth_bytes_per_s", hw.mem_bandwidth_bytes_per_s * rng.uniform(0.05, 5, 6))
    assert_kernel_matches_reference(hw, TABLE, params, footprint_bytes=1e10, weight_footprint_bytes=1e12)


def test_attention_fraction_per_precision_and_per_kernel_generation():
    assert P.attention_fraction[FP8] == pytest.approx(0.51)
    assert P.attention_fraction[BF16] < P.compute_fraction[BF16]
    # A100 runs FlashAttention-2 (50-73% of peak, Dao 2023): a per-hardware entry; its GEMM fraction is its own
    # measured matmul ceiling (267.9 of 312 TFLOPS), not the family's
    a100 = params_for(load_hardware("a100-sxm-80gb"), calibrated=False)
    assert a100.attention_fraction[BF16] == pytest.approx(0.70)
    np.testing.assert_allclose(a100.compute_fraction, 267.9 / 312, atol=5e-4)
    np.testing.assert_array_equal(params_for(H100, calibrated=False).compute_fraction, P.compute_fraction)
    np.testing.assert_array_equal(params_for(H100, calibrated=False).attention_fraction, P.attention_fraction)
    # an explicit override wins over the per-hardware entry
    custom = params_for(load_hardware("a100-sxm-80gb"), attention_fraction=np.full(len(PRECISIONS), 0.3))
    assert custom.attention_fraction[BF16] == 0.3


def test_every_family_has_a_sourced_attention_fraction():
    for family in ("nvidia-gpu", "amd-gpu", "tpu", "asic-default"):
        entry = _yaml(family)["attention_fraction"]["default"]
        assert 0 < entry["value"] <= 1 and entry["source"]
        assert entry.get("estimate") or "derivation" in entry


def test_missing_attention_fraction_falls_back_to_the_gemm_fraction():
    kw = {name: getattr(P, name) for name in P.__dataclass_fields__ if name != "attention_fraction"}
    p = EngineParams(**kw)
    np.testing.assert_array_equal(p.attention_fraction, P.compute_fraction)
