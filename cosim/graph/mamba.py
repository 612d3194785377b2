"""The Mamba-2 mixer of hybrid decoders (Nemotron-H): its op rows for prefill, decode and train.

Mamba-2 (Dao & Gu, "Transformers are SSMs", ICML 2024, Sec. 6-7). With inner width d = heads x head_dim P,
G groups sharing B and C, and state size N, one mixer block is: in_proj (hidden -> z, x, B, C and one dt per
head: 2d + 2GN + heads outputs); a causal depthwise conv of `conv_kernel` taps over x, B and C with SiLU;
the selective scan; a gated RMSNorm of y by SiLU(z); out_proj (d -> hidden). TP splits the heads (and the
groups when it divides them; else every chip computes all groups' B and C), so out_proj ends in a TP
all-reduce as attention's o_proj does.

The scan is an ATTENTION-kind row: like attention it is per request (a decode step updates one state per
sequence; a prompt's chunk of it rides with the request in a mixed step, `cosim.graph.build`), runs its
matmuls at the attention kernels' fraction of peak, and stays BF16 in training. Its `q_len` is 0, which
marks it as not growing with the cached context (`cosim.engines.steptime`).

- Prefill/train uses the chunked SSD algorithm with chunks of Q = `chunk_size` tokens. FLOPs per token:
  2 Q G N for the chunk's C B^T scores (per group; kernels compute the whole chunk tile), 2 Q P per head to
  apply them to x, and 2 N P per head each for the chunk states (B^T x) and their contribution to the
  output (C h). It reads x, B, C and dt, writes y, and stores each sequence's final state (and the last
  conv_kernel - 1 inputs of the conv) in the state cache.
- Decode reads and writes each sequence's state, heads x P x N values per layer, plus its conv window:
  6 FLOPs per state element (decay, the dt B x update, the C h read-out) against 2 x the element's bytes,
  so a decode step is memory-bound on the states, a cost per sequence that does not grow with context.
"""

from __future__ import annotations

from cosim.graph.attention import Tokens
from cosim.graph.optable import PRECISION_CODE, CommKind, OpKind, Stage
from cosim.graph.rows import (
    ACT_FLOPS_PER_ELEMENT,
    GATE_MULTIPLY_FLOPS,
    NORM_FLOPS_PER_ELEMENT,
    Dtypes,
    comm,
    elementwise,
    gemm,
)
from cosim.graph.sharding import Mapping
from cosim.specs.workload import DecoderLM, Mamba2

#: FLOPs per state element of a decode step: exp(dt A) h (1), + dt B x (2), y = C h (2), the D skip (1)
DECODE_FLOPS_PER_STATE_ELEMENT = 6.0
#: FLOPs per conv channel per tap (multiply-add), plus the SiLU after the conv
CONV_FLOPS_PER_TAP = 2.0
#: precision the scan's matmuls run in (the SSD kernels compute in BF16/FP32 whatever the GEMMs' format)
SCAN_PRECISION = "bf16"


def groups_per_chip(mamba: Mamba2, tp: int) -> int:
    """Groups of B and C one chip computes: split over TP when it divides them, else all of them."""
    return mamba.num_groups // tp if mamba.num_groups % tp == 0 else mamba.num_groups


def state_elements_per_sequence(mamba: Mamba2, tp: int) -> tuple[float, float]:
    """(SSM state, conv window) elements one chip caches per sequence and Mamba-2 layer."""
    heads = mamba.num_heads / tp
    conv = (mamba.conv_kernel - 1) * (heads * mamba.head_dim + 2 * groups_per_chip(mamba, tp) * mamba.state_size)
    return heads * mamba.head_dim * mamba.state_size, float(conv)


def scan_flops_per_token(mamba: Mamba2, tp: int) -> float:
    """FLOPs per prompt token of one chip's chunked SSD scan (see the module doc)."""
    heads, p, n, q = mamba.num_heads / tp, mamba.head_dim, mamba.state_size, mamba.chunk_size
    return 2.0 * q * groups_per_chip(mamba, tp) * n + 2.0 * q * p * heads + 4.0 * n * p * heads


def _scan_row(name: str, mamba: Mamba2, dt: Dtypes, tp: int, tk: Tokens, repeat: float) -> dict:
    heads = mamba.num_heads / tp
    inner = heads * mamba.head_dim
    bc = 2 * groups_per_chip(mamba, tp) * mamba.state_size
    state, conv = state_elements_per_sequence(mamba, tp)
    cache = tk.b * (state * dt.state + conv * dt.a)  # bytes of the sequences' states and conv windows
    if tk.phase == "decode":
        flops = tk.b * state * DECODE_FLOPS_PER_STATE_ELEMENT
        kv_read = kv_write = cache
    else:
        flops = tk.tokens * scan_flops_per_token(mamba, tp)
        kv_read, kv_write = 0.0, cache  # a fresh prompt starts from a zero state and stores its last one
    return {
        "name": name, "kind": int(OpKind.ATTENTION), "stage": int(Stage.DECODER),
        "precision": PRECISION_CODE[SCAN_PRECISION], "batch": tk.b, "heads": heads, "kv_heads": heads,
        "q_len": 0.0, "kv_len": 0.0, "head_dim": mamba.state_size, "head_dim_v": mamba.head_dim,
        "window": 0.0, "causal": 1,
        "flops": flops,
        "bytes_act_in": tk.tokens * (inner + bc + heads) * dt.a, "bytes_act_out": tk.tokens * inner * dt.a,
        "bytes_kv_read": kv_read, "bytes_kv_write": kv_write,
        "repeat": repeat,
    }


def mamba_rows(model: DecoderLM, dt: Dtypes, m: Mapping, tk: Tokens, repeat: float) -> list[dict]:
    """Rows of `repeat` Mamba-2 mixer blocks on one chip (norm and residual are the caller's)."""
    mamba = model.mamba
    h, T, tp = model.hidden_size, tk.tokens, m.tp
    heads = mamba.num_heads / tp
    inner = heads * mamba.head_dim
    conv_channels = inner + 2 * groups_per_chip(mamba, tp) * mamba.state_size
    in_width = 2 * inner + 2 * groups_per_chip(mamba, tp) * mamba.state_size + heads
    conv_weights = conv_channels * (mamba.conv_kernel + (1 if mamba.conv_bias else 0))
    rows = [
        gemm("mamba.in_proj", Stage.DECODER, dt, T, h, in_width, bias=mamba.proj_bias, repeat=repeat),
        elementwise("mamba.conv1d", Stage.DECODER, dt, T * conv_channels,
                    CONV_FLOPS_PER_TAP * mamba.conv_kernel + ACT_FLOPS_PER_ELEMENT["silu"],
                    weight_elements=conv_weights, repeat=repeat),
        _scan_row("mamba.scan" if tk.phase != "decode" else "mamba.state_update", mamba, dt, tp, tk, repeat),
        # y x SiLU(z), then RMSNorm per group: reads y and z, writes the normed y; weights one per channel
        elementwise("mamba.gated_norm", Stage.DECODER, dt, T * inner,
                    NORM_FLOPS_PER_ELEMENT["rmsnorm"] + ACT_FLOPS_PER_ELEMENT["silu"] + GATE_MULTIPLY_FLOPS,
                    inputs=2.0, weight_elements=inner, repeat=repeat),
        gemm("mamba.out_proj", Stage.DECODER, dt, T, inner, h, bias=mamba.proj_bias, repeat=repeat),
    ]
    if tp > 1:
        rows.append(comm("mamba.tp_allreduce", Stage.DECODER, dt, CommKind.ALL_REDUCE, T * h * dt.a, tp,
                         repeat=repeat))
    return rows

