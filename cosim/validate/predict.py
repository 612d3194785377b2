"""Predict one reference row with the cosim engine (analytical) under given engine parameters.

Offline throughput is predicted the way a continuous-batching engine runs in its steady state: as many
sequences as the row's serving engine keeps in flight (TensorRT-LLM holds KV for ISL + OSL per request
under trtllm-bench and for the KV in use in tuned MLPerf harnesses, in a fraction of the memory left after
the weights; vLLM admits by the KV in use, on average the prompt plus half the output, within 90% of the
device; otherwise the whole request's KV within 90%; the row's `kv_cache_fraction` where the submission
states it), capped by the engine's sequence limit (and, where the row states one, by TensorRT-LLM's
per-step token budget; both hold per pipeline micro-batch and per attention-DP rank; a trtllm-bench row
that states neither runs at the max batch size and token budget trtllm-bench derives itself, see
cosim.validate.trtllm_bench), generate `output_len` tokens each, so output tokens/s = batch x output_len /
run time, times the replicas. TensorRT-LLM runs the prompts as chunks inside the decode steps
(`output_len` mixed steps; under trtllm-bench, whose PyTorch backend launches them without CUDA graphs, a
prompt step's MoE layers wait for the host, see cosim.engines.eager); other engines prefill the batch,
then decode. `cosim serve --offline` simulates the same run request by request; this closed form is used
here because calibration evaluates it thousands of times.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from cosim.cli.common import build_scenario
from cosim.engines.eager import EAGER_PROMPT_STACKS
from cosim.validate import trtllm_bench
from cosim.validate.mapping import CONCURRENCY_KINDS, Mapping, Query, lengths, output_cv, output_dataset

#: Sequence cap of the serving engine when the row does not state one: trtllm-bench sizes the batch
#: from the KV-cache capacity and caps it at 4096 (NVIDIA/TensorRT-LLM tensorrt_llm/bench/build/tuning.py,
#: `raw_bs = min(kv_cache_max_requests, 4096) / pp_size`); the memory model supplies the KV limit.
DEFAULT_MAX_SEQS = trtllm_bench.MAX_REQUESTS

#: KV-cache pool of TensorRT-LLM: a fraction of the device memory left after the weights (not of the whole
#: device, as vLLM's gpu_memory_utilization). trtllm-bench: 0.95 (tensorrt_llm/bench/build/tuning.py,
#: `calc_engine_setting(..., kv_cache_gpu_mem_fraction=0.95)`: cache = (total GPU memory - engine size) x
#: 0.95, max requests = cache / (KV bytes per token x (ISL + OSL))); other TensorRT-LLM deployments (MLPerf
#: submissions on NVIDIA GPUs, on either backend): the runtime default KvCacheConfig.free_gpu_memory_fraction = 0.9.
TRTLLM_KV_FREE_FRACTION = {"trtllm-bench": trtllm_bench.KV_FREE_FRACTION, "tuned": 0.90, "trtllm-pytorch": 0.90}
#: whether the engine reserves each request's whole output up front (trtllm-bench's fixed-length requests
#: under the guaranteed-no-evict scheduler) or keeps only the KV in use, on average ISL + OSL / 2 (NVIDIA's
#: MLPerf harness: the batches its submissions state do not fit ISL + the output cap, see the
#: mlperf-llama2-openorca profile in cosim/data/reference/mapping.yaml; its PyTorch-backend DeepSeek-R1
#: submissions schedule with `max_util`, not guaranteed-no-evict)
TRTLLM_RESERVES_OUTPUT = {"trtllm-bench": True, "tuned": False, "trtllm-pytorch": False}
#: engines whose steps carry prompt chunks beside the decode tokens (in-flight batching with context chunks
#: packed into the step, up to `max_num_tokens`: TensorRT-LLM's scheduler and the MLPerf harness built on it)
CHUNKED_PREFILL_ENGINES = ("tensorrt-llm",)


def _scenario(q: Query, phase: str, batch: int = 1, input_len: int = 1, output_len: int = 1,
              recompute: str = "selective", output_len_cv: float = 0.0):
    return build_scenario(
        phase=phase, batch=batch, input_len=input_len, output_len=output_len, output_len_cv=output_len_cv,
        chunked_prefill=phase == "generate" and serving_engine(q) in CHUNKED_PREFILL_ENGINES,
        eager_prompt_steps=q.stack in EAGER_PROMPT_STACKS, dp_prompt_balance=q.dp_balance,
        dp_imbalance=_dp_imbalance(q),
        frames=q.frames, height=q.height, width=q.width, steps=q.steps, precision=q.precision, tp=q.tp, pp=q.pp, ep=q.ep,
        dp=q.dp, sp=q.sp, sp_kind=q.sp_kind, sp_ring=q.sp_ring, zero=q.zero, microbatch=q.microbatch, vpp=q.vpp, recompute=recompute,
        kv_precision=q.kv_precision, activation_precision=q.activation_precision, dense_precision=q.dense_precision,
        fp4_format=q.fp4_format, ssm_state_precision=q.ssm_state_precision, images_per_request=q.images_per_request,
        draft_tokens=q.draft_tokens if phase == "decode" else 0,
        accepted_tokens_per_step=q.accepted_tokens_per_step if phase == "decode" and q.draft_tokens else None,
        kv_read_per_query_head=q.kv_read_per_query_head,
        kv_read_per_query_head_layers=q.kv_read_per_query_head_layers, attention_precision=q.attention_precision,
    )


def _dp_imbalance(q: Query) -> float:
    """Step stretch of a balanced attention-DP run over a dataset's variable-length requests (engine_defaults
    adp_balance_step_stretch); 1 for fixed-length requests (a table's synthetic lengths) or without balancing."""
    from cosim.engines.efficiency import load_engine_defaults

    if q.dp > 1 and q.dp_balance and q.profile:
        return float(load_engine_defaults()["adp_balance_step_stretch"]["value"])
    return 1.0


def serving_engine(q: Query) -> str:
    """How the row's serving engine sizes its batch: `tensorrt-llm` (NVIDIA rows on TensorRT-LLM: tuned
    submissions, trtllm-bench), `vllm` (ML.ENERGY rows, whose max_num_seqs is known), else `reserve`
    (cosim's memory model with the whole request's KV: e.g. AMD's vLLM-based MLPerf submissions, whose
    max_num_seqs is not in the rows)."""
    from cosim.specs.loader import load_hardware

    if q.stack == "vllm":
        return "vllm"
    nvidia = "nvidia" in load_hardware(q.hardware).vendor.lower()
    return "tensorrt-llm" if nvidia and q.stack in TRTLLM_KV_FREE_FRACTION else "reserve"


def _engine_token_budget(q: Query, input_len: int, output_len: int) -> int:
    """Tokens one engine (one attention-DP rank) runs per step at most: the row's `max_num_tokens`, else the
    budget trtllm-bench derives itself, else TensorRT-LLM's default (`prefill_chunk_tokens`, 8192)."""
    from cosim.engines.efficiency import load_engine_defaults

    if q.max_num_tokens:
        return q.max_num_tokens
    if q.stack == "trtllm-bench":
        settings = _trtllm_bench_settings(q, input_len, output_len)
        if settings is not None:
            return settings[1]
    return int(load_engine_defaults()["prefill_chunk_tokens"]["value"])


def runtime_reserved_bytes(q: Query, budget: int) -> float:
    """Bytes per GPU a TensorRT-LLM engine holds beside its weights when it sizes the KV pool, which is a
    fraction of what is left (tensorrt_llm/_torch/pyexecutor/_util.py: `available_kv_mem = (total_gpu_memory -
    peak_memory + ...) * fraction`, the peak measured over a forward pass of `max_num_tokens` dummy prompt
    tokens; TensorRT engines reserve the same activations at build time): the activations of one step of
    `budget` prompt tokens (cosim's prefill working set), the CUDA context, and an NCCL communicator when
    the engine spans GPUs (`runtime_context_bytes`, `nccl_communicator_bytes` in engine_defaults.yaml)."""
    from cosim.engines.efficiency import load_engine_defaults
    from cosim.engines.memory import footprint
    from cosim.specs.loader import load_workload

    d = load_engine_defaults()
    pass_ = _scenario(q, "prefill", q.dp, budget, 1)  # one budget of prompt tokens on each attention-DP rank
    reserved = footprint(load_workload(q.workload), pass_).activations + float(d["runtime_context_bytes"]["value"])
    if q.tp * q.pp * q.dp * q.ep > 1:
        reserved += float(d["nccl_communicator_bytes"]["value"])
    return reserved


def _trtllm_batch(q: Query, sc) -> int | None:
    """Sequences TensorRT-LLM keeps in flight (KV for ISL + OSL per request when the stack reserves the
    output, else for the KV in use, ISL + OSL / 2 on average) in a fraction of the memory left beside the
    weights and the runtime's own (`runtime_reserved_bytes`), or None when the engine is not TensorRT-LLM."""
    from cosim.engines.memory import footprint
    from cosim.specs.loader import load_hardware, load_workload

    if serving_engine(q) != "tensorrt-llm":
        return None
    hw = load_hardware(q.hardware)
    budget = _engine_token_budget(q, sc.input_len, sc.output_len)
    if not TRTLLM_RESERVES_OUTPUT[q.stack]:  # the KV in use: input + decode_span / 2 (length-biased)
        sc = sc.model_copy(update={"output_len": max(1, sc.decode_span // 2), "output_len_cv": 0.0})
    one = footprint(load_workload(q.workload), sc, sc.parallelism.dp)
    free = hw.main_memory.capacity_bytes.value - one.weights - runtime_reserved_bytes(q, budget)
    if one.kv_cache <= 0 or free <= 0:
        return None
    per_seq = one.kv_cache / sc.parallelism.dp
    fraction = q.kv_cache_fraction or TRTLLM_KV_FREE_FRACTION[q.stack]
    return int(fraction * free // per_seq)


def _kv_admitted_batch(q: Query, inp: int, span: int, params) -> int:
    """Sequences in flight within `gpu_memory_utilization` (cosim's memory reserve) of the device: vLLM
    admits by the KV cache in use now (preempting when it runs out), so on average each sequence holds its
    prompt plus half its decode span (half its output when lengths are fixed); the `reserve` rule counts
    the whole request (the whole span: the running requests are the long ones). `span` is the scenario's
    decode_span."""
    from cosim.engines.memory import max_batch
    from cosim.specs.loader import load_hardware, load_workload

    live_out = max(1, span // 2) if serving_engine(q) == "vllm" else span
    mean = _scenario(q, "generate", q.dp, inp, live_out)
    cap = load_hardware(q.hardware).main_memory.capacity_bytes.value
    return max_batch(load_workload(q.workload), mean, cap, params.memory_reserve_fraction)


def engine_run(q: Query, inp: int, out: int, chips: int, params, limit: int, cv: float = 0.0):
    """Generate run at the concurrency the row's serving engine sustains (at most `limit` sequences);
    the engine's admission rule, not cosim's final-context footprint check, decides what fits. `cv` is
    the spread of the output lengths (0: every request generates `out` tokens)."""
    from cosim.engines.efficiency import params_for
    from cosim.engines.estimate import estimate
    from cosim.specs.loader import load_hardware

    hw = load_hardware(q.hardware)
    params = params or params_for(hw)
    sc = _scenario(q, "generate", q.dp, inp, out, output_len_cv=cv)
    fits = _trtllm_batch(q, sc)
    if fits is None:
        fits = _kv_admitted_batch(q, inp, sc.decode_span, params)
    if q.max_num_tokens and sc.chunked_prefill:  # a step carries batch (1 + ISL / OSL) tokens within the budget
        # (per pipeline micro-batch and per attention-DP rank: pp x dp budgets are in flight)
        limit = min(limit, max(1, q.max_num_tokens * out // (inp + out)) * q.pp * q.dp)
    batch = min(fits, limit) // q.dp * q.dp
    if batch < q.dp:  # not even one sequence per replica: the estimate says why
        return estimate(q.hardware, q.workload, sc, chips=chips, batch_max=True, params=params)
    run = _scenario(q, "generate", batch, inp, out, output_len_cv=cv).model_copy(
        update=_trtllm_bench_steps(q, inp, out))
    # (below 0 when vLLM's preemption lets the in-flight set outgrow the device by the end of the run)
    return estimate(q.hardware, q.workload, run, chips=chips,
                    params=params.with_overrides(memory_reserve_fraction=_admitted_reserve(q, run, hw, params)))


def _admitted_reserve(q: Query, run, hw, params) -> float:
    """cosim's runtime reserve lowered to what `run`'s footprint leaves of the device: an engine that admitted
    the run allocates what it needs, so the footprint check passes wherever the run fits the device itself."""
    from cosim.engines.memory import footprint
    from cosim.specs.loader import load_workload

    cap = hw.main_memory.capacity_bytes.value
    return min(params.memory_reserve_fraction, 1.0 - footprint(load_workload(q.workload), run).total / cap - 1e-6)


def _static_batch(q: Query, params, phase: str = "generate"):
    """One static batch of `q.batch` requests on one TP x PP group, as TensorRT-LLM's gptSessionBenchmark
    runs it: the whole batch's prompts in one context pass, then `output_len` - 1 decode steps (no in-flight
    batching, no chunked prefill); `phase="prefill"` is the context pass alone (first-token latency). The
    engine allocates what the stated batch needs, so the run is taken to fit where its footprint fits the
    device, cosim's runtime reserve notwithstanding (as `engine_run` does for an engine's own admission)."""
    from cosim.engines.efficiency import params_for
    from cosim.engines.estimate import estimate
    from cosim.specs.loader import load_hardware

    hw = load_hardware(q.hardware)
    params = params or params_for(hw)
    out = 1 if phase == "prefill" else int(q.output_len or 1)
    run = _scenario(q, phase, q.batch or 1, int(q.input_len or 1), out).model_copy(update={"chunked_prefill": False})
    reserve = max(0.0, _admitted_reserve(q, run, hw, params))  # never beyond the device itself
    return estimate(q.hardware, q.workload, run, chips=q.tp * q.pp,
                    params=params.with_overrides(memory_reserve_fraction=reserve))


def _trtllm_bench_steps(q: Query, inp: int, out: int) -> dict:
    """Scenario fields of a performance-table run's steps: the CUDA-graph sizes its engine captures, the
    tables' list within the max batch size and token budget trtllm-bench derives (cosim.engines.graph_padding).
    None for other stacks, nor for runs that state their own limits (the DeepSeek-R1 blog's pad "up to" their
    max batch size, a list the rows do not give)."""
    if q.stack != "trtllm-bench" or q.max_seqs:
        return {}
    settings = _trtllm_bench_settings(q, inp, out)
    max_batch = settings[0] if settings is not None else DEFAULT_MAX_SEQS
    return {"cuda_graph_batch_sizes": trtllm_bench.captured_graph_sizes(max_batch, _engine_token_budget(q, inp, out))}


def engine_sequence_cap(q: Query) -> int:
    """Sequences one engine (one DP rank) keeps in flight at most: a stated batch size holds per pipeline
    micro-batch, and TensorRT-LLM keeps pp of them in flight (`numBatches = pp`, `maxNumSequences =
    numBatches x maxBatchSize`, NVIDIA/TensorRT-LLM batch_manager TrtGptModel); trtllm-bench's own cap
    (DEFAULT_MAX_SEQS) is already the total, split over the micro-batches (`raw_bs = min(..., 4096) / pp_size`)."""
    return q.max_seqs * q.pp if q.max_seqs else DEFAULT_MAX_SEQS


def trtllm_bench_cap(q: Query, mapping: Mapping) -> int | None:
    """Sequences one rank of a trtllm-bench run keeps in flight under the max batch size and token budget
    trtllm-bench chooses itself (cosim.validate.trtllm_bench), or None when the row states its limits, runs
    another stack or has varying lengths. Its `--tp` counts the attention-DP ranks too."""
    if q.stack != "trtllm-bench" or q.max_seqs or q.max_num_tokens or output_dataset(q, mapping) is not None:
        return None
    inp, out = lengths(q, mapping)
    settings = _trtllm_bench_settings(q, inp, out)
    if settings is None:
        return None
    max_bs, budget = settings
    return min(max_bs, trtllm_bench.whole_prompt_batch(budget, inp, out)) * q.pp


@functools.lru_cache(maxsize=1024)
def _trtllm_bench_settings(q: Query, inp: int, out: int) -> tuple[int, int] | None:
    """(max batch size, token budget) trtllm-bench derives for the row's model and lengths, or None (memoised:
    the batch cap, the KV reservation and the CUDA-graph sizes of a row all ask for them)."""
    from cosim.specs.hardware import BYTES_PER_ELEMENT
    from cosim.specs.loader import load_hardware, load_workload
    from cosim.specs.scenario import default_kv_precision
    from cosim.specs.workload import DecoderLM
    from cosim.workloads.params import params_total

    model = load_workload(q.workload)
    if not isinstance(model, DecoderLM):
        return None
    kv_bytes = BYTES_PER_ELEMENT[q.kv_precision or default_kv_precision(q.precision)]
    # the heuristic knows one quantisation of the whole model (FP8, NVFP4, none), not mixed-precision experts
    tuned = q.activation_precision in (None, q.precision) and q.dense_precision in (None, q.precision)
    return trtllm_bench.engine_settings(model, params_total(model), q.precision, kv_bytes, q.tp * q.dp, q.pp,
                                        inp, out, load_hardware(q.hardware).main_memory.capacity_bytes.value,
                                        tuned=tuned)


def chips_per_replica(q: Query) -> int:
    """Chips one serving replica spans: its TP x PP x SP group times the attention-DP ranks, which share one set
    of experts (ep over dp)."""
    return q.tp * q.pp * q.sp * q.dp


def _offline(q: Query, mapping: Mapping, params):
    """(estimate of one replica generating at the concurrency its engine sustains, capped by the engine's
    sequence limit and the number of requests, and the number of replicas)."""
    inp, out = lengths(q, mapping)
    per_replica = chips_per_replica(q)
    replicas = max(1, q.chips // per_replica)
    cap = trtllm_bench_cap(q, mapping) or engine_sequence_cap(q)
    limit = cap * q.dp  # the engine's sequence cap holds per DP rank
    if q.num_requests:
        limit = min(limit, q.num_requests)
    return engine_run(q, inp, out, per_replica, params, limit, output_cv(q, mapping)), replicas


#: requests in the template of an MLPerf Server/Interactive run (its lengths; arrivals are Poisson at each
#: probed QPS, as loadgen issues them): enough that a probe lasts several times the residence of the
#: longest requests (up to 1,024 output tokens), so the queue test sees a steady state, not the ramp-up;
#: per REPLICAS_PER_PROBE replicas, so a rack of 72 replicas gets as many per replica as an 8-GPU server
SERVER_REQUESTS = 6000
REPLICAS_PER_PROBE = 8


def _server_throughput(q: Query, mapping: Mapping, params) -> tuple[float | None, str | None]:
    """Output tokens/s at the highest Poisson QPS whose p99 TTFT and TPOT meet the row's limits, from the
    serving simulator (continuous batching, paged KV cache) over all replicas. Output lengths are drawn from
    the profile's dataset distribution when it names one; the sequence cap is the engine's (as offline), so
    the latency limits, not a vLLM online default, bound the concurrency."""
    from cosim.serving.metrics import Slo
    from cosim.serving.service import make_requests, serve

    if q.slo_ttft_s is None and q.slo_tpot_s is None:
        return None, "a server row needs slo_ttft_s or slo_tpot_s in the mapping"
    inp, out = lengths(q, mapping)
    dataset = output_dataset(q, mapping)
    out_spec = str(out) if dataset is None else f"profile:{dataset}"
    replicas = max(1, q.chips // chips_per_replica(q))
    req = make_requests(offline=True, num_requests=SERVER_REQUESTS * -(-replicas // REPLICAS_PER_PROBE),
                        qps=None, duration_s=None,
                        input_len=str(inp), output_len=out_spec)
    sc = _scenario(q, "generate", 1, inp, out)
    res = serve(q.hardware, q.workload, sc, chips=q.chips, requests=req, find_max=True, timeline=False,
                max_seqs=engine_sequence_cap(q), max_batched_tokens=q.max_num_tokens and q.max_num_tokens * q.pp,
                slo=Slo(ttft_s=q.slo_ttft_s, tpot_s=q.slo_tpot_s),
                stack=q.stack if params is None else "tuned", params=params)  # given params carry their stack
    if not res.get("feasible") or not res.get("max_qps_at_slo"):
        return None, res.get("reason") or "no QPS meets the latency limits"
    return float(res["max_qps_at_slo"]) * float(np.mean(req.output_len)), None


#: requests of a closed-loop run per client: enough that its ramp (the clients starting over one request's
#: lifetime) and its drain are a tenth of the run (genai-perf and AIPerf report every request they send)
REQUESTS_PER_CLIENT = 10
#: fewest requests of a closed-loop run, so a run of one or a few clients still averages over several
MIN_CONCURRENCY_REQUESTS = 40
#: which summary figure of the serving simulator each closed-loop kind reads (means, as the tools report)
CONCURRENCY_FIGURE = {"ttft_s_at_concurrency": "ttft_mean_s", "itl_s_at_concurrency": "tpot_mean_s",
                      "output_tokens_per_s_at_concurrency": "output_tokens_per_s"}


def _at_concurrency(q: Query, mapping: Mapping, params) -> tuple[float | None, str | None]:
    """Mean TTFT, mean inter-token latency or output tokens/s of a closed loop of `q.concurrency` clients (each
    sends its next request when the last one completes) from the serving simulator, over all replicas; the
    three kinds of one run share it."""
    if not q.concurrency:
        return None, "a closed-loop row needs concurrency in the mapping"
    key = (q.model_copy(update={"kind": CONCURRENCY_KINDS[0]}), None if params is None else _params_key(params))
    try:
        res = _CONCURRENCY_CACHE.get(key)
    except TypeError:  # an unhashable parameter: no caching
        key, res = None, None
    if res is None:
        from cosim.serving.service import closed_loop_steady, make_requests, serve

        inp, out = lengths(q, mapping)
        dataset = output_dataset(q, mapping)
        n = max(MIN_CONCURRENCY_REQUESTS, REQUESTS_PER_CLIENT * q.concurrency)
        sc = _scenario(q, "generate", 1, inp, out)

        def requests_for(stagger_s: float):
            return make_requests(offline=False, num_requests=n, qps=None, duration_s=None, input_len=str(inp),
                                 output_len=str(out) if dataset is None else f"profile:{dataset}",
                                 concurrency=q.concurrency, stagger_s=stagger_s)

        def run(req) -> dict:
            return serve(q.hardware, q.workload, sc, chips=q.chips, requests=req, timeline=False,
                         max_seqs=q.max_seqs and engine_sequence_cap(q),
                         max_batched_tokens=q.max_num_tokens and q.max_num_tokens * q.pp,
                         stack=q.stack if params is None else "tuned", params=params)

        # the clients spread over one request's lifetime: the steady state a real server's jitter reaches
        res = closed_loop_steady(requests_for, run, q.concurrency)
        if key is not None:
            if len(_CONCURRENCY_CACHE) > 64:
                _CONCURRENCY_CACHE.clear()
            _CONCURRENCY_CACHE[key] = res
    if not res.get("feasible", True) or res.get(CONCURRENCY_FIGURE[q.kind]) is None:
        return None, res.get("reason") or "no closed-loop result"
    return float(res[CONCURRENCY_FIGURE[q.kind]]), None


_CONCURRENCY_CACHE: dict = {}


def _video_estimate(q: Query, params):
    """One video-generation estimate per (query less its kind, params): the time and energy rows of an
    ML.ENERGY configuration share it."""
    key = None if params is None else (q.model_copy(update={"kind": "video_seconds"}), _params_key(params))
    try:
        hit = None if key is None else _VIDEO_CACHE.get(key)
    except TypeError:  # an unhashable parameter: no caching
        key, hit = None, None
    if hit is not None:
        return hit
    from cosim.engines.estimate import estimate

    sc = _scenario(q, "video", q.batch or 1)
    res = estimate(q.hardware, q.workload, sc, chips=q.chips, params=params)
    if key is not None:
        if len(_VIDEO_CACHE) > 64:
            _VIDEO_CACHE.clear()
        _VIDEO_CACHE[key] = res
    return res


def _params_key(params) -> tuple:
    """A hashable fingerprint of engine parameters (arrays by their bytes)."""
    return tuple((k, v.tobytes() if isinstance(v, np.ndarray) else v) for k, v in sorted(vars(params).items()))


_VIDEO_CACHE: dict = {}


def with_row_kernel(q: Query, params):
    """`params` (None: the chip's defaults) priced with the attention kernel the row names, if it names one."""
    if not q.attention_kernel:
        return params
    from cosim.engines.efficiency import params_for, with_attention_kernel
    from cosim.specs.loader import load_hardware

    hw = load_hardware(q.hardware)
    return with_attention_kernel(params or params_for(hw), hw, q.attention_kernel)


def predict(q: Query, mapping: Mapping, params=None) -> tuple[float | None, str | None]:
    """(predicted value in the row's unit, or None, and the reason when None)."""
    from cosim.engines.estimate import estimate

    params = with_row_kernel(q, params)
    if q.kind in ("offline_throughput", "system_energy_per_token"):
        res, replicas = _offline(q, mapping, params)
        if not res.feasible or not res.throughput_tokens_per_s:
            return None, res.reason or "no throughput"
        if q.kind == "system_energy_per_token":
            return res.system_energy_j_per_token, None
        return res.throughput_tokens_per_s * replicas, None
    if q.kind == "energy_per_token":
        # the row ran at max_num_seqs = batch, or fewer when the engine's KV cache holds fewer
        res = engine_run(q, q.input_len or 1, q.output_len or 1, q.tp * q.pp * q.sp * q.dp, params, q.batch or 1)
        if not res.feasible or res.energy_j_per_token is None:
            return None, res.reason or "no energy"
        return res.energy_j_per_token, None
    if q.kind == "server_throughput":
        return _server_throughput(q, mapping, params)
    if q.kind == "static_batch_tokens_per_s_per_gpu":
        res = _static_batch(q, params)
        if not res.feasible or not res.throughput_tokens_per_s:
            return None, res.reason or "no throughput"
        return res.throughput_tokens_per_s / (q.tp * q.pp), None
    if q.kind == "first_token_latency_s":
        res = _static_batch(q, params, phase="prefill")
        if not res.feasible or not res.ttft_s:
            return None, res.reason or "no first-token latency"
        return res.ttft_s, None
    if q.kind in CONCURRENCY_KINDS:
        return _at_concurrency(q, mapping, params)
    if q.kind == "per_user_decode":
        inp, out = lengths(q, mapping)
        sc = _scenario(q, "decode", 1, inp + out // 2, 1)
        res = estimate(q.hardware, q.workload, sc, chips=q.tp * q.pp * q.sp, params=params)
        if not res.feasible or not res.tpot_s:
            return None, res.reason or "no TPOT"
        return 1.0 / res.tpot_s, None
    if q.kind in ("video_seconds", "video_energy_j"):
        res = _video_estimate(q, params)
        if not res.feasible or not res.seconds_per_video:
            return None, res.reason or "no video time"
        if q.kind == "video_energy_j":
            return res.energy_j / (q.batch or 1) if res.energy_j else None, None if res.energy_j else "no energy"
        return res.seconds_per_video, None
    if q.kind in ("training_mfu", "training_tflops_per_gpu", "training_tokens_per_s_per_gpu"):
        # the run's stated recompute; else as trainers are configured: selective when it fits, else full
        sc = _scenario(q, "train", q.batch or q.dp, q.input_len or 4096, 1, recompute=q.recompute or "selective")
        res = estimate(q.hardware, q.workload, sc, chips=q.chips, params=params)
        if not res.feasible and q.recompute is None:
            sc = _scenario(q, "train", q.batch or q.dp, q.input_len or 4096, 1, recompute="full")
            res = estimate(q.hardware, q.workload, sc, chips=q.chips, params=params)
        if not res.feasible or res.mfu is None or not math.isfinite(res.mfu):
            return None, res.reason or "no MFU"
        if q.kind == "training_mfu":
            return 100.0 * res.mfu, None
        if q.kind == "training_tokens_per_s_per_gpu":  # independent of how a trainer counts model FLOPs
            return res.throughput_tokens_per_s / q.chips, None
        from cosim.specs.loader import load_hardware

        peak = load_hardware(q.hardware).peak_flops(q.precision) or 0.0
        return res.mfu * peak / 1e12, None
    return None, f"query kind '{q.kind}' is not predicted yet"
