"""Video diffusion transformers: latent geometry and DiT weight counts, in closed form from the spec.

The op-graph builder and the engines size a video workload from three numbers: the latent shape
(frames x height x width through the VAE's temporal and spatial compression), the DiT token count
(latent shape through the (t, h, w) patch) and the DiT's weights. Counts follow the published model
code layer by layer; tests check them against the tensor counts of the published checkpoints
(Wan2.1-T2V-14B and 1.3B, HunyuanVideo, CogVideoX-5B match exactly).
"""

from __future__ import annotations

from cosim.errors import CosimInputError
from cosim.specs.workload import Dit, VideoDiT


def latent_shape(model: VideoDiT, frames: int, height: int, width: int) -> tuple[int, int, int]:
    """Latent (t, h, w) of a `frames x height x width` video.

    A causal video VAE encodes the first frame alone and every `tc` later frames into one latent
    frame: t = 1 + (frames - 1) // tc. Without a causal first frame, t = frames // tc.
    """
    if min(frames, height, width) <= 0:
        raise CosimInputError(f"video size must be positive, got {frames}x{height}x{width}", field="frames")
    vae = model.vae
    tc, sc = vae.temporal_compression, vae.spatial_compression
    t = 1 + (frames - 1) // tc if vae.causal_first_frame else max(1, frames // tc)
    if height % sc or width % sc:
        raise CosimInputError(
            f"height x width {height}x{width} is not a multiple of the VAE's spatial compression {sc}",
            field="height",
        )
    return t, height // sc, width // sc


def dit_tokens(model: VideoDiT, frames: int, height: int, width: int) -> int:
    """Video tokens the DiT attends over: the latent shape divided by the (t, h, w) patch (ceil)."""
    t, h, w = latent_shape(model, frames, height, width)
    pt, ph, pw = model.dit.patch_size
    return -(-t // pt) * -(-h // ph) * -(-w // pw)


def _lin(dit: Dit, n_in: int, n_out: int, bias: bool | None = None) -> int:
    use_bias = dit.linear_bias if bias is None else bias
    return n_in * n_out + (n_out if use_bias else 0)


def _qk_norm(dit: Dit) -> int:
    att = dit.num_heads * dit.head_dim
    return {"none": 0, "rms_head": 2 * dit.head_dim, "rms_full": 2 * att, "layernorm_head": 4 * dit.head_dim}[
        dit.qk_norm
    ]


def _self_attn(dit: Dit) -> int:
    d, a = dit.hidden_size, dit.num_heads * dit.head_dim
    return 3 * _lin(dit, d, a) + _lin(dit, a, d) + _qk_norm(dit)


def _cross_attn(dit: Dit) -> int:
    """Queries from video tokens; keys/values from text (already projected to hidden unless no projection).

    With image-conditioning tokens (Wan I2V) the block also holds K/V projections for the image tokens
    (projected to hidden by the image embedder) and, under qk_norm, an RMSNorm on their keys."""
    d, a = dit.hidden_size, dit.num_heads * dit.head_dim
    kv_in = d if dit.text_proj_layers or dit.text_refiner_layers else dit.text_dim
    total = _lin(dit, d, a) + 2 * _lin(dit, kv_in, a) + _lin(dit, a, d) + _qk_norm(dit)
    if dit.image_context_tokens:
        total += 2 * _lin(dit, d, a) + _qk_norm(dit) // 2
    return total


def _ffn(dit: Dit) -> int:
    d, m = dit.hidden_size, dit.mlp.intermediate_size
    n_in = 2 if dit.mlp.gated else 1
    b = dit.mlp.bias
    return n_in * (d * m + (m if b else 0)) + m * d + (d if b else 0)


def _tdim(dit: Dit) -> int:
    return dit.timestep_dim or dit.hidden_size


def _modulation(dit: Dit, vectors: int) -> int:
    """Per-block adaLN weights producing `vectors` x hidden (shift/scale/gate ...)."""
    if not dit.adaln_modulation:
        return 0
    d = dit.hidden_size
    if dit.modulation == "shared":
        return vectors * d  # learned table added to the shared projection's output (Wan)
    if dit.modulation == "lora":
        r = dit.modulation_rank or 0
        return _lin(dit, d, r) + _lin(dit, r, vectors * d)
    return _lin(dit, _tdim(dit), vectors * d)


def _timestep_embedder(dit: Dit, width: int) -> int:
    return _lin(dit, dit.timestep_freq_dim, width) + _lin(dit, width, width)


def _blocks(dit: Dit) -> int:
    d, a, m = dit.hidden_size, dit.num_heads * dit.head_dim, dit.mlp.intermediate_size
    layout = dit.layout
    norm = 2 * d if dit.norm_affine else 0
    if layout == "cross_attn":
        per = _self_attn(dit) + _cross_attn(dit) + _ffn(dit) + (2 * d if dit.cross_attn_norm else 0)
        if dit.modulation == "lora":  # Cosmos: shift/scale/gate before each of the three sub-blocks
            per += 3 * _modulation(dit, 3)
        else:
            per += _modulation(dit, 6)
        return dit.num_layers * per
    if layout == "joint_expert_adaln":
        # CogVideoX: one weight set over [text; video]; each of the two norms emits 6 vectors (3 per modality)
        per = _self_attn(dit) + _ffn(dit) + 2 * (_modulation(dit, 6) + norm)
        return dit.num_layers * per
    # mmdit: dual-stream blocks (separate video and text weights), then single-stream parallel blocks
    double = 2 * (_self_attn(dit) + _ffn(dit) + _modulation(dit, 6))
    single = _lin(dit, d, 3 * a + m) + _lin(dit, a + m, d) + _qk_norm(dit) + _modulation(dit, 3)
    n_double = dit.num_double_stream_layers
    return n_double * double + (dit.num_layers - n_double) * single


def _text_refiner(dit: Dit) -> int:
    """HunyuanVideo's SingleTokenRefiner: input projection, its own timestep and pooled-text embedders, and
    `text_refiner_layers` self-attention blocks with affine LayerNorms and a 2-vector gate."""
    d, a = dit.hidden_size, dit.num_heads * dit.head_dim
    block = 4 * d + 3 * _lin(dit, d, a) + _lin(dit, a, d) + _ffn(dit) + _lin(dit, d, 2 * d)
    head = _lin(dit, dit.text_dim, d) + _timestep_embedder(dit, d) + _lin(dit, dit.text_dim, d) + _lin(dit, d, d)
    return head + dit.text_refiner_layers * block


def _embeddings(model: VideoDiT) -> int:
    dit = model.dit
    d = dit.hidden_size
    pt, ph, pw = dit.patch_size
    in_ch = dit.in_channels or model.vae.latent_channels
    total = _lin(dit, in_ch * pt * ph * pw, d)
    if dit.extra_input_embed_features:
        total += _lin(dit, dit.extra_input_embed_features, d)
    if dit.learned_pos_embed_axes:
        total += sum(dit.learned_pos_embed_axes) * d
    if dit.image_embed_dim:  # Wan I2V MLPProj: LayerNorm, Linear(e, e), GELU, Linear(e, d), LayerNorm
        e = dit.image_embed_dim
        total += 2 * e + _lin(dit, e, e) + _lin(dit, e, d) + 2 * d
    # text projection
    if dit.text_refiner_layers:
        total += _text_refiner(dit)
    elif dit.text_proj_layers:
        total += _lin(dit, dit.text_dim, d) + (dit.text_proj_layers - 1) * _lin(dit, d, d)
    if dit.pooled_text_dim:
        total += _lin(dit, dit.pooled_text_dim, d) + _lin(dit, d, d)
    # timestep embedding (and the shared modulation projection where blocks share one)
    tdim = _tdim(dit)
    if dit.modulation == "lora":
        # Cosmos: Linear(freq, hidden) then Linear(hidden, 3 x hidden) feeding every block, and an RMSNorm
        total += _lin(dit, dit.timestep_freq_dim, tdim) + _lin(dit, tdim, 3 * tdim) + tdim
    else:
        total += _timestep_embedder(dit, tdim)
    if dit.modulation == "shared" and dit.adaln_modulation:
        total += _lin(dit, tdim, 6 * d)
    if dit.guidance_embed:
        total += _timestep_embedder(dit, tdim)
    return total


def _final_layer(model: VideoDiT) -> int:
    dit = model.dit
    d = dit.hidden_size
    pt, ph, pw = dit.patch_size
    total = _lin(dit, d, pt * ph * pw * model.vae.latent_channels) + _modulation(dit, 2)
    if dit.norm_affine:
        total += 2 * d  # the adaptive norm's own LayerNorm
        if dit.layout == "joint_expert_adaln":
            total += 2 * d  # CogVideoX's extra norm_final before the adaptive output norm
    return total


def dit_params(model: VideoDiT) -> int:
    """DiT weights: patch embedding, text projection/refiner, timestep (and guidance) embedders, blocks
    (self-attention, cross-attention, FFN, adaLN modulation; MMDiT dual-stream blocks have separate
    text-stream weights) and the final layer. Text encoder and VAE are not included. One denoiser expert:
    see `dit_params_held`."""
    return _embeddings(model) + _blocks(model.dit) + _final_layer(model)


def dit_params_held(model: VideoDiT) -> int:
    """DiT weights held: `num_denoiser_experts` copies of the DiT (Wan2.2 A14B: 2), of which each step runs one."""
    return model.num_denoiser_experts * dit_params(model)


def text_encoder_params(model: VideoDiT) -> float:
    """Published encoder size when the spec gives it, else a closed form (embedding + layers)."""
    enc = model.text_encoder
    if enc.params:
        return float(enc.params)
    d, a = enc.hidden_size, enc.num_heads * enc.head_dim
    kv = (enc.num_kv_heads or enc.num_heads) * enc.head_dim
    attn = d * a + 2 * d * kv + a * d
    mlp = (3 if enc.mlp.gated else 2) * d * enc.mlp.intermediate_size
    return float(enc.vocab_size * d + enc.num_layers * (attn + mlp + 2 * d) + d)
