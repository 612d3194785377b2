"""Parameter counts (total and active per token) and KV-cache size, in closed form from the spec.

These are the reference figures the op graph must agree with; tests compare them with the
published totals (e.g. Llama-3.1-8B 8.03B, DeepSeek-V3 671B/37B).
"""

from __future__ import annotations

from cosim.specs.workload import Attention, DecoderLM, Mamba2, Mlp, VideoDiT, VisionEncoder


def attention_params(hidden: int, att: Attention) -> int:
    """Weights of one self-attention block (projections, biases, MLA norms)."""
    if att.kind == "mla":
        nope, rope, v = att.qk_nope_head_dim, att.qk_rope_head_dim, att.v_head_dim
        qk_dim = att.num_heads * (nope + rope)
        if att.q_lora_rank:
            q = hidden * att.q_lora_rank + att.q_lora_rank + att.q_lora_rank * qk_dim
        else:
            q = hidden * qk_dim
        kv = hidden * (att.kv_lora_rank + rope) + att.kv_lora_rank + att.kv_lora_rank * att.num_heads * (nope + v)
        o = att.num_heads * v * hidden
        return q + kv + o
    q_dim = att.num_heads * att.head_dim
    kv_dim = att.num_kv_heads * att.head_dim
    params = hidden * q_dim + 2 * hidden * kv_dim + q_dim * hidden
    if att.qkv_bias:
        params += q_dim + 2 * kv_dim
    if att.out_bias:
        params += hidden
    if att.qk_norm:  # Qwen3: one RMSNorm weight vector of head_dim for q and one for k, shared by heads
        params += 2 * att.head_dim
    return params


def mlp_params(hidden: int, mlp: Mlp, intermediate: int | None = None) -> int:
    """Weights of one MLP (or one expert): 3 matrices if gated, 2 if not, plus biases if `mlp.bias`."""
    width = intermediate or mlp.intermediate_size
    params = (3 if mlp.gated else 2) * hidden * width
    if mlp.bias:  # GPT-J fc_in/fc_out biases: (2 if gated) x width + hidden
        params += (2 if mlp.gated else 1) * width + hidden
    return params


def mamba_params(hidden: int, mamba: Mamba2) -> int:
    """Weights of one Mamba-2 mixer: in_proj and out_proj (and their biases), the depthwise conv (and its
    bias), dt_bias, A_log and D (one per head each) and the gated norm's weight (one per inner channel)."""
    params = hidden * mamba.in_proj_size + mamba.inner_size * hidden
    if mamba.proj_bias:
        params += mamba.in_proj_size + hidden
    params += mamba.conv_channels * (mamba.conv_kernel + (1 if mamba.conv_bias else 0))
    return params + 3 * mamba.num_heads + mamba.inner_size


def _hybrid_block_params(model: DecoderLM, active: bool = False) -> int:
    """All blocks of a hybrid model (`hybrid_pattern`), each with its own pre-norm; `active`: the MoE blocks
    count only the experts a token is routed to."""
    h = model.hidden_size
    n = model.block_counts()
    total = n.attention * attention_params(h, model.attention) + n.mlp * mlp_params(h, model.mlp)
    if n.mamba:
        total += n.mamba * mamba_params(h, model.mamba)
    if n.moe:
        moe = model.moe
        experts = moe.experts_per_token if active else moe.num_experts
        total += n.moe * (experts * mlp_params(h, model.mlp, moe.expert_intermediate_size)
                          + _router_params(model) + _shared_expert_params(model))
    return total + model.num_layers * _norm_params(model)


def _router_params(model: DecoderLM) -> int:
    moe = model.moe
    return model.hidden_size * moe.num_experts + (moe.num_experts if moe.router_bias else 0)


def _norm_params(model: DecoderLM) -> int:
    return model.hidden_size * (2 if model.norm == "layernorm" else 1)


def _decoder_layer_params(model: DecoderLM) -> tuple[int, int, int, int]:
    """(dense layers, moe layers, params of a dense layer, per-layer shared part of a MoE layer)."""
    h = model.hidden_size
    att = attention_params(h, model.attention)
    # a parallel block feeds attention and MLP from one LayerNorm (GPT-J's ln_1) or two (Falcon's)
    norms = (model.parallel_block_norms if model.parallel_attention_mlp else 2) * _norm_params(model)
    n_moe = model.moe_layers
    n_dense = model.num_layers - n_moe
    dense_layer = att + norms + mlp_params(h, model.mlp)
    return n_dense, n_moe, dense_layer, att + norms


def _shared_expert_params(model: DecoderLM) -> int:
    moe = model.moe
    if not moe or not moe.num_shared_experts:
        return 0
    width = moe.shared_expert_intermediate_size or moe.expert_intermediate_size
    return moe.num_shared_experts * mlp_params(model.hidden_size, model.mlp, width)


def _embedding_params(model: DecoderLM, include_input: bool = True) -> int:
    """Input embedding (with a learned position table, if any) plus (untied) output head, with the head's bias."""
    emb = model.vocab_size * model.hidden_size
    head = 0 if model.tie_word_embeddings else emb
    if model.lm_head_bias:
        head += model.vocab_size
    if model.tie_word_embeddings and not include_input:
        return emb + head  # tied: the one matrix is used by the output head
    positions = model.max_position_embeddings * model.hidden_size if model.learned_position_embeddings else 0
    return (emb + positions if include_input else 0) + head


def vision_tower_params(vision: VisionEncoder) -> int:
    """A SigLIP-style encoder: patch embedding (a conv of 3 x patch^2 inputs, with bias), one learned position
    per patch, per block q/k/v/o and the GELU MLP with biases and two LayerNorms, the final LayerNorm."""
    h = vision.hidden_size
    block = (4 * h * h + 4 * h) + mlp_params(h, vision.mlp) + 2 * 2 * h
    return 3 * vision.patch_size**2 * h + h + vision.patches * h + vision.num_layers * block + 2 * h


def vision_params(model: DecoderLM) -> int:
    """The image encoder and its projector (an RMSNorm and a matrix into the language model's width); 0 for a
    text-only model. Not part of `params_total`, which counts the language model (as the video models' text
    encoder and VAE are not)."""
    vision = model.vision
    if vision is None:
        return 0
    return vision_tower_params(vision) + vision.hidden_size + vision.hidden_size * model.hidden_size


def image_tokens(model: DecoderLM, images: int) -> int:
    """Prompt tokens `images` images add through the model's image encoder; an error for a model without one."""
    if not images:
        return 0
    if model.vision is None:
        from cosim.errors import CosimInputError

        raise CosimInputError(f"'{model.name}' has no image encoder (workload `vision`: fixed-resolution encoders "
                              "such as Gemma 3's); images_per_request needs a multimodal model",
                              field="images_per_request")
    return images * model.vision.tokens_per_image


def mtp_params(model: DecoderLM) -> int:
    """The multi-token-prediction modules (`mtp_modules`): each one decoder layer of the model's last kind (a MoE
    layer with its router and shared experts, else a dense one), the 2h -> h projection of [embedding; hidden]
    and three RMSNorms (the two inputs', the head's), sharing the embedding and output head with the main model
    (DeepSeek-V3, arXiv 2412.19437 Sec. 2.2). Not part of `params_total`, as DeepSeek's 671B is not."""
    if not model.mtp_modules:
        return 0
    h = model.hidden_size
    _, _, dense_layer, moe_base = _decoder_layer_params(model)
    layer = dense_layer if model.moe is None else _moe_layer_params(model, moe_base)
    return model.mtp_modules * (layer + 2 * h * h + 3 * _norm_params(model))


def _moe_layer_params(model: DecoderLM, moe_base: int) -> int:
    """One MoE layer: its shared part (`moe_base`: attention and norms), every routed expert, the router and the
    shared experts."""
    experts = model.moe.num_experts * mlp_params(model.hidden_size, model.mlp, model.moe.expert_intermediate_size)
    return moe_base + experts + _router_params(model) + _shared_expert_params(model)


def params_total(model: DecoderLM | VideoDiT) -> float:
    """All weights of the language model, embeddings included (DiT only for video models; a multimodal
    model's image encoder is `vision_params`)."""
    if isinstance(model, VideoDiT):  # every denoiser expert's weights are held
        from cosim.workloads.video import dit_params_held

        return float(dit_params_held(model))
    if model.hybrid_pattern is not None:
        return float(_hybrid_block_params(model) + _embedding_params(model) + _norm_params(model))
    n_dense, n_moe, dense_layer, moe_base = _decoder_layer_params(model)
    total = n_dense * dense_layer + _embedding_params(model) + _norm_params(model)
    if model.moe:
        total += n_moe * _moe_layer_params(model, moe_base)
    return float(total)


def params_active(model: DecoderLM | VideoDiT, include_input_embedding: bool = True) -> float:
    """Weights touched per token: all dense weights plus `experts_per_token` routed experts.

    Conventions differ: Mistral (Mixtral 12.9B) and Qwen (Qwen3-235B-A22B 22B) count both embedding
    matrices; DeepSeek-V3's "37B activated" (36.6B in its README_WEIGHTS) leaves out the input
    embedding, a table lookup. `include_input_embedding=False` gives DeepSeek's convention.
    """
    if isinstance(model, VideoDiT):  # one denoiser expert runs per step
        from cosim.workloads.video import dit_params

        return float(dit_params(model))
    if not include_input_embedding:
        drop = _embedding_params(model) - _embedding_params(model, include_input=False)
        return params_active(model) - float(drop)
    if model.moe is None:
        return params_total(model)
    if model.hybrid_pattern is not None:
        return float(_hybrid_block_params(model, active=True) + _embedding_params(model) + _norm_params(model))
    h = model.hidden_size
    moe = model.moe
    n_dense, n_moe, dense_layer, moe_base = _decoder_layer_params(model)
    routed = moe.experts_per_token * mlp_params(h, model.mlp, moe.expert_intermediate_size)
    router = h * moe.num_experts + (moe.num_experts if moe.router_bias else 0)
    total = n_dense * dense_layer + _embedding_params(model) + _norm_params(model)
    total += n_moe * (moe_base + routed + router + _shared_expert_params(model))
    return float(total)


def kv_cache_elements_per_token(model: DecoderLM) -> float:
    """Cached elements per token over all attention layers (K and V; MLA caches the compressed latent + rope
    key); a hybrid model's Mamba-2 layers keep a state per sequence instead (`ssm_state_bytes_per_sequence`)."""
    att = model.attention
    if att.kind == "mla":
        return float(model.attention_layers * (att.kv_lora_rank + att.qk_rope_head_dim))
    return float(2 * model.attention_layers * att.num_kv_heads * att.head_dim)


def kv_cache_bytes_per_token(model: DecoderLM, bytes_per_element: float = 2.0) -> float:
    """KV-cache bytes per token = 2 x layers x KV heads x head dim x bytes (MLA: latent + rope key)."""
    return kv_cache_elements_per_token(model) * bytes_per_element


def ssm_state_bytes_per_sequence(model: DecoderLM, state_bytes: float = 2.0, conv_bytes: float = 2.0) -> float:
    """Mamba-2 cache of one sequence over all layers: heads x head_dim x state size SSM state elements and
    (conv_kernel - 1) x (inner + 2 groups x state) conv-window elements per Mamba-2 layer; 0 without any."""
    n_mamba = model.block_counts().mamba
    if not n_mamba:
        return 0.0
    mb = model.mamba
    conv = (mb.conv_kernel - 1) * mb.conv_channels
    return float(n_mamba * (mb.num_heads * mb.head_dim * mb.state_size * state_bytes + conv * conv_bytes))
