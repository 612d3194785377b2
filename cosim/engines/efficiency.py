"""Efficiency parameters of the analytical engine: per hardware family, loaded from YAML with provenance.

`cosim/data/efficiency/<family>.yaml` holds, per family (nvidia-gpu, amd-gpu, tpu, asic-default), the
achievable fraction of peak FLOP/s per precision for GEMMs (`compute_fraction`), the share of it a GEMM
keeps when it widens narrower stored weights in the kernel (`weight_upcast_fraction`) and, separately, for
fused attention kernels (`attention_fraction`: FlashAttention-style kernels reach a different share of
peak than GEMMs, and it depends on the kernel generation, so a family file may override it per hardware
slug under `attention_fraction.by_hardware`), the achievable fraction of main-memory bandwidth, a
size curve (multiplier keyed by the FLOPs of one kernel execution) and the smallest GEMM tiles kernels
use. `cosim/data/engine_defaults.yaml` holds the family-independent constants (overheads, overlap,
memory reserve). Nothing here is fitted per measurement row.
"""

from __future__ import annotations

import fnmatch
import functools
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import yaml

from cosim.errors import CosimInputError
from cosim.specs.hardware import PRECISIONS, Hardware
from cosim.specs.units import parse_quantity

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
FAMILIES = ("nvidia-gpu", "amd-gpu", "tpu", "asic-default")


@dataclass(frozen=True)
class EngineParams:
    """Everything the kernel needs besides the hardware columns and the op table (SI units)."""

    family: str
    compute_fraction: np.ndarray  # (len(PRECISIONS),) achievable fraction of peak per precision (GEMMs)
    memory_fraction: float
    curve_log10_flops: np.ndarray
    curve_multiplier: np.ndarray
    min_tile_m: float
    min_tile_n: float
    split_k: bool
    launch_overhead_s: float
    step_overhead_s: float
    comm_overlap_fraction: float
    dp_overlap_fraction: float
    onchip_activation_fraction: float
    onchip_weight_fraction: float
    memory_reserve_fraction: float
    # (len(PRECISIONS),) achievable fraction of peak of fused (FlashAttention-style) attention kernels
    attention_fraction: np.ndarray | None = None
    # host work per running sequence per engine iteration (sampling, scheduling, detokenising)
    per_sequence_overhead_s: float = 0.0
    # GPU work per running sequence per engine iteration that the op graph does not price (a serving stack's
    # sampler, logits processing and input preparation kernels): step time like the host work above, but
    # drawing the power of the step's other work (`cosim.validate.fit.fit_energy_stack` fits it for vLLM)
    per_sequence_busy_s: float = 0.0
    # host work per running sequence per iteration that a pipeline-parallel run (pp > 1) waits for: an engine
    # whose single-stage runs overlap their host work with the GPU (TensorRT-LLM's PyTorch executor runs two
    # micro-batches, the overlap scheduler) schedules pp micro-batches instead when it pipelines, every rank's
    # executor handling all its sequences each iteration; 0 in first principles, fitted per serving stack on
    # its pipelined rows by cosim validate --calibrate (`phases.pipeline_host_s`)
    pipeline_host_per_sequence_s: float = 0.0
    # achievable fraction of the datasheet link bandwidth for collectives (1 = datasheet)
    link_fraction: float = 1.0
    # the fraction a video DiT's sequence-parallel all-to-all and ring K/V exchange reach (xDiT's USP in eager
    # PyTorch, measured per family; the family file's video_sp_link_fraction); None: link_fraction
    sp_link_fraction: float | None = None
    # MoE grouped GEMMs (routing, token permutation, per-expert tile scheduling) reach this share of the
    # dense GEMM fraction; 1 in first principles, fitted across generations by cosim validate --calibrate
    grouped_gemm_scale: float = 1.0
    # share of the memory-bandwidth fraction at which MoE grouped GEMMs move their main-memory bytes (mostly
    # expert weights: many small per-expert GEMMs, unevenly loaded, against one large dense one); 1 in first
    # principles, fitted with grouped_gemm_scale on the MoE rows
    grouped_gemm_memory_scale: float = 1.0
    # time per MoE layer per micro-batch a training step spends beyond its GPU work (Megatron-Core's dropless
    # MoE path: the host waits for each layer's per-expert token counts before it sizes the all-to-all and
    # the grouped GEMM, then launches the router, permute and dispatch kernels eagerly); 0 in first
    # principles, fitted on the MoE training rows by cosim validate --calibrate
    moe_train_layer_overhead_s: float = 0.0
    # (len(PRECISIONS),) share of the GEMM fraction kept by a compute-bound GEMM that widens its weights in
    # the kernel (stored narrower than it multiplies in: W4A16, W8A16), by compute precision; None: 1
    weight_upcast_fraction: np.ndarray | None = None
    # when set, the size curve is keyed by time: an op is read at the FLOPs this rate does in the time the
    # op takes at its own precision's peak (a kernel's fixed prologue/epilogue is time, not work); None:
    # keyed by FLOPs
    curve_reference_flops_per_s: float | None = None
    # whether a GEMM kernel stores each output tile after its main loop, the multiply-adds waiting (GPU tile
    # epilogues), so a compute-bound GEMM pays its output write on top; False: the store overlaps (systolic
    # arrays whose output buffers drain while they compute)
    serial_output_store: bool = False

    def __post_init__(self) -> None:
        if self.attention_fraction is None:  # a family without attention data: attention runs like GEMMs
            object.__setattr__(self, "attention_fraction", np.asarray(self.compute_fraction, dtype=np.float64))
        if self.weight_upcast_fraction is None:  # not modelled: widening weights costs nothing
            object.__setattr__(self, "weight_upcast_fraction", np.ones(len(PRECISIONS)))

    def with_overrides(self, **kw) -> EngineParams:
        """A copy with some fields replaced (e.g. `launch_overhead_s=5e-6` for eager mode)."""
        unknown = [k for k in kw if k not in self.__dataclass_fields__]
        if unknown:
            raise CosimInputError(f"unknown engine parameter(s) {unknown}")
        return replace(self, **kw)


def family_of(hw: Hardware) -> str:
    """nvidia-gpu / amd-gpu / tpu / asic-default from the spec's kind and vendor."""
    vendor = hw.vendor.lower()
    if hw.kind == "tpu" or "google" in vendor:
        return "tpu"
    if hw.kind == "gpu" and "nvidia" in vendor:
        return "nvidia-gpu"
    if hw.kind == "gpu" and "amd" in vendor:
        return "amd-gpu"
    return "asic-default"


def _value(entry):
    return entry["value"] if isinstance(entry, dict) else entry


@functools.cache
def load_engine_defaults() -> dict:
    """The raw engine_defaults.yaml mapping (values with their sources)."""
    return yaml.safe_load((DATA_DIR / "engine_defaults.yaml").read_text(encoding="utf-8"))


@functools.cache
def load_family(family: str) -> dict:
    path = DATA_DIR / "efficiency" / f"{family}.yaml"
    if not path.is_file():
        raise CosimInputError(f"unknown efficiency family '{family}'; expected one of {', '.join(FAMILIES)}")
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _per_precision(section: dict, *, file: str, field: str, fallback: np.ndarray | None = None) -> np.ndarray:
    """A {default, <precision>: ...} mapping -> one fraction per precision, each in (0, 1]."""
    if "default" in section:
        default = np.full(len(PRECISIONS), float(_value(section["default"])))
    elif fallback is not None:
        default = np.asarray(fallback, dtype=np.float64)
    else:
        raise CosimInputError("a per-precision fraction needs a 'default'", file=file, field=field)
    out = np.array([float(_value(section[p])) if p in section else default[k] for k, p in enumerate(PRECISIONS)])
    if np.any(out <= 0) or np.any(out > 1):
        raise CosimInputError("fractions of peak must lie in (0, 1]", file=file, field=field)
    return out


@functools.cache
def engine_params(family: str) -> EngineParams:
    """EngineParams of a family (cached; the arrays must not be mutated)."""
    fam = load_family(family)
    d = load_engine_defaults()
    file = f"efficiency/{family}.yaml"
    fractions = _per_precision(fam["compute_fraction"], file=file, field="compute_fraction")
    att = fam.get("attention_fraction")
    attention = (_per_precision(att, file=file, field="attention_fraction", fallback=fractions)
                 if att else fractions.copy())
    upcast = fam.get("weight_upcast_fraction")
    curve = fam["size_curve"]
    flops = np.asarray(curve["flops"], dtype=np.float64)
    mult = np.asarray(curve["multiplier"], dtype=np.float64)
    if np.any(np.diff(flops) <= 0) or np.any(mult <= 0) or np.any(mult > 1):
        raise CosimInputError("size_curve needs increasing flops and multipliers in (0, 1]",
                              file=f"efficiency/{family}.yaml", field="size_curve")
    return EngineParams(
        family=family,
        compute_fraction=fractions,
        attention_fraction=attention,
        weight_upcast_fraction=(_per_precision(upcast, file=file, field="weight_upcast_fraction")
                                if upcast else None),
        memory_fraction=float(_value(fam["memory_fraction"])),
        curve_log10_flops=np.log10(flops),
        curve_multiplier=mult,
        curve_reference_flops_per_s=(parse_quantity(curve["reference_flops_per_s"], "flops_per_s")
                                     if curve.get("reference_flops_per_s") is not None else None),
        min_tile_m=float(_value(fam["min_tile_m"])),
        min_tile_n=float(_value(fam["min_tile_n"])),
        split_k=bool(fam.get("split_k", True)),
        serial_output_store=bool(fam.get("serial_output_store", False)),
        launch_overhead_s=float(_value(d["launch_overhead_s"])),
        step_overhead_s=float(_value(d["step_overhead_s"])),
        per_sequence_overhead_s=float(_value(d["per_sequence_overhead_s"])),
        link_fraction=float(_value(d["link_fraction"])),
        comm_overlap_fraction=float(_value(d["comm_overlap_fraction"])),
        dp_overlap_fraction=float(_value(d["dp_overlap_fraction"])),
        onchip_activation_fraction=float(_value(d["onchip_activation_fraction"])),
        onchip_weight_fraction=float(_value(d["onchip_weight_fraction"])),
        memory_reserve_fraction=float(_value(d["memory_reserve_fraction"])),
    )


@functools.cache
def _fraction_for_hardware(family: str, slug: str, section: str) -> np.ndarray | None:
    """The family file's `<section>.by_hardware[slug]` (a chip's own measured fraction of peak), if any."""
    sec = load_family(family).get(section) or {}
    entry = (sec.get("by_hardware") or {}).get(slug)
    if entry is None:
        return None
    return _per_precision(entry, file=f"efficiency/{family}.yaml", field=f"{section}.by_hardware.{slug}",
                          fallback=getattr(engine_params(family), section))


def params_for(hw: Hardware, calibrated: bool = True, **overrides) -> EngineParams:
    """EngineParams for a hardware spec's family (with its per-chip attention data), plus overrides.

    `calibrated` applies the fitted scale factors of the chip's generation (cosim/data/calibration.yaml,
    written by `cosim validate --calibrate`); `calibrated=False` gives the first-principles defaults.
    """
    if calibrated:
        from cosim.engines.calibration import calibrated_params

        p = calibrated_params(hw)
        return p.with_overrides(**overrides) if overrides else p
    family = family_of(hw)
    p = engine_params(family)
    for section in ("compute_fraction", "attention_fraction"):
        own = _fraction_for_hardware(family, hw.name, section)
        if own is not None and section not in overrides:
            overrides = {**overrides, section: own}
    sp_link = _sp_link_fraction_for(family, hw.name)
    if sp_link is not None and "sp_link_fraction" not in overrides:
        overrides = {**overrides, "sp_link_fraction": sp_link}
    return p.with_overrides(**overrides) if overrides else p


@functools.cache
def _sp_link_fraction_for(family: str, slug: str) -> float | None:
    """The family file's `video_sp_link_fraction.by_hardware` entry whose slug pattern matches, if any."""
    entries = (load_family(family).get("video_sp_link_fraction") or {}).get("by_hardware") or {}
    for pattern, value in entries.items():
        if fnmatch.fnmatch(slug, pattern):
            if not 0.0 < float(value) <= 1.0:
                raise CosimInputError(f"must be in (0, 1], got {value}", file=f"efficiency/{family}.yaml",
                                      field=f"video_sp_link_fraction.by_hardware.{pattern}")
            return float(value)
    return None


ATTENTION_KERNELS_PATH = Path(__file__).resolve().parent.parent / "data" / "attention_kernels.yaml"


@functools.lru_cache(maxsize=1)
def attention_kernels() -> dict[str, dict[str, float]]:
    """{kernel: {hardware slug: forward FLOP/s}} of the named attention kernels (attention_kernels.yaml)."""
    doc = yaml.safe_load(ATTENTION_KERNELS_PATH.read_text(encoding="utf-8")) or {}
    out: dict[str, dict[str, float]] = {}
    for name, kernel in (doc.get("kernels") or {}).items():
        out[name] = {}
        for slug, rate in (kernel.get("rates_flops_per_s") or {}).items():
            try:
                out[name][slug] = parse_quantity(rate["value"], "flops_per_s")
            except (KeyError, TypeError, ValueError) as err:
                raise CosimInputError(f"rate of '{name}' on '{slug}': {err}", file=str(ATTENTION_KERNELS_PATH),
                                      field=f"kernels.{name}.rates_flops_per_s.{slug}") from None
    return out


def with_attention_kernel(params: EngineParams, hw, kernel: str | None) -> EngineParams:
    """`params` with fused attention capped at `kernel`'s measured rate on `hw` (BF16/FP16, the precisions the
    kernel runs), or unchanged when the kernel has no figure for this chip. Unknown kernels are an input error."""
    if not kernel:
        return params
    kernels = attention_kernels()
    if kernel not in kernels:
        raise CosimInputError(f"unknown attention kernel '{kernel}'; known: {', '.join(sorted(kernels))}",
                              file=str(ATTENTION_KERNELS_PATH), field="kernels")
    rate = kernels[kernel].get(hw.name)
    if rate is None:
        return params
    af = np.array(params.attention_fraction, dtype=np.float64)
    for p in ("bf16", "fp16"):
        i = PRECISIONS.index(p)
        peak = hw.peak_flops(p) or 0.0
        if peak > 0:
            af[i] = min(af[i], rate / peak)
    return params.with_overrides(attention_fraction=af)
