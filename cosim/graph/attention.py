"""Attention cores and the self-attention block of decoder LMs (MHA/GQA/MQA and DeepSeek MLA).

FLOPs of the core count the two matmuls only: 2 x (d_qk + d_v) per (query, key) pair per head, i.e.
2 x 2 x b x h x q x kv x d when d_qk = d_v. Causal masking is counted exactly: query i of a sequence
attends to min(i + 1, window) keys (`attended_pairs`), so a causal prefill of s tokens has
s (s + 1) / 2 pairs per head, not s^2 / 2. Softmax and rotary are fused into the kernel: rotary is a
`fused` row with its FLOPs; softmax FLOPs are not counted.

Bytes follow FlashAttention: prefill reads Q, K and V once and writes O once (tiling re-reads are
the engine's business, from the geometry columns); prefill writes the new K/V to the cache. Decode
reads the whole cached K/V of `context` tokens (the new token's K/V come in as activations) and
writes one token's K/V. MLA decode uses the absorbed form: per-head matmuls fold W_UK into the query
and W_UV after attention, so the core reads only the compressed latent (kv_lora_rank + rope dims per
token per layer, shared by all heads and replicated on every TP chip). MLA prefill uses the expanded
form (K/V up-projected for every token, then ordinary MHA).

Sequence parallelism: Ulysses all-to-alls q/k/v before and o after the core (the core then sees the
full sequence and heads / sp); ring attention passes K/V blocks around the ring (sp - 1 hops, the
core sees q_len = s / sp against the full kv_len, load-balanced so FLOPs are 1 / sp of the total).
In decode, SP splits the cached context and partial outputs are combined with an all-reduce.
"""

from __future__ import annotations

from dataclasses import dataclass

from cosim.graph.optable import CommKind, OpKind, Stage
from cosim.graph.rows import NORM_FLOPS_PER_ELEMENT, ROTARY_FLOPS_PER_ELEMENT, Dtypes, comm, elementwise, gemm
from cosim.graph.sharding import Mapping, ceil_div, kv_heads_per_chip
from cosim.specs.workload import DecoderLM


def attended_pairs(q_len: int, kv_len: int, window: int = 0, causal: bool = True) -> float:
    """(query, key) pairs per head when `q_len` queries are the last positions of `kv_len` keys.

    Causal: query at position p (0-based) sees min(p + 1, window) keys. Non-causal: q_len x kv_len
    (a window, if any, caps the keys per query).
    """
    if not causal:
        return float(q_len) * float(min(kv_len, window) if window else kv_len)
    a, b = kv_len - q_len + 1, kv_len  # keys seen by the first and last query, before the window
    if not window or window >= b:
        return (a + b) * (b - a + 1) / 2.0
    if a > window:
        return float(q_len) * window
    return (a + window) * (window - a + 1) / 2.0 + float(b - window) * window


def chunked_pairs(seq: int, chunk: int) -> float:
    """Causal (query, key) pairs per head of a `seq`-token prompt under chunked attention: each query sees the
    keys of its own `chunk`-long chunk up to itself (Llama 4's attention_chunk_size)."""
    full, rest = divmod(seq, chunk)
    return full * chunk * (chunk + 1) / 2.0 + rest * (rest + 1) / 2.0


def attention_core(name: str, stage: Stage, dt: Dtypes, *, batch: float, heads: float, kv_heads: float,
                   q_len: float, kv_len: float, head_dim: float, head_dim_v: float, pairs: float,
                   causal: bool, window: float = 0.0, act_in: float, act_out: float, kv_read: float = 0.0,
                   kv_write: float = 0.0, repeat: float = 1.0) -> dict:
    """An ATTENTION row; `pairs` is per (sequence, head) on this chip; act/kv arguments are elements."""
    return {
        "name": name, "kind": int(OpKind.ATTENTION), "stage": int(stage), "precision": dt.attention_code,
        "batch": batch, "heads": heads, "kv_heads": kv_heads, "q_len": q_len, "kv_len": kv_len,
        "head_dim": head_dim, "head_dim_v": head_dim_v, "window": window, "causal": int(causal),
        "flops": 2.0 * batch * heads * pairs * (head_dim + head_dim_v),
        "bytes_act_in": act_in * dt.a, "bytes_act_out": act_out * dt.a,
        "bytes_kv_read": kv_read * dt.kv, "bytes_kv_write": kv_write * dt.kv,
        "repeat": repeat,
    }


@dataclass(frozen=True)
class Tokens:
    """Token geometry of one decoder pass on one chip.

    phase: prefill | decode | train. b: sequences on this chip. seq: prompt length (prefill/train).
    seq_local: tokens per sequence on this chip after SP. context: cached tokens (decode).
    tokens: rows of every GEMM (b x seq_local, or b x q in decode).
    """

    phase: str
    b: int
    seq: int
    seq_local: int
    context: int
    tokens: int
    q: int = 1  # decode: query tokens per sequence (1, or the drafts + 1 a speculative step verifies)
    kv_read_per_query_head: bool = False  # decode: each query head reads its KV head's cache on its own
    kv_read_per_query_head_layers: str = "all"  # "windowed": only the windowed layers read per query head

    @property
    def writes_cache(self) -> bool:
        return self.phase in ("prefill", "decode")


def _sp_comms(prefix: str, dt: Dtypes, m: Mapping, tk: Tokens, q_elems: float, kv_elems: float,
              o_elems: float, repeat: float) -> list[dict]:
    """Sequence-parallel traffic around one attention core (prefill/train), per chip per layer."""
    if m.sp == 1 or tk.phase == "decode":
        return []
    frac = (m.sp - 1) / m.sp
    if m.sp_kind == "ulysses":
        return [
            comm(f"{prefix}.sp_a2a_qkv", Stage.DECODER, dt, CommKind.ALL_TO_ALL,
                 (q_elems + kv_elems) * dt.a * frac, m.sp, repeat=repeat),
            comm(f"{prefix}.sp_a2a_o", Stage.DECODER, dt, CommKind.ALL_TO_ALL, o_elems * dt.a * frac, m.sp,
                 repeat=repeat),
        ]
    return [comm(f"{prefix}.ring_kv", Stage.DECODER, dt, CommKind.P2P, (m.sp - 1) * kv_elems * dt.a, m.sp,
                 repeat=repeat)]


def core_geometry(m: Mapping, tk: Tokens, heads_c: int, kv_c: int, window: int, causal: bool = True,
                  chunked: bool = False) -> dict:
    """Heads, lengths and pairs of the core on one chip for prefill/train (SP-aware) or decode; `chunked`: the
    window is a chunk (a query sees its own chunk's keys, not the last `window` ones)."""
    if tk.phase == "decode":  # q new tokens (causal among themselves) after `context` cached ones
        if chunked and window:  # the current chunk's tokens before the new ones
            cached = tk.context % window
            pairs = attended_pairs(tk.q, cached + tk.q) / m.sp
        else:
            pairs = attended_pairs(tk.q, tk.context + tk.q, window) / m.sp
            cached = min(tk.context, window - 1) if window else tk.context
        return {"heads": heads_c, "kv_heads": kv_c, "q_len": tk.q, "kv_len": ceil_div(cached, m.sp) + tk.q,
                "pairs": pairs, "cached": cached / m.sp}
    if chunked and window and causal:
        full = chunked_pairs(tk.seq, window)
    else:
        full = attended_pairs(tk.seq, tk.seq, window, causal)
    if m.sp > 1 and m.sp_kind == "ulysses":
        return {"heads": heads_c // m.sp, "kv_heads": max(1, kv_c // m.sp), "q_len": tk.seq,
                "kv_len": tk.seq, "pairs": full, "cached": 0.0}
    return {"heads": heads_c, "kv_heads": kv_c, "q_len": tk.seq_local, "kv_len": tk.seq,
            "pairs": full / m.sp, "cached": 0.0}


def _core_rows(prefix: str, dt: Dtypes, m: Mapping, tk: Tokens, heads_c: int, kv_c: int, d: int, dv: int,
               window_counts: list[tuple[int, int]], cache_elems_per_token: float,
               shared_latent: bool = False, chunked: bool = False) -> list[dict]:
    """One core row per window group. `cache_elems_per_token`: cached elements one token adds per layer;
    `chunked`: the windowed group attends within chunks (Attention.window_kind)."""
    rows = []
    for window, count in window_counts:
        if count == 0:
            continue
        g = core_geometry(m, tk, heads_c, kv_c, window, chunked=chunked)
        h, kvh, q_len, kv_len = g["heads"], g["kv_heads"], g["q_len"], g["kv_len"]
        tag = f"{prefix}.attention" + (f"_window{window}" if window else "")
        if tk.phase == "decode":
            # Q of the new token(s), their K/V (or latent) as activations; the cache read in full
            kv_new = cache_elems_per_token if shared_latent else kv_c * (d + dv)
            act_in = tk.b * tk.q * (h * d + kv_new)
            kv_read = tk.b * g["cached"] * cache_elems_per_token
            # no GQA kernel (on every layer, or on the windowed ones only): every query head's own read
            per_head = tk.kv_read_per_query_head and (tk.kv_read_per_query_head_layers == "all" or window > 0)
            if per_head and not shared_latent:
                kv_read *= h / kvh
            kv_write = tk.b * tk.q * cache_elems_per_token
        else:
            act_in = tk.b * (q_len * h * d + kv_len * kvh * (d + dv))
            kv_read = 0.0
            kv_write = tk.b * tk.seq_local * cache_elems_per_token if tk.writes_cache else 0.0
        rows.append(attention_core(
            tag, Stage.DECODER, dt, batch=tk.b, heads=h, kv_heads=kvh, q_len=q_len, kv_len=kv_len,
            head_dim=d, head_dim_v=dv, pairs=g["pairs"], causal=True, window=window,
            act_in=act_in, act_out=tk.b * q_len * h * dv, kv_read=kv_read, kv_write=kv_write,
            repeat=count))
        if tk.phase == "decode" and m.sp > 1:
            rows.append(comm(f"{tag}.sp_combine", Stage.DECODER, dt, CommKind.ALL_REDUCE,
                             tk.b * tk.q * h * dv * dt.a, m.sp, repeat=count))
    return rows


def self_attention_rows(model: DecoderLM, dt: Dtypes, m: Mapping, tk: Tokens,
                        window_counts: list[tuple[int, int]]) -> list[dict]:
    """Projections, core(s) and SP traffic of one attention block; `window_counts` = [(window, layers)]."""
    if model.attention.kind == "mla":
        return _mla_rows(model, dt, m, tk, window_counts)
    att, hdim = model.attention, model.hidden_size
    T, d = tk.tokens, att.head_dim
    heads_c = att.num_heads // m.tp
    kv_c = kv_heads_per_chip(att.num_kv_heads, m.tp)
    layers = sum(c for _, c in window_counts)
    rows = [
        gemm("attn.qkv_proj", Stage.DECODER, dt, T, hdim, (heads_c + 2 * kv_c) * d, bias=att.qkv_bias,
             repeat=layers),
        elementwise("attn.rotary", Stage.DECODER, dt, T * (heads_c + kv_c) * d, ROTARY_FLOPS_PER_ELEMENT,
                    fused=True, repeat=layers),
    ]
    if att.qk_norm:  # Qwen3: per-head RMSNorm of q and k (one head_dim weight vector each)
        rows.append(elementwise("attn.qk_norm", Stage.DECODER, dt, T * (heads_c + kv_c) * d,
                                NORM_FLOPS_PER_ELEMENT["rmsnorm"], weight_elements=2 * d, repeat=layers))
    rows += _sp_comms("attn", dt, m, tk, T * heads_c * d, T * kv_c * 2 * d, T * heads_c * d, layers)
    rows += _core_rows("attn", dt, m, tk, heads_c, kv_c, d, d, window_counts, kv_c * 2 * d,
                       chunked=att.window_kind == "chunked")
    rows.append(gemm("attn.o_proj", Stage.DECODER, dt, T, heads_c * d, hdim, bias=att.out_bias, repeat=layers))
    return rows


def _mla_rows(model: DecoderLM, dt: Dtypes, m: Mapping, tk: Tokens,
              window_counts: list[tuple[int, int]]) -> list[dict]:
    """DeepSeek MLA: low-rank q (optional) and kv; absorbed form in decode, expanded in prefill/train."""
    att, hdim = model.attention, model.hidden_size
    T = tk.tokens
    nope, rope, dv, r_kv = att.qk_nope_head_dim, att.qk_rope_head_dim, att.v_head_dim, att.kv_lora_rank
    heads_c = att.num_heads // m.tp
    layers = sum(c for _, c in window_counts)
    norm_flops = NORM_FLOPS_PER_ELEMENT["rmsnorm"]  # on the compressed q and kv
    rows = []
    if att.q_lora_rank:
        rows += [
            gemm("mla.q_down", Stage.DECODER, dt, T, hdim, att.q_lora_rank, repeat=layers),
            elementwise("mla.q_norm", Stage.DECODER, dt, T * att.q_lora_rank, norm_flops,
                        weight_elements=att.q_lora_rank, repeat=layers),
            gemm("mla.q_up", Stage.DECODER, dt, T, att.q_lora_rank, heads_c * (nope + rope), repeat=layers),
        ]
    else:
        rows.append(gemm("mla.q_proj", Stage.DECODER, dt, T, hdim, heads_c * (nope + rope), repeat=layers))
    rows += [
        gemm("mla.kv_down", Stage.DECODER, dt, T, hdim, r_kv + rope, repeat=layers),
        elementwise("mla.kv_norm", Stage.DECODER, dt, T * r_kv, norm_flops, weight_elements=r_kv,
                    repeat=layers),
        elementwise("mla.rotary", Stage.DECODER, dt, T * (heads_c + 1) * rope, ROTARY_FLOPS_PER_ELEMENT,
                    fused=True, repeat=layers),
    ]
    latent = r_kv + rope
    if tk.phase == "decode":
        rows.append(gemm("mla.q_absorb_uk", Stage.DECODER, dt, T, nope, r_kv, groups=heads_c,
                         kind=OpKind.GROUPED_GEMM, repeat=layers))
        rows += _core_rows("mla", dt, m, tk, heads_c, 1, latent, r_kv, window_counts, latent,
                           shared_latent=True)
        rows.append(gemm("mla.v_absorb_uv", Stage.DECODER, dt, T, r_kv, dv, groups=heads_c,
                         kind=OpKind.GROUPED_GEMM, repeat=layers))
    else:
        rows.append(gemm("mla.kv_up", Stage.DECODER, dt, T, r_kv, heads_c * (nope + dv), repeat=layers))
        rows += _sp_comms("mla", dt, m, tk, T * heads_c * (nope + rope), T * heads_c * (nope + rope + dv),
                          T * heads_c * dv, layers)
        rows += _core_rows("mla", dt, m, tk, heads_c, heads_c, nope + rope, dv, window_counts, latent)
    rows.append(gemm("mla.o_proj", Stage.DECODER, dt, T, heads_c * dv, hdim, repeat=layers))
    return rows
