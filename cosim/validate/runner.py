"""Run every mapped reference row through cosim and tabulate predicted vs measured, with groups."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cosim.errors import CosimInputError
from cosim.validate.mapping import load_mapping
from cosim.validate.reference import load_measurements

GROUP_COLUMNS = ("vendor", "hardware", "workload_class", "metric", "source_class", "reliability", "origin")
#: crossed groups, so that a chip's training rows cannot hide a regression of its inference rows in the gate
CROSSED_GROUPS = (("hardware", "metric"),)
#: a crossed group is summarised from this many rows up
CROSSED_MIN_ROWS = 3


@dataclass
class ValidationReport:
    rows: pd.DataFrame  # id, hardware, workload, metric, predicted, measured, error, groups...
    summary: pd.DataFrame  # group_by, group, count, median_abs_error, mape, worst_error, worst_id
    unmapped: pd.DataFrame  # id, reason
    calibrated: bool = True
    params: dict = field(default_factory=dict)


def _workload_class(kind: str, workload) -> str:
    if kind.startswith("training"):
        return "training"
    return {"dense": "dense", "moe": "moe", "video_dit": "video"}[workload.family]


def base_table(ids: list[str] | None = None, reference: str | None = None) -> pd.DataFrame:
    """Measured rows with their query and group columns (no prediction yet).

    `reference`: another measurements file with the same schema (rows are matched to the mapping by id).
    """
    from cosim.specs.loader import load_hardware, load_workload

    mapping = load_mapping()
    measured = {r.id: r for r in load_measurements(reference)}
    records = []
    for row_id, q in mapping.rows.items():
        if ids is not None and row_id not in ids:
            continue
        if row_id not in measured:
            if reference:
                continue
            raise CosimInputError(f"mapping names row '{row_id}' which is not in the reference data",
                                  field="rows")
        ref = measured[row_id]
        hw = load_hardware(q.hardware)
        wl = load_workload(q.workload)
        records.append({
            "id": row_id, "hardware": q.hardware, "vendor": hw.vendor, "chips": q.chips,
            "workload": q.workload, "workload_class": _workload_class(q.kind, wl), "metric": q.kind,
            "source_class": ref.source_class, "reliability": ref.reliability, "measured": ref.value,
            "unit": ref.unit, "assumed": q.assumed or "", "source": ref.citation, "origin": ref.origin,
            "fully_specified": _fully_specified(q, mapping),
        })
    if reference is None:
        records += _energy_records(ids) + _config_records(ids)
    return pd.DataFrame.from_records(records)


def _fully_specified(q, mapping) -> bool:
    """True when the row itself gives everything its query needs: no assumed choice and no estimated
    dataset length (a profile whose input or output length is an estimate)."""
    if q.assumed:
        return False
    if q.profile:
        prof = mapping.profiles[q.profile]
        return not any(src.lower().startswith(("estimate", "assumed"))
                       for src in (prof.input_source, prof.output_source))
    return True


def _energy_records(ids: list[str] | None) -> list[dict]:
    """ML.ENERGY and MLPerf Power rows as validation records (metric energy_per_token / system_...)."""
    from cosim.specs.loader import load_hardware
    from cosim.validate.mapping import energy_queries
    from cosim.validate.reference import load_energy_rows

    queries, _ = energy_queries()
    out = []
    for row in load_energy_rows():
        q = queries.get(row.id)
        if q is None or (ids is not None and row.id not in ids):
            continue
        out.append({
            "id": row.id, "hardware": q.hardware, "vendor": load_hardware(q.hardware).vendor, "chips": q.chips,
            "workload": q.workload, "workload_class": "energy", "metric": q.kind, "source_class": row.source_class,
            "reliability": row.reliability, "measured": row.energy_j_per_output_token, "unit": "J/output token",
            "assumed": q.assumed or "", "source": row.source, "fully_specified": False, "origin": "shared",
        })
    return out


def _config_records(ids: list[str] | None) -> list[dict]:
    """ML.ENERGY configuration rows (mlenergy_configs.yaml) as validation records: a diffusion run's seconds
    and GPU joules per video, a vLLM run's GPU joules per output token; scored out of sample (no fit sees
    them)."""
    from cosim.specs.loader import load_hardware
    from cosim.validate.mapping import config_queries
    from cosim.validate.reference import load_config_rows

    queries, _ = config_queries()
    out = []
    for row in load_config_rows():
        v = row.values
        if row.kind == "llm":
            parts = (("", float(v["energy_per_output_token_j"]), "J/output token"),)
        else:
            parts = (("-time", float(v["batch_latency_s"]) / int(v["batch"]), "s/video"),
                     ("-energy", float(v["energy_per_output_j"]), "J/video"))
        for suffix, measured, unit in parts:
            row_id = f"{row.id}{suffix}"
            q = queries.get(row_id)
            if q is None or (ids is not None and row_id not in ids):
                continue
            out.append({
                "id": row_id, "hardware": q.hardware, "vendor": load_hardware(q.hardware).vendor,
                "chips": q.chips, "workload": q.workload,
                "workload_class": "energy" if row.kind == "llm" else "video", "metric": q.kind,
                "source_class": CONFIG_SOURCE_CLASS, "reliability": "high", "measured": measured, "unit": unit,
                "assumed": q.assumed or "", "source": row.source, "fully_specified": True, "origin": "added",
            })
    return out


#: the source class of the ML.ENERGY configuration rows (held out of every fit)
CONFIG_SOURCE_CLASS = "ml_energy_configs"


_CONFIG_QUERIES: dict[int, tuple] = {}


def _config_query_table(mapping) -> dict:
    """The configuration queries of `mapping`, built once per mapping object."""
    from cosim.validate.mapping import config_queries

    hit = _CONFIG_QUERIES.get(id(mapping))
    if hit is None or hit[0] is not mapping:
        hit = _CONFIG_QUERIES[id(mapping)] = (mapping, config_queries(mapping)[0])
    return hit[1]


def query_for(row_id: str):
    """The Query of a performance, energy or ML.ENERGY configuration row id."""
    from cosim.validate.mapping import energy_queries

    mapping = load_mapping()
    if row_id in mapping.rows:
        return mapping.rows[row_id]
    if row_id.startswith("mlenergy-cfg-"):
        return _config_query_table(mapping)[row_id]
    return energy_queries(mapping)[0][row_id]


def predict_rows(table: pd.DataFrame, params_by_hw=None, stack_scales: dict[str, float] | None = None,
                 progress: Callable[[float], None] | None = None) -> np.ndarray:
    """Predicted values for each row of `table` (NaN where cosim returns no value). Each row runs with its
    serving stack's efficiency factor and unpriced GPU time per sequence (`stack_scales`, default the stored calibration's; none when
    `params_by_hw` is given without `stack_scales`, i.e. first principles). `progress` is told the share of
    rows done (0..1) every few rows."""
    from cosim.engines.calibration import (
        apply_stack,
        calibrated_params,
        is_moe,
        pipeline_host_for,
        scale_for,
        sequence_busy_for,
        stack_pipeline_host_s,
        stack_scale,
        stack_sequence_busy_s,
    )
    from cosim.specs.loader import load_hardware, load_workload
    from cosim.validate.fit import generation_of
    from cosim.validate.predict import predict

    mapping = load_mapping()
    out = np.full(len(table), np.nan)
    reasons = []
    for i, row_id in enumerate(table["id"]):
        q = query_for(row_id)
        hw = load_hardware(q.hardware)
        params = params_by_hw(hw) if params_by_hw else calibrated_params(hw)
        moe = is_moe(load_workload(q.workload))
        if stack_scales is not None:
            params = apply_stack(params, scale_for(stack_scales, q.stack, generation_of(q.hardware), moe),
                                 sequence_busy_for(stack_scales, q.stack), pipeline_host_for(stack_scales, q.stack))
        elif params_by_hw is None:
            params = apply_stack(params, stack_scale(q.stack, q.hardware, moe), stack_sequence_busy_s(q.stack),
                                 stack_pipeline_host_s(q.stack))
        value, reason = predict(q, mapping, params)
        if value is not None:
            out[i] = value
        reasons.append(reason or "")
        if progress is not None and (i % 25 == 24 or i == len(table) - 1):
            progress((i + 1) / len(table))
    table["note"] = reasons
    return out


def _apply_filter(table: pd.DataFrame, expr: str | None) -> pd.DataFrame:
    """`key=value`, `key!=value` or `key~substring`, comma-separated, over the table's columns."""
    if not expr:
        return table
    mask = np.ones(len(table), dtype=bool)
    for term in (t.strip() for t in expr.split(",") if t.strip()):
        for op in ("!=", "~", "="):
            if op in term:
                key, value = (s.strip() for s in term.split(op, 1))
                break
        else:
            raise CosimInputError(f"--filter term '{term}' is not key=value, key!=value or key~text")
        if key not in table.columns:
            raise CosimInputError(f"--filter: unknown column '{key}'; expected one of {', '.join(table.columns)}")
        col = table[key].astype(str)
        hit = (col == value) if op == "=" else (col != value) if op == "!=" else col.str.contains(value, regex=False)
        if op != "!=" and not hit.any():  # a typo must not pass for an empty result
            values = sorted(set(col))
            close = difflib.get_close_matches(value, values, n=5, cutoff=0.4) or values[:8]
            raise CosimInputError(f"--filter term '{term}' matches no row; {key} values include "
                                  f"{', '.join(close)}")
        mask &= hit.to_numpy()
    return table[mask].reset_index(drop=True)


def summarize(rows: pd.DataFrame) -> pd.DataFrame:
    """Per group: count, median |error|, MAPE and the worst row, over rows with a prediction."""
    ok = rows[rows["predicted"].notna()]
    records = []

    def add(group_by: str, key: str, g: pd.DataFrame) -> None:
        err = g["error"].to_numpy()
        worst = int(np.argmax(np.abs(err)))
        records.append({
            "group_by": group_by, "group": key, "count": len(g),
            "median_abs_error": float(np.median(np.abs(err))), "mape": float(np.mean(np.abs(err))),
            "worst_error": float(err[worst]), "worst_id": g["id"].iloc[worst],
        })

    for col in (c for c in GROUP_COLUMNS if c in ok.columns):
        for key, g in ok.groupby(col):
            add(col, key, g)
    for cols in (c for c in CROSSED_GROUPS if set(c) <= set(ok.columns)):
        for keys, g in ok.groupby(list(cols)):
            if len(g) >= CROSSED_MIN_ROWS:
                add("/".join(cols), "/".join(str(k) for k in keys), g)
    if len(ok):
        add("all", "all", ok)
    return pd.DataFrame.from_records(records)


def run_validation(filter_expr: str | None = None, uncalibrated: bool = False,
                   reference: str | None = None, progress: Callable[[float], None] | None = None) -> ValidationReport:
    """Predict every mapped row (optionally filtered) and summarise the errors; `progress` is told the share
    of rows predicted (0..1) as they go."""
    from cosim.engines.efficiency import params_for

    table = _apply_filter(base_table(reference=reference), filter_expr)
    first_principles = (lambda hw: params_for(hw, calibrated=False)) if uncalibrated else None
    table["predicted"] = predict_rows(table, first_principles, progress=progress)
    table["error"] = table["predicted"] / table["measured"] - 1.0
    mapping = load_mapping()
    from cosim.validate.mapping import config_queries, energy_queries

    unmapped_rows = [{"id": k, "reason": v} for k, v in mapping.unmapped.items()]
    unmapped_rows += [{"id": k, "reason": v} for k, v in energy_queries(mapping)[1].items()]
    unmapped_rows += [{"id": k, "reason": v} for k, v in config_queries(mapping)[1].items()]
    if reference:
        unmapped_rows += [{"id": r.id, "reason": "no query in cosim/data/reference/mapping.yaml for this row"}
                          for r in load_measurements(reference)
                          if r.id not in mapping.rows and r.id not in mapping.unmapped]
    unmapped = pd.DataFrame(unmapped_rows, columns=["id", "reason"])
    cols = ["id", "hardware", "chips", "workload", "metric", "predicted", "measured", "error", "unit",
            "vendor", "workload_class", "source_class", "reliability", "assumed", "fully_specified", "origin", "note",
            "source"]
    rows = table[cols]
    return ValidationReport(rows=rows, summary=summarize(rows), unmapped=unmapped, calibrated=not uncalibrated)
