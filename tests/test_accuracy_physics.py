"""Physics behind the accuracy work: attention precision under narrow weights, operand-width energy per
FLOP, the MoE grouped-GEMM share and serving-stack factors. Expected values are hand calculations."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kernel_check import assert_kernel_matches_reference

from cosim.cli.common import build_scenario
from cosim.energy import defaults as D
from cosim.engines import analytical as A
from cosim.engines.calibration import apply_stack, sequence_busy_for, sequence_busy_key, stack_scale
from cosim.engines.efficiency import engine_params
from cosim.engines.hwarrays import HardwareArrays
from cosim.graph.build import build_graph
from cosim.graph.optable import OpKind, OpTable
from cosim.graph.rows import attention_precision
from cosim.specs.hardware import PRECISIONS
from cosim.specs.loader import load_hardware, load_workload

P = engine_params("nvidia-gpu")


@pytest.mark.parametrize(("compute", "kv", "expected"), [
    ("fp4", "fp8", "fp8"),    # NVFP4 weights with an FP8 KV cache: FP8 FMHA
    ("int4", "bf16", "bf16"),  # W4A16 / INT4: BF16 attention
    ("int8", "fp8", "fp8"),
    ("fp8", "fp8", "fp8"),
    ("fp8", "bf16", "bf16"),  # FP8 weights over a BF16 cache: Q and KV stay BF16, so does the core
    ("bf16", "bf16", "bf16"),
])
def test_attention_precision_rule(compute, kv, expected):
    assert attention_precision(compute, kv) == expected


def test_fp4_graph_runs_gemms_in_fp4_and_attention_in_fp8():
    sc = build_scenario(phase="prefill", batch=2, input_len=2048, precision="fp4")
    table = build_graph(load_workload("llama-3.1-8b"), sc)
    att = table.kind == int(OpKind.ATTENTION)
    head = np.asarray(table.name) == "lm_head"
    gemm = (table.kind == int(OpKind.GEMM)) & ~head
    assert att.any() and gemm.any() and head.sum() == 1
    assert set(table.precision[att]) == {PRECISIONS.index("fp8")}
    assert set(table.precision[gemm]) == {PRECISIONS.index("fp4")}
    # the quantiser leaves the LM head unquantised: a BF16 GEMM over the whole 128,256 x 4,096 table
    assert table.precision[head][0] == PRECISIONS.index("bf16")
    assert table.bytes_weight[head][0] == 128256 * 4096 * 2


@pytest.mark.parametrize(("kv", "core"), [("fp8", "fp8"), ("bf16", "bf16")])
def test_fp8_graph_attends_in_fp8_only_over_an_fp8_cache(kv, core):
    """FP8 weights: the GEMMs run FP8 either way; the attention core is FP8 over an FP8 cache and BF16 over a
    BF16 one (TensorRT-LLM quantises Q to FP8 only when the cache is FP8)."""
    sc = build_scenario(phase="prefill", batch=2, input_len=4096, precision="fp8", kv_precision=kv)
    table = build_graph(load_workload("llama-3.1-8b"), sc)
    att = table.kind == int(OpKind.ATTENTION)
    head = np.asarray(table.name) == "lm_head"
    gemm = (table.kind == int(OpKind.GEMM)) & ~head
    assert set(table.precision[att]) == {PRECISIONS.index(core)}
    assert set(table.precision[gemm]) == {PRECISIONS.index("fp8")}


@pytest.mark.parametrize(("precision", "tp", "width", "extra_per_param"),
                         [("fp4", 1, 0.5625, 1.4375), ("fp8", 2, 1.0, 1.0), ("bf16", 1, 2.0, 0.0)])
def test_quantised_weights_keep_the_vocabulary_tables_in_bf16(precision, tp, width, extra_per_param):
    """Weight bytes per chip = every parameter at the stored width (NVFP4: 4.5 bits with its scales) + the
    embedding and the untied head (2 x vocab x hidden) at 2 - width bytes more, split over the TP group like the
    other non-expert weights."""
    from cosim.engines.memory import inference_weight_bytes, params_per_chip

    wl = load_workload("llama-3.1-8b")
    sc = build_scenario(phase="decode", batch=1, input_len=128, precision=precision, tp=tp)
    expected = (params_per_chip(wl, sc) * width
                + extra_per_param * 2 * 128256 * 4096 / tp)
    assert inference_weight_bytes(wl, sc) == pytest.approx(expected, rel=1e-12)


def test_delivered_energy_per_flop_by_hand():
    k = 20.0
    # BF16: k x the BF16 datapath (0.982 pJ / 2 per FLOP) exactly
    assert D.delivered_flop_energy_45nm_j("bf16", k) == pytest.approx(20 * 0.491e-12, rel=1e-12)
    # FP8: datapath 0.345 / 2 + 19 x 0.491 x 8 / 16 = 0.1725 + 4.6645 pJ
    assert D.delivered_flop_energy_45nm_j("fp8", k) == pytest.approx(4.837e-12, rel=1e-9)
    # FP4: 0.136 / 2 + 19 x 0.491 x 4 / 16 = 0.068 + 2.33225 pJ
    assert D.delivered_flop_energy_45nm_j("fp4", k) == pytest.approx(2.40025e-12, rel=1e-9)


def test_gemm_at_peak_draws_about_the_same_power_in_every_tensor_precision():
    from cosim.energy.model import EnergyParams

    b200 = load_hardware("b200")
    e = EnergyParams.from_hardware(b200)
    power = {p: e.j_per_flop[p] * b200.peak_flops(p) for p in ("bf16", "fp8", "fp4")}
    for p in ("fp8", "fp4"):
        assert 0.9 <= power[p] / power["bf16"] <= 1.0  # datasheet peaks share one power envelope


GROUPED = OpTable.from_rows([
    {"name": "experts", "kind": int(OpKind.GROUPED_GEMM), "precision": PRECISIONS.index("bf16"), "m": 4096,
     "k": 4096, "n": 14336, "groups": 8, "flops": 2.0 * 4096 * 4096 * 14336 * 8, "bytes_weight": 8 * 4096 * 14336 * 2},
    {"name": "dense", "kind": int(OpKind.GEMM), "precision": PRECISIONS.index("bf16"), "m": 4096, "k": 4096,
     "n": 14336, "flops": 2.0 * 4096 * 4096 * 14336, "bytes_weight": 4096 * 14336 * 2},
])


@settings(max_examples=15, deadline=None)
@given(s=st.floats(0.2, 1.0))
def test_grouped_gemm_time_scales_with_inverse_share_in_kernel_and_reference(s):
    hw = load_hardware("h100-sxm")
    hwa = HardwareArrays.from_hardware(hw)

    def run(params):
        return A.run_ops(hwa, *A.pack_ops(GROUPED, params),
                         A.pack_params(params, footprint_bytes=0, weight_footprint_bytes=1e12), params)

    base, scaled = run(P), run(P.with_overrides(grouped_gemm_scale=s))
    assert scaled["compute_s"][0] == pytest.approx(base["compute_s"][0] / s, rel=1e-12)
    assert scaled["compute_s"][1] == base["compute_s"][1]  # dense GEMMs untouched
    assert_kernel_matches_reference(hwa, GROUPED, P.with_overrides(grouped_gemm_scale=s), footprint_bytes=1e10,
                                    weight_footprint_bytes=1e12)


@settings(max_examples=15, deadline=None)
@given(s=st.floats(0.2, 1.0))
def test_grouped_gemm_weight_streaming_scales_with_inverse_memory_share_in_kernel_and_reference(s):
    """The MoE memory share slows the bandwidth at which grouped GEMMs stream their expert weights, and only
    theirs: memory time = weight bytes / (HBM bandwidth x memory fraction x share)."""
    hw = load_hardware("h100-sxm")
    hwa = HardwareArrays.from_hardware(hw)
    params = P.with_overrides(grouped_gemm_memory_scale=s)

    def run(prm):
        return A.run_ops(hwa, *A.pack_ops(GROUPED, prm),
                         A.pack_params(prm, footprint_bytes=0, weight_footprint_bytes=1e12), prm)

    base, scaled = run(P), run(params)
    bw = hw.main_memory.bandwidth_bytes_per_s.value * P.memory_fraction
    assert scaled["memory_s"][0] == pytest.approx(8 * 4096 * 14336 * 2 / (bw * s), rel=1e-12)
    assert scaled["memory_s"][1] == base["memory_s"][1]  # dense GEMMs untouched
    assert scaled["compute_s"][0] == base["compute_s"][0]  # and the grouped GEMM's compute too
    assert_kernel_matches_reference(hwa, GROUPED, params, footprint_bytes=1e10, weight_footprint_bytes=1e12)


def test_stack_factor_scales_fractions_and_is_one_for_tuned_engines():
    half = apply_stack(P, 0.5)
    assert np.allclose(half.compute_fraction, P.compute_fraction * 0.5)
    assert np.allclose(half.attention_fraction, P.attention_fraction * 0.5)
    assert half.memory_fraction == pytest.approx(P.memory_fraction * 0.5)
    assert half.per_sequence_overhead_s == P.per_sequence_overhead_s  # host work is not kernel efficiency
    assert stack_scale("tuned") == 1.0 and stack_scale(None) == 1.0


def test_a_stacks_unpriced_per_sequence_gpu_time_is_looked_up_by_its_kernels():
    scales = {"vllm": 0.8, sequence_busy_key("vllm"): 2e-5, sequence_busy_key("trtllm-bench"): 1e-6}
    assert sequence_busy_for(scales, "vllm") == 2e-5
    assert sequence_busy_for(scales, "trtllm-pytorch") == 1e-6  # runs trtllm-bench's kernels
    assert sequence_busy_for(scales, "tuned") == 0.0 and sequence_busy_for(scales, None) == 0.0
    assert sequence_busy_for(scales, "sglang") == 0.0  # no fitted time: the tuned reference's
    busy = apply_stack(P, 1.0, 2e-5)
    assert busy.per_sequence_busy_s == pytest.approx(P.per_sequence_busy_s + 2e-5)
    assert np.array_equal(busy.compute_fraction, P.compute_fraction)  # kernel efficiency untouched
    assert busy.per_sequence_overhead_s == P.per_sequence_overhead_s  # and the idle host time
    assert apply_stack(P, 1.0, 0.0) is P


@pytest.mark.parametrize("batch", [16, 96])
def test_unpriced_per_sequence_gpu_time_lengthens_a_step_at_the_steps_power(batch):
    """A decode step of `batch` sequences with t seconds of unpriced GPU work per sequence is batch x t longer
    and draws the same power (the work keeps the GPU busy), so its joules per token grow with its time; the
    same seconds as idle host work leave the power to fall toward static."""
    from cosim.engines.efficiency import params_for
    from cosim.engines.estimate import estimate

    hw = load_hardware("h100-sxm")
    base = params_for(hw, calibrated=False)
    sc = build_scenario(phase="decode", batch=batch, input_len=1000, precision="bf16")
    t = 30e-6
    ref = estimate("h100-sxm", "llama-3.1-8b", sc, chips=1, params=base)
    busy = estimate("h100-sxm", "llama-3.1-8b", sc, chips=1, params=apply_stack(base, 1.0, t))
    idle = estimate("h100-sxm", "llama-3.1-8b", sc, chips=1,
                    params=base.with_overrides(per_sequence_overhead_s=base.per_sequence_overhead_s + t))
    assert busy.tpot_s - ref.tpot_s == pytest.approx(batch * t, rel=1e-9)
    assert busy.busy_sequence_time_s == pytest.approx(batch * t, rel=1e-12)
    assert busy.avg_power_w == pytest.approx(ref.avg_power_w, rel=1e-9)
    assert busy.energy_j_per_token / ref.energy_j_per_token == pytest.approx(busy.tpot_s / ref.tpot_s, rel=1e-9)
    assert idle.tpot_s == pytest.approx(busy.tpot_s, rel=1e-12)
    assert idle.avg_power_w < busy.avg_power_w
    assert ref.energy_j_per_token < idle.energy_j_per_token < busy.energy_j_per_token


@pytest.mark.parametrize("factor", [0.6, 0.85])
def test_a_slower_stack_lowers_throughput_by_at_most_its_factor(factor):
    from cosim.validate.runner import base_table, predict_rows

    table = base_table(ids=["trtllm-perf-llama3.1-8b-h100-tp1-128-128"])
    fast = predict_rows(table.copy(), None, stack_scales={"trtllm-bench": 1.0})[0]
    slow = predict_rows(table.copy(), None, stack_scales={"trtllm-bench": factor})[0]
    # kernels slow by the factor; per-step and per-sequence host time does not, nor the batch
    assert factor * fast * 0.999 <= slow < fast


def test_batch_max_with_data_parallel_attention_returns_a_batch_divisible_by_dp():
    from cosim.engines.estimate import estimate

    sc = build_scenario(phase="generate", input_len=800, output_len=512, precision="fp8", tp=1, dp=8, ep=8)
    res = estimate("h200-sxm", "deepseek-r1", sc, chips=8, batch_max=True)
    assert res.feasible and res.batch >= 8 and res.batch % 8 == 0


def test_trtllm_kv_pool_is_its_fraction_of_the_memory_left_after_weights():
    from cosim.engines.memory import footprint
    from cosim.validate import trtllm_bench
    from cosim.validate.mapping import Query
    from cosim.validate.predict import _trtllm_batch
    from cosim.workloads.params import params_total

    q = Query(kind="offline_throughput", hardware="h200-sxm", chips=1, workload="llama-3.3-70b", precision="fp8",
              input_len=1000, output_len=1000, stack="trtllm-bench")
    sc = build_scenario(phase="generate", input_len=1000, output_len=1000, precision="fp8")
    model = load_workload("llama-3.3-70b")
    one = footprint(model, sc, 1)
    capacity = load_hardware("h200-sxm").main_memory.capacity_bytes.value

    def runtime(budget: int) -> float:
        # a forward pass of `budget` prompt tokens (hidden 8192 x 4 + MLP 28672 x 3, BF16) and one sequence's
        # FP32 logits, plus the 0.3 GB CUDA context (one GPU: no NCCL communicator)
        return budget * (4 * 8192 + 3 * 28672) * 2 + 128256 * 4 + 3.0e8

    # trtllm-bench's own token budget for these lengths on one H200
    budget = trtllm_bench.engine_settings(model, params_total(model), "fp8", 1.0, 1, 1, 1000, 1000, capacity)[1]
    free = capacity - one.weights - runtime(budget)
    # KV of one request: 80 layers x 8 KV heads x 128 x (K, V) x 1 B x 2000 tokens = 327.68 MB
    assert one.kv_cache == pytest.approx(80 * 8 * 128 * 2 * 2000, rel=1e-6)
    assert _trtllm_batch(q, sc) == int(0.95 * free // one.kv_cache)
    # tuned MLPerf harnesses keep only the KV in use: on average ISL + OSL / 2 = 1500 tokens, in 0.9 of free,
    # beside TensorRT-LLM's default budget of 8192 tokens
    tuned_free = capacity - one.weights - runtime(8192)
    assert _trtllm_batch(q.model_copy(update={"stack": "tuned"}), sc) == int(
        0.9 * tuned_free // (80 * 8 * 128 * 2 * 1500))
    assert _trtllm_batch(q.model_copy(update={"stack": "vllm"}), sc) is None


def test_trtllm_reserves_a_budget_pass_the_cuda_context_and_nccl_beside_its_weights():
    """TensorRT-LLM sizes its KV pool from the memory left after the peak of a forward pass of
    max_num_tokens prompt tokens plus what lives outside its allocator (tensorrt_llm/_torch/pyexecutor/_util.py)."""
    from cosim.validate.mapping import Query
    from cosim.validate.predict import runtime_reserved_bytes

    q = Query(kind="offline_throughput", hardware="h100-sxm", chips=1, workload="llama-3.1-8b", precision="fp8",
              input_len=1000, output_len=1000, stack="tuned", max_num_tokens=4096)
    # 4096 tokens x (4 x 4096 hidden + 3 x 14336 MLP) x 2 B + one sequence's FP32 logits (128256) + 0.3 GB context
    one_gpu = 4096 * (4 * 4096 + 3 * 14336) * 2 + 128256 * 4 + 3.0e8
    assert runtime_reserved_bytes(q, 4096) == pytest.approx(one_gpu, rel=1e-9)
    # two GPUs (TP2): half the MLP width and logits per GPU, and an NCCL communicator's 688 MB
    two_gpus = 4096 * (4 * 4096 + 3 * 14336 / 2) * 2 + 128256 / 2 * 4 + 3.0e8 + 6.88e8
    assert runtime_reserved_bytes(q.model_copy(update={"tp": 2, "chips": 2}), 4096) == pytest.approx(two_gpus,
                                                                                                   rel=1e-9)
    # a larger budget reserves more, so the pool holds fewer sequences
    assert runtime_reserved_bytes(q, 16384) > runtime_reserved_bytes(q, 4096)


def test_server_throughput_falls_as_the_latency_limits_tighten():
    from cosim.validate.mapping import Query, load_mapping
    from cosim.validate.predict import predict

    m = load_mapping()
    q = Query(kind="server_throughput", hardware="h100-sxm", chips=8, workload="llama-2-70b", precision="fp8",
              tp=2, input_len=400, output_len=300, slo_ttft_s=2.0, slo_tpot_s=0.2)
    loose, why = predict(q, m)
    tight, _ = predict(q.model_copy(update={"slo_ttft_s": 0.45, "slo_tpot_s": 0.04}), m)
    assert why is None and loose > 0
    assert tight is None or tight <= loose
    # 4 replicas of TP2: the max-QPS search cannot exceed the offline capacity of the same run by much
    offline, _ = predict(q.model_copy(update={"kind": "offline_throughput", "slo_ttft_s": None, "slo_tpot_s": None}), m)
    assert loose <= 1.3 * offline
    none, reason = predict(q.model_copy(update={"slo_ttft_s": None, "slo_tpot_s": None}), m)
    assert none is None and "slo" in reason


def test_a_rack_of_replicas_serves_as_many_per_replica_as_a_server():
    """Replicas behind a router are independent, so 9x the replicas serve 9x the tokens/s at the same limits
    (each probe carries enough requests per replica to reach a steady state, not the ramp-up)."""
    from cosim.validate.mapping import Query, load_mapping
    from cosim.validate.predict import predict

    m = load_mapping()
    q = Query(kind="server_throughput", hardware="b200", chips=8, workload="llama-3.1-8b", precision="fp8",
              tp=1, input_len=400, output_len=300, slo_ttft_s=2.0, slo_tpot_s=0.2)
    eight, why = predict(q, m)
    rack, _ = predict(q.model_copy(update={"chips": 72}), m)
    assert why is None and eight > 0
    assert rack == pytest.approx(9 * eight, rel=0.1)


def test_tuned_harness_holds_the_length_biased_kv_of_spread_outputs():
    """With output CV c, a running sequence holds ISL + OSL (1 + c²) / 2 tokens on average (inspection
    paradox: a request is in flight for as many steps as it generates)."""
    from cosim.engines.memory import footprint
    from cosim.validate.mapping import Query
    from cosim.validate.predict import _trtllm_batch

    q = Query(kind="offline_throughput", hardware="h200-sxm", chips=1, workload="llama-3.3-70b", precision="fp8",
              input_len=1000, output_len=1000, stack="tuned")
    sc = build_scenario(phase="generate", input_len=1000, output_len=1000, precision="fp8", output_len_cv=1.0)
    assert sc.decode_span == 2000  # 1000 x (1 + 1²)

    weights = footprint(load_workload("llama-3.3-70b"), sc, 1).weights
    runtime = 8192 * (4 * 8192 + 3 * 28672) * 2 + 128256 * 4 + 3.0e8  # default budget's pass, CUDA context
    free = load_hardware("h200-sxm").main_memory.capacity_bytes.value - weights - runtime
    # 1000 + 2000 / 2 = 2000 tokens per running sequence (not 1500), 160 KiB each, in 0.9 of the free memory
    assert _trtllm_batch(q, sc) == int(0.9 * free // (80 * 8 * 128 * 2 * 2000))


def test_spread_outputs_lengthen_the_decode_contexts_but_not_the_token_count():
    from cosim.engines.estimate import estimate

    fixed = build_scenario(phase="generate", batch=64, input_len=2000, output_len=500, precision="fp8")
    spread = build_scenario(phase="generate", batch=64, input_len=2000, output_len=500, precision="fp8",
                            output_len_cv=1.0)
    a = estimate("h100-sxm", "llama-3.1-8b", fixed, chips=1)
    b = estimate("h100-sxm", "llama-3.1-8b", spread, chips=1)
    assert a.ttft_s == pytest.approx(b.ttft_s, rel=1e-9)  # the same prompts
    # decode contexts now average 2000 + 1000 / 2 instead of 2000 + 500 / 2: more KV read per step
    assert b.tpot_s > a.tpot_s
    decode_a = a.breakdown[a.breakdown.graph.str.startswith("decode@")].graph.unique()
    decode_b = b.breakdown[b.breakdown.graph.str.startswith("decode@")].graph.unique()
    assert max(int(g.split("@")[1]) for g in decode_a) <= 2499
    assert max(int(g.split("@")[1]) for g in decode_b) > 2500


@pytest.mark.parametrize(("dist", "expected"), [
    (("fixed", 300.0, 0.0, 0.0), 0.0),
    (("uniform", 100.0, 300.0, 0.0), 200.0 / np.sqrt(12.0) / 200.0),
    (("lognormal", 300.0, 0.8, 0.0), np.sqrt(np.expm1(0.64))),
])
def test_length_spread_closed_forms(dist, expected):
    from cosim.serving.requests import LengthDist

    assert LengthDist(*dist).cv == pytest.approx(expected, rel=1e-9)


def test_capped_lognormal_spread_matches_a_large_sample():
    from cosim.serving.requests import LengthDist

    d = LengthDist("lognormal", 294.45, 0.8, 1024.0)
    x = d.sample(2_000_000, np.random.default_rng(3)).astype(float)
    assert d.cv == pytest.approx(x.std() / x.mean(), rel=0.01)
    assert d.cv < np.sqrt(np.expm1(0.64))  # the cap trims the tail
