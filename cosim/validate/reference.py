"""Reference measurements shipped with cosim (`cosim/data/reference/`), validated on load.

Three files: `measurements.yaml` (MLPerf, TensorRT-LLM tables, video timings, training MFU, vendor
claims; copied from the project's shared research data with every row's source),
`measurements_added.yaml` (rows the cosim developers read from public sources beyond the shared data:
the remaining cells of the same TensorRT-LLM tables) and `energy_measurements.yaml` (ML.ENERGY v3 GPU
energy rows and MLPerf Power system rows). A malformed row raises `CosimInputError` naming the row id and
the field.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cosim.errors import CosimInputError
from cosim.specs.loader import read_document

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "reference"


class MeasurementRow(BaseModel):
    """One published measurement: what was run, on what, the value and where it was published."""

    model_config = ConfigDict(extra="allow", frozen=True)

    id: str = Field(min_length=1)
    source_class: str
    source: dict[str, Any]
    hardware: dict[str, Any]
    model: str
    metric: str
    value: float = Field(gt=0)
    unit: str
    reliability: Literal["high", "medium", "low"]
    precision: str | None = None
    origin: Literal["shared", "added"] = "shared"  # the shared research data, or added by cosim's developers
    workload: dict[str, Any] = Field(default_factory=dict)
    notes: str | None = None

    @property
    def citation(self) -> str:
        src = self.source
        return f"{src.get('title', '')} {src.get('url') or src.get('locator') or ''}".strip()


def _validate_rows(rows: list[Any], file: str, model=MeasurementRow) -> list:
    out = []
    seen: set[str] = set()
    for i, raw in enumerate(rows):
        row_id = raw.get("id", f"#{i}") if isinstance(raw, dict) else f"#{i}"
        if not isinstance(raw, dict):
            raise CosimInputError(f"row {row_id}: expected a mapping", file=file)
        try:
            row = model.model_validate(raw)
        except ValidationError as err:
            first = err.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "?"
            raise CosimInputError(f"row '{row_id}': {first['msg']}", file=file, field=field) from None
        if row.id in seen:
            raise CosimInputError(f"row '{row.id}': duplicate id", file=file, field="id")
        seen.add(row.id)
        out.append(row)
    return out


def _records(p: Path) -> list:
    doc = read_document(p)
    rows = doc.get("records")
    if not isinstance(rows, list):
        raise CosimInputError("expected a 'records' list", file=str(p), field="records")
    return rows


@functools.lru_cache(maxsize=4)
def load_measurements(path: str | None = None) -> tuple[MeasurementRow, ...]:
    """The performance reference rows (validated): `path` alone, or the shipped shared and added files."""
    if path:
        return tuple(_validate_rows(_records(Path(path)), path))
    shared = _validate_rows(_records(DATA_DIR / "measurements.yaml"), str(DATA_DIR / "measurements.yaml"))
    added_path = DATA_DIR / "measurements_added.yaml"
    added = [row.model_copy(update={"origin": "added"})
             for row in _validate_rows(_records(added_path), str(added_path))]
    known = {row.id for row in shared}
    for row in added:
        if row.id in known:
            raise CosimInputError(f"row '{row.id}': duplicate id (also in measurements.yaml)", file=str(added_path),
                                  field="id")
    return tuple(shared + added)


class EnergyRow(BaseModel):
    """An energy measurement flattened to one row (ML.ENERGY GPU-only or MLPerf Power whole-system)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    source_class: Literal["ml_energy", "mlperf_power"]
    source: str
    model: str
    task: str
    gpu: str
    num_gpus: int = Field(gt=0)
    batch: int | None = None
    energy_j_per_output_token: float = Field(gt=0)
    avg_power_w: float = Field(gt=0, description="per GPU (ML.ENERGY) or whole system (MLPerf Power)")
    output_tokens_per_s: float | None = None
    median_itl_s: float | None = None
    avg_output_len: float | None = None
    reliability: Literal["high", "medium", "low"] = "high"


DIFFUSION_TASKS = ("text-to-image", "text-to-video", "image-to-video")


def diffusion_summary_rows(path: str | None = None) -> dict[str, str]:
    """{id: model} of the ML.ENERGY summary rows of diffusion runs in energy_measurements.yaml (energy per image
    or video, not per token): not scored themselves, each is a configuration of mlenergy_configs.yaml."""
    return dict(_diffusion_summary_rows(path))


@functools.lru_cache(maxsize=4)
def _diffusion_summary_rows(path: str | None) -> tuple[tuple[str, str], ...]:
    """The file parsed once (energy_queries, which lists these rows, runs once per energy row's query)."""
    p = Path(path) if path else DATA_DIR / "energy_measurements.yaml"
    ml = read_document(p).get("ml_energy_leaderboard_v3", {})
    return tuple((f"mlenergy-{_slug(raw['model'])}-{raw['task']}-{str(raw.get('gpu', 'gpu-unstated')).lower()}"
                  f"x{raw.get('num_gpus')}-minenergy", raw["model"])
                 for raw in ml.get("rows", []) if raw.get("task") in DIFFUSION_TASKS)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-")


@functools.lru_cache(maxsize=4)
def load_energy_rows(path: str | None = None) -> tuple[EnergyRow, ...]:
    """ML.ENERGY LLM rows (largest-batch and smallest-batch configs) and MLPerf Power rows."""
    p = Path(path) if path else DATA_DIR / "energy_measurements.yaml"
    doc = read_document(p)
    out: list[dict[str, Any]] = []
    ml = doc.get("ml_energy_leaderboard_v3", {})
    for raw in ml.get("rows", []):
        if raw.get("task") in DIFFUSION_TASKS:
            continue  # per image or video, not per token: listed by diffusion_summary_rows
        for label, cfg in (("maxbatch", raw.get("min_energy_config")),
                           ("batch8", (raw.get("smallest_batch") or {}))):
            if not cfg or "energy_per_output_token_j" not in cfg:
                continue
            out.append({
                "id": f"mlenergy-{_slug(raw['model'])}-{raw['task']}-{raw['gpu'].lower()}x{raw['num_gpus']}-{label}",
                "source_class": "ml_energy", "source": ml.get("source", ""), "model": raw["model"],
                "task": raw["task"], "gpu": raw["gpu"], "num_gpus": raw["num_gpus"],
                "batch": cfg.get("max_num_seqs"), "energy_j_per_output_token": cfg["energy_per_output_token_j"],
                "avg_power_w": cfg["avg_power_w_per_gpu"], "output_tokens_per_s": cfg.get("output_tokens_per_s"),
                "median_itl_s": (cfg["median_itl_ms"] / 1e3) if cfg.get("median_itl_ms") else None,
                "avg_output_len": cfg.get("avg_output_len"),
            })
    for raw in doc.get("mlperf_inference_power", {}).get("rows", []):
        tokens = raw.get("tokens_per_s")
        if not tokens:
            continue
        out.append({
            "id": f"mlperfpower-{raw['round']}-{_slug(raw['system'])}-{raw['benchmark']}-{raw['scenario'].lower()}",
            "source_class": "mlperf_power", "source": raw.get("source", ""), "model": raw["benchmark"],
            "task": raw["scenario"], "gpu": raw["system"], "num_gpus": 8,
            "energy_j_per_output_token": raw["avg_system_power_w"] / tokens,
            "avg_power_w": raw["avg_system_power_w"], "output_tokens_per_s": tokens,
        })
    return tuple(_validate_rows(out, str(p), EnergyRow))


class ConfigRow(BaseModel):
    """One configuration of an ML.ENERGY v3 data file (`mlenergy_configs.yaml`): a diffusion run (batch,
    Ulysses x ring degrees, resolution, steps; time, energy and power of the batch) or a vLLM run
    (max_num_seqs; energy per token, power, median ITL, output tokens/s)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    kind: Literal["diffusion", "llm"]
    model: str
    task: str
    source: str
    gpu: str
    num_gpus: int = Field(gt=0)
    values: dict[str, float | int | str | None]


#: the columns each kind of configuration row must give (scripts/import_mlenergy_configs.py writes them)
CONFIG_COLUMNS = {
    "diffusion": ("gpu", "num_gpus", "batch", "ulysses", "ring", "height", "width", "frames", "steps",
                  "batch_latency_s", "energy_per_output_j"),
    "llm": ("gpu", "num_gpus", "tp", "ep", "dp", "max_num_seqs", "avg_output_len", "energy_per_output_token_j"),
}


def config_row_id(kind: str, model: str, task: str, v: dict) -> str:
    """Stable id of a configuration: model, GPU and count, then the knobs that tell its runs apart."""
    head = f"mlenergy-cfg-{_slug(model)}"
    where = f"{str(v['gpu']).lower()}x{v['num_gpus']}"
    if kind == "diffusion":
        return f"{head}-{where}-b{v['batch']}-u{v['ulysses']}r{v['ring']}"
    return f"{head}-{task}-{where}-tp{v['tp']}ep{v['ep']}dp{v['dp']}-seqs{v['max_num_seqs']}"


@functools.lru_cache(maxsize=2)
def load_config_rows(path: str | None = None) -> tuple[ConfigRow, ...]:
    """Every configuration of the ML.ENERGY data files cosim carries, validated (columns, ids, types)."""
    p = Path(path) if path else DATA_DIR / "mlenergy_configs.yaml"
    if not p.exists():
        return ()
    doc = read_document(p)
    source = str(doc.get("source", ""))
    out: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for f_i, f in enumerate(doc.get("files") or []):
        where = f"files[{f_i}]"
        try:
            cols, rows, kind = list(f["columns"]), list(f["rows"]), f["kind"]
            model, task = str(f["model"]), str(f["task"])
            file_source = f"{source}; {f['path']} at commit {f['commit']}"
        except (KeyError, TypeError) as err:
            raise CosimInputError(f"{where}: missing {err}", file=str(p), field=where) from None
        missing = [c for c in CONFIG_COLUMNS.get(kind, ()) if c not in cols]
        if kind not in CONFIG_COLUMNS or missing:
            raise CosimInputError(f"{where}: kind '{kind}' needs the columns {', '.join(CONFIG_COLUMNS.get(kind, ()))}"
                                  + (f" (missing {', '.join(missing)})" if missing else
                                     f"; known kinds: {', '.join(CONFIG_COLUMNS)}"),
                                  file=str(p), field=f"{where}.columns")
        for r_i, raw in enumerate(rows):
            if not isinstance(raw, list) or len(raw) != len(cols):
                raise CosimInputError(f"{where}.rows[{r_i}]: expected {len(cols)} values ({', '.join(cols)})",
                                      file=str(p), field=f"{where}.rows[{r_i}]")
            v = dict(zip(cols, raw, strict=True))
            row_id = config_row_id(kind, model, task, v)
            seen[row_id] = seen.get(row_id, 0) + 1
            if seen[row_id] > 1:  # a configuration a file lists again: a repeated run, kept as its own row
                row_id = f"{row_id}-run{seen[row_id]}"
            out.append({"id": row_id, "kind": kind, "model": model, "task": task,
                        "source": file_source, "gpu": v["gpu"], "num_gpus": v["num_gpus"], "values": v})
    return tuple(_validate_rows(out, str(p), ConfigRow))
