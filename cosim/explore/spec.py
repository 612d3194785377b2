"""Sweep specs: a YAML file naming a base hardware, workloads and scenarios, what to vary and how.

Validated with pydantic (`extra="forbid"`). A parameter is addressed by its spec field path
(`memory.hbm.bandwidth_bytes_per_s`, `compute.peak_flops_per_s.fp8`, `compute.systolic.rows`); an
unknown path is a `CosimInputError` naming it and its close matches. Values may carry units
("4.8 TB/s"), parsed once here. Example::

    hardware: h100-sxm
    workloads: [llama-3.1-8b]
    scenarios: [{phase: decode, batch: 64, input_len: 2048, precision: fp8, tp: 8}]
    parameters:
      - {path: memory.hbm.bandwidth_bytes_per_s, range: {low: 2 TB/s, high: 8 TB/s}}
      - {path: compute.systolic.rows, values: [64, 128, 256]}
    sampling: {method: sobol, points: 1000000, seed: 0}
    objectives: [throughput_tokens_per_s:max, usd_per_million_tokens:min]
    constraints: ["tpot_s <= 0.05", "die_area_mm2 <= 800"]
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import re
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cosim.errors import CosimInputError
from cosim.specs.hardware import PRECISIONS, Fp4Format, Hardware, Precision
from cosim.specs.units import parse_quantity

SAMPLING_METHODS = ("grid", "random", "sobol", "lhs")
DEFAULT_CHUNK = 131_072
_CONSTRAINT = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(<=|>=|<|>|==)\s*(\S.*?)\s*$")

#: Result columns every evaluator run provides or explore derives (the engine contract plus derived).
ENGINE_COLUMNS = (
    "latency_s", "throughput_tokens_per_s", "tpot_s", "ttft_s", "memory_bytes_per_chip", "feasible",
    "bottleneck", "mfu",
)
DERIVED_COLUMNS = (
    "chips", "usd_per_hour", "power_w", "usd_per_million_tokens", "die_area_mm2", "die_cost_usd",
    "meets_constraints",
)
#: Further columns an evaluator may add; accepted in objectives/constraints, checked after chunk 0.
OPTIONAL_COLUMNS = (
    "energy_j_per_token", "energy_j", "tokens_per_j", "usd_per_request", "tokens_per_s_per_user",
    "prefill_s", "decode_s", "step_s", "flops", "bytes_moved",
)
MAPPING_COLUMNS = ("tp", "pp", "ep", "batch", "precision")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _kind_of_path(path: str) -> str:
    """Quantity kind of a field path, from the unit in its name (for parsing '4.8 TB/s')."""
    last = path.rsplit(".", 1)[-1]
    if "peak_flops_per_s" in path or last.endswith("flops_per_s"):
        return "flops_per_s"
    for suffix, kind in (("bytes_per_s", "bytes_per_s"), ("bytes", "bytes"), ("hz", "hz"),
                         ("j_per_byte", "j_per_byte"), ("latency_s", "s"), ("_w", "w"),
                         ("usd_per_hour", "usd_per_hour"), ("usd", "usd")):
        if last.endswith(suffix):
            return kind
    return "dimensionless"


def _number(value: Any, kind: str, where: str) -> float:
    try:
        return parse_quantity(value, kind)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None


class Range(_Strict):
    """A continuous interval; `log` samples uniformly in log space; `num` points for a grid."""

    low: float | str
    high: float | str
    log: bool = False
    num: int | None = Field(default=None, gt=0, description="grid points (grid sampling only)")


class Parameter(_Strict):
    """One swept field: either an explicit `values` list or a `range`."""

    path: str
    values: list[float | str] | None = None
    range: Range | None = None
    integer: bool = Field(default=False, description="round sampled values to integers (e.g. systolic rows)")

    @model_validator(mode="after")
    def _one_of(self) -> Parameter:
        if (self.values is None) == (self.range is None):
            raise ValueError(f"parameter '{self.path}' needs exactly one of 'values' or 'range'")
        if self.values is not None and not self.values:
            raise ValueError(f"parameter '{self.path}': empty 'values' list")
        return self

    @cached_property
    def numeric_values(self) -> list[float]:
        kind = _kind_of_path(self.path)
        return [_number(v, kind, self.path) for v in (self.values or [])]

    @cached_property
    def bounds(self) -> tuple[float, float]:
        if self.range is None:
            vals = self.numeric_values
            return min(vals), max(vals)
        kind = _kind_of_path(self.path)
        return (_number(self.range.low, kind, self.path), _number(self.range.high, kind, self.path))

    def check(self) -> None:
        """Empty or inverted ranges, non-positive log ranges: one readable error."""
        try:
            self.numeric_values  # noqa: B018 - parse now, so unit errors surface at load
            low, high = self.bounds
        except ValueError as err:
            raise CosimInputError(str(err), field=f"parameters.{self.path}") from None
        if self.range is not None:
            if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
                raise CosimInputError(f"empty range: low {low:g} must be below high {high:g}",
                                      field=f"parameters.{self.path}")
            if self.range.log and low <= 0:
                raise CosimInputError("a log range needs low > 0", field=f"parameters.{self.path}")
            if self.integer and math.floor(high) < math.ceil(low):
                raise CosimInputError(f"no integer in [{low:g}, {high:g}]", field=f"parameters.{self.path}")


class Sampling(_Strict):
    method: Literal["grid", "random", "sobol", "lhs"] = "sobol"
    points: int | None = Field(default=None, gt=0, description="points to draw (not for grid)")
    seed: int = 0


class ScenarioSpec(_Strict):
    """A scenario in CLI terms (precision sets weights, activations and KV cache; activation_precision sets
    the activations apart)."""

    phase: Literal["prefill", "decode", "generate", "train", "video"]
    batch: int = Field(default=1, gt=0)
    input_len: int = Field(default=1024, gt=0)
    output_len: int = Field(default=128, gt=0)
    frames: int | None = Field(default=None, gt=0)
    height: int | None = Field(default=None, gt=0)
    width: int | None = Field(default=None, gt=0)
    steps: int | None = Field(default=None, gt=0)
    precision: Precision = "bf16"
    # what the GEMMs multiply in when wider than the weights (weight-only quantisation, e.g. int4 + bf16)
    activation_precision: Precision | None = None
    # FP4 weights' block scaling, which sets their bytes: nvfp4 (4.5 bits a weight) or mxfp4 (4.25); None: the
    # sweep's hardware's own (NVFP4 on NVIDIA, MXFP4 elsewhere)
    fp4_format: Fp4Format | None = None
    tp: int = Field(default=1, gt=0)
    pp: int = Field(default=1, gt=0)
    ep: int = Field(default=1, gt=0)
    dp: int = Field(default=1, gt=0)
    sp: int = Field(default=1, gt=0)

    def to_scenario(self, **override):
        """A validated `cosim.specs.scenario.Scenario` (override e.g. tp/batch/precision)."""
        from cosim.specs.scenario import Parallelism, Scenario, default_kv_precision

        d = {**self.model_dump(), **override}
        prec = d["precision"]
        kv = default_kv_precision(prec)
        return Scenario(
            phase=d["phase"], batch=d["batch"], input_len=d["input_len"], output_len=d["output_len"],
            frames=d["frames"], height=d["height"], width=d["width"], steps=d["steps"],
            weight_precision=prec, activation_precision=d.get("activation_precision") or prec, kv_precision=kv,
            fp4_format=d.get("fp4_format") or "nvfp4",
            parallelism=Parallelism(tp=d["tp"], pp=d["pp"], ep=d["ep"], dp=d["dp"], sp=d["sp"]),
        )


class MappingChoices(_Strict):
    """Mapping candidates; `select: best` keeps the best mapping per design point, `all` keeps every one."""

    tp: list[int] | None = None
    pp: list[int] | None = None
    ep: list[int] | None = None
    batch: list[int] | None = None
    precision: list[Precision] | None = None
    select: Literal["best", "all"] = "best"

    @field_validator("tp", "pp", "ep", "batch")
    @classmethod
    def _positive(cls, v):
        if v is not None and (not v or any(x <= 0 for x in v)):
            raise ValueError("must be a non-empty list of positive integers")
        return v

    def combos(self) -> list[dict[str, Any]]:
        """Every combination, as scenario overrides (empty dict when nothing varies)."""
        import itertools

        keys = [k for k in MAPPING_COLUMNS if getattr(self, k)]
        return [dict(zip(keys, vals, strict=True)) for vals in itertools.product(*(getattr(self, k) for k in keys))]


AUTO_MAPPING = MappingChoices(tp=[1, 2, 4, 8], pp=[1, 2], batch=[1, 4, 16, 64, 256], precision=["bf16", "fp8"])


class Objective(_Strict):
    column: str
    sense: Literal["max", "min"] = "max"

    @classmethod
    def parse(cls, text: str) -> Objective:
        """`COL:max` or `COL:min` (the CLI and YAML shorthand)."""
        col, _, sense = str(text).rpartition(":")
        if not col or sense not in ("max", "min"):
            raise CosimInputError(f"objective '{text}' must look like COLUMN:max or COLUMN:min", field="objectives")
        return cls(column=col, sense=sense)


class Constraint(_Strict):
    column: str
    op: Literal["<=", ">=", "<", ">", "=="]
    value: float

    @classmethod
    def parse(cls, text: str) -> Constraint:
        m = _CONSTRAINT.match(str(text))
        if not m:
            raise CosimInputError(f"constraint '{text}' must look like 'COLUMN <= NUMBER'", field="constraints")
        col, op, raw = m.groups()
        try:
            value = parse_quantity(raw, _kind_of_path(col))
        except ValueError as err:
            raise CosimInputError(f"constraint '{text}': {err}", field="constraints") from None
        return cls(column=col, op=op, value=value)

    def __str__(self) -> str:
        return f"{self.column} {self.op} {self.value:g}"


class AreaSpec(_Strict):
    """Area/die-cost columns: on by default for systolic, TPU and ASIC bases."""

    enabled: bool | None = None
    node: str | None = None
    precision: str = "bf16"
    yield_model: Literal["murphy", "poisson"] = "murphy"


class SweepSpec(_Strict):
    """A whole sweep; `hash()` identifies it for resume."""

    schema_version: Literal[1] = 1
    name: str = "sweep"
    hardware: str | dict[str, Any]
    workloads: list[str | dict[str, Any]] = Field(min_length=1)
    scenarios: list[ScenarioSpec] = Field(min_length=1)
    parameters: list[Parameter] = Field(default_factory=list)
    sampling: Sampling = Sampling()
    mapping: MappingChoices | Literal["auto"] | None = None
    objectives: list[Objective | str] = Field(default_factory=list)
    constraints: list[Constraint | str] = Field(default_factory=list)
    area: AreaSpec = AreaSpec()
    chunk_size: int = Field(default=DEFAULT_CHUNK, ge=1)

    @field_validator("objectives")
    @classmethod
    def _objectives(cls, v):
        return [o if isinstance(o, Objective) else Objective.parse(o) for o in v]

    @field_validator("constraints")
    @classmethod
    def _constraints(cls, v):
        return [c if isinstance(c, Constraint) else Constraint.parse(c) for c in v]

    @property
    def mapping_choices(self) -> MappingChoices | None:
        return AUTO_MAPPING if self.mapping == "auto" else self.mapping

    def n_points(self) -> int:
        """Hardware design points (before workloads x scenarios x mappings)."""
        if self.sampling.method == "grid":
            n = 1
            for p in self.parameters:
                n *= len(p.numeric_values) if p.values is not None else (p.range.num or 0)
            return n
        return int(self.sampling.points or 0)

    def hash(self) -> str:
        """sha256 of the canonical JSON of the validated spec (units already parsed)."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def _dedupe_context(err: ValidationError, file: str | None) -> CosimInputError:
    from cosim.specs.loader import format_validation_error

    return format_validation_error(err, file)


def resolve_hardware(spec: SweepSpec, base_dir: Path | None = None) -> Hardware:
    from cosim.specs.loader import hardware_from_dict, load_hardware

    if isinstance(spec.hardware, dict):
        return hardware_from_dict(spec.hardware, "hardware (inline)")
    text = spec.hardware
    if base_dir is not None and ("/" in text or text.endswith((".yaml", ".yml", ".json"))):
        candidate = base_dir / text
        if candidate.exists():
            text = str(candidate)
    return load_hardware(text)


def resolve_workloads(spec: SweepSpec, base_dir: Path | None = None) -> list:
    from cosim.specs.loader import load_workload, workload_from_dict

    out = []
    for i, w in enumerate(spec.workloads):
        if isinstance(w, dict):
            out.append(workload_from_dict(w, f"workloads[{i}] (inline)"))
            continue
        text = w
        if base_dir is not None and ("/" in text or text.endswith((".yaml", ".yml", ".json"))):
            candidate = base_dir / text
            if candidate.exists():
                text = str(candidate)
        out.append(load_workload(text))
    return out


def check_paths(spec: SweepSpec, hw: Hardware) -> dict[str, str]:
    """Map each parameter path to its HardwareArrays column; unknown paths name the close matches."""
    from cosim.engines.hwarrays import field_paths

    paths = field_paths(hw)
    out = {}
    for p in spec.parameters:
        if p.path not in paths:
            close = difflib.get_close_matches(p.path, list(paths), n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; sweepable paths: {', '.join(sorted(paths))}"
            raise CosimInputError(f"unknown field path '{p.path}'{hint}", field="parameters")
        p.check()
        out[p.path] = paths[p.path]
    if len(set(out)) != len(spec.parameters):
        raise CosimInputError("a field path is listed twice", field="parameters")
    return out


def known_columns(spec: SweepSpec) -> set[str]:
    """Columns objectives and constraints may name."""
    cols = set(ENGINE_COLUMNS) | set(DERIVED_COLUMNS) | set(OPTIONAL_COLUMNS) | set(MAPPING_COLUMNS)
    cols |= {p.path for p in spec.parameters}
    return cols


def check_columns(spec: SweepSpec) -> None:
    """Objectives/constraints must name known result columns (close matches suggested)."""
    known = known_columns(spec)
    for what, cols in (("constraints", [c.column for c in spec.constraints]),
                       ("objectives", [o.column for o in spec.objectives])):
        for col in cols:
            if col not in known:
                close = difflib.get_close_matches(col, sorted(known), n=3, cutoff=0.5)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise CosimInputError(f"unknown result column '{col}'{hint}", field=what)


def check_sampling(spec: SweepSpec) -> None:
    s = spec.sampling
    if s.method == "grid":
        for p in spec.parameters:
            if p.range is not None and not p.range.num:
                raise CosimInputError(f"grid sampling needs range.num for '{p.path}'", field="parameters")
    elif not s.points:
        raise CosimInputError(f"{s.method} sampling needs 'points'", field="sampling.points")
    if s.method != "grid" and not spec.parameters:
        raise CosimInputError("nothing to sample: 'parameters' is empty", field="parameters")
    if spec.area.precision not in PRECISIONS:
        raise CosimInputError(f"unknown precision '{spec.area.precision}'", field="area.precision")


def sweep_from_dict(data: dict[str, Any], file: str | None = None) -> SweepSpec:
    """Validate a sweep spec mapping (structure only; paths need the hardware: see `check_paths`)."""
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as err:
        raise _dedupe_context(err, file) from None
    try:
        check_sampling(spec)
        check_columns(spec)
        for p in spec.parameters:
            p.check()
    except CosimInputError as err:
        raise CosimInputError(err.detail, file=file, field=err.field) from None
    return spec


def load_sweep_spec(path: str | Path) -> SweepSpec:
    """Read and validate a sweep YAML/JSON file."""
    from cosim.specs.loader import read_document

    p = Path(path)
    return sweep_from_dict(read_document(p), str(p))
