"""Phases as compositions of kernel evaluations: prefill, decode, generate, train, video.

Every function works on N design points at once (arrays in, arrays out). Conventions:
- `scenario.batch` is the global batch of one mapping (split over its DP replicas); `replicas` more
  copies of the whole mapping (from `--chips`) multiply the throughput.
- The op graph describes one chip of one pipeline stage; a request passes all `pp` stages in turn,
  so latency = pp x stage step (no micro-batch interleaving in inference, stated as a simplification).
- prefill: TTFT = latency; throughput = processed (prompt) tokens per second.
- decode: one step at context `input_len`; TPOT = latency; throughput = output tokens per second.
- generate: TTFT = prefill; TPOT = mean decode step over the growing context input_len ...
  input_len + output_len - 1, integrated by Gauss-Legendre quadrature (the step time is piecewise
  linear in the context, `generate_context_samples` nodes); latency = TTFT + (output_len - 1) x TPOT;
  throughput = batch x output_len / latency (static batching, as a batch of requests).
- train: forward graph x 3 (forward + backward) or x 4 (full recompute); in-step collectives x 2 (x 3);
  optimizer step = `optimizer_step_bytes_per_param` x params per chip of memory traffic; the DP
  all-reduce overlaps the backward by `dp_overlap_fraction`; pipeline bubble (m + pp - 1) / m with m
  micro-batches of one sequence; MFU = 3 x forward FLOPs / (step x peak).
- video: one pass over the graph (text encoder, steps x DiT, VAE); seconds per video = latency /
  videos per replica.
"""

from __future__ import annotations

import numpy as np

from cosim.engines import analytical as A
from cosim.engines.efficiency import EngineParams, load_engine_defaults
from cosim.engines.memory import footprint, params_per_chip
from cosim.specs.hardware import PRECISIONS
from cosim.specs.scenario import Scenario


def graphs():
    """The op-graph builders (imported lazily: cosim.graph.build is another module's job)."""
    from cosim.graph import build

    return build


def kernel_run(hw, table, params: EngineParams, *, foot: float, wfoot: float, fwd_mult: float = 1.0,
               comm_mult: float = 1.0, extra: float = 0.0, override=None) -> dict[str, np.ndarray]:
    opf, opi = A.pack_ops(table, params, None if override is None else override(table))
    prm = A.pack_params(params, footprint_bytes=foot, weight_footprint_bytes=wfoot, fwd_mult=fwd_mult,
                        comm_mult=comm_mult, extra_memory_bytes=extra)
    res = A.run_points(hw, opf, opi, prm, params)
    res["flops"] = np.full(len(hw), float(np.sum(table.flops * table.repeat * (table.kind != A.KIND_COMM))) * fwd_mult)
    return res


def gauss_legendre_contexts(input_len: int, output_len: int, nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Contexts and weights (summing to 1) averaging a function over [input_len, input_len + output_len - 1]."""
    lo, hi = float(input_len), float(input_len + output_len - 1)
    if hi <= lo:
        return np.array([lo]), np.array([1.0])
    x, w = np.polynomial.legendre.leggauss(nodes)
    return 0.5 * (hi - lo) * x + 0.5 * (hi + lo), w / 2.0


def _peak(hw, scenario: Scenario) -> np.ndarray:
    return hw.peak_flops_per_s[:, PRECISIONS.index(scenario.compute_precision)]


def _finish(hw, scenario: Scenario, parts: dict[str, np.ndarray], *, latency, step_time, flops, hbm,
            tokens_per_step, throughput, ttft=None, tpot=None, spv=None, mfu_flops=None) -> dict[str, np.ndarray]:
    n = len(hw)
    nan = np.full(n, np.nan)
    peak = _peak(hw, scenario)
    with np.errstate(divide="ignore", invalid="ignore"):
        mfu = (flops if mfu_flops is None else mfu_flops) / (step_time * peak)
        mbu = hbm / (step_time * hw.mem_bandwidth_bytes_per_s)
    comp = np.vstack([parts["compute_s"], parts["memory_s"], parts["network_s"], parts["overhead_s"]])
    return {
        "latency_s": latency, "step_time_s": step_time,
        "ttft_s": nan if ttft is None else ttft, "tpot_s": nan if tpot is None else tpot,
        "throughput_tokens_per_s": nan if throughput is None else throughput,
        "seconds_per_video": nan if spv is None else spv,
        "mfu": mfu, "mbu": mbu, "bottleneck": np.argmax(comp, axis=0).astype(np.int64),
        "compute_s": parts["compute_s"], "memory_s": parts["memory_s"], "network_s": parts["network_s"],
        "overhead_s": parts["overhead_s"], "bytes_main_memory": hbm, "bytes_onchip": parts["bytes_onchip"],
        "comm_bytes_scale_up": parts["comm_bytes_scale_up"], "comm_bytes_scale_out": parts["comm_bytes_scale_out"],
        "flops": flops, "tokens_per_step": np.full(n, float(tokens_per_step)),
        "feasible": parts["feasible"].astype(bool), "reason_code": parts["reason"].astype(np.int64),
    }


def run_phase(hw, workload, scenario: Scenario, params: EngineParams, *, replicas: int = 1,
              tables: dict | None = None, override=None) -> dict[str, np.ndarray]:
    """Evaluate one scenario on every design point of `hw`; returns per-point columns.

    `tables`, when given, receives the op tables used (key -> OpTable) for the per-op breakdown.
    `override(table)` may return per-op compute seconds from another engine (the cycle engine).
    """
    build = graphs()
    pp = scenario.parallelism.pp
    fp = footprint(workload, scenario)
    foot, wfoot = fp.total, fp.weights or fp.optimizer
    phase = scenario.phase
    keep = tables if tables is not None else {}

    def run(key, table, **kw):
        keep[key] = table
        return kernel_run(hw, table, params, foot=foot, wfoot=wfoot, override=override, **kw)

    if phase in ("prefill", "decode"):
        if phase == "prefill":
            r = run("prefill", build.prefill_graph(workload, scenario))
            tokens = scenario.batch * scenario.input_len
        else:
            r = run("decode", build.decode_graph(workload, scenario, scenario.input_len))
            tokens = scenario.batch
        lat = pp * r["step_time_s"]
        return _finish(hw, scenario, r, latency=lat, step_time=r["step_time_s"], flops=r["flops"],
                       hbm=r["bytes_main_memory"], tokens_per_step=tokens,
                       throughput=tokens * replicas / lat,
                       ttft=lat if phase == "prefill" else None, tpot=lat if phase == "decode" else None)

    if phase == "generate":
        pre = run("prefill", build.prefill_graph(workload, scenario))
        ttft = pp * pre["step_time_s"]
        nodes = int(load_engine_defaults()["generate_context_samples"]["value"])
        ctxs, wts = gauss_legendre_contexts(scenario.input_len, scenario.output_len, nodes)
        steps = scenario.output_len - 1
        agg = {k: np.zeros(len(hw)) for k in ("step_time_s", "compute_s", "memory_s", "network_s", "overhead_s",
                                               "bytes_main_memory", "bytes_onchip", "comm_bytes_scale_up",
                                               "comm_bytes_scale_out", "flops")}
        feas = pre["feasible"].copy()
        reason = pre["reason"].copy()
        if steps > 0:
            for c, wt in zip(ctxs, wts, strict=True):
                table = build.decode_graph(workload, scenario, int(round(c)))
                d = run(f"decode@{int(round(c))}", table)
                for k in agg:
                    agg[k] += wt * d[k]
                feas = np.minimum(feas, d["feasible"])
                reason = np.maximum(reason, d["reason"])
        tpot = pp * agg["step_time_s"]
        lat = ttft + steps * tpot
        parts = {k: pre[k] + steps * agg[k] for k in agg}
        parts["feasible"], parts["reason"] = feas, reason
        out_tokens = scenario.batch * scenario.output_len
        busy = pre["step_time_s"] + steps * agg["step_time_s"]
        return _finish(hw, scenario, parts, latency=lat, step_time=busy, flops=parts["flops"],
                       hbm=parts["bytes_main_memory"], tokens_per_step=out_tokens,
                       throughput=out_tokens * replicas / lat, ttft=ttft,
                       tpot=tpot if steps > 0 else None)

    if phase == "train":
        d = load_engine_defaults()
        fwd_mult = 4.0 if scenario.recompute == "full" else 3.0
        comm_mult = 3.0 if scenario.recompute == "full" else 2.0
        extra = params_per_chip(workload, scenario) * float(
            d["optimizer_step_bytes_per_param"][scenario.optimizer]["value"])
        r = run("train", build.train_graph(workload, scenario), fwd_mult=fwd_mult, comm_mult=comm_mult,
                extra=extra)
        micro = max(1.0, scenario.batch / scenario.parallelism.dp) if pp > 1 else 1.0
        bubble = (micro + pp - 1.0) / micro
        step = r["step_time_s"] * bubble
        tokens = scenario.batch * scenario.input_len
        model_flops = r["flops"] / fwd_mult * 3.0
        return _finish(hw, scenario, r, latency=step, step_time=step, flops=r["flops"],
                       hbm=r["bytes_main_memory"], tokens_per_step=tokens, throughput=tokens * replicas / step,
                       mfu_flops=model_flops)

    if phase == "video":
        r = run("video", build.video_graph(workload, scenario))
        lat = pp * r["step_time_s"]
        per_replica = max(1.0, scenario.batch / scenario.parallelism.dp)
        return _finish(hw, scenario, r, latency=lat, step_time=r["step_time_s"], flops=r["flops"],
                       hbm=r["bytes_main_memory"], tokens_per_step=0, throughput=None, spv=lat / per_replica)
    raise ValueError(f"unknown phase {phase}")
