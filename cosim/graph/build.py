"""Public graph builders: (workload, scenario) -> OpTable, per chip after sharding, per step.

- `prefill_graph`: one forward pass over `batch` prompts of `input_len` tokens (causal), LM head on
  the last position of each prompt (the first generated token).
- `decode_graph`: one decode step; each of `batch` sequences adds one token attending to `context`
  cached tokens plus itself. A speculative step (`scenario.draft_tokens` k) runs the model's MTP module k
  times (one drafted token per sequence each), then the main model over k + 1 tokens per sequence.
- `train_graph`: the forward pass over batch x input_len tokens (LM head on every position), plus the
  data-parallel gradient all-reduce as a COMM row in stage OPTIMIZER carrying the gradient bytes per
  chip (every weight resident on the chip, reduced in bf16, or in the weight precision when wider;
  comm_group = dp, so dp = 1 means no traffic). Backward, recompute and the optimizer step are the
  engine's multiples of these rows; no other backward op is emitted. An interleaved pipeline
  (`parallelism.vpp` > 1) adds `pp_send_chunks`: vpp - 1 more activation sends per chip.
- `video_graph`: text encoder (once, x2 batch under CFG), DiT (one row per op with repeat x steps),
  VAE decode (once).
- `build_graph`: dispatch on `scenario.phase`. `generate` returns the prefill table followed by ONE
  decode step at context = input_len + output_len // 2 (the mean context of the decode phase), with
  names prefixed `prefill/` and `decode/`; engines wanting the full decode loop call `decode_graph`.

Pipeline parallelism: every table describes the busiest stage (most FLOPs; the first on a tie), as
one chip of it sees a step. `pipeline_stages` returns every stage; their sums give the whole model.
"""

from __future__ import annotations

import numpy as np

from cosim.errors import CosimInputError
from cosim.graph.attention import Tokens
from cosim.graph.decoder import mtp_draft_rows, resident_weight_bytes, stage_rows
from cosim.graph.optable import CommKind, OpKind, OpTable, Stage
from cosim.graph.rows import STREAM_MIN_BYTES, Dtypes, comm
from cosim.graph.sharding import Mapping, ceil_div, resolve, stage_layer_ranges
from cosim.graph.video import video_stage_rows
from cosim.graph.vision import vision_rows
from cosim.specs.hardware import BYTES_PER_ELEMENT, stored_bytes_per_element
from cosim.specs.scenario import Scenario
from cosim.specs.workload import DecoderLM, VideoDiT

GRADIENT_MIN_BYTES = 2.0  # gradients are reduced in bf16 at least (fp32 when the weights are fp32)


def dtypes(scenario: Scenario) -> Dtypes:
    """Bytes per element of weights (with their block scales: 4.5 bits an NVFP4 weight), the activation stream (at
    least BF16) and KV cache, and the compute precision; `Dtypes.dispatch` is the width of MoE token dispatch (the
    GEMM input's, at least FP8: DeepEP dispatches FP8 and combines BF16)."""
    act = BYTES_PER_ELEMENT[scenario.activation_precision]
    weights = stored_bytes_per_element(scenario.weight_precision, scenario.fp4_format)
    dt = Dtypes(weights, max(act, STREAM_MIN_BYTES), BYTES_PER_ELEMENT[scenario.kv_precision],
                scenario.compute_precision, scenario.kv_precision, scenario.weight_precision,
                attention=scenario.attention_precision)
    dt.dispatch = min(max(act, 1.0), dt.a)
    if scenario.ssm_state_precision is not None:
        dt.state = BYTES_PER_ELEMENT[scenario.ssm_state_precision]
    if scenario.dense_precision is not None:
        dense = BYTES_PER_ELEMENT[scenario.dense_precision]
        dt.dense = Dtypes(stored_bytes_per_element(scenario.dense_precision, scenario.fp4_format),
                          max(dense, STREAM_MIN_BYTES), dt.kv, scenario.dense_precision, scenario.kv_precision,
                          attention=scenario.attention_precision)
        dt.dense.state = dt.state
    return dt


def _need_decoder(workload, phase: str) -> DecoderLM:
    if not isinstance(workload, DecoderLM):
        raise CosimInputError(f"phase '{phase}' needs a decoder LM; '{workload.name}' is a video model "
                              "(use --phase video)", field="phase")
    return workload


def _tokens(model: DecoderLM, scenario: Scenario, m: Mapping, phase: str, context: int = 0) -> Tokens:
    b = scenario.batch // m.dp
    if phase == "decode":
        if context < 0:
            raise CosimInputError(f"context must be >= 0, got {context}", field="context")
        q = 1 + scenario.draft_tokens  # a speculative step verifies the drafts beside the model's own token
        return Tokens("decode", b, 0, 0, context, b * q, q=q, kv_read_per_query_head=scenario.kv_read_per_query_head,
                      kv_read_per_query_head_layers=scenario.kv_read_per_query_head_layers)
    s_loc = ceil_div(scenario.input_len, m.sp)
    return Tokens(phase, b, scenario.input_len, s_loc, 0, b * s_loc)


def _decoder_stages(workload, scenario: Scenario, phase: str, context: int = 0) -> list[OpTable]:
    model = _need_decoder(workload, phase)
    m = resolve(model, scenario)
    dt = dtypes(scenario)
    tk = _tokens(model, scenario, m, phase, context)
    images = _images(model, scenario, phase) * tk.b
    stages = []
    drafts = _draft_passes(model, scenario, phase)
    for start, end in stage_layer_ranges(model.num_layers, m.pp):
        rows = stage_rows(model, dt, m, tk, start, end, scenario.routing_imbalance)
        if drafts and end == model.num_layers:  # the MTP module sits beside the output head
            draft_tk = (Tokens("decode", tk.b, 0, 0, context, tk.b, kv_read_per_query_head=tk.kv_read_per_query_head,
                               kv_read_per_query_head_layers=tk.kv_read_per_query_head_layers)
                        if phase == "decode" else tk)
            rows += mtp_draft_rows(model, dt, m, draft_tk, drafts, scenario.routing_imbalance)
        if images and start == 0:  # the image encoder feeds the first stage's embeddings
            rows = vision_rows(model.vision, model.hidden_size, dt, m.tp, images) + rows
        if phase == "train" and scenario.parallelism.vpp > 1:
            # interleaved 1F1B: a micro-batch leaves each chip once per chunk, the last chip's chunks
            # included (all but its final one go back to the first chip): vpp - 1 sends beyond the plain one
            stream = dt.outside_experts  # the activation stream, as the plain send (cosim.graph.decoder)
            rows.append(comm("pp_send_chunks", Stage.DECODER, stream, CommKind.P2P,
                             tk.tokens * model.hidden_size * stream.a, 2, repeat=scenario.parallelism.vpp - 1))
        if phase == "train":
            grad_bytes = max(GRADIENT_MIN_BYTES, dt.w) / dt.w * resident_weight_bytes(model, dt, m, start, end)
            rows.append(comm("dp_grad_allreduce", Stage.OPTIMIZER, dt, CommKind.ALL_REDUCE, grad_bytes, m.dp))
        stages.append(OpTable.from_rows(rows))
    return stages


def _draft_passes(model: DecoderLM, scenario: Scenario, phase: str) -> int:
    """Passes of the multi-token-prediction module in one pass of the model: `draft_tokens` in a speculative
    decode step, one over a prompt (the module fills its own cache from the prompt's hidden states and drafts
    the first tokens), none otherwise; an error for a model that ships no MTP module."""
    if not scenario.draft_tokens or phase not in ("decode", "prefill"):
        return 0
    if not model.mtp_modules:
        raise CosimInputError(f"'{model.name}' ships no multi-token-prediction module (workload `mtp_modules`); "
                              "draft_tokens needs one (DeepSeek-V3/R1)", field="draft_tokens")
    return scenario.draft_tokens if phase == "decode" else 1


def _images(model: DecoderLM, scenario: Scenario, phase: str) -> int:
    """Images per prompt whose encoder runs in this pass: the scenario's in a prefill, none in a decode step
    (the images were encoded when the prompt entered). Errors where the question cannot be answered."""
    from cosim.workloads.params import image_tokens

    n = scenario.images_per_request
    need = image_tokens(model, n)
    if not n:
        return 0
    if phase == "train":
        raise CosimInputError("images_per_request is modelled for inference only (prefill, decode, generate)",
                              field="images_per_request")
    if scenario.input_len < need:
        raise CosimInputError(f"input_len ({scenario.input_len}) must count the prompt's image tokens: "
                              f"{n} image(s) x {model.vision.tokens_per_image} = {need} with the text",
                              field="input_len")
    return n if phase == "prefill" else 0


def _busiest(stages: list[OpTable]) -> OpTable:
    flops = [t.total("flops") for t in stages]
    return stages[flops.index(max(flops))]


def prefill_graph(workload: DecoderLM, scenario: Scenario) -> OpTable:
    """One forward pass over `batch` prompts of `input_len` tokens; logits for the last position only."""
    return _busiest(_decoder_stages(workload, scenario, "prefill"))


def decode_graph(workload: DecoderLM, scenario: Scenario, context: int) -> OpTable:
    """One decode step: `batch` sequences, one new token each, attending to `context` cached tokens (+1)."""
    return _busiest(_decoder_stages(workload, scenario, "decode", context))


def expected_max_poisson(mean: float, n: int) -> float:
    """E[max of n independent Poisson(mean) counts] = sum over k >= 0 of 1 - P(X <= k)^n."""
    if n <= 1 or mean <= 0.0:
        return max(mean, 0.0)
    from scipy.stats import poisson

    ks = np.arange(0, int(mean + 12.0 * np.sqrt(mean) + 40.0))  # the tail beyond is below 1e-12 for n <= 10^4
    return float(np.sum(1.0 - poisson.cdf(ks, mean) ** n))


def critical_rank_prompt_share(workload, scenario: Scenario) -> float:
    """Prompts the busiest attention-DP rank carries in a step, over the mean per rank (1: no imbalance).

    With attention data parallelism the MoE layers synchronise the ranks every layer, so a step lasts as
    long as its busiest rank's attention and dense work (TensorRT-LLM's ADP-balance blog: the iteration is
    "dominated by the slowest rank"). When output lengths vary, the ranks' requests finish at unrelated
    steps and the prompts replacing them, `batch / steps_per_request` per step, land on the ranks independently:
    the busiest rank carries E[max of dp Poisson(prompts / dp)]. With fixed lengths the ranks' requests,
    started together, finish and are replaced in the same steps, and when the ranks wait for each other's
    prompts (`dp_prompt_balance`) they take them together: about the mean either way. Dense replicas never
    wait for each other."""
    dp = scenario.parallelism.dp
    if (dp <= 1 or getattr(workload, "moe", None) is None or scenario.dp_prompt_balance
            or scenario.output_len_cv <= 0.0):
        return 1.0
    mean = scenario.batch / scenario.steps_per_request / dp
    return expected_max_poisson(mean, dp) / mean if mean > 0 else 1.0


def _step_varying(table: OpTable, chunk: int, dp: int, prompt_len: int) -> OpTable:
    """`table` (a step over decode + `chunk` prompt tokens) with its dense GEMMs marked as averaging steps that
    carry whole prompts of `prompt_len` rows and steps that carry none (`m_prompt`, `m_prompt_step`), each
    padded to its own tile. A prompt lands whole on one attention-DP rank; the mean is per rank. Prompts are
    taken whole: an engine that chunks them to a token budget spreads one over more steps, and the scenario
    does not carry the budget."""
    if chunk <= 0:
        return table
    out = table.select(np.ones(len(table), dtype=bool))
    gemm = out.kind == OpKind.GEMM
    out.m_prompt = np.where(gemm, chunk / dp, out.m_prompt)
    out.m_prompt_step = np.where(gemm, float(prompt_len), out.m_prompt_step)
    return out


def _per_token_graph(workload: DecoderLM, scenario: Scenario, context: int, prompt_tokens: int) -> OpTable:
    """A decode table whose per-token rows (GEMMs, norms, collectives, MoE) see a step's decode tokens (one per
    sequence, or the drafts + 1 a speculative step verifies) and `prompt_tokens` prompt tokens as one batch."""
    rows = scenario.batch * (1 + scenario.draft_tokens) + prompt_tokens  # each row one token, no drafts of its own
    flat = {"batch": rows, "draft_tokens": 0, "accepted_tokens_per_step": None}
    return decode_graph(workload, scenario.model_copy(update=flat), context)


def mixed_step_graph(workload: DecoderLM, scenario: Scenario, context: int) -> OpTable:
    """One step of continuous batching with chunked prefill: `batch` sequences decode one token each (or verify
    their drafts, a speculative step) at `context` while `scenario.prompt_tokens_per_step` prompt tokens ride along.

    Every per-token op (GEMMs, norms, collectives, MoE dispatch) runs once over the merged tokens, so the
    weights are read once and the GEMMs see M = decode + prompt tokens; attention stays per request: the
    decode attention of the running sequences plus 1 / steps_per_request of the whole batch's prompt attention
    (the share of a prompt a step carries); logits only for the decoding sequences. Under attention data
    parallelism with MoE the table is the busiest rank's: its own tokens and prompt attention carry that
    rank's prompts (`critical_rank_prompt_share`), while the expert assignments, pooled over the ranks,
    follow the mean. The merged GEMMs' M is an average over steps that carry a prompt and steps that do not,
    so each kind pads to its own tile (`m_prompt`, `m_prompt_step`), not the mean.
    """
    dp = scenario.parallelism.dp  # each data-parallel rank carries its share of the chunk
    prompt_tokens = scenario.prompt_tokens_per_step
    share = critical_rank_prompt_share(workload, scenario)
    chunk = -(-int(round(prompt_tokens)) // dp) * dp
    merged = _step_varying(_per_token_graph(workload, scenario, context, chunk), chunk, dp, scenario.input_len)
    decode = decode_graph(workload, scenario, context)
    prompt = prefill_graph(workload, scenario)
    # per request: attention, the logits and a speculative step's draft passes (they run beside, not merged)
    per_request = ((decode.kind == OpKind.ATTENTION) | (decode.stage == Stage.LM_HEAD)
                   | (decode.stage == Stage.DRAFT))
    per_token = (merged.kind != OpKind.ATTENTION) & (merged.stage != Stage.LM_HEAD)
    # a prompt's attention, its images' encoder and the MTP module's pass over it run once per prompt: a step
    # carries its share
    per_prompt = ((prompt.kind == OpKind.ATTENTION) | (prompt.stage == Stage.VISION_ENCODER)
                  | (prompt.stage == Stage.DRAFT))
    prompt_attention = prompt.select(per_prompt).with_repeat(share / scenario.steps_per_request)
    if share == 1.0:
        return OpTable.concat([merged.select(per_token), decode.select(per_request), prompt_attention])
    from cosim.graph.moe import expert_assignment_mask

    busiest_chunk = -(-int(round(prompt_tokens * share)) // dp) * dp
    busiest = _step_varying(_per_token_graph(workload, scenario, context, busiest_chunk), busiest_chunk, dp,
                            scenario.input_len)
    pooled = expert_assignment_mask(merged)
    own_token = (busiest.kind != OpKind.ATTENTION) & (busiest.stage != Stage.LM_HEAD) & ~expert_assignment_mask(busiest)
    return OpTable.concat([busiest.select(own_token), merged.select(per_token & pooled), decode.select(per_request),
                           prompt_attention])


def train_graph(workload: DecoderLM, scenario: Scenario) -> OpTable:
    """Forward over batch x input_len tokens (logits everywhere) + the DP gradient all-reduce (OPTIMIZER)."""
    return _busiest(_decoder_stages(workload, scenario, "train"))


def video_graph(workload: VideoDiT, scenario: Scenario) -> OpTable:
    """Text encoder (once), DiT forward x steps (CFG doubles the batch), VAE decode (once)."""
    if not isinstance(workload, VideoDiT):
        raise CosimInputError(f"phase 'video' needs a video model; '{workload.name}' is a decoder LM",
                              field="phase")
    return _busiest(pipeline_stages(workload, scenario))


def generate_context(scenario: Scenario) -> int:
    """The representative decode context of `generate`: input_len + decode_span // 2 (output_len // 2
    when every request generates the same number of tokens)."""
    return scenario.input_len + scenario.decode_span // 2


def _prefixed(table: OpTable, prefix: str) -> OpTable:
    out = table.with_repeat(1.0)
    out.name = np.array([f"{prefix}/{n}" for n in table.name], dtype=object)
    return out


def build_graph(workload: DecoderLM | VideoDiT, scenario: Scenario, context: int | None = None) -> OpTable:
    """The op table for `scenario.phase`. `context` overrides the decode context (default input_len)."""
    phase = scenario.phase
    if phase == "video":
        return video_graph(workload, scenario)
    if phase == "prefill":
        return prefill_graph(workload, scenario)
    if phase == "decode":
        return decode_graph(workload, scenario, scenario.input_len if context is None else context)
    if phase == "train":
        return train_graph(workload, scenario)
    if phase == "generate":
        ctx = generate_context(scenario) if context is None else context
        return OpTable.concat([_prefixed(prefill_graph(workload, scenario), "prefill"),
                               _prefixed(decode_graph(workload, scenario, ctx), "decode")])
    raise CosimInputError(f"unknown phase '{phase}'", field="phase")


def pipeline_stages(workload: DecoderLM | VideoDiT, scenario: Scenario, context: int | None = None) -> list[OpTable]:
    """One table per pipeline stage (per chip of that stage); `build_graph` returns the busiest."""
    phase = scenario.phase
    if phase == "video":
        if not isinstance(workload, VideoDiT):
            video_graph(workload, scenario)  # raises the phase error
        m = resolve(workload, scenario)
        return [OpTable.from_rows(rows) for rows in video_stage_rows(workload, scenario, dtypes(scenario), m)]
    if phase == "generate":
        raise CosimInputError("pipeline_stages takes prefill, decode, train or video", field="phase")
    ctx = scenario.input_len if context is None else context
    return _decoder_stages(workload, scenario, phase, ctx)


def weight_bytes_per_chip(workload: DecoderLM | VideoDiT, scenario: Scenario) -> float:
    """Weight bytes resident on one chip of the busiest stage (all local experts; full embedding shard)."""
    if isinstance(workload, VideoDiT):
        # each row reads its weights once per execution; embedding rows read looked-up rows, not tables
        table = video_graph(workload, scenario)
        return float(table.bytes_weight[table.kind != int(OpKind.EMBEDDING)].sum())
    m = resolve(workload, scenario)
    dt = dtypes(scenario)
    ranges = stage_layer_ranges(workload.num_layers, m.pp)
    return max(resident_weight_bytes(workload, dt, m, s, e) for s, e in ranges)
