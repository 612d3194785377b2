"""What a training step costs beyond `forward passes + 2` times its forward ops.

The engines time a training step as the forward table times `fwd_mult` (forward, backward at twice the
forward, plus one more forward under full recompute). Three things real trainers do break that rule:

* **FlashAttention's backward recomputes the scores.** The kernels keep no attention matrix, so the
  backward runs five matrix products where the forward ran two: 2.5x the forward FLOPs, not 2x
  (Dao, FlashAttention-2, 2023, Sec. 3.1.2; its benchmark script counts backward FLOPs as 2.5x forward).
* **FP8 recipes keep attention and the output layer in BF16.** Transformer Engine's FP8 autocast covers
  its Linear modules; dot-product attention stays BF16 unless `fp8_dpa` is set (default False), and
  Megatron-Core's output layer is a plain tensor-parallel Linear outside the FP8 region. The forward graph
  already builds the output layer in BF16 under narrow weights (`cosim.graph.rows.head_dtypes`, as quantised
  inference checkpoints keep it too), so only attention is switched here.
* **FP8 GEMMs need their inputs quantised twice.** Each FP8 Linear casts its BF16 input to FP8 in the
  forward and its BF16 output gradient in the backward, each time also writing the transposed (Hopper) or
  column-wise-scaled (Blackwell MXFP8) copy the other GEMM of the pair reads: 2 bytes read and 2 written
  per element.

* **The activation function is a kernel of its own, and the loss reads the logits.** Inference engines fuse
  the MLP activation into the up-projection's epilogue, and the forward graph prices it so (no bytes). A
  training step keeps the activation's input for its backward: the forward kernel (Megatron's fused
  bias-GeLU / bias-SwiGLU, PyTorch's GELU) reads the up-projection's output and writes the activation, the
  backward reads both saved inputs and the incoming gradient and writes the input gradients. The loss reads
  every logit once in the forward and writes its gradient once in the backward (the least a fused
  cross-entropy moves; unfused FP32 losses move several times more, which is left out).

Model FLOPs (MFU) stay the forward's x 3; the recompute shows up in time and hardware FLOPs only.
"""

from __future__ import annotations

import numpy as np

from cosim.graph.optable import PRECISION_CODE, OpKind, OpTable, Stage
from cosim.specs.hardware import BYTES_PER_ELEMENT, PRECISIONS

#: backward FLOPs of a FlashAttention kernel over its forward FLOPs (QK^T recomputed, then dV, dP, dQ, dK)
FLASH_BACKWARD_FLOPS_RATIO = 2.5
#: bytes moved per element quantised to FP8 for training: read BF16 (2), write FP8 and its transposed or
#: column-wise copy (1 + 1)
FP8_QUANTIZE_BYTES_PER_ELEMENT = 4.0
#: the 16-bit format FP8 training keeps outside its Linear layers
TRAINING_HIGH_PRECISION = "bf16"
#: FLOPs per logit of a softmax cross-entropy (max, exp, sum, log, subtract; the gradient's subtract)
CROSS_ENTROPY_FLOPS_PER_LOGIT = 6.0

_GEMM_KINDS = (int(OpKind.GEMM), int(OpKind.GROUPED_GEMM))
#: bytes per element of each precision code (PRECISIONS order)
_BYTES = np.array([BYTES_PER_ELEMENT[p] for p in PRECISIONS])


def training_table(table: OpTable, forward_passes: int) -> OpTable:
    """The forward table re-weighted so that `forward_passes + 2` times it is a training step.

    `forward_passes` is 1, or 2 under full activation recompute. Attention rows gain the backward's extra
    half forward; under an 8-bit-or-narrower compute precision attention runs BF16 (the LM head comes BF16
    from the graph) and each quantised GEMM gets a memory-bound `<name>.fp8_quantize` row for its input and output-gradient casts.
    """
    fwd_mult = forward_passes + 2.0
    out = table.with_repeat(1.0)
    attention = out.kind == int(OpKind.ATTENTION)
    out.repeat = np.where(attention, out.repeat * (forward_passes + FLASH_BACKWARD_FLOPS_RATIO) / fwd_mult,
                          out.repeat)
    _unfuse_activations(out, forward_passes)
    loss = _loss_rows(out, forward_passes)
    extra = [loss] if loss is not None else []
    narrow = _BYTES[out.precision] < BYTES_PER_ELEMENT[TRAINING_HIGH_PRECISION]  # the FP8/FP4 recipes
    keep_high = narrow & attention
    out.precision = np.where(keep_high, PRECISION_CODE[TRAINING_HIGH_PRECISION], out.precision)
    quantised = narrow & ~keep_high & np.isin(out.kind, _GEMM_KINDS)
    if np.any(quantised):
        extra.append(_quantize_rows(out.select(quantised), forward_passes))
    return OpTable.concat([out, *extra]) if extra else out


def _stream_bytes(precision: np.ndarray) -> np.ndarray:
    """Bytes per element of the activation stream: the compute precision, at least BF16 (FP8 recipes keep
    what is stored between kernels in BF16)."""
    return np.maximum(_BYTES[precision], BYTES_PER_ELEMENT[TRAINING_HIGH_PRECISION])


def _unfuse_activations(table: OpTable, forward_passes: int) -> None:
    """Give each MLP activation row (`<prefix>.act`, fused in the forward graph) the bytes it moves in a
    training step, stored per forward (the engines multiply every row by forward_passes + 2): each forward
    reads its inputs (gate and up for a gated MLP) and writes its output; the backward reads the saved inputs
    and the output gradient and writes the inputs' gradients."""
    names = table.name.astype(str)
    act = np.char.endswith(names, ".act") & (table.fused == 1)
    if not np.any(act):
        return
    # a gated MLP's activation (`<prefix>.act` beside `<prefix>.gate_up_proj`) reads gate and up
    gated = [n.removesuffix(".gate_up_proj") + ".act" for n in names if n.endswith(".gate_up_proj")]
    inputs = np.where(np.isin(names, np.array(gated, dtype=str)), 2.0, 1.0)
    tensor_bytes = table.m * _stream_bytes(table.precision)  # one output-sized tensor
    fwd_mult = forward_passes + 2.0
    reads = (forward_passes * inputs + inputs + 1.0) * tensor_bytes / fwd_mult
    writes = (forward_passes + inputs) * tensor_bytes / fwd_mult
    table.bytes_act_in = np.where(act, reads, table.bytes_act_in)
    table.bytes_act_out = np.where(act, writes, table.bytes_act_out)
    table.fused = np.where(act, 0, table.fused)


def _loss_rows(table: OpTable, forward_passes: int) -> OpTable | None:
    """The cross-entropy over the output head's logits (vocab / tp of them per token on a chip): read once in
    the forward, the gradient written once in the backward; one row, stored per forward."""
    head = np.char.endswith(table.name.astype(str), "lm_head") & (table.stage == int(Stage.LM_HEAD))
    if not np.any(head):  # a pipeline stage without the output head
        return None
    fwd_mult = forward_passes + 2.0
    logit_bytes = _stream_bytes(table.precision[head])
    rows = [{"name": f"{str(name)[:-len('lm_head')]}loss.cross_entropy", "kind": int(OpKind.ELEMENTWISE),
             "stage": int(stage), "precision": int(prec), "m": float(m * n),
             "flops": CROSS_ENTROPY_FLOPS_PER_LOGIT * m * n / fwd_mult,
             "bytes_act_in": m * n * b / fwd_mult, "bytes_act_out": m * n * b / fwd_mult, "repeat": float(r)}
            for name, stage, prec, m, n, b, r in zip(table.name[head], table.stage[head], table.precision[head],
                                                     table.m[head], table.n[head], logit_bytes, table.repeat[head],
                                                     strict=True)]
    return OpTable.from_rows(rows)


def _quantize_rows(gemms: OpTable, forward_passes: int) -> OpTable:
    """One memory-bound row per FP8 GEMM: its input cast in every forward pass and its output-gradient cast
    in the backward, stored per forward (the engines multiply every row by forward_passes + 2)."""
    fwd_mult = forward_passes + 2.0
    inputs = gemms.m * gemms.k * gemms.groups
    grads = gemms.m * gemms.n * gemms.groups
    moved = FP8_QUANTIZE_BYTES_PER_ELEMENT * (forward_passes * inputs + grads) / fwd_mult
    rows = [{"name": f"{name}.fp8_quantize", "kind": int(OpKind.ELEMENTWISE), "stage": int(stage),
             "precision": PRECISION_CODE[TRAINING_HIGH_PRECISION], "m": float(i + g), "bytes_act_in": 0.5 * b,
             "bytes_act_out": 0.5 * b, "repeat": float(r)}
            for name, stage, i, g, b, r in zip(gemms.name, gemms.stage, inputs, grads, moved, gemms.repeat,
                                               strict=True)]
    return OpTable.from_rows(rows)
