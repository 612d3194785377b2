"""trtllm-bench's own engine limits (tensorrt_llm/bench/build/tuning.py), recomputed by hand."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cosim.specs.loader import load_workload
from cosim.validate import trtllm_bench as tb

GIB = 1024**3


@pytest.mark.parametrize(("raw", "expected"), [(10, 64), (100, 128), (255.5, 256), (300, 384), (1000, 1024),
                                               (1500, 1536), (4096, 4096)])
def test_batch_rounding_follows_finetune_setting(raw, expected):
    # below 256: multiples of 32, at least 64; below 1024: multiples of 128; else multiples of 256
    assert tb._round_batch(raw) == expected


@pytest.mark.parametrize(("raw", "expected"), [(100, 2048), (3000, 3072), (5000, 5120), (9000, 9216)])
def test_token_rounding_follows_finetune_setting(raw, expected):
    assert tb._round_tokens(raw) == expected


def test_llama_70b_fp8_on_two_h100_by_hand():
    """Llama-3.3-70B (80 layers, 8 KV heads of 128) in FP8 with an FP8 KV cache on TP2 H100 (81559 MiB each),
    1000/1000 tokens, a stated 70.6e9 parameters:
    engine 70.6e9 B; pool 0.95 x (2 x 81559 MiB - engine) = 95.42e9 B; a token's KV 2 x 80 x 8 x 128 x 1 B =
    163840 B, a request's 2000 of them 327.7e6 B: 291.2 requests -> batch 384 (128 x ceil(291.2 / 128));
    tokens 291.2 x 2 = 582 -> 2048, above ISL + batch = 1384."""
    model = load_workload("llama-3.3-70b")
    device = 81559 * 2**20
    pool = 0.95 * (2 * device - 70.6e9)
    requests = pool / (2 * 80 * 8 * 128 * 2000)
    assert requests == pytest.approx(291.2, abs=0.1)
    assert tb.engine_settings(model, 70.6e9, "fp8", 1.0, 2, 1, 1000, 1000, device) == (384, 2048)


def test_deepseek_mla_counts_128_heads_of_hidden_over_heads():
    """DeepSeek's config has num_key_value_heads = 128 and no head_dim: trtllm-bench's estimate takes
    7168 / 128 = 56 per head, 2 x 61 x 128 x 56 = 874496 elements a token, far above the 61 x 576 latent
    entries the engine keeps."""
    model = load_workload("deepseek-r1")
    assert tb.kv_estimate_bytes_per_token(model, 4, 1.0) == 2 * 61 * 128 * 56


def test_deepseek_fp4_on_four_b200_by_hand():
    """671e9 parameters as NVFP4 elements (0.5 + 1/16 per parameter) at 0.5 B: engine 188.7e9 B; pool
    0.95 x (4 x 183359 MiB - engine); a 2048-token request 2048 x 874496 B: 307.9 requests -> 384."""
    model = load_workload("deepseek-r1")
    device = 183359 * 2**20
    engine = 671e9 * (0.5 + 1 / 16) * 0.5
    requests = 0.95 * (4 * device - engine) / (2048 * 874496)
    assert 256 <= requests < 384
    max_bs, tokens = tb.engine_settings(model, 671e9, "fp4", 1.0, 4, 1, 1024, 1024, device)
    assert max_bs == 128 * math.ceil(requests / 128) == 384
    assert tokens == max(2048, 1024 + 384)


def test_no_room_for_the_cache_is_none():
    model = load_workload("llama-3.3-70b")
    assert tb.engine_settings(model, 70.6e9, "bf16", 2.0, 1, 1, 1000, 1000, 80 * GIB) is None


def test_whole_prompts_settle_below_the_token_budget_by_hand():
    """Budget 3328, 1024-token prompts, 1024 output tokens: two prompts fit a step only while at most
    3328 - 2048 = 1280 sequences decode, and one prompt a step sustains 1024; so 1280 run, not the
    3328 x 1024 / 2048 = 1664 of a budget filled exactly."""
    assert tb.whole_prompt_batch(3328, 1024, 1024) == 1280
    # short prompts: 128-token prompts, 2048 output tokens, budget 3328: c = 2 gives min(4096, 3072)
    assert tb.whole_prompt_batch(3328, 128, 2048) == 3072
    assert tb.whole_prompt_batch(1000, 2048, 128) == 0  # a prompt longer than the budget never enters


@given(budget=st.integers(1, 40000), isl=st.integers(1, 33000), osl=st.integers(1, 33000))
def test_whole_prompts_never_beat_the_continuous_budget(budget, isl, osl):
    """A step carries the running sequences plus the prompts that replace the finished ones: at most
    budget x OSL / (ISL + OSL) sequences can run, whole prompts or not."""
    assert tb.whole_prompt_batch(budget, isl, osl) <= budget * osl / (isl + osl) + 1e-9


def test_perf_table_row_gets_the_benchmark_cap():
    """The DeepSeek-R1 B200 DEP4 1024/1024 cell states no limits, so each rank runs at trtllm-bench's 384
    (its --tp 4 counts the attention-DP ranks) within a 2048-token budget (one 1024-token prompt a step
    keeps 1024 running, not binding)."""
    from cosim.validate.mapping import load_mapping
    from cosim.validate.predict import trtllm_bench_cap
    from cosim.validate.runner import query_for

    q = query_for("trtllm-perf2-deepseek-r1-b200-dep4-1024-1024")
    assert (q.tp, q.dp, q.max_seqs, q.max_num_tokens) == (1, 4, None, None)
    assert trtllm_bench_cap(q, load_mapping()) == 384
    assert trtllm_bench_cap(query_for("mlperf-v5.0-h200x8-llama2-offline"), load_mapping()) is None
