"""Energy model: hand-computed breakdowns, the TDP cap, boundaries, spec overrides, vectorised form."""

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cosim.energy import EnergyParams, energy_for_estimate, step_energy, step_energy_arrays
from cosim.energy.defaults import node_factor
from cosim.errors import CosimInputError
from cosim.specs.hardware import PRECISIONS
from cosim.specs.loader import hardware_from_dict, load_hardware, read_document

PJ = 1e-12


def simple_params(static=100.0, tdp=700.0, host=0.2, pue=1.2, host_w=None):
    return EnergyParams(tdp_w=tdp, static_power_w=static, j_per_flop={p: 1 * PJ for p in PRECISIONS},
                        mem_j_per_byte=10 * PJ, onchip_j_per_byte=1 * PJ, scale_up_j_per_byte=40 * PJ,
                        scale_out_j_per_byte=40 * PJ, host_overhead_fraction=host, host_w_per_chip=host_w, pue=pue)


def test_hand_computed_breakdown_below_tdp():
    br = step_energy(simple_params(), flops_by_precision={"bf16": 1e12}, bytes_main_memory=1e10, bytes_onchip=1e10,
                     comm_bytes_scale_up=1e9, comm_bytes_scale_out=1e9, time_s=1.0, chips=8)
    # 1e12 x 1 pJ = 1 J; 1e10 x 10 pJ = 0.1 J; 1e10 x 1 pJ = 0.01 J; 2e9 x 40 pJ = 0.08 J; static 100 W x 1 s
    assert br.compute_j == pytest.approx(1.0)
    assert br.memory_j == pytest.approx(0.1)
    assert br.onchip_j == pytest.approx(0.01)
    assert br.comm_j == pytest.approx(0.08)
    assert br.static_j == pytest.approx(100.0)
    assert br.accelerator_j == pytest.approx(101.19)
    assert br.derate == 1.0 and br.time_s_capped == 1.0
    assert br.avg_power_w == pytest.approx(101.19)
    assert br.system_j == pytest.approx(101.19 * 1.2)
    assert br.facility_j == pytest.approx(101.19 * 1.2 * 1.2)
    assert br.accelerator_total_j == pytest.approx(8 * 101.19)


def test_tdp_cap_stretches_time_by_the_hand_computed_derate():
    # 1200 J dynamic in 1 s with 100 W static on a 700 W part: t' = 1200 / (700 - 100) = 2 s
    br = step_energy(simple_params(), flops_by_precision={"fp8": 1.2e15}, bytes_main_memory=0, time_s=1.0)
    assert br.time_s_capped == pytest.approx(2.0)
    assert br.derate == pytest.approx(2.0)
    assert br.accelerator_j == pytest.approx(1200 + 100 * 2.0)
    assert br.avg_power_w == pytest.approx(700.0)


def test_host_watts_per_chip_boundary():
    br = step_energy(simple_params(host_w=150.0), flops_by_precision={}, bytes_main_memory=0, time_s=2.0)
    assert br.accelerator_j == pytest.approx(200.0)
    assert br.system_j == pytest.approx(200.0 + 150.0 * 2.0)


counts = st.floats(min_value=0, max_value=1e16, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(flops=counts, mem=st.floats(0, 1e13), comm=st.floats(0, 1e12), t=st.floats(0, 100),
       tdp=st.floats(50, 2000), static_frac=st.floats(0, 0.95))
def test_power_never_exceeds_tdp_and_energy_never_below_static(flops, mem, comm, t, tdp, static_frac):
    params = simple_params(static=static_frac * tdp, tdp=tdp).to_arrays(1)
    out = step_energy_arrays(params, flops_by_precision={"bf16": flops}, bytes_main_memory=mem, bytes_onchip=mem,
                             comm_bytes_scale_up=comm, comm_bytes_scale_out=0.0, time_s=t)
    assert out["avg_power_w"][0] <= tdp
    assert out["accelerator_j"][0] >= static_frac * tdp * t
    assert out["time_s_capped"][0] >= t
    assert out["system_j"][0] >= out["accelerator_j"][0]
    assert out["facility_j"][0] >= out["system_j"][0]


def test_vectorised_matches_scalar_per_point():
    rng = np.random.default_rng(3)
    n = 50
    flops, mem, t = rng.uniform(0, 2e15, n), rng.uniform(0, 5e12, n), rng.uniform(1e-3, 2, n)
    p = simple_params()
    out = step_energy_arrays(p.to_arrays(n), flops_by_precision={"bf16": flops}, bytes_main_memory=mem,
                             bytes_onchip=0.0, comm_bytes_scale_up=0.0, comm_bytes_scale_out=0.0, time_s=t)
    for i in range(n):
        br = step_energy(p, flops_by_precision={"bf16": flops[i]}, bytes_main_memory=mem[i], time_s=t[i])
        assert out["accelerator_j"][i] == pytest.approx(br.accelerator_j, rel=1e-12)
        assert out["derate"][i] == pytest.approx(br.derate, rel=1e-12)


def test_node_factor_table_and_interpolation():
    assert node_factor(45) == pytest.approx(1.0)
    assert node_factor(7) == pytest.approx(0.081)
    assert node_factor(4) == pytest.approx(0.057)
    f6 = node_factor(6)
    assert 0.057 < f6 < 0.081
    arr = node_factor(np.array([3.0, 5.0, 16.0]))
    assert np.all(np.diff(arr) > 0)


def test_h100_from_spec_uses_published_hbm_figure_and_stays_below_tdp_over_peak():
    hw = load_hardware("h100-sxm")
    p = EnergyParams.from_hardware(hw)
    assert p.family == "nvidia-hopper"
    # whole-chip TDP / dense peak is an upper bound on energy per FLOP: 700 W / 989.4 TFLOP/s = 0.71 pJ
    assert p.j_per_flop["bf16"] < 700 / 989.4e12
    assert p.j_per_flop["fp8"] < 700 / 1978.9e12
    # datapath-only energy is the lower bound: Horowitz BF16 FMA rule x 5 nm-class node factor / 2 FLOP
    assert p.j_per_flop["bf16"] > 0.982 * PJ * 0.048 / 2
    # main memory: the spec's 31.2 pJ/byte times a path factor >= 1
    assert p.mem_j_per_byte >= 31.2 * PJ
    assert 0 < p.static_power_w < 0.3 * 700


def _h100_dict():
    root = Path(__file__).resolve().parent.parent
    return read_document(root / "hardware_specs" / "h100-sxm.yaml")


def test_spec_overrides_win():
    data = _h100_dict()
    data["name"] = "custom-chip"
    data["energy"] = {"static_power_w": {"value": "123 W", "source": "nv_h100_ds"},
                      "energy_j_per_flop": {"bf16": {"value": 0.5e-12, "source": "nv_h100_ds"}}}
    hw = hardware_from_dict(data)
    p = EnergyParams.from_hardware(hw)
    assert p.static_power_w == 123.0
    assert p.j_per_flop["bf16"] == 0.5e-12
    assert p.family is None  # not an H100 slug: uncalibrated family


def test_static_power_at_or_above_tdp_is_rejected():
    with pytest.raises(CosimInputError, match="static_power_w"):
        simple_params(static=700.0, tdp=700.0)


def test_unknown_precision_is_rejected():
    with pytest.raises(CosimInputError, match="flops_by_precision"):
        step_energy(simple_params(), flops_by_precision={"fp128": 1.0}, bytes_main_memory=0, time_s=1)


class _Result:
    flops_by_precision = {"bf16": 2e12}
    bytes_main_memory = 1e10
    bytes_onchip = 0.0
    comm_bytes_scale_up = 0.0
    comm_bytes_scale_out = 0.0
    step_time_s = 0.01
    tokens_per_step = 100
    chips = 2


def test_energy_for_estimate_per_token_is_total_over_tokens():
    out = energy_for_estimate(load_hardware("h100-sxm"), _Result(), params=simple_params())
    # per chip: 2 J + 0.1 J dynamic + 100 W x 0.01 s = 3.1 J; 2 chips; 100 tokens
    assert out["energy_j"] == pytest.approx(6.2)
    assert out["energy_j_per_token"] == pytest.approx(0.062)
    assert out["system_energy_j_per_token"] == pytest.approx(0.062 * 1.2)
    assert out["avg_power_w"] == pytest.approx(310.0)
    assert math.isclose(out["tdp_derate"], 1.0)


def test_training_energy_charges_forward_backward_and_recompute_flops():
    """A training step runs the forward graph 3 times (forward, backward = 2 x forward) with selective
    recompute and 4 times with full recompute, plus half a forward of attention (FlashAttention's backward
    recomputes QK^T: 2.5x the forward's FLOPs, not 2x) and the loss over the logits (6 FLOPs per logit, each
    token's 128,256 of them); the energy model must be charged all of it."""
    from cosim.api import estimate
    from cosim.cli.common import build_scenario
    from cosim.graph import train_graph
    from cosim.graph.optable import OpKind
    from cosim.specs.loader import load_workload

    for recompute, mult in (("selective", 3.0), ("full", 4.0)):
        sc = build_scenario(phase="train", batch=8, input_len=1024, precision="bf16", dp=8, zero=3,
                            recompute=recompute)
        r = estimate("h100-sxm", "llama-3.1-8b", sc, chips=8)
        assert r.feasible, r.reason
        g = train_graph(load_workload("llama-3.1-8b"), sc)
        forward = float((g.flops * g.repeat)[g.kind != int(OpKind.COMM)].sum())
        attention = float((g.flops * g.repeat)[g.kind == int(OpKind.ATTENTION)].sum())
        assert attention > 0
        loss = 6.0 * 8 * 1024 / 8 * 128256  # tokens per chip x vocabulary
        assert sum(r.flops_by_precision.values()) == pytest.approx(mult * forward + 0.5 * attention + loss,
                                                                   rel=1e-9)


def test_generate_energy_charges_prefill_and_every_decode_step():
    """A generate run's FLOPs handed to the energy model are the prefill's plus every decode step's, by
    closed form for Llama-3.1-8B (hidden 4096, 32 layers, 32 query / 8 KV heads of 128, FFN 14336, vocab
    128256): 2 P per token through the layers over ISL + OSL - 1 tokens, causal prefill attention
    4 L H d ISL^2 / 2, decode attention 4 L H d per context token over contexts ISL .. ISL + OSL - 2, and
    the LM head on the last prompt position and each decoded one."""
    from cosim.api import estimate
    from cosim.cli.common import build_scenario

    b, isl, osl = 64, 1024, 512
    r = estimate("h100-sxm", "llama-3.1-8b",
                 build_scenario(phase="generate", batch=b, input_len=isl, output_len=osl, precision="bf16"), chips=1)
    assert r.feasible, r.reason
    h, layers, heads, d, kv, ffn, vocab = 4096, 32, 32, 128, 8, 14336, 128256
    per_token = 2 * layers * (h * (heads * d + 2 * kv * d) + heads * d * h + 3 * h * ffn)
    expected = (per_token * b * (isl + osl - 1)
                + 4 * b * layers * heads * d * isl * isl / 2
                + 4 * b * layers * heads * d * (osl - 1) * (isl + (osl - 2) / 2)
                + 2 * vocab * h * b * osl)
    # norms, residual adds, SiLU and rotary add ~0.1% on top of the closed form
    assert sum(r.flops_by_precision.values()) == pytest.approx(expected, rel=0.003)
