"""Predict one reference row with the cosim engine (analytical) under given engine parameters.

Offline throughput is predicted the way a continuous-batching engine runs in its steady state: the
largest batch that fits in memory, sized the way the row's serving stack sizes its KV cache (TensorRT-LLM:
a fraction of the memory left after the weights; vLLM: cosim's memory model at 90% of the device), capped
by the engine's sequence limit, generates `output_len`
tokens after a prefill of `input_len` each, so output tokens/s = batch x output_len / (prefill + output_len x
TPOT at the mean context), times the replicas. `cosim serve --offline` simulates the same run request by
request; this closed form is used here because calibration evaluates it thousands of times.
"""

from __future__ import annotations

import math

from cosim.cli.common import build_scenario
from cosim.validate.mapping import Mapping, Query, lengths

#: Sequence cap of the serving engine when the row does not state one: trtllm-bench sizes the batch
#: from the KV-cache capacity and caps it at 4096 (NVIDIA/TensorRT-LLM tensorrt_llm/bench/build/tuning.py,
#: `raw_bs = min(kv_cache_max_requests, 4096) / pp_size`); the memory model supplies the KV limit.
DEFAULT_MAX_SEQS = 4096

#: KV-cache pool of TensorRT-LLM: a fraction of the device memory left after the weights (not of the whole
#: device, as vLLM's gpu_memory_utilization). trtllm-bench: 0.95 (tensorrt_llm/bench/build/tuning.py,
#: `calc_engine_setting(..., kv_cache_gpu_mem_fraction=0.95)`: cache = (total GPU memory - engine size) x
#: 0.95, max requests = cache / (KV bytes per token x (ISL + OSL))); other TensorRT-LLM deployments (MLPerf
#: submissions on NVIDIA GPUs): the runtime default KvCacheConfig.free_gpu_memory_fraction = 0.9.
TRTLLM_KV_FREE_FRACTION = {"trtllm-bench": 0.95, "tuned": 0.90}


def _trtllm_batch(q: Query, sc, per_replica: int) -> int | None:
    """Sequences TensorRT-LLM keeps in flight (KV reserved for ISL + OSL per request, as its
    guaranteed-no-evict scheduler does), or None when the row's stack is not TensorRT-LLM."""
    from cosim.engines.memory import footprint
    from cosim.specs.loader import load_hardware, load_workload

    hw = load_hardware(q.hardware)
    frac = TRTLLM_KV_FREE_FRACTION.get(q.stack)
    if frac is None or "nvidia" not in hw.vendor.lower():
        return None
    wl = load_workload(q.workload)
    one = footprint(wl, sc, 1)
    free = hw.main_memory.capacity_bytes.value - one.weights
    if one.kv_cache <= 0 or free <= 0:
        return None
    return int(frac * free // one.kv_cache)


def _scenario(q: Query, phase: str, batch: int = 1, input_len: int = 1, output_len: int = 1,
              recompute: str = "selective"):
    return build_scenario(
        phase=phase, batch=batch, input_len=input_len, output_len=output_len, frames=q.frames,
        height=q.height, width=q.width, steps=q.steps, precision=q.precision, tp=q.tp, pp=q.pp, ep=q.ep,
        dp=q.dp, sp=q.sp, zero=q.zero, microbatch=q.microbatch, recompute=recompute,
    )


def _offline(q: Query, mapping: Mapping, params):
    """(estimate of one replica generating at its largest batch, capped by the engine's sequence limit,
    and the number of replicas)."""
    from cosim.engines.estimate import estimate

    inp, out = lengths(q, mapping)
    per_replica = q.tp * q.pp * q.sp
    replicas = max(1, q.chips // per_replica)
    sc = _scenario(q, "generate", 1, inp, out)
    probe = estimate(q.hardware, q.workload, sc, chips=per_replica, batch_max=True, params=params)
    if not probe.feasible:
        return probe, replicas
    cap = q.max_seqs or DEFAULT_MAX_SEQS
    if q.num_requests:
        cap = min(cap, q.num_requests)
    trt = _trtllm_batch(q, sc, per_replica)
    if trt is not None:  # the stack's own KV sizing replaces cosim's memory reserve
        if params is None:
            from cosim.engines.efficiency import params_for
            from cosim.specs.loader import load_hardware

            params = params_for(load_hardware(q.hardware))
        res = estimate(q.hardware, q.workload, _scenario(q, "generate", max(1, min(trt, cap)), inp, out),
                       chips=per_replica, params=params.with_overrides(memory_reserve_fraction=0.0))
        if res.feasible:
            return res, replicas
    batch = max(1, min(int(probe.batch or 1), cap))
    if batch == probe.batch:
        return probe, replicas
    return estimate(q.hardware, q.workload, _scenario(q, "generate", batch, inp, out), chips=per_replica,
                    params=params), replicas


def predict(q: Query, mapping: Mapping, params=None) -> tuple[float | None, str | None]:
    """(predicted value in the row's unit, or None, and the reason when None)."""
    from cosim.engines.estimate import estimate

    if q.kind in ("offline_throughput", "system_energy_per_token"):
        res, replicas = _offline(q, mapping, params)
        if not res.feasible or not res.throughput_tokens_per_s:
            return None, res.reason or "no throughput"
        if q.kind == "system_energy_per_token":
            return res.system_energy_j_per_token, None
        return res.throughput_tokens_per_s * replicas, None
    if q.kind == "energy_per_token":
        sc = _scenario(q, "generate", q.batch or 1, q.input_len or 1, q.output_len or 1)
        res = estimate(q.hardware, q.workload, sc, chips=q.tp * q.pp * q.sp, params=params)
        if not res.feasible:  # the row ran, so take the largest batch cosim's memory model admits
            res = estimate(q.hardware, q.workload, sc, chips=q.tp * q.pp * q.sp, params=params, batch_max=True)
        if not res.feasible or res.energy_j_per_token is None:
            return None, res.reason or "no energy"
        return res.energy_j_per_token, None
    if q.kind == "per_user_decode":
        inp, out = lengths(q, mapping)
        sc = _scenario(q, "decode", 1, inp + out // 2, 1)
        res = estimate(q.hardware, q.workload, sc, chips=q.tp * q.pp * q.sp, params=params)
        if not res.feasible or not res.tpot_s:
            return None, res.reason or "no TPOT"
        return 1.0 / res.tpot_s, None
    if q.kind == "video_seconds":
        sc = _scenario(q, "video", 1)
        res = estimate(q.hardware, q.workload, sc, chips=q.chips, params=params)
        if not res.feasible or not res.seconds_per_video:
            return None, res.reason or "no video time"
        return res.seconds_per_video, None
    if q.kind in ("training_mfu", "training_tflops_per_gpu"):
        # as trainers are configured: selective recompute when it fits, else full recompute
        sc = _scenario(q, "train", q.batch or q.dp, q.input_len or 4096, 1)
        res = estimate(q.hardware, q.workload, sc, chips=q.chips, params=params)
        if not res.feasible:
            sc = _scenario(q, "train", q.batch or q.dp, q.input_len or 4096, 1, recompute="full")
            res = estimate(q.hardware, q.workload, sc, chips=q.chips, params=params)
        if not res.feasible or res.mfu is None or not math.isfinite(res.mfu):
            return None, res.reason or "no MFU"
        if q.kind == "training_mfu":
            return 100.0 * res.mfu, None
        from cosim.specs.loader import load_hardware

        peak = load_hardware(q.hardware).peak_flops(q.precision) or 0.0
        return res.mfu * peak / 1e12, None
    return None, f"query kind '{q.kind}' is not predicted yet"
