"""Option types and the Scenario builder shared by `graph`, `estimate`, `serve` and friends."""

from __future__ import annotations

import math
from typing import Annotated, get_args

import typer

from cosim.errors import CosimInputError

Fmt = Annotated[str, typer.Option("--format", help="table | json | csv")]
HardwareOpt = Annotated[str, typer.Option("--hardware", help="catalog slug or path to a hardware YAML")]
WorkloadOpt = Annotated[str, typer.Option("--workload", help="catalog slug, YAML path, or HF config.json")]
PhaseOpt = Annotated[str, typer.Option("--phase", help="prefill | decode | generate | train | video")]
BatchOpt = Annotated[str, typer.Option(
    "--batch", help="global batch in sequences (requests or videos), split over --dp; train: sequences per "
                    "optimizer step; or 'max' for the largest that fits")]
InputLenOpt = Annotated[int, typer.Option("--input-len", help="prompt tokens (decode: context length)")]
OutputLenOpt = Annotated[int, typer.Option("--output-len", help="generated tokens per request")]
FramesOpt = Annotated[int | None, typer.Option("--frames", help="video frames")]
HeightOpt = Annotated[int | None, typer.Option("--height", help="video height in pixels")]
WidthOpt = Annotated[int | None, typer.Option("--width", help="video width in pixels")]
StepsOpt = Annotated[int | None, typer.Option("--steps", help="denoising steps")]
PrecisionOpt = Annotated[str, typer.Option("--precision", help="bf16 | fp16 | fp8 | fp4 | int8 | int4 (weights and "
                                             "activations; the KV cache per --kv-precision; weight-only quantisation "
                                             "such as AWQ/GPTQ INT4 is --precision int4 --activation-precision bf16)")]
TpOpt = Annotated[int, typer.Option("--tp", help="tensor-parallel degree")]
PpOpt = Annotated[int, typer.Option("--pp", help="pipeline-parallel degree")]
EpOpt = Annotated[int, typer.Option("--ep", help="expert-parallel degree")]
DpOpt = Annotated[int, typer.Option("--dp", help="data-parallel degree")]
SpOpt = Annotated[int, typer.Option("--sp", help="sequence/context-parallel degree")]
SpKindOpt = Annotated[str, typer.Option("--sp-kind", help="how --sp splits attention: ulysses (heads, all-to-all) "
                                        "| ring (queries, K/V passed around the ranks)")]
SpRingOpt = Annotated[int | None, typer.Option("--sp-ring", help="video: ring degree of a Ulysses x ring hybrid "
                                               "(xDiT's USP: --sp = Ulysses degree x --sp-ring), with --sp-kind "
                                               "ulysses")]
ZeroOpt = Annotated[int, typer.Option(
    "--zero", help="train: ZeRO stage over the DP group: 0 replicated, 1 optimizer states sharded, "
                   "2 + gradients, 3 (FSDP) + weights (all-gathered in forward and backward)")]
MicrobatchOpt = Annotated[int | None, typer.Option(
    "--microbatch", help="train: sequences per micro-batch of one DP replica (default: 1 with --pp > 1, "
                         "else the whole local batch --batch / --dp)")]
VppOpt = Annotated[int, typer.Option(
    "--vpp", help="train: model chunks per pipeline stage (interleaved 1F1B; 1 = plain 1F1B): the bubble "
                  "shrinks to (pp - 1) / vpp micro-batch times and each chip sends its activations vpp times")]
RecomputeOpt = Annotated[str, typer.Option(
    "--recompute", help="train: activation recompute none | selective | full | auto (auto: selective when "
                        "it fits in memory, else full)")]
RECOMPUTE_CHOICES = ("none", "selective", "full", "auto")
KvPrecisionOpt = Annotated[str | None, typer.Option(
    "--kv-precision", help="KV-cache precision: fp8 | bf16 | fp16 | fp32 (default: fp8 when --precision is "
    "8-bit or narrower, else --precision; checkpoints that keep the KV cache in bf16 need bf16 here)")]
KvReadPerQueryHeadOpt = Annotated[bool, typer.Option(
    "--kv-read-per-query-head", help="decode, generate, grouped-query attention: each query head reads its KV "
    "head's cache on its own (a masked multi-head attention kernel without GQA sharing, as TensorRT-LLM ran "
    "before XQA was on by default); default: the cache is read once, as GQA kernels do")]

KvReadLayersOpt = Annotated[str, typer.Option(
    "--kv-read-per-query-head-layers", help="with --kv-read-per-query-head: all (every layer) | windowed (only the "
    "sliding-window or chunked layers, as TensorRT-LLM ran Llama 4's chunked layers on Hopper)")]

SsmStatePrecisionOpt = Annotated[str | None, typer.Option(
    "--ssm-state-precision", help="hybrid models: the Mamba-2 state cache's precision, fp32 | bf16 | fp16 "
    "(vLLM --mamba-ssm-cache-dtype; default: the activations', vLLM's 'auto')")]

ActivationPrecisionOpt = Annotated[str | None, typer.Option(
    "--activation-precision", help="precision the GEMMs compute in (only the routed experts' when --dense-precision "
    "is given) when it differs from their weights' (--precision): fp8 for W4A8 (MXFP4 x MXFP8 on Blackwell), bf16 for "
    "W4A16 (default: --precision); weights narrower than this are widened inside the kernel, which slows "
    "compute-bound GEMMs")]
AttentionPrecisionOpt = Annotated[str | None, typer.Option(
    "--attention-precision", help="precision the attention cores (prompt FMHA, decode attention) multiply in, "
    "fp32 | tf32 | bf16 | fp16 | fp8, where the run sets it apart from the GEMMs': fp16 for a TensorRT-LLM "
    "engine built with --gpt_attention_plugin float16 and no FP8 context FMHA over an FP8 KV cache (default: "
    "the GEMMs' precision where an attention kernel exists for it, FP8 only over an FP8 cache)")]
DensePrecisionOpt = Annotated[str | None, typer.Option(
    "--dense-precision", help="precision of every GEMM outside the routed experts (attention, dense MLPs, router, "
    "LM head) when the checkpoint quantises only the experts, e.g. bf16 for gpt-oss (default: as the experts)")]

Fp4FormatOpt = Annotated[str | None, typer.Option(
    "--fp4-format", help="how FP4 weights are block-scaled, which sets their size: nvfp4 (one FP8 scale per 16 "
    "values, 4.5 bits a weight: NVIDIA's FP4 checkpoints) | mxfp4 (one E8M0 scale per 32, 4.25 bits: AMD's FP4, "
    "gpt-oss's released experts); default: the chip's own, nvfp4 on NVIDIA parts, mxfp4 elsewhere")]

PHASES = ("prefill", "decode", "generate", "train", "video")
PRECISION_CHOICES = ("fp32", "tf32", "bf16", "fp16", "fp8", "fp6", "fp4", "int8", "int4")


def parse_batch(batch: str) -> int | None:
    """`max` -> None (the engine searches), otherwise a positive integer."""
    if str(batch).lower() == "max":
        return None
    try:
        value = int(batch)
    except ValueError:
        raise CosimInputError(f"--batch must be a positive integer or 'max', got '{batch}'") from None
    if value <= 0:
        raise CosimInputError(f"--batch must be a positive integer or 'max', got '{batch}'")
    return value


def build_scenario(*, phase: str, batch: int = 1, input_len: int = 1024, output_len: int = 128,
                   frames: int | None = None, height: int | None = None, width: int | None = None,
                   steps: int | None = None, precision: str = "bf16", tp: int = 1, pp: int = 1,
                   ep: int = 1, dp: int = 1, sp: int = 1, sp_kind: str = "ulysses", sp_ring: int | None = None,
                   zero: int = 0, microbatch: int | None = None,
                   vpp: int = 1, recompute: str = "selective", output_len_cv: float = 0.0, chunked_prefill: bool = False,
                   kv_precision: str | None = None, eager_prompt_steps: bool = False,
                   dp_prompt_balance: bool = False, activation_precision: str | None = None,
                   dense_precision: str | None = None, dp_imbalance: float = 1.0,
                   ssm_state_precision: str | None = None, images_per_request: int = 0,
                   draft_tokens: int = 0, accepted_tokens_per_step: float | None = None,
                   kv_read_per_query_head: bool = False, attention_precision: str | None = None,
                   kv_read_per_query_head_layers: str = "all", fp4_format: str | None = None):
    """A validated Scenario from CLI values; bad values raise CosimInputError naming the flag.

    `kv_precision` None: the KV cache is stored in fp8 when the weights are 8-bit or narrower (the common
    default of quantized checkpoints), else in the weight precision. `fp4_format` None: NVFP4 (`chip_fp4_format`
    picks the hardware's own)."""
    from pydantic import ValidationError

    from cosim.specs.hardware import Fp4Format
    from cosim.specs.scenario import (
        ATTENTION_PRECISION_CHOICES,
        KV_PRECISION_CHOICES,
        SSM_STATE_PRECISION_CHOICES,
        Parallelism,
        Scenario,
        default_kv_precision,
    )

    if phase not in PHASES:
        raise CosimInputError(f"--phase must be one of {', '.join(PHASES)}, got '{phase}'")
    if precision not in PRECISION_CHOICES:
        raise CosimInputError(f"--precision must be one of {', '.join(PRECISION_CHOICES)}, got '{precision}'")
    for flag, value in (("--tp", tp), ("--pp", pp), ("--ep", ep), ("--dp", dp), ("--sp", sp), ("--vpp", vpp),
                        ("--input-len", input_len), ("--output-len", output_len)):
        if value is None or value <= 0:
            raise CosimInputError(f"{flag} must be a positive integer, got {value}")
    if sp_kind not in ("ulysses", "ring"):
        raise CosimInputError(f"--sp-kind must be ulysses or ring, got '{sp_kind}'")
    if kv_read_per_query_head_layers not in ("all", "windowed"):
        raise CosimInputError("--kv-read-per-query-head-layers must be all or windowed, got "
                              f"'{kv_read_per_query_head_layers}'")
    fp4_format = fp4_format or "nvfp4"
    if fp4_format not in get_args(Fp4Format):
        raise CosimInputError(f"--fp4-format must be {' or '.join(get_args(Fp4Format))}, got '{fp4_format}'")
    if sp_ring is not None and sp_ring <= 0:
        raise CosimInputError(f"--sp-ring must be a positive integer, got {sp_ring}")
    if zero not in (0, 1, 2, 3):
        raise CosimInputError(f"--zero must be 0, 1, 2 or 3, got {zero}")
    if recompute not in ("none", "selective", "full"):
        raise CosimInputError(f"--recompute must be one of none, selective, full, got '{recompute}'")
    for flag, value in (("--frames", frames), ("--height", height), ("--width", width), ("--steps", steps),
                        ("--microbatch", microbatch)):
        if value is not None and value <= 0:
            raise CosimInputError(f"{flag} must be a positive integer, got {value}")
    if kv_precision is not None and kv_precision not in KV_PRECISION_CHOICES:
        raise CosimInputError(f"--kv-precision must be one of {', '.join(KV_PRECISION_CHOICES)}, got '{kv_precision}'")
    for flag, value in (("--activation-precision", activation_precision), ("--dense-precision", dense_precision)):
        if value is not None and value not in PRECISION_CHOICES:
            raise CosimInputError(f"{flag} must be one of {', '.join(PRECISION_CHOICES)}, got '{value}'")
    if attention_precision is not None and attention_precision not in ATTENTION_PRECISION_CHOICES:
        raise CosimInputError(f"--attention-precision must be one of {', '.join(ATTENTION_PRECISION_CHOICES)}, "
                              f"got '{attention_precision}'")
    if ssm_state_precision is not None and ssm_state_precision not in SSM_STATE_PRECISION_CHOICES:
        raise CosimInputError(f"--ssm-state-precision must be one of {', '.join(SSM_STATE_PRECISION_CHOICES)}, "
                              f"got '{ssm_state_precision}'")
    if images_per_request is None or images_per_request < 0:
        raise CosimInputError(f"--images-per-request must be 0 or more, got {images_per_request}")
    if draft_tokens is None or draft_tokens < 0:
        raise CosimInputError(f"--draft-tokens must be 0 or more, got {draft_tokens}")
    if accepted_tokens_per_step is not None and not (math.isfinite(accepted_tokens_per_step)
                                                     and accepted_tokens_per_step >= 1.0):
        raise CosimInputError(f"--accepted-tokens-per-step must be a finite number >= 1, got {accepted_tokens_per_step}")
    if not (math.isfinite(dp_imbalance) and dp_imbalance >= 1.0):
        raise CosimInputError(f"--dp-imbalance must be a finite number >= 1 (1: ranks in step), got {dp_imbalance}")
    kv = kv_precision or default_kv_precision(precision)
    try:
        return Scenario(
            phase=phase, batch=batch, input_len=input_len, output_len=output_len, output_len_cv=output_len_cv,
            chunked_prefill=chunked_prefill, eager_prompt_steps=eager_prompt_steps,
            dp_prompt_balance=dp_prompt_balance, dp_imbalance=dp_imbalance, frames=frames, height=height,
            width=width, steps=steps,
            weight_precision=precision, activation_precision=activation_precision or precision,
            dense_precision=dense_precision, fp4_format=fp4_format,
            kv_precision=kv, attention_precision=attention_precision, recompute=recompute,
            ssm_state_precision=ssm_state_precision,
            images_per_request=images_per_request, draft_tokens=draft_tokens,
            accepted_tokens_per_step=accepted_tokens_per_step, kv_read_per_query_head=kv_read_per_query_head,
            kv_read_per_query_head_layers=kv_read_per_query_head_layers,
            parallelism=Parallelism(tp=tp, pp=pp, ep=ep, dp=dp, sp=sp, sp_kind=sp_kind, sp_ring=sp_ring,
                                    zero=zero, microbatch=microbatch,
                                    vpp=vpp),
        )
    except ValidationError as err:
        first = err.errors()[0]
        raise CosimInputError(first["msg"].removeprefix("Value error, "),
                              field=".".join(str(p) for p in first["loc"])) from None


def chip_fp4_format(fp4_format: str | None, hardware: str) -> str | None:
    """`--fp4-format` as given, else the layout of the chip's own FP4 checkpoints (NVFP4 on NVIDIA, MXFP4 on the
    others: cosim.specs.hardware.native_fp4_format); None when the hardware does not load (its own error follows)."""
    if fp4_format is not None:
        return fp4_format
    from cosim.specs.hardware import native_fp4_format
    from cosim.specs.loader import load_hardware

    try:
        return native_fp4_format(load_hardware(hardware).vendor)
    except CosimInputError:
        return None


def check_stack(stack: str, training: bool = False) -> None:
    """`--stack` must name a stack the calibration knows, and a training stack only for a training run, the
    only kind its rows measured (CosimInputError naming the flag)."""
    from typing import get_args

    from cosim.validate.mapping import TRAINING_STACKS, Stack

    if stack not in get_args(Stack):
        raise CosimInputError(f"--stack must be one of {', '.join(get_args(Stack))}, got '{stack}'")
    if stack in TRAINING_STACKS and not training:
        raise CosimInputError(f"--stack {stack} is a training stack (its factor is fitted on training runs only): "
                              "use it with estimate --phase train")


def stack_run(hw, model, scenario, stack: str):
    """(scenario, engine parameters) of an estimate on `stack`: the stack checked against the phase, its prompt
    steps eager where it launches them so (cosim.engines.eager), its fitted factor (the MoE one for an MoE
    model); parameters None for the tuned default. Shared by `cosim estimate --stack` and the explorer."""
    from cosim.engines.calibration import is_moe, stack_params
    from cosim.engines.eager import EAGER_PROMPT_STACKS

    check_stack(stack, training=scenario.phase == "train")
    if stack in EAGER_PROMPT_STACKS:  # its prompt steps run without CUDA graphs (cosim.engines.eager)
        scenario = scenario.model_copy(update={"eager_prompt_steps": True})
    return scenario, stack_params(hw, stack, moe=is_moe(model))


def parse_graph_sizes(text: str) -> tuple[int, ...]:
    """`--cuda-graph-sizes 1,2,4,...` as positive integers, or a clear error naming the flag."""
    from cosim.errors import CosimInputError

    try:
        sizes = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise CosimInputError(f"--cuda-graph-sizes must be comma-separated integers, got '{text}'") from None
    if not sizes or sizes[0] <= 0:
        raise CosimInputError(f"--cuda-graph-sizes must list batch sizes >= 1, got '{text}'")
    return sizes
