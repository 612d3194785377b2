"""Hardware spec schema: one accelerator (chip) and the system it sits in.

Loaded from `hardware_specs/*.yaml`. Every number is a sourced `Figure` converted to SI on load.
Link bandwidths are per chip and per direction (a vendor's "900 GB/s bidirectional NVLink" is
450 GB/s per direction). Peak FLOP/s are dense (no 2:4 sparsity).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cosim.specs.figure import (
    AreaFig,
    BandwidthFig,
    BytesFig,
    CountFig,
    FigureBase,
    FlopsFig,
    HertzFig,
    JoulesPerByteFig,
    JoulesPerFlopFig,
    RatioFig,
    SecondsFig,
    UsdFig,
    UsdPerHourFig,
    WattsFig,
    WattsNonNegFig,
)

SCHEMA_VERSION = 1

#: Compute precisions cosim knows, and their storage size in bytes per element.
PRECISIONS: tuple[str, ...] = ("fp32", "tf32", "bf16", "fp16", "fp8", "fp6", "fp4", "int8", "int4")
BYTES_PER_ELEMENT: dict[str, float] = {
    "fp32": 4.0, "tf32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0,
    "fp6": 0.75, "fp4": 0.5, "int8": 1.0, "int4": 0.5,
}
Precision = Literal["fp32", "tf32", "bf16", "fp16", "fp8", "fp6", "fp4", "int8", "int4"]
#: the block-scaled layouts an FP4 tensor is stored in: NVIDIA's NVFP4 (16 values share one FP8 E4M3 scale) and
#: the OCP microscaling MXFP4 (32 values share one E8M0 scale; AMD's FP4 and gpt-oss's released checkpoint)
Fp4Format = Literal["nvfp4", "mxfp4"]
#: scale bytes an FP4 layout stores per value beside its 4-bit element: NVFP4 8 bits per 16 values (4.5 bits a
#: value; NVIDIA, "Introducing NVFP4 for Efficient and Accurate Low-Precision Inference", technical blog, June 2025),
#: MXFP4 8 bits per 32 (OCP Microscaling Formats (MX) Specification v1.0, 2023: block size 32, E8M0 scale)
FP4_SCALE_BYTES_PER_ELEMENT: dict[str, float] = {"nvfp4": 1.0 / 16.0, "mxfp4": 1.0 / 32.0}
#: the same for the other block-scaled precisions: MXFP6 (OCP MX v1.0, 8 bits per 32 values); INT4 as AWQ/GPTQ
#: checkpoints store it, one FP16 scale and one packed 4-bit zero point per group of 128 (AWQ's default
#: q_group_size 128, zero_point true). FP8 and INT8 checkpoints scale per tensor, per channel or per 128 x 128
#: block (4 scale bytes per 16,384 weights, 0.02%): left out.
BLOCK_SCALE_BYTES_PER_ELEMENT: dict[str, float] = {"fp6": 1.0 / 32.0, "int4": 2.5 / 128.0}


def native_fp4_format(vendor: str) -> Fp4Format:
    """The FP4 layout a vendor's chips and checkpoints use when a run does not say: NVIDIA's NVFP4 on NVIDIA
    parts, the OCP MX standard's MXFP4 elsewhere (AMD's CDNA 4 matrix cores take MX formats, not NVFP4)."""
    return "nvfp4" if vendor.strip().lower() == "nvidia" else "mxfp4"


def stored_bytes_per_element(precision: str, fp4_format: str = "nvfp4") -> float:
    """Bytes one stored weight takes: its element width plus its share of the block scales (4.5 bits for an
    NVFP4 weight, 4.25 for MXFP4). What a checkpoint's weights occupy and what streaming them reads."""
    if precision == "fp4":
        return BYTES_PER_ELEMENT[precision] + FP4_SCALE_BYTES_PER_ELEMENT[fp4_format]
    return BYTES_PER_ELEMENT[precision] + BLOCK_SCALE_BYTES_PER_ELEMENT.get(precision, 0.0)


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PeakFlops(_Frozen):
    """Dense peak matrix FLOP/s per precision (omit a precision the chip lacks)."""

    fp32: FlopsFig | None = None
    tf32: FlopsFig | None = None
    bf16: FlopsFig | None = None
    fp16: FlopsFig | None = None
    fp8: FlopsFig | None = None
    fp6: FlopsFig | None = None
    fp4: FlopsFig | None = None
    int8: FlopsFig | None = None
    int4: FlopsFig | None = None

    def get(self, precision: str) -> float | None:
        fig = getattr(self, precision, None)
        return None if fig is None else fig.value


class Systolic(_Frozen):
    """Systolic matrix units: `rows` x `cols` PEs, `arrays_per_core` of them per core."""

    rows: CountFig
    cols: CountFig
    arrays_per_core: CountFig
    cores: CountFig
    dataflow: Literal["os", "ws", "is"] = "ws"


class GemmTile(_Frozen):
    """The output tile a typical GEMM kernel assigns to one compute unit (for tile/wave quantisation)."""

    m: int = Field(gt=0)
    n: int = Field(gt=0)
    k: int = Field(gt=0)
    source: str


class Compute(_Frozen):
    peak_flops_per_s: PeakFlops
    vector_flops_per_s: FlopsFig | None = Field(
        default=None, description="non-matmul (vector/CUDA-core) FLOP/s for elementwise, norm, softmax"
    )
    clock_hz: HertzFig | None = None
    compute_units: CountFig | None = Field(default=None, description="SMs, CUs, TensorCores or cores")
    compute_unit_name: str = "core"
    systolic: Systolic | None = None
    gemm_tile: GemmTile | None = None


class MemoryLevel(_Frozen):
    """One level of the memory hierarchy, ordered from the compute outwards."""

    name: str = Field(pattern=r"^[a-z0-9_]+$")
    kind: Literal["register", "sram", "cache", "hbm", "gddr", "ddr", "lpddr"]
    capacity_bytes: BytesFig = Field(description="capacity per chip (summed over units for per-SM memories)")
    bandwidth_bytes_per_s: BandwidthFig | None = None
    energy_j_per_byte: JoulesPerByteFig | None = None
    note: str | None = None


class Link(_Frozen):
    """A fabric as seen from one chip: bandwidth per direction, domain size, topology, latency."""

    name: str
    bandwidth_bytes_per_s: BandwidthFig = Field(description="per chip, per direction")
    topology: Literal["switch", "torus", "mesh", "ring", "fully_connected", "point_to_point"] = "switch"
    domain_size: CountFig | None = Field(default=None, description="chips reachable over this fabric")
    torus_dims: tuple[int, ...] | None = None
    latency_s: SecondsFig | None = None
    energy_j_per_byte: JoulesPerByteFig | None = None
    in_switch_reduction: bool = False

    @model_validator(mode="after")
    def _torus_needs_dims(self) -> Link:
        if self.topology == "torus" and not self.torus_dims:
            raise ValueError("a torus needs 'torus_dims' (e.g. [4, 4, 4])")
        return self


class Interconnect(_Frozen):
    scale_up: Link | None = None
    scale_out: Link | None = None


class Power(_Frozen):
    tdp_w: WattsFig
    idle_w: WattsNonNegFig | None = None


class Cost(_Frozen):
    purchase_price_usd: UsdFig | None = None
    cloud_price_usd_per_hour: UsdPerHourFig | None = None
    cloud_price_date: str | None = Field(default=None, description="YYYY-MM of the cloud price")


class EnergyOverrides(_Frozen):
    """Per-chip energy figures that replace cosim's node-scaled defaults."""

    energy_j_per_flop: dict[str, JoulesPerFlopFig] = Field(default_factory=dict)
    static_power_w: WattsNonNegFig | None = None


class SystemSpec(_Frozen):
    """How chips are packaged: chips per node, nodes per pod, host overhead."""

    chips_per_node: CountFig
    nodes_per_pod: CountFig | None = None
    host_power_w_per_node: WattsNonNegFig | None = None
    host_overhead_fraction: RatioFig | None = None


class Silicon(_Frozen):
    die_area_m2: AreaFig | None = None
    transistors: CountFig | None = None


class Hardware(_Frozen):
    """A validated accelerator spec (SI units)."""

    schema_version: Literal[1] = 1
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9.\-]*$", description="catalog slug")
    display_name: str
    vendor: str
    kind: Literal["gpu", "tpu", "asic"]
    process_node: str
    process_node_nm: CountFig
    launch_year: int = Field(ge=2010, le=2035)
    sources: dict[str, str] = Field(min_length=1, description="source key -> citation (title, URL, date)")
    compute: Compute
    memory: tuple[MemoryLevel, ...] = Field(min_length=1)
    interconnect: Interconnect = Interconnect()
    power: Power
    cost: Cost = Cost()
    energy: EnergyOverrides = EnergyOverrides()
    system: SystemSpec
    silicon: Silicon = Silicon()
    notes: str | None = None

    @model_validator(mode="after")
    def _check(self) -> Hardware:
        names = [m.name for m in self.memory]
        if len(set(names)) != len(names):
            raise ValueError(f"memory level names must be unique, got {names}")
        if not any(p is not None for p in self.compute.peak_flops_per_s.__dict__.values()):
            raise ValueError("compute.peak_flops_per_s needs at least one precision")
        missing = [(path, src) for path, src in _figure_sources(self) if src not in self.sources]
        if missing:
            path, src = missing[0]
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise ValueError(f"'{path}' cites source '{src}', which is not in 'sources'{more}")
        return self

    # --- convenience accessors used by engines (SI floats) ---
    @property
    def main_memory(self) -> MemoryLevel:
        """The outermost (largest) level: HBM/DDR for most chips, SRAM for SRAM-only designs."""
        return self.memory[-1]

    def memory_level(self, name: str) -> MemoryLevel | None:
        return next((m for m in self.memory if m.name == name), None)

    def peak_flops(self, precision: str) -> float | None:
        return self.compute.peak_flops_per_s.get(precision)


def _figure_sources(model: BaseModel, prefix: str = ""):
    """Yield (field path, `source` key) of every figure nested in `model`; memory levels by name."""
    for key, value in model.__dict__.items():
        yield from _sources_in(value, f"{prefix}{key}")


def _sources_in(value, path: str):
    if isinstance(value, FigureBase | GemmTile):
        yield path, value.source
    elif isinstance(value, BaseModel):
        yield from _figure_sources(value, f"{path}.")
    elif isinstance(value, tuple | list):
        for i, item in enumerate(value):
            yield from _sources_in(item, f"{path}.{getattr(item, 'name', i)}")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _sources_in(item, f"{path}.{key}")
