"""Row constructors for the op table: one function per op kind, each returning a dict for `OpTable.from_rows`.

Every builder (decoder, MoE, attention, video) emits rows through these functions, so FLOPs and bytes
follow one set of conventions:

- GEMM (m x k) @ (k x n), repeated `groups` times: FLOPs = 2 m k n per group; reads the weights once
  (k n per group, + n bias elements when there is a bias), reads m k and writes m n activations.
  Bias adds run in the GEMM epilogue and are not counted as FLOPs (under 0.01% of the total).
- ELEMENTWISE: FLOPs = elements x FLOPs per element, with the per-element counts below; bytes are the
  elements read and written. A row marked `fused` carries FLOPs but no bytes (its traffic is the
  neighbour's).
- COMM: `comm_bytes` per chip per execution. ALL_REDUCE: the vector being reduced; ALL_GATHER: the
  shard this chip contributes; engines apply the algorithm's factor (e.g. 2 (g - 1) / g for a ring
  all-reduce over g chips). ALL_TO_ALL (MoE dispatch/combine, Ulysses): the bytes that leave the chip,
  i.e. the send buffer x (g - 1) / g already applied (the issue's contract). P2P: the bytes sent
  (ring attention: all sp - 1 hops together).

FLOPs per element (operation counts of the textbook definition, not measured constants):
RMSNorm 4 (square, accumulate, scale by the reciprocal root, multiply by gamma); LayerNorm 7 (mean,
subtract, square, accumulate, scale, gamma, beta); residual add 1; SiLU 4 (exp, add, divide, multiply);
GELU 8 (tanh approximation: cube, multiply-add, scale, tanh, add, two multiplies); ReLU 1; gate
multiply 1; rotary embedding 3 (two multiplies and an add per element of q and k); adaLN modulation 2
(x * (1 + scale) + shift) and a gated residual 2.
"""

from __future__ import annotations

from cosim.graph.optable import PRECISION_CODE, CommKind, OpKind, Stage
from cosim.specs.hardware import BYTES_PER_ELEMENT
from cosim.specs.scenario import ATTENTION_PRECISION_CHOICES

NORM_FLOPS_PER_ELEMENT = {"rmsnorm": 4.0, "layernorm": 7.0}
ACT_FLOPS_PER_ELEMENT = {"silu": 4.0, "gelu": 8.0, "relu": 1.0, "relu2": 2.0}
GATED_ACTIVATION = {"swiglu": "silu", "geglu": "gelu", "gelu": "gelu", "relu": "relu", "relu2": "relu2"}
RESIDUAL_ADD_FLOPS = 1.0
GATE_MULTIPLY_FLOPS = 1.0
ROTARY_FLOPS_PER_ELEMENT = 3.0
MODULATION_FLOPS_PER_ELEMENT = 2.0


#: bytes per element of the activation stream between kernels (residual, norms, all-reduces) when the GEMMs
#: run in a narrower format: TensorRT-LLM and vLLM quantise a GEMM's FP8/FP4 input inside the kernel that
#: produces it and write BF16 outputs, so what is stored and reduced between ops stays BF16
STREAM_MIN_BYTES = 2.0


def attention_precision(compute: str, kv: str) -> str:
    """Precision the attention core runs in. An FP8 core needs FP8 keys and values: TensorRT-LLM quantises Q
    to FP8 and runs FP8 FMHA / MQA only over an FP8 KV cache (its blog "Scaling Expert Parallelism, part 3",
    FP8 context FMHA: "since Q is in BF16 format, FMHA will also be performed in BF16 format" unless the KV
    cache is FP8; "Optimizing DeepSeek R1 Throughput on Blackwell": FP8 MQA in generation with FP8 KV), so
    FP8 weights over a BF16 cache attend in BF16. Otherwise the GEMMs' precision when an attention kernel
    exists for it, else FP8 over an FP8 cache (NVFP4/INT4 weights), else BF16."""
    if compute == "fp8" and kv != "fp8":
        return "bf16" if kv not in ATTENTION_PRECISION_CHOICES else kv
    if compute in ATTENTION_PRECISION_CHOICES:
        return compute
    return "fp8" if kv == "fp8" else "bf16"


class Dtypes:
    """Bytes per element, the compute-precision code of one scenario, that of its attention cores and that
    of its stored weights (which GEMMs widen in the kernel when narrower than the compute precision)."""

    def __init__(self, weight_bytes: float, act_bytes: float, kv_bytes: float, precision: str,
                 kv_precision: str | None = None, weight_precision: str | None = None,
                 attention: str | None = None):
        self.w = weight_bytes
        self.a = act_bytes
        self.kv = kv_bytes
        self.dispatch = act_bytes  # MoE token dispatch width (cosim.graph.build.dtypes narrows it)
        self.state = act_bytes  # a Mamba-2 state cache element (Scenario.ssm_state_precision widens it)
        self.code = PRECISION_CODE[precision]
        self.weight_code = PRECISION_CODE[weight_precision or precision]
        # `attention`: the run's own attention precision (Scenario.attention_precision), else the rule below
        self.attention_code = PRECISION_CODE[attention or attention_precision(precision, kv_precision or precision)]
        # the GEMMs outside the routed experts, where they run in another precision (Scenario.dense_precision)
        self.dense: Dtypes | None = None

    @property
    def outside_experts(self) -> Dtypes:
        """The dtypes of the GEMMs outside the routed experts (these, unless the scenario sets them apart)."""
        return self.dense or self


#: precision of the vocabulary tables (embedding, LM head) of a weight-quantised checkpoint: quantisers leave
#: them unquantised (NVIDIA TensorRT-Model-Optimizer, modelopt/torch/quantization/config.py: every default
#: config, FP8/INT8/INT4-AWQ/W4A8/MXFP8/MXFP4, carries `_default_disabled_quantizer_cfg` with
#: "*lm_head*": {"enable": False}, and no embedding quantiser; DeepSeek's FP8 and gpt-oss's MXFP4 checkpoints
#: quantise only their linear layers / experts)
VOCAB_TABLE_PRECISION = "bf16"


def head_dtypes(dt: Dtypes) -> Dtypes:
    """The dtypes of the vocabulary tables (embedding lookup, LM head): `dt` when its weights are 16-bit or
    wider, else BF16 weights and activations (a quantised checkpoint leaves them unquantised, see
    VOCAB_TABLE_PRECISION)."""
    wide = BYTES_PER_ELEMENT[VOCAB_TABLE_PRECISION]
    if dt.w >= wide:
        return dt
    return Dtypes(wide, max(dt.a, wide), dt.kv, VOCAB_TABLE_PRECISION)


def gemm(name: str, stage: Stage, dt: Dtypes, m: float, k: float, n: float, *, groups: float = 1.0,
         bias: bool = False, kind: OpKind = OpKind.GEMM, repeat: float = 1.0,
         weight_bytes: float | None = None) -> dict:
    """(m x k) @ (k x n) per group. `weight_bytes` overrides k n groups x weight size (e.g. no weights).

    The row's `weight_precision` is the stored weights' format (the compute precision when the GEMM has no
    weights): the engines slow a compute-bound GEMM whose weights must be widened in the kernel, see
    `cosim.engines.analytical`."""
    wbytes = groups * (k * n + (n if bias else 0.0)) * dt.w if weight_bytes is None else weight_bytes
    stored = dt.weight_code if (weight_bytes is None or weight_bytes > 0) else dt.code
    return {
        "name": name, "kind": int(kind), "stage": int(stage), "precision": dt.code, "weight_precision": stored,
        "m": m, "k": k, "n": n, "groups": groups,
        "flops": 2.0 * m * k * n * groups,
        "bytes_weight": wbytes,
        "bytes_act_in": groups * m * k * dt.a,
        "bytes_act_out": groups * m * n * dt.a,
        "repeat": repeat,
    }


def elementwise(name: str, stage: Stage, dt: Dtypes, elements: float, flops_per_element: float, *,
                inputs: float = 1.0, outputs: float = 1.0, weight_elements: float = 0.0,
                fused: bool = False, repeat: float = 1.0) -> dict:
    """An elementwise/norm op over `elements` values reading `inputs` and writing `outputs` tensors."""
    return {
        "name": name, "kind": int(OpKind.ELEMENTWISE), "stage": int(stage), "precision": dt.code,
        "m": elements, "fused": int(fused),
        "flops": elements * flops_per_element,
        "bytes_weight": 0.0 if fused else weight_elements * dt.w,
        "bytes_act_in": 0.0 if fused else inputs * elements * dt.a,
        "bytes_act_out": 0.0 if fused else outputs * elements * dt.a,
        "repeat": repeat,
    }


def embedding(name: str, stage: Stage, dt: Dtypes, tokens: float, hidden: float, *, repeat: float = 1.0) -> dict:
    """Table lookup: gathers `tokens` rows of `hidden` weights (not the whole table), writes them out."""
    return {
        "name": name, "kind": int(OpKind.EMBEDDING), "stage": int(stage), "precision": dt.code,
        "m": tokens, "n": hidden,
        "bytes_weight": tokens * hidden * dt.w,
        "bytes_act_out": tokens * hidden * dt.a,
        "repeat": repeat,
    }


def comm(name: str, stage: Stage, dt: Dtypes, kind: CommKind, payload_bytes: float, group: int, *,
         repeat: float = 1.0) -> dict:
    """A collective (or P2P transfer) of `payload_bytes` per chip among `group` chips."""
    return {
        "name": name, "kind": int(OpKind.COMM), "stage": int(stage), "precision": dt.code,
        "comm_kind": int(kind), "comm_group": int(group), "comm_bytes": payload_bytes,
        "repeat": repeat,
    }
