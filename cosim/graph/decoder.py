"""The op rows of one pipeline stage of a decoder LM (dense or MoE) for prefill, decode or train.

Per layer: fused residual-add + norm, the attention block (`attention.py`), a TP all-reduce, fused
residual-add + norm, the MLP or MoE block (`moe.py`), a TP all-reduce. A hybrid model (`hybrid_pattern`,
Nemotron-H) has one block per layer instead, attention, MLP, MoE or a Mamba-2 mixer (`mamba.py`), each
behind its own fused residual-add + norm and ending in a TP all-reduce. Layers that differ (sliding
window vs full attention; the first `moe.first_dense_layers` dense layers vs MoE layers) get separate
rows with their own `repeat`; ops common to all layers are one row with repeat = layers on the stage.
Windowed layers are assumed interleaved evenly through the stack (layer i is windowed when
floor((i + 1) W / L) > floor(i W / L) for W windowed of L layers), which only matters for how they
spread over pipeline stages.

Fused ops (rows with `fused = 1`): the residual add is fused with the following norm (one kernel
reading the residual and the branch output, writing both the new residual and the normed input);
rotary embedding into attention; the MLP activation (SwiGLU/GELU) into the gate/up GEMM epilogue.

The first stage looks the embeddings up (per chip, the rows of its tokens); the last stage runs the
final norm and the LM head (vocab / tp columns; prefill computes logits for the last position of each
sequence only, train for every position) and, with tp > 1, all-gathers the logits. Every stage but the
last sends its activations to the next (P2P, tokens x hidden x activation bytes).
"""

from __future__ import annotations

from cosim.graph.attention import Tokens, self_attention_rows
from cosim.graph.mamba import mamba_rows
from cosim.graph.moe import mlp_rows, moe_rows
from cosim.graph.optable import CommKind, Stage
from cosim.graph.rows import (
    NORM_FLOPS_PER_ELEMENT,
    RESIDUAL_ADD_FLOPS,
    Dtypes,
    comm,
    elementwise,
    embedding,
    gemm,
    head_dtypes,
)
from cosim.graph.sharding import Mapping
from cosim.specs.workload import DecoderLM


def is_windowed(layer: int, num_layers: int, windowed_layers: int) -> bool:
    """Whether layer `layer` uses the sliding window (windowed layers spread evenly)."""
    return windowed_layers > 0 and (layer + 1) * windowed_layers // num_layers > layer * windowed_layers // num_layers


def is_moe_layer(model: DecoderLM, layer: int) -> bool:
    return model.block_counts(layer, layer + 1).moe == 1


def _norm_weight_elements(model: DecoderLM) -> int:
    return model.hidden_size * (2 if model.norm == "layernorm" else 1)


def _add_norm(name: str, model: DecoderLM, dt: Dtypes, tokens: float, repeat: float, outputs: float = 2.0) -> dict:
    flops = NORM_FLOPS_PER_ELEMENT[model.norm] + RESIDUAL_ADD_FLOPS
    return elementwise(name, Stage.DECODER, dt, tokens * model.hidden_size, flops, inputs=2.0, outputs=outputs,
                       weight_elements=_norm_weight_elements(model), repeat=repeat)


def head_tokens(tk: Tokens) -> int:
    """Positions whose logits are computed: every token in training and in a decode step (one per sequence, or
    every verified position of a speculative one), the last of each prompt in prefill."""
    return tk.b if tk.phase == "prefill" else tk.tokens


def stage_rows(model: DecoderLM, dt: Dtypes, m: Mapping, tk: Tokens, start: int, end: int,
               imbalance: float = 1.0, touch_all_experts: bool = False) -> list[dict]:
    """Rows of the layers [start, end) on one chip, plus embedding / LM head when the stage holds them."""
    h, T, L = model.hidden_size, tk.tokens, model.num_layers
    n = end - start
    att = model.attention
    # the routed experts may run in another precision than everything else (Scenario.dense_precision)
    experts_dt, dt = dt, dt.outside_experts
    windowed = sum(is_windowed(i, L, att.sliding_window_layers) for i in range(start, end))
    n_moe = model.block_counts(start, end).moe
    window_counts = [(0, n - windowed), (att.sliding_window or 0, windowed)]
    rows: list[dict] = []
    if start == 0:
        rows.append(embedding("embed_tokens", Stage.DECODER, head_dtypes(dt), T, h))
    if model.hybrid_pattern is not None:
        rows += _hybrid_block_rows(model, dt, experts_dt, m, tk, start, end, imbalance, touch_all_experts)
    else:
        rows += _layer_rows(model, dt, experts_dt, m, tk, n, n_moe, window_counts, imbalance, touch_all_experts)
    if end == L:
        rows += head_rows(model, dt, m, tk)
    else:
        rows.append(comm("pp_send_activations", Stage.DECODER, dt, CommKind.P2P, T * h * dt.a, 2))
    return rows


def head_rows(model: DecoderLM, dt: Dtypes, m: Mapping, tk: Tokens, prefix: str = "") -> list[dict]:
    """The final norm, the output head (vocab / tp columns) and, with tp > 1, the logits all-gather."""
    h = model.hidden_size
    rows = [_add_norm(f"{prefix}final_norm", model, dt, tk.tokens, 1, outputs=1.0)]
    ht, hd = head_tokens(tk), head_dtypes(dt)  # a quantised checkpoint keeps its head unquantised
    rows.append(gemm(f"{prefix}lm_head", Stage.LM_HEAD, hd, ht, h, model.vocab_size / m.tp, bias=model.lm_head_bias))
    if m.tp > 1:
        rows.append(comm(f"{prefix}lm_head.logits_allgather", Stage.LM_HEAD, hd, CommKind.ALL_GATHER,
                         ht * model.vocab_size / m.tp * hd.a, m.tp))
    return rows


def mtp_draft_rows(model: DecoderLM, dt: Dtypes, m: Mapping, tk: Tokens, passes: int,
                   imbalance: float = 1.0) -> list[dict]:
    """`passes` runs of a multi-token-prediction module over `tk` (in a decode step one token per sequence at the
    step's context, each pass drafting one; over a prompt, its tokens once): the embeddings, the two input norms,
    the 2h -> h projection (row-parallel over tp, as o_proj), one decoder layer of the model's last kind and the
    shared head. TensorRT-LLM's autoregressive MTP reruns the module for every draft token."""
    h, T = model.hidden_size, tk.tokens
    experts_dt, dense_dt = dt, dt.outside_experts
    last = model.num_layers - 1
    n_moe = 1 if is_moe_layer(model, last) else 0
    rows = [embedding("mtp.embed_tokens", Stage.DECODER, head_dtypes(dense_dt), T, h),
            _add_norm("mtp.input_norms", model, dense_dt, 2 * T, 1, outputs=1.0),
            gemm("mtp.eh_proj", Stage.DECODER, dense_dt, T, 2 * h / m.tp, h)]
    if m.tp > 1:
        rows.append(comm("mtp.eh_proj.tp_allreduce", Stage.DECODER, dense_dt, CommKind.ALL_REDUCE, T * h * dense_dt.a,
                         m.tp))
    rows += _layer_rows(model, dense_dt, experts_dt, m, tk, 1, n_moe, [(0, 1)], imbalance, False)
    rows += head_rows(model, dense_dt, m, tk, prefix="mtp.")
    for r in rows:
        r["name"] = r["name"] if r["name"].startswith("mtp.") else f"mtp.{r['name']}"
        r["stage"] = int(Stage.DRAFT)
        r["repeat"] = r.get("repeat", 1.0) * passes
    return rows


def _layer_rows(model: DecoderLM, dt: Dtypes, experts_dt: Dtypes, m: Mapping, tk: Tokens, n: int, n_moe: int,
                window_counts: list[tuple[int, int]], imbalance: float, touch_all_experts: bool) -> list[dict]:
    """`n` layers of attention + MLP (the last `n_moe` of them MoE), each with its norms and all-reduces."""
    h, T = model.hidden_size, tk.tokens
    rows = [_add_norm("attn_norm", model, dt, T, n)]
    rows += self_attention_rows(model, dt, m, tk, window_counts)
    if m.tp > 1:
        rows.append(comm("attn.tp_allreduce", Stage.DECODER, dt, CommKind.ALL_REDUCE, T * h * dt.a, m.tp, repeat=n))
    if not model.parallel_attention_mlp or model.parallel_block_norms == 2:  # GPT-J's block has one norm
        rows.append(_add_norm("mlp_norm", model, dt, T, n))
    if n - n_moe:
        rows += mlp_rows("mlp", Stage.DECODER, dt, model.mlp, T, h, model.mlp.intermediate_size / m.tp, n - n_moe)
    if n_moe:
        rows += moe_rows(model, experts_dt, m, T, imbalance, n_moe, touch_all=touch_all_experts)
    if m.tp > 1:
        rows.append(comm("mlp.tp_allreduce", Stage.DECODER, dt, CommKind.ALL_REDUCE, T * h * dt.a, m.tp, repeat=n))
    return rows


def _hybrid_block_rows(model: DecoderLM, dt: Dtypes, experts_dt: Dtypes, m: Mapping, tk: Tokens, start: int,
                       end: int, imbalance: float, touch_all_experts: bool) -> list[dict]:
    """A hybrid stage (`hybrid_pattern`): each layer is one block (attention, MLP, Mamba-2 mixer or MoE) behind
    its own fused residual-add + norm, and each block's output projection ends in a TP all-reduce."""
    h, T = model.hidden_size, tk.tokens
    n = model.block_counts(start, end)
    rows = [_add_norm("block_norm", model, dt, T, end - start)]
    if n.attention:
        rows += self_attention_rows(model, dt, m, tk, [(0, n.attention)])
    if n.mlp:
        rows += mlp_rows("mlp", Stage.DECODER, dt, model.mlp, T, h, model.mlp.intermediate_size / m.tp, n.mlp)
    if n.moe:
        rows += moe_rows(model, experts_dt, m, T, imbalance, n.moe, touch_all=touch_all_experts)
    if n.mamba:
        rows += mamba_rows(model, dt, m, tk, n.mamba)
    if m.tp > 1 and n.attention + n.mlp + n.moe:
        rows.append(comm("block.tp_allreduce", Stage.DECODER, dt, CommKind.ALL_REDUCE, T * h * dt.a, m.tp,
                         repeat=n.attention + n.mlp + n.moe))
    return rows


def resident_weight_bytes(model: DecoderLM, dt: Dtypes, m: Mapping, start: int, end: int) -> float:
    """Weight bytes stored on one chip of the stage [start, end): every local expert, and the embedding
    table's vocab-parallel shard (1 / tp) on the first stage (shared with the LM head when tied and the
    model has one stage)."""
    tk = Tokens("decode", 1, 1, 1, 0, 1)
    rows = stage_rows(model, dt, m, tk, start, end, touch_all_experts=True)
    total = sum(r.get("bytes_weight", 0.0) * r.get("repeat", 1.0) for r in rows if r["name"] != "embed_tokens")
    if start == 0 and not (model.tie_word_embeddings and end == model.num_layers):
        total += model.vocab_size * model.hidden_size / m.tp * dt.outside_experts.w
    return float(total)
