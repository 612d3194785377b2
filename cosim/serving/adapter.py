"""From specs to the simulator's inputs: a step-time table and the KV capacity of one replica.

The step-time table comes from the analytical engine (`cosim.engines.vectorized.evaluate_points`,
the same path `cosim estimate` uses) sampled at a few dozen (batch, context) points:

* linear(N)            = decode iteration of N sequences at context 1 (attention ~ 0),
* decode_attention(K)  = decode of one sequence at context K minus the same at context 1 (decode attention
  is memory bound, so K cached tokens cost about the same however they are split among sequences),
* prefill_attention(P) = prefill of one t-token prompt minus linear(t), at P = t (t + 1) / 2 pairs.
`anchors` (e.g. the fixed prompt length of a run) are added to the grids, so a lone request's TTFT is
the engine's prefill latency exactly and its TPOT the engine's decode latency up to interpolation.

The engine's latency (pipeline stages in turn) is used, so a replica's iteration is one pass
through all its stages. When the engine (or its op-graph builder) is not importable, a first-order
roofline from the spec's own figures is used instead and the result says so (`step_model`); that
fallback has no efficiency derates, so it is an upper bound on speed.

KV capacity per replica = (device memory x (1 - reserve) - weights - activation workspace) per chip
/ KV bytes per token per chip, times nothing else: every chip of a replica holds its shard of every
token, so the per-chip figure is the replica's token capacity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cosim.serving.steptime import StepTimeTable, causal_pairs, geometric_grid
from cosim.specs.hardware import stored_bytes_per_element

B_REF = 1  # decode batch used to measure attention time against total cached tokens


@dataclass(frozen=True)
class ReplicaModel:
    """What the simulator needs about one replica of the mapping."""

    table: StepTimeTable
    kv_capacity_tokens: int
    kv_bytes_per_token: float  # whole replica (all chips), for swap and disaggregated transfer
    chips: int
    step_model: str
    feasible: bool = True
    reason: str | None = None


def _bytes(precision: str) -> float:
    from cosim.specs.hardware import BYTES_PER_ELEMENT

    return BYTES_PER_ELEMENT[precision]


def kv_capacity(hw, workload, scenario, max_batched_tokens: int, memory_utilization: float,
                state_sequences: int = 0) -> tuple[int, float, str | None]:
    """(tokens of KV per replica, KV bytes per token per chip, reason when the weights do not fit). A hybrid
    model's Mamba-2 states are held for `state_sequences` running sequences first (a fixed size per sequence,
    which the engines allocate per request slot; cosim.engines.memory.ssm_state_bytes_per_chip)."""
    from cosim.engines.memory import (
        footprint,
        inference_weight_bytes,
        kv_bytes_per_chip,
        ssm_state_bytes_per_chip,
    )

    sc = scenario.model_copy(update={"phase": "decode", "batch": scenario.parallelism.dp, "input_len": 1})
    per_token = kv_bytes_per_chip(workload, sc, scenario.parallelism.dp, 1.0)
    weights = inference_weight_bytes(workload, scenario)
    pre = scenario.model_copy(update={"phase": "prefill", "batch": scenario.parallelism.dp,
                                      "input_len": int(max_batched_tokens)})
    act = footprint(workload, pre).activations
    capacity = hw.main_memory.capacity_bytes.value * memory_utilization
    free = capacity - weights - act
    if free <= 0 or per_token <= 0:
        return 0, per_token, (f"weights ({weights / 1e9:.1f} GB) and activations ({act / 1e9:.1f} GB) per chip "
                              f"exceed the usable {capacity / 1e9:.1f} GB")
    dp = scenario.parallelism.dp
    states = ssm_state_bytes_per_chip(workload, sc, state_sequences * dp) if state_sequences > 0 else 0.0
    if states >= free:
        return 0, per_token, (f"the Mamba-2 states of {state_sequences} sequences ({states / 1e9:.1f} GB per chip) "
                              f"exceed the {free / 1e9:.1f} GB left beside the weights and activations; "
                              "lower --max-seqs")
    return int((free - states) // per_token), per_token, None


_LATENCY_CACHE: dict[tuple, tuple[float, bool]] = {}


def _engine_latency(hw_arrays, workload, scenario, phase: str, batch: int, context: int,
                    hardware=None, params=None) -> tuple[float, bool]:
    """Engine latency of one step (memoised per hardware, workload, mapping, engine parameters and point:
    specs and parameters are frozen; `params` None means the calibrated default of `hardware`)."""
    from cosim.engines.vectorized import evaluate_points

    sc = scenario.model_copy(update={"phase": phase, "batch": int(batch), "input_len": int(context),
                                     "output_len": 1})
    key = (id(hw_arrays), workload.name, sc.model_dump_json(), None if params is None else id(params))
    if key not in _LATENCY_CACHE:
        out = evaluate_points(hw_arrays, workload, sc, hardware=hardware, params=params)
        if len(_LATENCY_CACHE) > 100_000:
            _LATENCY_CACHE.clear()
            _PARAMS_ALIVE.clear()
        if params is not None:
            _PARAMS_ALIVE[id(params)] = params  # an id in a key must not be reused while the key lives
        _LATENCY_CACHE[key] = (float(out["latency_s"][0]), bool(out["feasible"][0]))
    return _LATENCY_CACHE[key]


_PARAMS_ALIVE: dict[int, object] = {}
_SPLIT_CACHE: dict[int, tuple[object, float, object]] = {}


def _per_sequence_split(hw, params):
    """(seconds per running sequence per step, the parameters without them) of `params` (None: `hw`'s
    calibrated default); memoised per parameter object so the latency cache keeps hitting."""
    from cosim.engines.efficiency import params_for

    base = params if params is not None else params_for(hw)
    hit = _SPLIT_CACHE.get(id(base))
    if hit is None or hit[0] is not base:
        if len(_SPLIT_CACHE) > 1000:
            _SPLIT_CACHE.clear()
        per_seq = float(base.per_sequence_overhead_s + base.per_sequence_busy_s)
        stripped = base.with_overrides(per_sequence_overhead_s=0.0, per_sequence_busy_s=0.0) if per_seq else base
        hit = _SPLIT_CACHE[id(base)] = (base, per_seq, stripped)
    return hit[1], hit[2]
_HWA_CACHE: dict[str, object] = {}


def _hw_arrays(hw):
    from cosim.engines.hwarrays import HardwareArrays

    key = hw.model_dump_json()
    if key not in _HWA_CACHE:
        _HWA_CACHE[key] = HardwareArrays.from_hardware(hw)
    return _HWA_CACHE[key]


def _with(grid: np.ndarray, anchors) -> np.ndarray:
    extra = [float(a) for a in anchors if a > 0]
    return np.unique(np.concatenate((grid, extra))) if extra else grid


def kv_window(workload) -> tuple[float, float]:
    """(window in tokens, share of the attention layers that read through it) of a sliding-window model;
    (0, 0) when every attention layer reads the whole context, and for chunked layers (Llama 4), whose cache
    keeps every token: the simulator then prices their reads as full attention (an upper bound past the first
    chunk)."""
    att = getattr(workload, "attention", None)
    if att is None or not att.sliding_window or not att.sliding_window_layers or att.window_kind == "chunked":
        return 0.0, 0.0
    return float(att.sliding_window), att.sliding_window_layers / workload.attention_layers


def _decode_attention_s(hwa, workload, scenario, dp: int, tokens: float, window: float, hw, params) -> float:
    """Decode-attention seconds of a step whose sequences read `tokens` cached tokens in total (counted as
    full-attention layers' tokens): B_REF sequences at that context, or, beyond a sliding window, as many
    sequences at a context within it as carry the tokens, so no sequence's windowed layers stop reading."""
    batch, context = B_REF, tokens
    if window and tokens > window:
        batch = int(np.ceil(tokens / window))
        context = tokens / batch
    full = _engine_latency(hwa, workload, scenario, "decode", batch * dp, int(round(context)), hw, params)[0]
    base = _engine_latency(hwa, workload, scenario, "decode", batch * dp, 1, hw, params)[0]
    return full - base


def engine_table(hw, workload, scenario, max_tokens: int, max_context: int, anchors=(),
                 points_per_decade: int = 8, params=None) -> StepTimeTable:
    """Sample the analytical engine into the simulator's three tables (raises ImportError if absent).

    `max_context` bounds the total cached tokens one decode iteration reads (max seqs x context).
    """
    hwa = _hw_arrays(hw)
    dp = scenario.parallelism.dp
    # the per-sequence host and unpriced GPU time is paid per running sequence (StepTimeTable.per_sequence_s),
    # so the tables are sampled without it: in `linear` it would be charged per prompt token too
    per_seq_s, params = _per_sequence_split(hw, params)
    tok = _with(geometric_grid(max_tokens, points_per_decade, include_zero=False), anchors)
    lin = np.array([_engine_latency(hwa, workload, scenario, "decode", int(n) * dp, 1, hw, params)[0]
                    for n in tok])
    ctx = geometric_grid(max_context, points_per_decade, include_zero=False)
    window, share = kv_window(workload)
    dec = np.array([_decode_attention_s(hwa, workload, scenario, dp, float(c), window, hw, params) for c in ctx])
    kv_grid = np.concatenate(([0.0], B_REF * ctx))
    dec = np.concatenate(([0.0], np.maximum(dec, 0.0)))
    plen = _with(geometric_grid(max(max_tokens, 2), points_per_decade, include_zero=False), anchors)
    pre = np.array([_engine_latency(hwa, workload, scenario, "prefill", dp, int(t), hw, params)[0]
                    for t in plen])
    lin_at = np.interp(plen, tok, lin)
    pairs = np.concatenate(([0.0], causal_pairs(plen, 0).astype(np.float64)))
    pre_attn = np.concatenate(([0.0], pre - lin_at))
    pairs, idx = np.unique(pairs, return_index=True)
    kv_grid, kidx = np.unique(kv_grid, return_index=True)
    from cosim.engines.eager import eager_host_s

    floor = eager_host_s(workload, scenario) if scenario.eager_prompt_steps else 0.0
    return StepTimeTable(tok, lin, kv_grid, dec[kidx], pairs, pre_attn[idx], source="analytical-engine",
                         prompt_step_floor_s=floor, per_sequence_s=per_seq_s, kv_window_tokens=window,
                         kv_window_share=share,
                         graph_batch_sizes=tuple(float(s) for s in sorted(set(scenario.cuda_graph_batch_sizes or ()))))


def roofline_table(hw, workload, scenario, max_tokens: int, max_context: int) -> StepTimeTable:
    """A first-order roofline from the spec's figures (no derates): the fallback when the engine is absent."""
    from cosim.workloads.params import kv_cache_bytes_per_token, params_active, params_total

    p = scenario.parallelism
    chips = p.tp * p.pp
    peak = hw.peak_flops(scenario.compute_precision) or hw.peak_flops("bf16") or hw.peak_flops("fp16")
    bw = hw.main_memory.bandwidth_bytes_per_s.value
    wbytes = stored_bytes_per_element(scenario.weight_precision, scenario.fp4_format)
    total = params_total(workload)
    active = params_active(workload) - workload.vocab_size * workload.hidden_size  # the lookup is not a GEMM
    link = hw.interconnect.scale_up
    link_bw = link.bandwidth_bytes_per_s.value if link else 0.0
    link_lat = link.latency_s.value if link and link.latency_s else 0.0
    act_bytes = _bytes(scenario.activation_precision)
    kv_tok = kv_cache_bytes_per_token(workload, _bytes(scenario.kv_precision))
    att = workload.attention
    qk_dim = att.num_heads * att.head_dim
    # attention FLOPs per causal pair: QK^T and PV, 2 FLOPs per multiply-add each, all layers
    flops_per_pair = 4.0 * qk_dim * workload.attention_layers

    tok = geometric_grid(max_tokens, 8, include_zero=False)
    weight_read = np.minimum(total, active * tok) * wbytes
    lin = np.maximum(2.0 * active * tok / (chips * peak), weight_read / (chips * bw)) / 1.0
    if p.tp > 1 and link_bw > 0:
        ar_bytes = tok * workload.hidden_size * act_bytes
        lin += 2 * workload.num_layers * (link_lat + 2.0 * (p.tp - 1) / p.tp * ar_bytes / link_bw)
    kv = geometric_grid(B_REF * max_context, 8)
    dec = kv * kv_tok / (p.tp * bw)
    pairs = geometric_grid(float(causal_pairs(max_tokens, max_context)), 8)
    pre = pairs * flops_per_pair / (p.tp * peak)
    window, share = kv_window(workload)
    return StepTimeTable(tok, lin, kv, dec, pairs, pre, source="roofline-fallback", kv_window_tokens=window,
                         kv_window_share=share)


def replica_model(hw, workload, scenario, *, max_batched_tokens: int, max_context: int,
                  memory_utilization: float, use_engine: bool = True, anchors=(),
                  params=None, max_seqs: int = 0) -> ReplicaModel:
    """The step-time table and KV capacity of one replica of `scenario.parallelism` (dp = 1 per replica);
    `max_seqs` running sequences' Mamba-2 states (hybrid models) are set aside before the KV cache."""
    p = scenario.parallelism
    chips = p.tp * p.pp * p.sp
    cap, per_token_chip, reason = kv_capacity(hw, workload, scenario, max_batched_tokens, memory_utilization,
                                              state_sequences=max_seqs)
    kv_replica = per_token_chip * chips
    table = None
    source = "roofline-fallback"
    if use_engine:
        try:
            table = engine_table(hw, workload, scenario, max(max_batched_tokens, 2), max(max_context, 2),
                                 anchors=anchors, params=params)
            source = "analytical-engine"
        except (ImportError, AttributeError):
            table = None
    if table is None:
        table = roofline_table(hw, workload, scenario, max(max_batched_tokens, 2), max(max_context, 2))
    return ReplicaModel(table, cap, kv_replica, chips, source, feasible=reason is None, reason=reason)
