"""Op rows of a multimodal LM's image encoder: each image's patches through a ViT, pooled and projected.

A prompt with images runs its encoder once, in the prefill that admits it (vLLM schedules the encoder with
the request's first prompt chunk). Per image: the patch embedding (a stride-`patch` conv, as a GEMM of
3 x patch^2 inputs), `num_layers` pre-LayerNorm blocks over all of its patches (non-causal attention, a
GELU MLP, biases throughout), the final LayerNorm, average pooling to `tokens_per_image`, an RMSNorm and the
projection into the language model (Gemma 3's SigLIP tower and `mm_input_projection`). Tensor parallelism
splits the heads and the MLP width, with two all-reduces a block, as vLLM shards the tower; the projection
runs whole on every chip. The tower stays BF16 under a quantised language model (as the vocabulary tables:
quantisers leave it alone), so its rows take `head_dtypes`.
"""

from __future__ import annotations

from cosim.graph.attention import attention_core
from cosim.graph.moe import mlp_rows
from cosim.graph.optable import CommKind, Stage
from cosim.graph.rows import (
    NORM_FLOPS_PER_ELEMENT,
    RESIDUAL_ADD_FLOPS,
    Dtypes,
    comm,
    elementwise,
    gemm,
    head_dtypes,
)
from cosim.specs.workload import VisionEncoder

#: FLOPs per input element of average pooling (one add per input, the divide amortised)
POOL_FLOPS_PER_ELEMENT = 1.0


def vision_rows(vision: VisionEncoder, lm_hidden: int, dt: Dtypes, tp: int, images: float) -> list[dict]:
    """Rows for `images` images on one chip of a `tp`-way group (per-chip widths, `repeat` = layers)."""
    if images <= 0:
        return []
    dt = head_dtypes(dt)
    st = Stage.VISION_ENCODER
    h, inner, L, P = vision.hidden_size, vision.intermediate_size, vision.num_layers, vision.patches
    heads, d = vision.num_heads / tp, vision.head_dim
    tokens = images * P
    norm = NORM_FLOPS_PER_ELEMENT["layernorm"] + RESIDUAL_ADD_FLOPS
    rows = [
        gemm("vision.patch_embed", st, dt, tokens, 3 * vision.patch_size**2, h, bias=True),
        elementwise("vision.attn_norm", st, dt, tokens * h, norm, inputs=2, outputs=2, weight_elements=2 * h,
                    repeat=L),
        gemm("vision.qkv_proj", st, dt, tokens, h, 3 * h / tp, bias=True, repeat=L),
        attention_core("vision.attention", st, dt, batch=images, heads=heads, kv_heads=heads, q_len=P, kv_len=P,
                       head_dim=d, head_dim_v=d, pairs=float(P) * P, causal=False,
                       act_in=tokens * 3 * h / tp, act_out=tokens * h / tp, repeat=L),
        gemm("vision.o_proj", st, dt, tokens, h / tp, h, bias=True, repeat=L),
        elementwise("vision.mlp_norm", st, dt, tokens * h, norm, inputs=2, outputs=2, weight_elements=2 * h,
                    repeat=L),
    ]
    rows += mlp_rows("vision.mlp", st, dt, vision.mlp, tokens, h, inner / tp, L)
    if tp > 1:
        rows += [comm("vision.attn_allreduce", st, dt, CommKind.ALL_REDUCE, tokens * h * dt.a, tp, repeat=L),
                 comm("vision.mlp_allreduce", st, dt, CommKind.ALL_REDUCE, tokens * h * dt.a, tp, repeat=L)]
    pooled = images * vision.tokens_per_image
    rows += [
        elementwise("vision.post_norm", st, dt, tokens * h, NORM_FLOPS_PER_ELEMENT["layernorm"],
                    weight_elements=2 * h),
        elementwise("vision.pool", st, dt, tokens * h, POOL_FLOPS_PER_ELEMENT, outputs=pooled / tokens),
        elementwise("vision.soft_emb_norm", st, dt, pooled * h, NORM_FLOPS_PER_ELEMENT["rmsnorm"],
                    weight_elements=h),
        gemm("vision.projection", st, dt, pooled, h, lm_hidden),
    ]
    return rows
