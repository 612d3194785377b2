"""Workload spec schema: dense decoders, mixture-of-experts decoders and video diffusion transformers.

Loaded from `workloads/*.yaml` or a Hugging Face `config.json` (see `cosim.specs.hf_import`).
Architecture numbers come from the model's published config, cited once in `source`.
"""

from __future__ import annotations

from typing import Annotated, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

SCHEMA_VERSION = 1


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Frozen):
    """Where the architecture figures come from (config.json URL, paper + table)."""

    title: str
    url: str | None = None
    date: str | None = None
    note: str | None = None


def _divides_heads(value: int, name: str, info: ValidationInfo) -> int:
    """`value` (KV heads, B/C groups) must divide the section's `num_heads`, validated before it."""
    heads = info.data.get("num_heads")
    if heads and heads % value:
        raise ValueError(f"num_heads ({heads}) must be a multiple of {name} ({value})")
    return value


class Attention(_Frozen):
    """Self-attention geometry. `kind: mla` adds DeepSeek's low-rank projections."""

    kind: Literal["mha", "gqa", "mqa", "mla"] = "gqa"
    num_heads: int = Field(gt=0)
    num_kv_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    qkv_bias: bool = False
    out_bias: bool = Field(default=False, description="bias on the output projection")
    qk_norm: bool = Field(default=False, description="per-head RMSNorm on q and k (Qwen3): 2 x head_dim weights")
    # MLA (DeepSeek-V2/V3): q/kv LoRA ranks and rope/nope head dims
    q_lora_rank: int | None = Field(default=None, ge=0, description="0 or null: full-rank q projection")
    kv_lora_rank: int | None = Field(default=None, gt=0)
    qk_rope_head_dim: int | None = Field(default=None, gt=0)
    qk_nope_head_dim: int | None = Field(default=None, gt=0)
    v_head_dim: int | None = Field(default=None, gt=0)
    sliding_window: int | None = Field(default=None, gt=0, description="window length for windowed layers")
    sliding_window_layers: int = Field(default=0, ge=0, description="how many layers use the window")
    window_kind: Literal["sliding", "chunked"] = Field(
        default="sliding", description="sliding: a query sees the window's last keys and the cache keeps the window "
                                       "(Mistral, Gemma); chunked: a query sees the keys of its own window-long chunk "
                                       "only, and the cache keeps every token (Llama 4's attention_chunk_size, a mask "
                                       "of the attention kernels, not a window of the KV cache manager)")

    @field_validator("num_kv_heads")
    @classmethod
    def _kv_divides_heads(cls, kv: int, info: ValidationInfo) -> int:
        # a field validator (not the model validator) so the error names `attention.num_kv_heads`
        return _divides_heads(kv, "num_kv_heads", info)

    @model_validator(mode="after")
    def _check(self) -> Attention:
        if self.kind == "mla":
            need = ("kv_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim")
            missing = [n for n in need if getattr(self, n) is None]
            if missing:
                raise ValueError(f"MLA attention needs {missing}")
        if self.sliding_window_layers and self.sliding_window is None:
            raise ValueError("sliding_window_layers > 0 needs sliding_window")
        if self.window_kind == "chunked" and self.sliding_window is None:
            raise ValueError("window_kind 'chunked' needs sliding_window (the chunk length)")
        return self


class Mlp(_Frozen):
    kind: Literal["swiglu", "geglu", "gelu", "relu", "relu2"] = Field(
        default="swiglu", description="relu2: squared ReLU, ungated (Nemotron-H, Primer)")
    intermediate_size: int = Field(gt=0)
    bias: bool = Field(default=False, description="biases on the MLP projections (GPT-J)")

    @property
    def gated(self) -> bool:
        return self.kind in ("swiglu", "geglu")


class Moe(_Frozen):
    """Routed experts; `first_dense_layers` use the dense `mlp` instead."""

    num_experts: int = Field(gt=0)
    experts_per_token: int = Field(gt=0)
    expert_intermediate_size: int = Field(gt=0)
    num_shared_experts: int = Field(default=0, ge=0)
    shared_expert_intermediate_size: int | None = Field(default=None, gt=0)
    first_dense_layers: int = Field(default=0, ge=0)
    router_bias: bool = False

    @field_validator("experts_per_token")
    @classmethod
    def _k_within_experts(cls, k: int, info: ValidationInfo) -> int:
        # a field validator so the one-line error names `moe.experts_per_token`
        n = info.data.get("num_experts")
        if n and k > n:
            raise ValueError(f"experts_per_token ({k}) exceeds num_experts ({n})")
        return k


class Mamba2(_Frozen):
    """A Mamba-2 (SSD) mixer (Dao & Gu, ICML 2024): in_proj to z, x, B, C and dt; a causal depthwise conv over
    x, B, C; the selective scan; a gated RMSNorm; out_proj. Inner width = num_heads x head_dim."""

    num_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    num_groups: int = Field(gt=0, description="groups sharing B and C (n_groups)")
    state_size: int = Field(gt=0, description="SSM state dimension N (ssm_state_size)")
    conv_kernel: int = Field(default=4, gt=0)
    chunk_size: int = Field(default=256, gt=0, description="SSD chunk length of the prefill scan")
    conv_bias: bool = True
    proj_bias: bool = Field(default=False, description="biases on in_proj and out_proj (use_bias)")

    @field_validator("num_groups")
    @classmethod
    def _groups_divide_heads(cls, g: int, info: ValidationInfo) -> int:
        return _divides_heads(g, "num_groups", info)

    @property
    def inner_size(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def conv_channels(self) -> int:
        """Channels of the depthwise conv: x, B and C."""
        return self.inner_size + 2 * self.num_groups * self.state_size

    @property
    def in_proj_size(self) -> int:
        """Outputs of in_proj: z and x (inner each), B and C (groups x state each), dt (one per head)."""
        return 2 * self.inner_size + 2 * self.num_groups * self.state_size + self.num_heads


class VisionEncoder(_Frozen):
    """A fixed-resolution ViT image encoder (SigLIP, as Gemma 3 uses) and its projection into the language model.

    Every image is resized to `image_size` x `image_size` and cut into (image_size / patch_size)^2 patches,
    which run through `num_layers` pre-LayerNorm blocks (non-causal attention over the patches, a GELU MLP,
    biases throughout); the patches are pooled to `tokens_per_image` tokens, RMS-normalised and projected to
    the language model's width. Tiled (Llama 4) and dynamic-resolution (Qwen-VL) encoders, whose token count
    depends on each image's size, are not this schema."""

    num_layers: int = Field(gt=0)
    hidden_size: int = Field(gt=0)
    intermediate_size: int = Field(gt=0)
    num_heads: int = Field(gt=0)
    patch_size: int = Field(gt=0, description="pixels on a side of one patch")
    image_size: int = Field(gt=0, description="pixels on a side every image is resized to")
    tokens_per_image: int = Field(gt=0, description="tokens each image adds to the prompt (after pooling)")

    @model_validator(mode="after")
    def _check(self) -> VisionEncoder:
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size ({self.hidden_size}) must be a multiple of num_heads ({self.num_heads})")
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size ({self.image_size}) must be a multiple of patch_size ({self.patch_size})")
        if self.tokens_per_image > self.patches:
            raise ValueError(f"tokens_per_image ({self.tokens_per_image}) exceeds the {self.patches} patches")
        return self

    @property
    def patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def mlp(self) -> Mlp:
        """A block's MLP: ungated GELU with biases (SigLIP's fc1, fc2)."""
        return Mlp(kind="gelu", intermediate_size=self.intermediate_size, bias=True)


class BlockCounts(NamedTuple):
    """Blocks of each kind among some layers of a decoder."""

    attention: int
    mlp: int
    mamba: int
    moe: int


class DecoderLM(_Frozen):
    """A decoder-only language model (dense, or MoE when `moe` is set)."""

    schema_version: Literal[1] = 1
    family: Literal["dense", "moe"]
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9.\-]*$")
    display_name: str
    source: Source
    hidden_size: int = Field(gt=0)
    num_layers: int = Field(gt=0)
    vocab_size: int = Field(gt=0)
    attention: Attention
    mlp: Mlp
    moe: Moe | None = None
    tie_word_embeddings: bool = False
    norm: Literal["rmsnorm", "layernorm"] = "rmsnorm"
    parallel_attention_mlp: bool = Field(
        default=False, description="attention and MLP run in parallel off the layer input (GPT-J, Falcon)"
    )
    parallel_block_norms: int = Field(
        default=1, ge=1, le=2, description="pre-norms of a parallel block: 1 shared by attention and MLP (GPT-J's "
                                           "ln_1), 2 (Falcon's new decoder architecture: ln_attn and ln_mlp)"
    )
    lm_head_bias: bool = Field(default=False, description="bias on the output projection to the vocabulary")
    max_position_embeddings: int | None = Field(default=None, gt=0)
    learned_position_embeddings: bool = Field(
        default=False, description="a learned table of max_position_embeddings x hidden_size added to the input "
                                   "embedding (GPT-2, MPT's learned_pos_emb) instead of rotary or ALiBi positions")
    hybrid_pattern: str | None = Field(
        default=None, pattern=r"^[ME*-]+$",
        description="hybrid models (Nemotron-H): one letter per layer, each layer one block with its own pre-norm "
                    "and residual: M a Mamba-2 mixer, * self-attention, - the MLP, E the MoE layer of `moe`; "
                    "null: every layer is attention + MLP (or MoE)")
    mamba: Mamba2 | None = Field(default=None, description="the Mamba-2 mixer of a hybrid model's M layers")
    vision: VisionEncoder | None = Field(
        default=None, description="multimodal checkpoints: the image encoder whose tokens join the prompt "
                                  "(Scenario.images_per_request); null: a text-only model")
    mtp_modules: int = Field(
        default=0, ge=0,
        description="multi-token-prediction modules shipped with the checkpoint (DeepSeek-V3's "
                    "num_nextn_predict_layers): each is one decoder layer of the model's last kind behind two "
                    "norms and a 2h -> h projection, sharing the embedding and output head; they draft tokens "
                    "for speculative decoding (Scenario.draft_tokens). Not counted in params_total")
    published_params_total: float | None = Field(default=None, gt=0, description="published total, for tests")
    published_params_active: float | None = Field(default=None, gt=0)
    notes: str | None = None

    @model_validator(mode="after")
    def _check(self) -> DecoderLM:
        if self.family == "moe" and self.moe is None:
            raise ValueError("family 'moe' needs a 'moe' section")
        if self.family == "dense" and self.moe is not None:
            raise ValueError("family 'dense' must not have a 'moe' section")
        if self.moe and self.moe.first_dense_layers > self.num_layers:
            raise ValueError("moe.first_dense_layers exceeds num_layers")
        if self.attention.sliding_window_layers > self.num_layers:
            raise ValueError("attention.sliding_window_layers exceeds num_layers")
        if self.learned_position_embeddings and self.max_position_embeddings is None:
            raise ValueError("learned_position_embeddings needs max_position_embeddings (the table's rows)")
        if self.parallel_block_norms != 1 and not self.parallel_attention_mlp:
            raise ValueError("parallel_block_norms applies to a parallel block: set parallel_attention_mlp")
        if self.hybrid_pattern is not None:
            if len(self.hybrid_pattern) != self.num_layers:
                raise ValueError(f"hybrid_pattern has {len(self.hybrid_pattern)} layers, num_layers is {self.num_layers}")
            if ("M" in self.hybrid_pattern) != (self.mamba is not None):
                raise ValueError("a hybrid_pattern with M layers needs a 'mamba' section (and only then)")
            if "*" not in self.hybrid_pattern:
                raise ValueError("hybrid_pattern has no attention layer ('*')")
            if ("E" in self.hybrid_pattern) != (self.moe is not None):
                raise ValueError("a hybrid_pattern with E (MoE) layers needs a 'moe' section (and only then)")
            if self.moe is not None and self.moe.first_dense_layers:
                raise ValueError("a hybrid model's MoE layers are its E blocks: moe.first_dense_layers must be 0")
            if self.attention.sliding_window_layers or self.parallel_attention_mlp:
                raise ValueError("hybrid models take neither sliding-window layers nor a parallel attention/MLP block")
            if self.mtp_modules:
                raise ValueError("mtp_modules is modelled for attention + MLP/MoE stacks, not hybrid models")
        elif self.mamba is not None:
            raise ValueError("a 'mamba' section needs a hybrid_pattern saying which layers are Mamba-2")
        return self

    def block_counts(self, start: int = 0, end: int | None = None) -> BlockCounts:
        """Attention, dense-MLP, Mamba-2 and MoE blocks among layers [start, end). Not hybrid: every layer has
        attention, and an MLP or (from `moe.first_dense_layers` on) a MoE block."""
        end = self.num_layers if end is None else end
        if self.hybrid_pattern is None:
            first_moe = self.moe.first_dense_layers if self.moe else end
            n_moe = max(0, end - max(start, first_moe))
            return BlockCounts(end - start, end - start - n_moe, 0, n_moe)
        part = self.hybrid_pattern[start:end]
        return BlockCounts(part.count("*"), part.count("-"), part.count("M"), part.count("E"))

    @property
    def attention_layers(self) -> int:
        """Layers that hold a KV cache."""
        return self.block_counts().attention

    @property
    def moe_layers(self) -> int:
        """Layers whose feed-forward is the routed experts."""
        return self.block_counts().moe


class TextEncoder(_Frozen):
    """The prompt encoder of a video model (e.g. umT5-XXL, a dense transformer encoder), run once."""

    name: str
    hidden_size: int = Field(gt=0)
    num_layers: int = Field(gt=0)
    num_heads: int = Field(gt=0)
    num_kv_heads: int | None = Field(default=None, gt=0, description="GQA encoders (LLM used as encoder); null: MHA")
    head_dim: int = Field(gt=0)
    mlp: Mlp
    vocab_size: int = Field(gt=0)
    layers_used: int | None = Field(
        default=None, gt=0, description="layers actually run when a hidden state before the last is taken"
    )
    params: float | None = Field(default=None, gt=0, description="published parameter count of the encoder")
    max_tokens: int = Field(gt=0, description="text tokens fed to the DiT's cross-attention")


class Vae(_Frozen):
    """The video VAE: compression factors and the decoder's cost per output pixel-frame."""

    temporal_compression: int = Field(gt=0)
    spatial_compression: int = Field(gt=0)
    latent_channels: int = Field(gt=0)
    causal_first_frame: bool = Field(default=True, description="latent frames = 1 + (frames - 1) / t")
    decoder_flops_per_pixel: float = Field(gt=0, description="decoder FLOPs per output pixel per frame")
    decoder_flops_source: str = Field(description="how decoder_flops_per_pixel was obtained")
    decoder_params: float | None = Field(default=None, gt=0)


class Dit(_Frozen):
    """The diffusion transformer backbone."""

    hidden_size: int = Field(gt=0)
    num_layers: int = Field(gt=0, description="total transformer blocks")
    num_double_stream_layers: int = Field(default=0, ge=0, description="MMDiT blocks with separate text weights")
    num_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    mlp: Mlp
    patch_size: tuple[int, int, int] = Field(description="(t, h, w) patch in latent units")
    cross_attention: bool = Field(description="text enters through cross-attention (vs joint attention)")
    text_dim: int = Field(gt=0, description="width of the text-encoder output fed to the DiT")
    adaln_modulation: bool = True
    # --- optional architecture details; they change the parameter count, not the token geometry ---
    block_layout: Literal["cross_attn", "mmdit", "joint_expert_adaln"] | None = Field(
        default=None,
        description=(
            "cross_attn: self-attn + cross-attn to text + FFN (Wan, Cosmos); mmdit: dual-stream blocks with "
            "separate text weights, then single-stream parallel blocks (HunyuanVideo, Open-Sora 2); "
            "joint_expert_adaln: joint attention over text+video with shared weights and per-modality adaLN "
            "(CogVideoX). Null: cross_attn if cross_attention else mmdit"
        ),
    )
    modulation: Literal["per_block", "shared", "lora"] = Field(
        default="per_block",
        description=(
            "per_block: each block has a Linear(timestep_dim -> k x hidden); shared: one Linear shared by all "
            "blocks plus a learned k x hidden table per block (Wan); lora: low-rank adaLN (Cosmos AdaLN-LoRA)"
        ),
    )
    modulation_rank: int | None = Field(default=None, gt=0, description="rank of the AdaLN-LoRA modulation")
    timestep_dim: int | None = Field(default=None, gt=0, description="width of the timestep embedding; null: hidden")
    timestep_freq_dim: int = Field(default=256, gt=0, description="sinusoidal timestep features")
    linear_bias: bool = Field(default=True, description="biases on attention, embedding and modulation linears")
    qk_norm: Literal["none", "rms_head", "rms_full", "layernorm_head"] = "none"
    cross_attn_norm: bool = Field(default=False, description="affine LayerNorm before cross-attention (Wan)")
    norm_affine: bool = Field(default=False, description="block LayerNorms carry weight and bias (CogVideoX)")
    in_channels: int | None = Field(default=None, gt=0, description="channels into the patch embedding; null: VAE")
    text_proj_layers: int = Field(default=1, ge=0, le=2, description="linears projecting text to hidden")
    text_refiner_layers: int = Field(default=0, ge=0, description="token-refiner blocks on the text (HunyuanVideo)")
    pooled_text_dim: int | None = Field(default=None, gt=0, description="pooled (CLIP) text vector width")
    guidance_embed: bool = Field(default=False, description="guidance-scale embedder (CFG-distilled models)")
    extra_input_embed_features: int = Field(
        default=0, ge=0, description="width of an extra conditioning input embedding (Open-Sora 2 cond_in)"
    )
    learned_pos_embed_axes: tuple[int, int, int] | None = Field(
        default=None, description="lengths (t, h, w) of learned per-axis position tables, in patches (Cosmos)"
    )
    image_context_tokens: int = Field(
        default=0, ge=0,
        description=(
            "image-conditioning tokens (e.g. 257 CLIP tokens) each cross-attention also attends, through its own "
            "K/V projections (and key RMSNorm when qk_norm is set); the two attention outputs are summed before "
            "the output projection (Wan2.1 I2V). 0: text only"
        ),
    )
    image_embed_dim: int | None = Field(
        default=None, gt=0,
        description="width of the image-encoder features, projected to hidden by LayerNorm-Linear-GELU-Linear-LayerNorm",
    )

    @property
    def layout(self) -> str:
        if self.block_layout:
            return self.block_layout
        return "cross_attn" if self.cross_attention else "mmdit"


class VideoDefaults(_Frozen):
    frames: int = Field(gt=0)
    height: int = Field(gt=0)
    width: int = Field(gt=0)
    steps: int = Field(gt=0)
    cfg: bool = True
    #: how the pipeline runs classifier-free guidance's two passes: in one doubled batch ("batched", Diffusers'
    #: CogVideoX) or one after the other ("sequential", Diffusers' and Wan's own Wan pipelines); the FLOPs are
    #: the same, the activations held at once are not
    cfg_passes: Literal["batched", "sequential"] = "batched"


class VideoDiT(_Frozen):
    """A text-to-video (or world) model: text encoder -> steps x DiT -> VAE decode."""

    schema_version: Literal[1] = 1
    family: Literal["video_dit"]
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9.\-]*$")
    display_name: str
    source: Source
    dit: Dit
    vae: Vae
    text_encoder: TextEncoder
    defaults: VideoDefaults
    num_denoiser_experts: int = Field(
        default=1, ge=1,
        description=(
            "DiT copies of the same architecture, each denoising a range of steps (Wan2.2 A14B: high-noise and "
            "low-noise experts); weights held = n x DiT, each step runs one"
        ),
    )
    published_params_total: float | None = Field(
        default=None, gt=0, description="DiT parameters (all denoiser experts), for tests"
    )
    notes: str | None = None

    @model_validator(mode="after")
    def _check(self) -> VideoDiT:
        if self.dit.num_double_stream_layers > self.dit.num_layers:
            raise ValueError("dit.num_double_stream_layers exceeds dit.num_layers")
        if self.dit.modulation == "lora" and self.dit.modulation_rank is None:
            raise ValueError("dit.modulation 'lora' needs dit.modulation_rank")
        if self.dit.image_context_tokens and (self.dit.layout != "cross_attn" or self.dit.image_embed_dim is None):
            raise ValueError("dit.image_context_tokens needs the cross_attn layout and dit.image_embed_dim")
        return self


Workload = Annotated[DecoderLM | VideoDiT, Field(discriminator="family")]
