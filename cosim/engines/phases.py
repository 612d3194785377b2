"""Phases as compositions of kernel evaluations: prefill, decode, generate, train, video.

Every function works on N design points at once (arrays in, arrays out). Conventions:
- `scenario.batch` is the global batch of one mapping (split over its DP replicas); `replicas` more
  copies of the whole mapping (from `--chips`) multiply the throughput.
- The op graph describes one chip of one pipeline stage; a request passes all `pp` stages in turn.
  A prefill batch goes through the stages as one batch: TTFT = pp x stage step. Decode and generate
  steps are micro-batched as serving engines run them: the running batch is split into `pp`
  micro-batches that occupy the stages in turn (TensorRT-LLM keeps pp micro-batches in flight,
  `numBatches = pp`, `maxNumSequences = numBatches x maxBatchSize`; vLLM runs pp virtual engines), so a
  sequence advances once every pp stage steps of one micro-batch: TPOT = pp x stage step(batch / pp),
  and every stage is busy for the whole iteration (its counters are pp micro-batch steps).
- prefill: TTFT = latency; throughput = processed (prompt) tokens per second.
- decode: one step at context `input_len`; TPOT = latency; throughput = output tokens per second. A
  speculative step (`draft_tokens`) emits `accepted_tokens_per_step` tokens per sequence: TPOT = latency /
  accepted, throughput = batch x accepted / latency.
- generate: TTFT = prefill; TPOT = mean decode step over the growing context input_len ...
  input_len + output_len - 1 (a speculative step over accepted_tokens_per_step, of which (output_len - 1) /
  accepted run, output_len / accepted with chunked prefill), integrated by Gauss-Legendre quadrature (the
  step time is piecewise linear in the context, `generate_context_samples` nodes); with spread output lengths (`output_len_cv`)
  the contexts reach input_len + `decode_span`, as a length-biased running batch does; with attention DP
  over an MoE model every step lasts `dp_imbalance` times its balanced time (the ranks wait for the busiest);
  latency = TTFT + (output_len - 1) x TPOT;
  throughput = batch x output_len / latency (static batching, as a batch of requests).
- train: `scenario.batch` is the GLOBAL batch in sequences (all DP replicas together); each DP replica
  runs batch / dp sequences of `input_len` tokens per step, as ceil(local / microbatch) micro-batches
  (`memory.microbatching`). Forward graph (the busiest pipeline stage, over the whole local batch) x 3
  (forward + backward) or x 4 (full recompute); in-step collectives x 2 (x 3); optimizer step =
  `optimizer_step_bytes_per_param` x params per chip of memory traffic (/ dp under ZeRO >= 1: each rank
  updates its shard); the DP gradient collectives overlap the backward by `dp_overlap_fraction`; 1F1B
  pipeline bubble (m + (pp - 1) / vpp) / m over the whole step for m micro-batches (vpp = 1: 1F1B;
  vpp > 1: the interleaved schedule, `memory.pipeline_bubble`), after each micro-batch has paid
  `moe_train_layer_overhead_s` per MoE layer of the stage (host time of the dropless MoE path, fitted);
  MFU = 3 x forward FLOPs /
  (step x peak). ZeRO 0-2 keep the gradient all-reduce (ZeRO-1/2 run it as reduce-scatter + all-gather
  of the same volume, Rajbhandari et al. Sec. 7); ZeRO-3 replaces it by a reduce-scatter of the gradients
  plus all-gathers of the weights before forward and backward (and again for full recompute): 1.5x the
  DP volume (Sec. 7.2.2), overlapped like the gradient all-reduce (FSDP prefetches the next layer).
- video: one pass over the graph (text encoder, steps x DiT, VAE); seconds per video = latency /
  videos per replica.
"""

from __future__ import annotations

import numpy as np

from cosim.engines import analytical as A
from cosim.engines.eager import eager_extra_s, prompt_step_fraction, ranks_coupled
from cosim.engines.efficiency import EngineParams, load_engine_defaults
from cosim.engines.graph_padding import padded_rows
from cosim.engines.memory import footprint, microbatching, params_per_chip, pipeline_bubble
from cosim.graph.moe import moe_layer_count
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
    # the chips' mean FLOPs (work_share), as the energy counters
    res["flops"] = np.full(len(hw), float(np.sum(table.flops * table.repeat * table.work_share
                                                 * (table.kind != A.KIND_COMM))) * fwd_mult)
    return res


def weight_footprint_bytes(workload, scenario: Scenario, fp=None) -> float:
    """Weight bytes that pass through one chip per step (the kernels' on-chip residency test): the
    footprint's weights in inference; in training every weight of the stage, sharded by ZeRO-3 or not."""
    if scenario.phase == "train":
        return params_per_chip(workload, scenario) * float(
            load_engine_defaults()["training_state_bytes_per_param"][scenario.optimizer]["weights"])
    return (fp if fp is not None else footprint(workload, scenario)).weights


def zero3_table(table, scenario: Scenario, gathers: float):
    """ZeRO-3 / FSDP: the OPTIMIZER-stage gradient all-reduce becomes a reduce-scatter of the same bytes
    plus `gathers` all-gathers of the weights (each chip contributes its 1/dp shard); tables without
    ZeRO-3 or DP come back unchanged."""
    from cosim.graph.build import GRADIENT_MIN_BYTES, dtypes
    from cosim.graph.optable import CommKind, OpTable, Stage
    from cosim.graph.rows import comm

    par = scenario.parallelism
    if par.zero < 3 or par.dp <= 1:
        return table
    sel = ((table.kind == A.KIND_COMM) & (table.stage == A.STAGE_OPTIMIZER)
           & (table.comm_kind == int(CommKind.ALL_REDUCE)))
    if not np.any(sel):
        return table
    dt = dtypes(scenario)
    rows = []
    for grad_bytes, group in zip(table.comm_bytes[sel], table.comm_group[sel], strict=True):
        weight_bytes = float(grad_bytes) * dt.w / max(GRADIENT_MIN_BYTES, dt.w)
        rows.append(comm("zero3_grad_reduce_scatter", Stage.OPTIMIZER, dt, CommKind.REDUCE_SCATTER,
                         float(grad_bytes), int(group)))
        rows.append(comm("zero3_weight_all_gather", Stage.OPTIMIZER, dt, CommKind.ALL_GATHER,
                         weight_bytes / int(group), int(group), repeat=gathers))
    return OpTable.concat([table.select(~sel), OpTable.from_rows(rows)])


def gauss_legendre_contexts(input_len: int, output_len: int, nodes: int,
                            period: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Contexts and weights (summing to 1) averaging a function over [input_len, input_len + output_len - 1].

    `period` > 0: the function restarts every `period` tokens (chunked attention reads only the current chunk,
    a sawtooth in the context), so the interval is split at its multiples and each piece integrated apart."""
    lo, hi = float(input_len), float(input_len + output_len - 1)
    if hi <= lo:
        return np.array([lo]), np.array([1.0])
    x, w = np.polynomial.legendre.leggauss(nodes)
    cuts = [lo] + ([float(c) for c in range((int(lo) // period + 1) * period, int(hi) + 1, period)]
                   if period > 0 else []) + [hi]
    ctxs, wts = [], []
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        if b > a:  # a piece's nodes inside it, weighted by its share of the interval
            ctxs.append(0.5 * (b - a) * x + 0.5 * (b + a))
            wts.append(w / 2.0 * (b - a) / (hi - lo))
    return np.concatenate(ctxs), np.concatenate(wts)


def chunk_period(workload) -> int:
    """The chunk length of a model whose windowed layers attend within chunks (0 otherwise)."""
    att = getattr(workload, "attention", None)
    if att is None or att.window_kind != "chunked" or not att.sliding_window_layers:
        return 0
    return int(att.sliding_window)


def pipeline_micro_batch(scenario: Scenario) -> Scenario:
    """The scenario of one pipeline micro-batch: the running batch split over `pp` micro-batches (rounded
    up to whole sequences per data-parallel rank); the scenario itself when pp = 1."""
    par = scenario.parallelism
    if par.pp <= 1:
        return scenario
    per_rank = -(-scenario.batch // par.dp)
    return scenario.model_copy(update={"batch": -(-per_rank // par.pp) * par.dp})


_COUNTERS = ("step_time_s", "compute_s", "memory_s", "network_s", "overhead_s", "bytes_main_memory",
             "bytes_onchip", "comm_bytes_scale_up", "comm_bytes_scale_out", "flops")


def pipeline_host_s(params: EngineParams, scenario: Scenario) -> float:
    """Host seconds per iteration a pipelined replica waits for (`pipeline_host_per_sequence_s` x the running
    sequences of one attention-DP rank, whose executor on every stage handles them all); 0 when pp = 1."""
    if scenario.parallelism.pp <= 1 or params.pipeline_host_per_sequence_s <= 0.0:
        return 0.0
    return params.pipeline_host_per_sequence_s * scenario.batch / scenario.parallelism.dp


def _with_pipeline_host(counters: dict[str, np.ndarray], params: EngineParams,
                        scenario: Scenario) -> dict[str, np.ndarray]:
    """One iteration's counters with the pipeline's host wait (`pipeline_host_s`) in its step and overhead."""
    wait = pipeline_host_s(params, scenario)
    if wait <= 0.0:
        return counters
    counters = dict(counters)
    counters["step_time_s"] = counters["step_time_s"] + wait
    counters["overhead_s"] = counters["overhead_s"] + wait
    return counters


def _interleaved(stage_step: dict[str, np.ndarray], pp: int) -> dict[str, np.ndarray]:
    """One iteration of a micro-batched pipeline from one micro-batch's stage step: every stage runs `pp`
    micro-batch steps, so time and per-chip counters scale by pp (identity when pp = 1)."""
    if pp <= 1:
        return stage_step
    out = dict(stage_step)
    for k in _COUNTERS:
        if k in out:
            out[k] = stage_step[k] * pp
    return out


def _peak(hw, scenario: Scenario) -> np.ndarray:
    return hw.peak_flops_per_s[:, PRECISIONS.index(scenario.compute_precision)]


def _finish(hw, scenario: Scenario, parts: dict[str, np.ndarray], *, latency, step_time, flops, hbm,
            tokens_per_step, throughput, ttft=None, tpot=None, spv=None, mfu_flops=None,
            busy_sequence: float = 0.0) -> dict[str, np.ndarray]:
    """Per-point result columns. `busy_sequence`: the seconds of `step_time` a serving stack's unpriced GPU work
    per running sequence takes (EngineParams.per_sequence_busy_s), which the energy model charges as busy."""
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
        "busy_sequence_s": np.full(n, float(busy_sequence)),
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
    foot, wfoot = fp.total, weight_footprint_bytes(workload, scenario, fp)
    phase = scenario.phase
    keep = tables if tables is not None else {}

    def run(key, table, **kw):
        keep[key] = table
        return kernel_run(hw, table, step_params, foot=foot, wfoot=wfoot, override=override, **kw)

    # decode steps run one pipeline micro-batch per stage step (the whole batch when pp = 1)
    micro = pipeline_micro_batch(scenario)
    # serving engines pay host work per running sequence per iteration (prefill and decode steps)
    # (and, on a stack with one, GPU work per running sequence the op graph does not price: `busy_step`)
    step_params = params
    busy_step = 0.0
    per_seq = params.per_sequence_overhead_s + params.per_sequence_busy_s
    if phase in ("prefill", "decode", "generate") and per_seq > 0:
        seqs = (scenario.batch if phase == "prefill" else micro.batch) / scenario.parallelism.dp
        step_params = params.with_overrides(step_overhead_s=params.step_overhead_s + per_seq * seqs)
        busy_step = params.per_sequence_busy_s * seqs

    def pad_graphs(counters, share):
        """Add to one step's counters the per-token work of the dummy rows a `share` of its kind of step
        replays in a padded CUDA graph (cosim.engines.graph_padding); dummies are not model FLOPs."""
        dummies = padded_rows(micro)
        if dummies > 0 and share > 0.0:
            def per_token(s):  # dummy rows cost every op but attention (one cached token each)
                table = build.decode_graph(workload, s, scenario.input_len)
                return kernel_run(hw, table.select(table.kind != A.KIND_ATTN), step_params, foot=foot,
                                  wfoot=wfoot, override=override)

            hi = per_token(micro.model_copy(update={"batch": micro.batch + dummies * micro.parallelism.dp}))
            lo = per_token(micro)
            for k in _COUNTERS:
                if k != "flops":
                    counters[k] = counters[k] + share * np.maximum(0.0, hi[k] - lo[k])
        return counters

    if phase in ("prefill", "decode"):
        if phase == "prefill":
            r = run("prefill", build.prefill_graph(workload, scenario))
            tokens = scenario.batch * scenario.input_len
        else:
            r = _interleaved(pad_graphs(run("decode", build.decode_graph(workload, micro, scenario.input_len)), 1.0), pp)
            r = _with_pipeline_host(r, params, scenario)
            tokens = scenario.batch * scenario.tokens_per_sequence_step  # accepted tokens when speculative
        lat = pp * r["step_time_s"] if phase == "prefill" else r["step_time_s"]
        return _finish(hw, scenario, r, latency=lat, step_time=r["step_time_s"], flops=r["flops"],
                       busy_sequence=busy_step * (1 if phase == "prefill" else pp),
                       hbm=r["bytes_main_memory"], tokens_per_step=tokens,
                       throughput=tokens * replicas / lat, ttft=lat if phase == "prefill" else None,
                       tpot=lat / scenario.tokens_per_sequence_step if phase == "decode" else None)

    if phase == "generate":
        pre = run("prefill", build.prefill_graph(workload, scenario))
        ttft = pp * pre["step_time_s"]
        nodes = int(load_engine_defaults()["generate_context_samples"]["value"])
        ctxs, wts = gauss_legendre_contexts(scenario.input_len, scenario.decode_span, nodes,
                                            period=chunk_period(workload))
        # a speculative step emits accepted_tokens_per_step tokens per sequence (1 otherwise)
        per_step = scenario.tokens_per_sequence_step
        steps = (scenario.output_len - 1) / per_step
        agg = {k: np.zeros(len(hw)) for k in _COUNTERS}
        feas = pre["feasible"].copy()
        reason = pre["reason"].copy()
        chunked = scenario.chunked_prefill
        if chunked:  # every step decodes and carries prompt chunks: a request's steps, no separate prefill
            steps = scenario.steps_per_request
        if steps > 0:
            step_graph = build.mixed_step_graph if chunked else build.decode_graph
            for c, wt in zip(ctxs, wts, strict=True):
                table = step_graph(workload, micro, int(round(c)))
                d = run(f"{'step' if chunked else 'decode'}@{int(round(c))}", table)
                for k in agg:
                    agg[k] += wt * d[k]
                feas = np.minimum(feas, d["feasible"])
                reason = np.maximum(reason, d["reason"])
        if steps > 0:  # steps without a prompt (all of them unless prompts ride along) replay padded graphs
            pad_graphs(agg, 1.0 - prompt_step_fraction(workload, micro) if chunked else 1.0)
        agg = _with_pipeline_host(_interleaved(agg, pp), params, scenario)
        if chunked and steps > 0:  # prompt steps launched op by op wait for the host (cosim.engines.eager)
            extra = eager_extra_s(workload, scenario, agg["step_time_s"])
            agg["step_time_s"] = agg["step_time_s"] + extra
            agg["overhead_s"] = agg["overhead_s"] + extra
        if steps > 0 and scenario.dp_imbalance > 1.0 and ranks_coupled(workload, scenario):
            wait = (scenario.dp_imbalance - 1.0) * agg["step_time_s"]  # the ranks wait for the busiest one
            agg["step_time_s"] = agg["step_time_s"] + wait
            agg["overhead_s"] = agg["overhead_s"] + wait
        tpot = agg["step_time_s"] / per_step
        if chunked:  # a request's prompt rides on the step it arrives in; it then decodes output_len - 1 more
            ttft = agg["step_time_s"]
            lat = steps * agg["step_time_s"]
            parts = {k: steps * agg[k] for k in agg}
        else:
            lat = ttft + steps * agg["step_time_s"]
            parts = {k: pre[k] + steps * agg[k] for k in agg}
        parts["feasible"], parts["reason"] = feas, reason
        out_tokens = scenario.batch * scenario.output_len
        busy = (0.0 if chunked else pre["step_time_s"]) + steps * agg["step_time_s"]
        busy_sequence = busy_step * ((0.0 if chunked else 1.0) + (steps * pp if steps > 0 else 0.0))
        return _finish(hw, scenario, parts, latency=lat, step_time=busy, flops=parts["flops"],
                       busy_sequence=busy_sequence,
                       hbm=parts["bytes_main_memory"], tokens_per_step=out_tokens,
                       throughput=out_tokens * replicas / lat, ttft=ttft,
                       tpot=tpot if steps > 0 else None)

    if phase == "train":
        d = load_engine_defaults()
        forward_passes = 2 if scenario.recompute == "full" else 1
        fwd_mult = forward_passes + 2.0
        comm_mult = forward_passes + 1.0  # collectives of each forward pass and of the backward
        shards = scenario.parallelism.dp if scenario.parallelism.zero >= 1 else 1
        extra = params_per_chip(workload, scenario) * float(
            d["optimizer_step_bytes_per_param"][scenario.optimizer]["value"]) / shards
        from cosim.graph.training import training_table

        forward = build.train_graph(workload, scenario)
        # model FLOPs: the forward's x 3 (the attention backward's recompute and FP8 casts are not model work)
        model_flops = 3.0 * forward.total("flops")
        table = zero3_table(training_table(forward, forward_passes), scenario, gathers=comm_mult)
        r = run("train", table, fwd_mult=fwd_mult, comm_mult=comm_mult, extra=extra)
        _, _, n_micro = microbatching(scenario)
        # each MoE layer of the stage costs every micro-batch a fixed time beyond its GPU work (host syncs and
        # eager launches of the dropless MoE path), which the pipeline's bubble stretches like the rest
        host = params.moe_train_layer_overhead_s * n_micro * moe_layer_count(forward)
        if host > 0.0:
            r = {**r, "step_time_s": r["step_time_s"] + host, "overhead_s": r["overhead_s"] + host}
        step = r["step_time_s"] * pipeline_bubble(pp, scenario.parallelism.vpp, n_micro)
        tokens = scenario.batch * scenario.input_len
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
