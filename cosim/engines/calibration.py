"""Calibrated engine parameters per hardware family, and how they are applied.

Five physically meaningful scale factors per hardware generation — on the achievable fraction of peak
FLOP/s of GEMMs, of fused attention kernels, on the achievable fractions of main-memory and of link
bandwidth, and on the per-sequence host overhead per engine iteration, relative to the first-principles defaults in
`cosim/data/` — are fitted
by `cosim validate --calibrate` (cosim/validate/fit.py) (scipy least squares on log(predicted / measured)) and stored with the
date, the rows used and the in-sample and leave-one-out errors in `cosim/data/calibration.yaml`, beside one fixed
time per unfused kernel that every chip shares (`kernels`).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import yaml

CALIBRATION_PATH = Path(__file__).resolve().parent.parent / "data" / "calibration.yaml"
#: bounds keep the fit physical: a fraction of peak can fall, but not rise above 1
SCALE_BOUNDS = (0.3, 1.5)
#: the per-step host overhead may move by two decades either way from the engine default
OVERHEAD_BOUNDS = (0.01, 100.0)


@functools.lru_cache(maxsize=2)
def load_calibration(path: str | None = None) -> dict:
    """The stored calibration (empty families when none has been fitted yet)."""
    p = Path(path) if path else CALIBRATION_PATH
    if not p.is_file():
        return {"families": {}}
    return yaml.safe_load(p.read_text(encoding="utf-8")) or {"families": {}}


def scaled_params(hw, compute_scale: float, memory_scale: float, overhead_scale: float = 1.0,
                  attention_scale: float = 1.0, link_scale: float = 1.0, grouped_gemm_scale: float = 1.0,
                  grouped_gemm_memory_scale: float = 1.0, moe_train_layer_overhead_s: float = 0.0,
                  launch_overhead_s: float | None = None):
    """Engine parameters of `hw`'s family with the GEMM and attention fractions of peak and the memory
    fraction scaled (each capped at 1), the per-sequence host overhead scaled, the MoE shares and the
    training host time per MoE layer set, and each unfused kernel's fixed time replaced when given."""
    from cosim.engines.efficiency import params_for

    base = params_for(hw, calibrated=False)
    if launch_overhead_s is not None:
        base = base.with_overrides(launch_overhead_s=float(launch_overhead_s))
    cf = np.minimum(base.compute_fraction * compute_scale, 1.0)
    mf = float(min(base.memory_fraction * memory_scale, 1.0))
    extra = {}
    if base.attention_fraction is not None:
        extra["attention_fraction"] = np.minimum(np.asarray(base.attention_fraction) * attention_scale, 1.0)
    return base.with_overrides(compute_fraction=cf, memory_fraction=mf,
                               per_sequence_overhead_s=base.per_sequence_overhead_s * overhead_scale,
                               link_fraction=float(min(base.link_fraction * link_scale, 1.0)),
                               grouped_gemm_scale=float(grouped_gemm_scale),
                               grouped_gemm_memory_scale=float(grouped_gemm_memory_scale),
                               moe_train_layer_overhead_s=float(moe_train_layer_overhead_s), **extra)


def apply_stack(params, scale: float, busy_s: float = 0.0, pipeline_host_s: float = 0.0):
    """Engine parameters of a serving stack whose kernels reach `scale` x the reference (tuned) stack's
    fractions of peak FLOP/s, attention throughput and memory bandwidth (each capped at 1), which runs
    `busy_s` seconds of GPU work per running sequence per step that the op graph does not price, and whose
    pipelined runs wait `pipeline_host_s` seconds of host work per running sequence per iteration."""
    if busy_s:
        params = params.with_overrides(per_sequence_busy_s=params.per_sequence_busy_s + busy_s)
    if pipeline_host_s:
        params = params.with_overrides(pipeline_host_per_sequence_s=pipeline_host_s)
    if scale == 1.0:
        return params
    return params.with_overrides(
        compute_fraction=np.minimum(np.asarray(params.compute_fraction) * scale, 1.0),
        attention_fraction=np.minimum(np.asarray(params.attention_fraction) * scale, 1.0),
        memory_fraction=float(min(params.memory_fraction * scale, 1.0)))


#: separates a serving stack from the qualifier of a factor fitted for part of its rows: a hardware
#: generation (`trtllm-bench@nvidia-blackwell`) or the MoE models (`vllm@moe`)
GENERATION_SEP = "@"
#: qualifier of a stack factor fitted on MoE models only (their expert kernels differ from the dense path)
MOE = "moe"
#: stacks that run another stack's kernels and so take its fitted factor: `trtllm-pytorch` is TensorRT-LLM's
#: PyTorch backend driven by a harness of its own (NVIDIA's MLPerf DeepSeek-R1 submissions: TensorRT-LLM runs
#: DeepSeek-V3/R1 only on that backend), whose kernels trtllm-bench's tables measure
KERNELS_OF: dict[str, str] = {"trtllm-pytorch": "trtllm-bench"}
#: suffix of the key, in a {key: value} map of stack factors, of a stack's fitted GPU time per running sequence
#: per step that the op graph does not price (seconds, EngineParams.per_sequence_busy_s; `vllm/sequence_busy_s`)
SEQUENCE_BUSY_SUFFIX = "/sequence_busy_s"


def sequence_busy_key(stack: str) -> str:
    """Key of a stack's unpriced GPU time per running sequence per step in a map of stack factors."""
    return f"{stack}{SEQUENCE_BUSY_SUFFIX}"


def sequence_busy_for(scales: dict[str, float], stack: str | None) -> float:
    """A stack's fitted unpriced GPU time per running sequence per step beyond the tuned reference's (0 for
    the reference, an unknown stack, or one without a fitted time)."""
    if not stack or stack == "tuned":
        return 0.0
    return float(scales.get(sequence_busy_key(KERNELS_OF.get(stack, stack)), 0.0))


#: suffix of the key of a stack's fitted host time per running sequence per iteration of its pipelined runs
#: (seconds, EngineParams.pipeline_host_per_sequence_s; `trtllm-bench/pipeline_host_s`)
PIPELINE_HOST_SUFFIX = "/pipeline_host_s"


def pipeline_host_key(stack: str) -> str:
    """Key of a stack's host time per running sequence per pipelined iteration in a map of stack factors."""
    return f"{stack}{PIPELINE_HOST_SUFFIX}"


def pipeline_host_for(scales: dict[str, float], stack: str | None) -> float:
    """A stack's fitted host time per running sequence per iteration of a pipelined run (0 for the reference,
    an unknown stack, or one without a fitted time); stacks running another's executor take its time."""
    if not stack or stack == "tuned":
        return 0.0
    return float(scales.get(pipeline_host_key(KERNELS_OF.get(stack, stack)), 0.0))


def stack_key(stack: str, qualifier: str | None) -> str:
    """Key of a stack factor fitted for one hardware generation or for MoE models (`stack@qualifier`)."""
    return f"{stack}{GENERATION_SEP}{qualifier}"


def scale_for(scales: dict[str, float], stack: str | None, generation: str | None, moe: bool = False) -> float:
    """A stack's factor from a {key: factor} map: its MoE factor for an MoE model, else the one fitted for
    the hardware generation, else the stack's own, else 1 (the tuned reference)."""
    if not stack or stack == "tuned":
        return 1.0
    stack = KERNELS_OF.get(stack, stack)
    for key in ([stack_key(stack, MOE)] if moe else []) + [stack_key(stack, generation), stack]:
        if key in scales:
            return float(scales[key])
    return 1.0


def stored_stack_scales() -> dict[str, float]:
    """{key: factor} of the stored calibration: each stack's factor, its per-generation and MoE ones, and its
    unpriced GPU time per running sequence per step where one was fitted (`sequence_busy_key`)."""
    out: dict[str, float] = {}
    for stack, entry in (load_calibration().get("stacks") or {}).items():
        entry = entry or {}
        out[stack] = float(entry.get("scale", 1.0))
        if entry.get("per_sequence_busy_s"):
            out[sequence_busy_key(stack)] = float(entry["per_sequence_busy_s"])
        if entry.get("pipeline_host_per_sequence_s"):
            out[pipeline_host_key(stack)] = float(entry["pipeline_host_per_sequence_s"])
        for group in ("by_generation", "by_workload"):
            for qualifier, sub in (entry.get(group) or {}).items():
                out[stack_key(stack, qualifier)] = float((sub or {}).get("scale", 1.0))
    return out


def stack_scale(stack: str | None, hardware: str | None = None, moe: bool = False) -> float:
    """The fitted kernel-efficiency factor of a serving stack relative to the tuned reference, for the
    hardware's generation and the model kind (dense or MoE) where the stack has a factor of its own there
    (1 when the stack is the reference, unknown, or not fitted yet)."""
    generation = calibration_family(hardware)[0] if hardware else None
    return scale_for(stored_stack_scales(), stack, generation, moe)


def stack_sequence_busy_s(stack: str | None) -> float:
    """The fitted GPU time per running sequence per step of a serving stack beyond the tuned reference's that
    the op graph does not price (vLLM's sampler and logits processing; 0 where none was fitted)."""
    return sequence_busy_for(stored_stack_scales(), stack)


def stack_pipeline_host_s(stack: str | None) -> float:
    """The fitted host time per running sequence per iteration a stack's pipelined runs wait for (0 where none
    was fitted)."""
    return pipeline_host_for(stored_stack_scales(), stack)


def is_moe(workload) -> bool:
    """Whether a workload spec routes tokens to experts (selects a stack's MoE factor)."""
    return getattr(workload, "moe", None) is not None


def stack_params(hw, stack: str | None, params=None, moe: bool = False):
    """Engine parameters of a run on `stack`: `params` (or the calibrated default) with the stack's fitted
    factor (its MoE one when `moe`) and unpriced GPU time per sequence; None when both are defaults, so callers keep sharing the default
    caches."""
    from cosim.engines.efficiency import params_for

    scale = stack_scale(stack, hw.name, moe)
    busy_s = stack_sequence_busy_s(stack)
    host_s = stack_pipeline_host_s(stack)
    if params is None and scale == 1.0 and busy_s == 0.0 and host_s == 0.0:
        return None
    return apply_stack(params if params is not None else params_for(hw), scale, busy_s, host_s)


def calibration_family(slug: str) -> tuple[str | None, dict | None]:
    """(generation name, fitted scales) whose `match` patterns cover the hardware slug, or (None, None)."""
    import fnmatch

    for name, fam in (load_calibration().get("families") or {}).items():
        if any(fnmatch.fnmatch(slug, p) for p in fam.get("match", [])):
            return name, fam
    return None, None


def calibrated_params(hw):
    """Engine parameters with the stored calibration of the spec's generation applied (defaults if none)."""

    generation, fam = calibration_family(hw.name)
    fam = fam or {}
    return scaled_params(hw, float(fam.get("compute_scale", 1.0)), float(fam.get("memory_scale", 1.0)),
                         float(fam.get("overhead_scale", 1.0)), float(fam.get("attention_scale", 1.0)),
                         float(fam.get("link_scale", 1.0)), grouped_gemm_scale(), grouped_gemm_memory_scale(),
                         fitted_moe_train_layer_overhead_s(generation), fitted_kernel_launch_s())


def fitted_kernel_launch_s() -> float | None:
    """The fitted fixed time of every unfused kernel (launch, ramp and drain; the same on every chip), or None
    before calibration (the engine default, `launch_overhead_s` in cosim/data/engine_defaults.yaml)."""
    value = (load_calibration().get("kernels") or {}).get("launch_overhead_s")
    return None if value is None else float(value)


def grouped_gemm_scale() -> float:
    """The fitted share of the dense GEMM fraction that MoE grouped GEMMs reach (1 before calibration)."""
    return float((load_calibration().get("moe") or {}).get("grouped_gemm_scale", 1.0))


def grouped_gemm_memory_scale() -> float:
    """The fitted share of the memory-bandwidth fraction MoE grouped GEMMs stream at (1 before calibration)."""
    return float((load_calibration().get("moe") or {}).get("grouped_gemm_memory_scale", 1.0))


def fitted_moe_train_layer_overhead_s(generation: str | None) -> float:
    """The fitted host time per MoE layer per micro-batch of a training step on a hardware generation whose
    training rows it was fitted on (Megatron-Core on NVIDIA GPUs); 0 elsewhere and before calibration (a
    compiled stack such as MaxText on TPUs has no eager host path to wait for)."""
    entry = load_calibration().get("training") or {}
    if generation is None or generation not in (entry.get("generations") or []):
        return 0.0
    return float(entry.get("moe_layer_overhead_s", 0.0))
