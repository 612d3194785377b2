"""Scenario: what is run (phase, batch, lengths, precision) and how it is mapped (parallelism)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cosim.specs.hardware import Fp4Format, Precision

Phase = Literal["prefill", "decode", "generate", "train", "video"]
#: precisions a KV cache can be stored in
KV_PRECISION_CHOICES = ("fp32", "bf16", "fp16", "fp8")
#: precisions a Mamba-2 state cache can be held in (vLLM's mamba_ssm_cache_dtype choices besides 'auto')
SSM_STATE_PRECISION_CHOICES = ("fp32", "bf16", "fp16")
#: precisions fused attention kernels compute in (FlashAttention-2/3, TensorRT-LLM FMHA/XQA, FlashInfer take
#: Q/K/V in BF16/FP16 or FP8 E4M3; none computes attention in a sub-8-bit or integer format)
ATTENTION_PRECISION_CHOICES = ("fp32", "tf32", "bf16", "fp16", "fp8")


def default_kv_precision(precision: str) -> str:
    """KV-cache precision when none is given: fp8 under 8-bit-or-narrower weights (the common default of
    quantized checkpoints), else the weights' precision (bf16 for formats a cache cannot hold)."""
    if precision in KV_PRECISION_CHOICES:
        return precision
    return "fp8" if precision in ("fp4", "fp6", "int4", "int8") else "bf16"


class Parallelism(BaseModel):
    """Degrees of tensor, pipeline, expert, data and sequence/context parallelism."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tp: int = Field(default=1, gt=0)
    pp: int = Field(default=1, gt=0)
    ep: int = Field(default=1, gt=0)
    dp: int = Field(default=1, gt=0)
    sp: int = Field(default=1, gt=0, description="sequence/context parallel degree (Ulysses or ring)")
    sp_kind: Literal["ulysses", "ring"] = "ulysses"
    sp_ring: int | None = Field(
        default=None, gt=0,
        description="ring degree within sp for unified sequence parallelism (xDiT's USP, Fang & Zhao 2024, "
                    "arXiv 2405.07719): sp = Ulysses degree x ring degree, an all-to-all among the Ulysses ranks "
                    "and K/V passed around the ring ranks. Video DiTs only. None: sp with sp_kind ring, else 1")

    @property
    def ring_degree(self) -> int:
        """Ranks of sp that pass K/V around a ring (sp for sp_kind ring, sp_ring for a hybrid, else 1)."""
        if self.sp_kind == "ring":
            return self.sp
        return self.sp_ring or 1

    @property
    def ulysses_degree(self) -> int:
        """Ranks of sp that split the heads with an all-to-all (sp / ring degree)."""
        return self.sp // self.ring_degree

    @model_validator(mode="after")
    def _check_sp_ring(self) -> Parallelism:
        if self.sp_ring is not None:
            if self.sp % self.sp_ring:
                raise ValueError(f"sp_ring={self.sp_ring} must divide sp={self.sp} (sp = Ulysses x ring degree)")
            if self.sp_kind == "ring" and self.sp_ring != self.sp:
                raise ValueError(f"sp_kind ring passes K/V around all sp={self.sp} ranks; sp_ring={self.sp_ring} "
                                 "needs sp_kind ulysses (a Ulysses x ring hybrid)")
        return self
    # training only
    zero: int = Field(
        default=0, ge=0, le=3,
        description="ZeRO stage of the data-parallel group (Rajbhandari et al., SC 2020): 0 = optimizer state, "
                    "gradients and weights replicated on every DP rank; 1 = optimizer states sharded over DP; "
                    "2 = + gradients sharded; 3 (= FSDP full sharding) = + weights sharded, all-gathered per layer "
                    "in forward and backward")
    vpp: int = Field(
        default=1, gt=0,
        description="training: model chunks per pipeline stage, the interleaved 1F1B schedule (Narayanan et "
                    "al., SC 2021, Sec. 2.2.2): each chip holds vpp non-contiguous chunks of its layers, the "
                    "bubble shrinks to (pp - 1) / vpp micro-batch times, P2P sends grow vpp-fold; 1 = plain 1F1B")
    microbatch: int | None = Field(
        default=None, gt=0,
        description="sequences per micro-batch of one DP replica (training): the local batch (batch / dp) runs "
                    "as ceil(local / microbatch) micro-batches (gradient accumulation; 1F1B with pp > 1). "
                    "None: 1 sequence when pp > 1, the whole local batch at once when pp = 1")

    @property
    def chips(self) -> int:
        """Chips one model replica uses times data-parallel replicas (EP reuses TP x DP chips)."""
        return self.tp * self.pp * self.sp * self.dp


class Scenario(BaseModel):
    """One question: a phase at a batch with lengths, precision and parallelism."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    phase: Phase
    batch: int = Field(default=1, gt=0)
    input_len: int = Field(default=1024, gt=0, description="prompt tokens (context for decode)")
    output_len: int = Field(default=128, gt=0, description="generated tokens (generate)")
    output_len_cv: float = Field(
        default=0.0, ge=0.0,
        description="coefficient of variation of the output lengths of a continuous batch's requests (generate)")
    chunked_prefill: bool = Field(
        default=False,
        description="generate: prompt chunks ride on the decode steps (continuous batching with chunked prefill) "
                    "instead of one prefill of the whole batch before decoding")
    eager_prompt_steps: bool = Field(
        default=False,
        description="generate with chunked prefill: steps that carry a prompt run without CUDA graphs (TensorRT-LLM's "
                    "PyTorch backend captures generation-only batches), so their MoE layers take at least the host "
                    "time to launch them (cosim.engines.eager)")
    dp_prompt_balance: bool = Field(
        default=False,
        description="attention-DP ranks take their prompts in the same steps (TensorRT-LLM attention_dp_config "
                    "enable_balance), so fewer steps carry one")
    dp_imbalance: float = Field(
        default=1.0, ge=1.0,
        description="generate, MoE with attention DP (dp > 1): the step time over the one the ranks would take in "
                    "balance, as the busiest rank keeps the others waiting (1: in step; engine_defaults "
                    "adp_balance_step_stretch for TensorRT-LLM's balanced ADP over variable-length requests)")
    kv_read_per_query_head: bool = Field(
        default=False,
        description="decode, grouped-query attention: each query head reads its KV head's cache from memory on its "
                    "own (a masked multi-head attention kernel without GQA sharing, as TensorRT-LLM ran before its "
                    "XQA kernels were on by default), so the cache is read num_heads / num_kv_heads times a step; "
                    "False: once, as current GQA kernels read it")
    kv_read_per_query_head_layers: Literal["all", "windowed"] = Field(
        default="all",
        description="where kv_read_per_query_head applies: every layer, or only the windowed ones (TensorRT-LLM on "
                    "Hopper runs Llama 4's chunked layers on the masked multi-head kernel, which supports chunked "
                    "attention, and its global layers on XQA, which does not)")
    cuda_graph_batch_sizes: tuple[Annotated[int, Field(gt=0)], ...] | None = Field(
        default=None,
        description="decode and generate: per-rank batch sizes the engine captured CUDA graphs for; a step "
                    "without a prompt pads its batch up to the next one (TensorRT-LLM cuda_graph_config with "
                    "enable_padding; cosim.engines.graph_padding); None: no padding")
    # video
    images_per_request: int = Field(
        default=0, ge=0,
        description="prefill and generate, a multimodal model (workload `vision`): images each prompt carries; "
                    "the image encoder runs once per image, and `input_len` counts the prompt's image tokens "
                    "(images x vision.tokens_per_image) with its text")
    frames: int | None = Field(default=None, gt=0)
    height: int | None = Field(default=None, gt=0)
    width: int | None = Field(default=None, gt=0)
    steps: int | None = Field(default=None, gt=0)
    cfg: bool | None = None
    # numerics
    weight_precision: Precision = "bf16"
    activation_precision: Precision = "bf16"
    kv_precision: Precision = "bf16"
    attention_precision: Literal[ATTENTION_PRECISION_CHOICES] | None = Field(
        default=None,
        description="precision the attention cores (context FMHA, decode attention) multiply in where the run "
                    "sets it apart: a TensorRT-LLM engine built with `--gpt_attention_plugin float16` and no FP8 "
                    "context FMHA attends in FP16 over an FP8 cache; None: the GEMMs' precision where an attention "
                    "kernel exists for it (cosim.graph.rows.attention_precision)")
    dense_precision: Precision | None = Field(
        default=None,
        description="weights and activations of every GEMM outside the routed experts (attention, dense MLPs, "
                    "shared experts, router, LM head) when a checkpoint quantises only the experts (gpt-oss's "
                    "MXFP4 experts beside BF16 attention); None: the weight/activation precisions above")
    fp4_format: Fp4Format = Field(
        default="nvfp4",
        description="how FP4 weights are block-scaled, which sets their stored size: nvfp4 (NVIDIA's, one FP8 scale "
                    "per 16 values, 4.5 bits a weight; NVIDIA's FP4 checkpoints) or mxfp4 (OCP MX, one E8M0 scale "
                    "per 32, 4.25 bits; AMD's FP4 and gpt-oss's released experts). The CLI, the explorer and sweeps "
                    "default to the chip vendor's (cosim.specs.hardware.native_fp4_format)")
    ssm_state_precision: Literal["fp32", "bf16", "fp16"] | None = Field(
        default=None,
        description="hybrid models: the Mamba-2 state cache (vLLM --mamba-ssm-cache-dtype; Nemotron-H's model "
                    "cards recommend float32); None: the activation stream's (vLLM's 'auto')")
    # mapping
    parallelism: Parallelism = Parallelism()
    # speculative decoding
    draft_tokens: int = Field(
        default=0, ge=0,
        description="decode, generate: tokens the model's multi-token-prediction module "
                    "(workload `mtp_modules`) drafts per sequence per step, run autoregressively, one pass per token; "
                    "the main model then verifies them, running draft_tokens + 1 query tokens per sequence; 0: plain "
                    "autoregressive decoding")
    accepted_tokens_per_step: float | None = Field(
        default=None, ge=1.0,
        description="with draft_tokens: mean tokens a sequence emits per step, the verified drafts plus "
                    "the main model's own token (TensorRT-LLM's 'acceptance rate'; at most draft_tokens + 1). A "
                    "property of the model, the drafter and the text, not of the hardware, so it is an input")
    # MoE
    routing_imbalance: float = Field(default=1.0, ge=1.0,
                                     description="max/mean tokens per expert beyond uniform routing (skewed "
                                                 "routers); the busiest EP group of uniform routing is modelled "
                                                 "already (cosim.graph.expert_load)")
    # training
    recompute: Literal["none", "selective", "full"] = "selective"
    optimizer: Literal["adam", "sgd"] = "adam"

    @model_validator(mode="after")
    def _check(self) -> Scenario:
        if self.phase == "train" and self.parallelism.sp > 1 and self.parallelism.sp_kind not in ("ulysses", "ring"):
            raise ValueError("unknown sp_kind")
        if self.draft_tokens:
            if self.phase not in ("decode", "generate"):
                raise ValueError(f"draft_tokens (speculative decoding) is modelled for decode and generate, not "
                                 f"'{self.phase}'")
            if self.accepted_tokens_per_step is None or self.accepted_tokens_per_step > self.draft_tokens + 1:
                raise ValueError(f"draft_tokens {self.draft_tokens} needs accepted_tokens_per_step between 1 and "
                                 f"{self.draft_tokens + 1} (the drafts plus the main model's own token)")
        elif self.accepted_tokens_per_step is not None:
            raise ValueError("accepted_tokens_per_step needs draft_tokens > 0")
        return self

    @property
    def tokens_per_sequence_step(self) -> float:
        """Tokens a sequence emits per decode step: 1, or the accepted tokens under speculative decoding."""
        return self.accepted_tokens_per_step if self.draft_tokens else 1.0

    @property
    def decode_span(self) -> int:
        """Tokens over which a generate run's decode contexts spread past input_len: output_len x (1 + CV²).

        A running batch is length-biased when output lengths vary (a request stays in flight for as many
        steps as it generates), so an output token's mean context is input_len + E[L²] / (2 E[L]), not
        input_len + E[L] / 2; with fixed lengths (CV 0) the span is output_len.
        """
        return max(1, round(self.output_len * (1.0 + self.output_len_cv ** 2)))

    @property
    def steps_per_request(self) -> float:
        """Steps a request stays in a continuous batch: output_len, or output_len / accepted_tokens_per_step when
        each speculative step emits several of its tokens."""
        return self.output_len / self.tokens_per_sequence_step

    @property
    def prompt_tokens_per_step(self) -> float:
        """Prompt tokens a chunked-prefill step carries in steady state: batch x input_len / steps_per_request.

        By Little's law `batch` running requests that each stay steps_per_request steps (the mean, whatever the
        spread) finish, and are replaced, at batch / steps_per_request per step; each replacement brings its prompt.
        """
        return self.batch * self.input_len / self.steps_per_request

    @property
    def compute_precision(self) -> str:
        """The precision matmuls run in: the activations' (W4A16 runs in bf16, W8A8-fp8 in fp8)."""
        return self.activation_precision
