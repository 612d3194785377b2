"""The engine limits trtllm-bench picks when a run states none, and the batch they sustain.

`trtllm-bench throughput` without `--max_batch_size/--max_num_tokens` sizes both from a memory estimate
(NVIDIA/TensorRT-LLM tensorrt_llm/bench/build/tuning.py, `calc_engine_setting` and `finetune_setting`):

- KV bytes per token = 2 x attention layers x max(tp, num_key_value_heads) x head_size x KV bytes, with
  the Hugging Face config's `num_key_value_heads` and `head_dim` (hidden_size / num_attention_heads when the
  config has none: DeepSeek's MLA configs, whose 128 "KV heads" make the estimate far above the latent cache
  the engine really keeps);
- engine size = safetensors element count x bytes per element of the quantisation (1 for FP8, 0.5 for
  NVFP4, 2 unquantised); free = tp x pp x device GiB - engine size; KV pool = 0.95 of it (the
  `--kv_cache_free_gpu_mem_fraction` TensorRT-LLM's performance tables use);
- requests = pool / (KV bytes per token x (ISL + OSL)); raw batch = min(requests, 4096) / pp, rounded up
  (to 32 below 256, 128 below 1024, else 256; at least 64); raw tokens = min(raw batch x (1 + ISL / OSL),
  32768), rounded up (to 256 below 4096, at least 2048; 512 below 8192; else 1024);
- a quantisation the heuristic is not tuned for (anything but unquantised, FP8, block-scaled FP8 and
  NVFP4: e.g. gpt-oss's MXFP4 experts, run W4A8 or W4A16) gets TensorRT-LLM's BuildConfig defaults
  instead, a batch of 2048 and 8192 tokens (tensorrt_llm/bench/build/build.py, `TUNED_QUANTS`;
  tensorrt_llm/builder.py, `BuildConfig`);
- chunked prefill is off by default, so the token budget is raised to at least ISL + max batch
  (tensorrt_llm/bench/benchmark/utils/general.py, `get_settings`).

With attention data parallelism each rank's scheduler applies both limits to its own requests. Without
chunking a prompt enters a step whole, so with fixed lengths a step admits c = floor((budget - running) /
ISL) prompts: the running set settles where admissions c match completions running / OSL, at
max over c of min(c x OSL, budget - c x ISL), below the budget's continuous bound budget x OSL / (ISL + OSL).
"""

from __future__ import annotations

import math

from cosim.specs.hardware import stored_bytes_per_element
from cosim.specs.workload import DecoderLM

#: fraction of the free device memory trtllm-bench's estimate gives the KV cache (TensorRT-LLM performance
#: overview: "we also use a higher KV cache percentage by setting --kv_cache_free_gpu_mem_fraction 0.95")
KV_FREE_FRACTION = 0.95
#: cap on the estimated requests before the per-stage split (tuning.py `min(kv_cache_max_requests, 4096)`)
MAX_REQUESTS = 4096
#: cap on the raw token budget (tuning.py `min(raw_bs * (1 + input_len / output_len), 32768)`)
MAX_TOKENS = 32768
#: bytes per element trtllm-bench assumes per quantisation (tuning.py BYTES_PER_ELEM; anything else: 2)
BYTES_PER_ELEM = {"fp8": 1.0, "fp4": 0.5}
#: safetensors elements per parameter of an NVFP4 (ModelOpt) checkpoint: two 4-bit values packed per uint8
#: element plus one FP8 scale per 16 values, one byte each, so the count equals the layout's stored bytes. An
#: estimate: it treats every weight as quantised (the embedding and norms are not), which understates the
#: element count by a few percent.
FP4_ELEMENTS_PER_PARAM = stored_bytes_per_element("fp4", "nvfp4")
GIB = 1024.0**3
#: TensorRT-LLM's BuildConfig defaults, used for quantisations outside the heuristic's TUNED_QUANTS
DEFAULT_MAX_BATCH, DEFAULT_MAX_TOKENS = 2048, 8192


#: CUDA-graph batch sizes of every table's `llm_options.yml` (`cuda_graph_config: enable_padding: true,
#: batch_sizes: [...]`; TensorRT-LLM docs, developer-guide/perf-overview.md, both versions)
CUDA_GRAPH_BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 384, 512, 1024, 2048, 4096, 8192)


def captured_graph_sizes(max_batch: int, budget: int) -> tuple[int, ...]:
    """The sizes the engine captures: those within its max batch size and token budget (tensorrt_llm/_torch/
    pyexecutor/model_engine.py, `bs <= self.max_num_tokens and bs <= self.batch_size`)."""
    return tuple(s for s in CUDA_GRAPH_BATCH_SIZES if s <= max_batch and s <= budget)


#: finetune_setting's rounding: (below this, round up to a multiple of this) steps, and the least value
BATCH_ROUNDING = (((256, 32), (1024, 128), (math.inf, 256)), 64)
TOKEN_ROUNDING = (((4096, 256), (8192, 512), (math.inf, 1024)), 2048)


def _round_up(raw: float, rounding) -> int:
    steps, least = rounding
    multiple = next(m for below, m in steps if raw < below)
    return max(least, multiple * math.ceil(raw / multiple))


def _round_batch(raw: float) -> int:
    return _round_up(raw, BATCH_ROUNDING)


def _round_tokens(raw: float) -> int:
    return _round_up(raw, TOKEN_ROUNDING)


def kv_estimate_bytes_per_token(model: DecoderLM, tp: int, kv_bytes: float) -> float:
    """KV bytes per token summed over a TP group, as trtllm-bench estimates them (see the module doc)."""
    att = model.attention
    if att.kind == "mla":  # DeepSeek configs: num_key_value_heads = heads, no head_dim
        heads, head_size = att.num_heads, model.hidden_size // att.num_heads
    else:
        heads, head_size = att.num_kv_heads, att.head_dim
    return 2.0 * model.num_layers * max(tp, heads) * head_size * kv_bytes


def engine_settings(model: DecoderLM, params_total: float, precision: str, kv_bytes: float, tp: int,
                    pp: int, input_len: int, output_len: int, device_bytes: float,
                    tuned: bool = True) -> tuple[int, int] | None:
    """(max_batch_size, max_num_tokens) trtllm-bench runs with, or None when its estimate leaves no KV room;
    `tuned` False: a quantisation outside the heuristic's (BuildConfig's defaults)."""
    if not tuned:
        return DEFAULT_MAX_BATCH, max(DEFAULT_MAX_TOKENS, input_len + DEFAULT_MAX_BATCH)
    elements = params_total * (FP4_ELEMENTS_PER_PARAM if precision == "fp4" else 1.0)
    engine = elements * BYTES_PER_ELEM.get(precision, 2.0)
    pool = KV_FREE_FRACTION * (tp * pp * device_bytes - engine)
    per_request = kv_estimate_bytes_per_token(model, tp, kv_bytes) * (input_len + output_len)
    if pool <= 0 or per_request <= 0:
        return None
    raw_bs = min(pool / per_request, MAX_REQUESTS) / pp
    raw_tokens = min(raw_bs * (1.0 + input_len / output_len), MAX_TOKENS)
    max_bs = _round_batch(raw_bs)
    return max_bs, max(_round_tokens(raw_tokens), input_len + max_bs)


def whole_prompt_batch(budget: int, input_len: int, output_len: int) -> int:
    """Sequences a step budget of `budget` tokens keeps running when prompts (all `input_len` long) enter
    whole and every request generates `output_len` tokens (see the module doc); 0 when no prompt fits."""
    best = 0
    for c in range(1, budget // max(1, input_len) + 1):
        best = max(best, min(c * output_len, budget - c * input_len))
    return best
