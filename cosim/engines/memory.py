"""Memory per chip (weights, KV cache, activations, optimizer state) in closed form, and `--batch max`.

Everything is per chip of one model replica, in bytes:
- weights: the workload's parameters split by the mapping (non-expert weights over TP x PP; routed
  experts over EP x expert-TP x PP, see `cosim.graph.sharding`), at the weight precision.
- training state: `training_state_bytes_per_param` (ZeRO Sec. 3.1/5.1, mixed-precision Adam: 2 B weights,
  2 B gradients, 12 B optimizer states per parameter), partitioned over the DP degree by the ZeRO stage
  (`parallelism.zero`): 1 shards the optimizer states, 2 also the gradients, 3 (FSDP) also the weights.
  Under ZeRO-3 the chip also holds `zero3_unsharded_layers` layers of full (TP/PP-sharded) parameters:
  the layer computing, the prefetched one and one layer of unsharded gradients (PyTorch FSDP). The
  footprint reports weights (+ the ZeRO-3 gather buffer) under `weights`, gradients and optimizer states
  under `optimizer`. All of a chip's parameters share one DP degree (experts included: a simplification).
- KV cache: cached elements per token (`cosim.workloads.params`) x tokens held x KV bytes, with KV heads
  split over TP (replicated when fewer than TP; MLA's latent is replicated), layers over PP, the
  context over SP in decode, and sliding-window layers holding at most `window` tokens.
- activations, inference: the largest transient working set of one layer, tokens in flight x
  (4 hidden + 3 MLP width / TP) x activation bytes, plus fp32 logits of one token per sequence —
  an estimate (FlashAttention never materialises the score matrix).
- activations, training: Korthikanti et al. (MLSys 2023) Table 2 per layer and micro-batch of b
  sequences: s b h (34 + 5 a s / h) / t bytes without recompute, 34 s b h / t with selective recompute
  (sequence parallelism on), 2 s b h with full recompute (plus one layer's selective working set while
  it is recomputed). Micro-batching (`microbatching`): with pp > 1 the first stage holds min(pp, m)
  micro-batches in flight under 1F1B (Sec. 4.2.3), pp + (pp - 1) / vpp under the interleaved schedule
  (`pipeline_in_flight`), with pp = 1 one micro-batch (gradient accumulation).
The runtime reserve (`memory_reserve_fraction`, vLLM's 0.9 utilisation default) is applied against
capacity by the kernel; `usable_bytes` applies it here for `--batch max`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cosim.graph.rows import STREAM_MIN_BYTES
from cosim.specs.hardware import BYTES_PER_ELEMENT, stored_bytes_per_element
from cosim.specs.scenario import Scenario
from cosim.specs.workload import DecoderLM, VideoDiT


@dataclass(frozen=True)
class Footprint:
    """Bytes per chip by class; `total` is what must fit."""

    weights: float
    kv_cache: float
    activations: float
    optimizer: float

    @property
    def total(self) -> float:
        return self.weights + self.kv_cache + self.activations + self.optimizer

    def as_dict(self) -> dict[str, float]:
        return {"weights": self.weights, "kv_cache": self.kv_cache, "activations": self.activations,
                "optimizer": self.optimizer, "total": self.total}


def _defaults() -> dict:
    from cosim.engines.efficiency import load_engine_defaults

    return load_engine_defaults()


def _mapping(workload, scenario):
    from cosim.graph.sharding import resolve

    return resolve(workload, scenario)


def expert_params(model: DecoderLM) -> float:
    """Routed-expert weights (all MoE layers); 0 for a dense model."""
    from cosim.workloads.params import mlp_params

    if model.moe is None:
        return 0.0
    n_moe = model.moe_layers
    return float(n_moe * model.moe.num_experts * mlp_params(model.hidden_size, model.mlp,
                                                            model.moe.expert_intermediate_size))


def params_per_chip(workload: DecoderLM | VideoDiT, scenario: Scenario) -> float:
    """Parameters held by one chip under the scenario's mapping."""
    from cosim.workloads.params import params_total

    m = _mapping(workload, scenario)
    if isinstance(workload, VideoDiT):
        from cosim.workloads.video import text_encoder_params

        vae = workload.vae.decoder_params or 0.0
        return params_total(workload) / (m.tp * m.pp) + text_encoder_params(workload) + vae
    experts = expert_params(workload)
    rest = params_total(workload) - experts
    return rest / (m.tp * m.pp) + experts / (m.pp * m.ep * m.expert_tp)


def inference_weight_bytes(workload: DecoderLM | VideoDiT, scenario: Scenario) -> float:
    """Weight bytes one chip holds for inference: the routed experts at the weight precision, everything
    else at `scenario.dense_precision` when the checkpoint sets it apart (all of a dense model's weights)."""
    params = params_per_chip(workload, scenario)
    wbytes = stored_bytes_per_element(scenario.weight_precision, scenario.fp4_format)
    if isinstance(workload, VideoDiT):
        return params * wbytes
    vision = _vision_bytes(workload, scenario)
    if scenario.dense_precision is None:
        return params * wbytes + _vocab_widening_bytes(workload, scenario, wbytes) + vision
    dense = stored_bytes_per_element(scenario.dense_precision, scenario.fp4_format)
    widening = _vocab_widening_bytes(workload, scenario, dense) + vision
    if workload.moe is None:
        return params * dense + widening
    m = _mapping(workload, scenario)
    experts = expert_params(workload) / (m.pp * m.ep * m.expert_tp)
    return experts * wbytes + (params - experts) * dense + widening


def _vision_bytes(workload: DecoderLM, scenario: Scenario) -> float:
    """Bytes of a multimodal model's image encoder on one chip: loaded whether or not a prompt has images,
    split over the TP group (vLLM shards the vision tower's linear layers), at BF16 as the vocabulary tables of
    a quantised checkpoint (cosim.graph.vision). Counted on every chip: the first pipeline stage holds it, and
    the footprint is the fullest chip's."""
    from cosim.graph.rows import VOCAB_TABLE_PRECISION
    from cosim.workloads.params import vision_params

    if workload.vision is None:
        return 0.0
    wide = max(BYTES_PER_ELEMENT[VOCAB_TABLE_PRECISION], BYTES_PER_ELEMENT[scenario.weight_precision])
    return vision_params(workload) * wide / _mapping(workload, scenario).tp


def _vocab_widening_bytes(workload: DecoderLM, scenario: Scenario, dense_bytes: float) -> float:
    """Bytes one chip holds beyond `dense_bytes` per parameter for the vocabulary tables (the embedding and an
    untied LM head), which a quantised checkpoint keeps at BF16 (cosim.graph.rows.VOCAB_TABLE_PRECISION); 0
    when the rest is 16-bit or wider. Spread over the chips like the other non-expert weights."""
    from cosim.graph.rows import VOCAB_TABLE_PRECISION

    extra = BYTES_PER_ELEMENT[VOCAB_TABLE_PRECISION] - dense_bytes
    if extra <= 0:
        return 0.0
    m = _mapping(workload, scenario)
    tables = 1 if workload.tie_word_embeddings else 2
    return extra * tables * workload.vocab_size * workload.hidden_size / (m.tp * m.pp)


def kv_bytes_per_chip(model: DecoderLM, scenario: Scenario, batch: int, context: float) -> float:
    """KV-cache bytes one chip holds for `batch` sequences (global, split over DP) of `context` tokens."""
    from cosim.workloads.params import kv_cache_elements_per_token

    m = _mapping(model, scenario)
    att = model.attention
    layers = model.attention_layers
    per_layer = kv_cache_elements_per_token(model) / layers
    if att.kind != "mla":
        per_layer *= max(1, att.num_kv_heads // m.tp) / att.num_kv_heads
    windowed = att.sliding_window_layers if att.window_kind == "sliding" else 0  # chunked layers keep every token
    tokens_full = context
    tokens_win = min(context, att.sliding_window) if windowed else 0.0
    elems = per_layer * ((layers - windowed) * tokens_full + windowed * tokens_win) / m.pp
    seqs = batch / m.dp
    if scenario.phase in ("decode", "generate"):
        elems /= m.sp
    return elems * seqs * BYTES_PER_ELEMENT[scenario.kv_precision]


def ssm_state_bytes_per_chip(model: DecoderLM, scenario: Scenario, batch: int) -> float:
    """Mamba-2 state cache one chip holds for `batch` sequences (global, split over DP): each sequence's SSM
    state (at `scenario.ssm_state_precision`, else the activation stream's) and conv window, for the chip's
    heads and its share of the layers; 0 for models without Mamba-2 layers."""
    n_mamba = model.block_counts().mamba
    if not n_mamba:
        return 0.0
    from cosim.graph.build import dtypes
    from cosim.graph.mamba import state_elements_per_sequence

    m = _mapping(model, scenario)
    dt = dtypes(scenario)
    state, conv = state_elements_per_sequence(model.mamba, m.tp)
    return n_mamba / m.pp * (state * dt.state + conv * dt.a) * batch / m.dp


def microbatching(scenario: Scenario) -> tuple[float, float, int]:
    """(sequences per DP replica, sequences per micro-batch, micro-batches per step) of a training step.

    `parallelism.microbatch` None keeps the classic defaults: one sequence per micro-batch with pp > 1
    (1F1B), the whole local batch at once with pp = 1. A micro-batch never exceeds the local batch; the
    last micro-batch may be partial (ceil).
    """
    par = scenario.parallelism
    local = max(1.0, scenario.batch / par.dp)
    default = 1.0 if par.pp > 1 else local
    mb = default if par.microbatch is None else float(min(par.microbatch, local))
    return local, mb, int(math.ceil(local / mb))


def pipeline_in_flight(pp: int, vpp: int, n_micro: int) -> float:
    """Micro-batches whose activations the first pipeline chip holds at once, in units of one micro-batch
    through all its layers: one without a pipeline; min(pp, m) under 1F1B (Narayanan et al., SC 2021,
    Sec. 2.2.1); interleaved, pp + (pp - 1) / vpp capped at m: its first chip warms up with 2 (pp - 1) +
    (vpp - 1) pp chunk passes before its first backward (Megatron-LM's interleaved schedule), each chunk
    1 / vpp of its layers."""
    if pp == 1:
        return 1.0
    if vpp == 1:
        return float(min(pp, n_micro))
    return float(min(pp + (pp - 1) / vpp, n_micro))


def pipeline_bubble(pp: int, vpp: int, n_micro: int) -> float:
    """Step time of a pipelined training step over the bubble-free time: (m + (pp - 1) / vpp) / m for m
    micro-batches (1F1B when vpp = 1; the interleaved schedule divides the bubble by vpp, Narayanan et al.,
    SC 2021, Sec. 2.2.2)."""
    if pp == 1:
        return 1.0
    return (n_micro + (pp - 1) / vpp) / n_micro


def training_state(workload: DecoderLM, scenario: Scenario) -> tuple[float, float]:
    """(weight bytes incl. the ZeRO-3 gather buffer, gradient + optimizer-state bytes) per chip."""
    d = _defaults()
    state = d["training_state_bytes_per_param"][scenario.optimizer]
    params = params_per_chip(workload, scenario)
    dp = scenario.parallelism.dp
    zero = scenario.parallelism.zero
    weights = float(state["weights"]) * params / (dp if zero >= 3 else 1)
    grads = float(state["gradients"]) * params / (dp if zero >= 2 else 1)
    opt = float(state["optimizer"]) * params / (dp if zero >= 1 else 1)
    if zero >= 3 and dp > 1:
        layers = workload.num_layers / scenario.parallelism.pp
        unsharded = float(d["zero3_unsharded_layers"]["value"])
        weights += unsharded * float(state["weights"]) * params / layers
    return weights, grads + opt


def footprint(workload: DecoderLM | VideoDiT, scenario: Scenario, batch: int | None = None) -> Footprint:
    """Per-chip memory of the scenario at `batch` (default: scenario.batch)."""
    b = scenario.batch if batch is None else batch
    m = _mapping(workload, scenario.model_copy(update={"batch": b}))
    wbytes = stored_bytes_per_element(scenario.weight_precision, scenario.fp4_format)
    abytes = max(BYTES_PER_ELEMENT[scenario.activation_precision], STREAM_MIN_BYTES)  # the BF16 stream
    params = params_per_chip(workload, scenario)
    d = _defaults()
    if isinstance(workload, VideoDiT):
        from cosim.workloads.video import dit_tokens

        dflt = workload.defaults
        tokens = dit_tokens(workload, scenario.frames or dflt.frames, scenario.height or dflt.height,
                            scenario.width or dflt.width)
        cfg = scenario.cfg if scenario.cfg is not None else dflt.cfg
        seqs = b * (2 if cfg and dflt.cfg_passes == "batched" else 1) / m.dp  # sequential passes hold one batch
        h = workload.dit.hidden_size
        act = math.ceil(tokens / m.sp) * seqs * (4 * h + 3 * workload.dit.mlp.intermediate_size / m.tp) * abytes
        return Footprint(params * wbytes, 0.0, act, 0.0)
    h = workload.hidden_size
    seqs = b / m.dp
    if scenario.phase == "train":
        sc = scenario.model_copy(update={"batch": b})
        coef = d["activation_bytes_per_token_layer"]
        s = math.ceil(scenario.input_len / m.sp)
        a = workload.attention.num_heads
        selective = coef["none_coefficient"] * h / m.tp
        if scenario.recompute == "full":
            per_tok = coef["full_recompute_coefficient"] * h
        elif scenario.recompute == "selective":
            per_tok = selective
        else:
            # fused (FlashAttention) attention keeps no s x s scores, only a log-sum-exp per head and query
            per_tok = (coef["none_coefficient"] * h + coef["flash_softmax_stat_bytes_per_head"] * a) / m.tp
        layers = workload.num_layers / m.pp
        _, micro, n_micro = microbatching(sc)
        in_flight = pipeline_in_flight(m.pp, scenario.parallelism.vpp, n_micro)
        act = per_tok * s * micro * layers * in_flight
        if scenario.recompute == "full":  # the layer being recomputed holds its full working set again
            act += selective * s * micro
        weights, state = training_state(workload, sc)
        return Footprint(weights, 0.0, act, state)
    width = workload.mlp.intermediate_size
    if workload.mamba is not None:  # in_proj's outputs (z, x, B, C, dt) outgrow the MLP's in Nemotron-H
        width = max(width, workload.mamba.in_proj_size)
    if workload.moe is not None:
        width = max(width, workload.moe.expert_intermediate_size * workload.moe.experts_per_token)
    if scenario.phase == "prefill":
        in_flight, context = seqs * math.ceil(scenario.input_len / m.sp), scenario.input_len
    elif scenario.phase == "decode":
        in_flight, context = seqs, scenario.input_len
    else:  # generate: prefill working set of one chunk (engines chunk prefills), KV for the whole sequence
        chunk = float(_defaults()["prefill_chunk_tokens"]["value"])
        in_flight = min(seqs * math.ceil(scenario.input_len / m.sp), max(chunk, math.ceil(scenario.input_len / m.sp)))
        context = scenario.input_len + scenario.output_len
    q = 1 + scenario.draft_tokens  # a speculative step verifies (and scores) drafts + 1 tokens per sequence
    act = q * (in_flight * (4 * h + 3 * width / m.tp) * abytes + seqs * workload.vocab_size / m.tp * 4.0)
    kv = kv_bytes_per_chip(workload, scenario, b, context) + ssm_state_bytes_per_chip(workload, scenario, b)
    weights = inference_weight_bytes(workload, scenario)
    if scenario.draft_tokens and workload.mtp_modules:  # the MTP module and its own KV cache are loaded too
        from cosim.workloads.params import mtp_params, params_total

        weights *= 1.0 + mtp_params(workload) / params_total(workload)
        kv *= 1.0 + workload.mtp_modules / workload.attention_layers
    return Footprint(weights, kv, act, 0.0)


def usable_bytes(capacity_bytes: float, reserve_fraction: float) -> float:
    return capacity_bytes * (1.0 - reserve_fraction)


def max_batch(workload: DecoderLM | VideoDiT, scenario: Scenario, capacity_bytes: float,
              reserve_fraction: float, limit: int = 1 << 20) -> int:
    """Largest global batch (a multiple of dp) whose footprint fits; 0 when not even dp sequences fit.

    The footprint is non-decreasing in the batch (affine, or piecewise affine once the prefill working
    set reaches a chunk), so a bisection over multiples of dp finds the largest batch that fits.
    """
    dp = scenario.parallelism.dp
    usable = usable_bytes(capacity_bytes, reserve_fraction)
    if footprint(workload, scenario, dp).total > usable:
        return 0
    # the footprint never falls as the batch grows: bisect on multiples of dp
    lo, hi = 1, max(1, limit // dp)
    if footprint(workload, scenario, hi * dp).total <= usable:
        return hi * dp
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if footprint(workload, scenario, mid * dp).total <= usable:
            lo = mid
        else:
            hi = mid
    return lo * dp
