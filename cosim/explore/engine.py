"""Evaluate one chunk of a sweep: design points -> HardwareArrays -> vectorised kernel -> a result table.

`evaluate_chunk(context, k)` is a pure function of the sweep spec and the chunk index, so the same
chunk gives the same rows in this process, in a process pool or on a Dask worker. Columns: the point
index, each swept field (named by its field path), workload and scenario, the mapping, the kernel's
outputs, and derived columns (chips, usd_per_hour, power_w, usd_per_million_tokens, die_area_mm2,
die_cost_usd, meets_constraints).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cosim.errors import CosimInputError
from cosim.explore.results import chunk_stats, constraint_mask, objective_score
from cosim.explore.sampling import chunk_points
from cosim.explore.spec import SweepSpec, check_paths, resolve_hardware, resolve_workloads
from cosim.specs.hardware import PRECISIONS, native_fp4_format
from cosim.specs.scenario import default_kv_precision

Evaluator = Callable[..., dict[str, np.ndarray]]
DEFAULT_EVALUATOR = "cosim.engines.vectorized:evaluate_points"


def evaluator_ref(evaluator: Evaluator | str | None) -> str:
    """A `module:function` reference (picklable, importable on workers)."""
    if evaluator is None:
        return DEFAULT_EVALUATOR
    if isinstance(evaluator, str):
        return evaluator
    return f"{evaluator.__module__}:{evaluator.__qualname__}"


@functools.lru_cache(maxsize=8)
def resolve_evaluator(ref: str) -> Evaluator:
    """Import the evaluator; a clear message if the vectorised engine is not there yet."""
    module, _, name = ref.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise RuntimeError(f"evaluator '{ref}' is not available ({err}); the vectorised engine "
                           "cosim.engines.vectorized.evaluate_points is required for sweeps") from None


@dataclass
class SweepContext:
    """Everything a chunk needs, resolved once (specs validated, field paths mapped)."""

    spec: SweepSpec
    hardware: Any
    workloads: list
    columns: dict[str, str]
    evaluator: str = DEFAULT_EVALUATOR
    area_on: bool = False
    area_node: str | None = None
    single_thread: bool = False
    scenarios: list = field(default_factory=list)

    @classmethod
    def build(cls, spec: SweepSpec, *, evaluator: Evaluator | str | None = None, base_dir=None,
              single_thread: bool = False) -> SweepContext:
        from cosim.explore.area import node_key

        hw = resolve_hardware(spec, base_dir)
        workloads = resolve_workloads(spec, base_dir)
        columns = check_paths(spec, hw)
        area_on = spec.area.enabled
        if area_on is None:
            area_on = hw.compute.systolic is not None or hw.kind in ("asic", "tpu")
        node = node_key(spec.area.node, hw.process_node_nm.value) if area_on else None
        if not area_on:
            needs = {c.column for c in spec.constraints} | {o.column for o in spec.objectives}
            if needs & {"die_area_mm2", "die_cost_usd"}:
                raise CosimInputError("die_area_mm2/die_cost_usd need the area model: set area.enabled: true "
                                      "(on by default for systolic, TPU and ASIC designs)", field="area")
        scenarios = [s.to_scenario(fp4_format=s.fp4_format or native_fp4_format(hw.vendor)) for s in spec.scenarios]
        return cls(spec=spec, hardware=hw, workloads=workloads, columns=columns,
                   evaluator=evaluator_ref(evaluator), area_on=area_on, area_node=node,
                   single_thread=single_thread, scenarios=scenarios)

    def payload(self) -> dict[str, Any]:
        """A picklable description (plain dicts) for remote workers."""
        return {
            "spec": self.spec.model_dump(mode="json"),
            "hardware": self.hardware.model_dump(mode="json"),
            "workloads": [w.model_dump(mode="json") for w in self.workloads],
            "evaluator": self.evaluator,
            "single_thread": self.single_thread,
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> SweepContext:
        return _context_from_payload(_freeze(payload))


def _freeze(payload: dict[str, Any]) -> str:
    import json

    return json.dumps(payload, sort_keys=True)


@functools.lru_cache(maxsize=4)
def _context_from_payload(text: str) -> SweepContext:
    import json

    payload = json.loads(text)
    spec = SweepSpec.model_validate(payload["spec"])
    spec = spec.model_copy(update={"hardware": payload["hardware"], "workloads": payload["workloads"]})
    return SweepContext.build(spec, evaluator=payload["evaluator"], single_thread=payload["single_thread"])


def hardware_arrays(ctx: SweepContext, points: dict[str, np.ndarray]):
    from cosim.engines.hwarrays import HardwareArrays

    n = len(next(iter(points.values()))) if points else 1
    hwa = HardwareArrays.from_hardware(ctx.hardware, n)
    for path, values in points.items():
        hwa = hwa.with_column(ctx.columns[path], values)
    return hwa


def _area_columns(ctx: SweepContext, hwa) -> dict[str, np.ndarray]:
    from cosim.explore import area

    prec = ctx.spec.area.precision
    macs = area.macs_per_chip(hwa.systolic_rows, hwa.systolic_cols, hwa.systolic_arrays_per_core,
                              hwa.systolic_cores, hwa.peak_flops_per_s[:, PRECISIONS.index(prec)], hwa.clock_hz)
    is_hbm = ctx.hardware.main_memory.kind == "hbm"
    stacks = area.hbm_stacks(hwa.mem_bandwidth_bytes_per_s) if is_hbm else np.zeros(len(hwa))
    sram = hwa.onchip_capacity_bytes
    a = area.die_area_mm2(macs, sram, stacks, node=ctx.area_node, precision=prec)
    return {"die_area_mm2": a, "die_cost_usd": area.die_cost_usd(a, node=ctx.area_node,
                                                                   yield_model=ctx.spec.area.yield_model)}


def _derive(out: dict[str, np.ndarray], hwa, scenario, n: int) -> dict[str, np.ndarray]:
    """Derived money/power columns; the kernel's own values win when it provides them."""
    chips = float(scenario.parallelism.chips)
    cols = {k: (np.asarray(v) if np.ndim(v) else np.full(n, v)) for k, v in out.items()}
    cols.setdefault("chips", np.full(n, chips))
    chips = np.asarray(cols["chips"], dtype=np.float64)
    cols.setdefault("usd_per_hour", hwa.price_usd_per_hour * chips)
    cols.setdefault("power_w", hwa.tdp_w * chips)
    if "usd_per_million_tokens" not in cols and "throughput_tokens_per_s" in cols:
        tput = np.asarray(cols["throughput_tokens_per_s"], dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            cols["usd_per_million_tokens"] = np.where(tput > 0, cols["usd_per_hour"] / (tput * 3600.0) * 1e6, np.inf)
    cols["feasible"] = np.asarray(cols.get("feasible", np.ones(n, dtype=bool)), dtype=bool)
    return cols


def _call(fn, hwa, workload, scenario, hardware):
    """Call an evaluator, giving it the base spec (for its efficiency family) when it accepts one."""
    import inspect

    try:
        accepts = "hardware" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        accepts = False
    return fn(hwa, workload, scenario, hardware=hardware) if accepts else fn(hwa, workload, scenario)


def _meets(ctx: SweepContext, cols: dict[str, np.ndarray]) -> np.ndarray:
    ok = cols["feasible"].copy()
    for c in ctx.spec.constraints:
        if c.column not in cols:
            raise CosimInputError(f"constraint on unknown column '{c.column}': the evaluator returned "
                                  f"{', '.join(sorted(cols))}", field="constraints")
        ok &= constraint_mask(cols, c)
    return ok


def _evaluate_one(ctx: SweepContext, hwa, workload, scenario, extra: dict[str, np.ndarray]) -> dict:
    fn = resolve_evaluator(ctx.evaluator)
    n = len(hwa)
    out = _call(fn, hwa, workload, scenario, ctx.hardware)
    cols = {**extra, **_derive(out, hwa, scenario, n)}
    for o in ctx.spec.objectives:
        if o.column not in cols:
            raise CosimInputError(f"objective on unknown column '{o.column}': the evaluator returned "
                                  f"{', '.join(sorted(cols))}", field="objectives")
    cols["meets_constraints"] = _meets(ctx, cols)
    return cols


def _select_best(ctx: SweepContext, hwa, workload, base_scenario, combos, extra) -> dict[str, np.ndarray]:
    """Evaluate every mapping combination and keep, per point, the best that meets the constraints; a
    combination the model cannot take is skipped (the first one's error is raised if every one is)."""
    best: dict[str, np.ndarray] | None = None
    best_rank = best_score = None
    first_error: CosimInputError | None = None
    n = len(hwa)
    for combo in combos:
        scenario = _apply(base_scenario, combo)
        try:
            cols = _evaluate_one(ctx, hwa, workload, scenario, extra)
        except CosimInputError as err:
            if not _is_mapping_error(err):
                raise
            first_error = first_error or err
            continue
        cols.update(_mapping_columns(scenario, n))
        rank = cols["meets_constraints"].astype(np.int8) * 2 + cols["feasible"].astype(np.int8)
        score = (objective_score(cols, ctx.spec.objectives[0]) if ctx.spec.objectives
                 else np.nan_to_num(np.asarray(cols.get("throughput_tokens_per_s", np.zeros(n)), dtype=float),
                                    nan=-np.inf))
        if best is None:
            best, best_rank, best_score = cols, rank, score
            continue
        better = (rank > best_rank) | ((rank == best_rank) & (score > best_score))
        for k, v in cols.items():
            best[k] = np.where(better, v, best[k])
        best_rank = np.where(better, rank, best_rank)
        best_score = np.where(better, score, best_score)
    if best is None:
        raise first_error
    return best


def _apply(scenario, combo: dict[str, Any]):
    if not combo:
        return scenario
    par = scenario.parallelism.model_copy(update={k: combo[k] for k in ("tp", "pp", "ep") if k in combo})
    update: dict[str, Any] = {"parallelism": par}
    if "batch" in combo:
        update["batch"] = combo["batch"]
    if "precision" in combo:
        p = combo["precision"]
        update.update(weight_precision=p, activation_precision=p, kv_precision=default_kv_precision(p))
    return scenario.model_copy(update=update)


def _mapping_columns(scenario, n: int) -> dict[str, np.ndarray]:
    par = scenario.parallelism
    return {"tp": np.full(n, par.tp, dtype=np.int64), "pp": np.full(n, par.pp, dtype=np.int64),
            "ep": np.full(n, par.ep, dtype=np.int64), "batch": np.full(n, scenario.batch, dtype=np.int64),
            "precision": np.full(n, PRECISIONS.index(scenario.activation_precision), dtype=np.int32)}


def evaluate_chunk_columns(ctx: SweepContext, chunk_index: int) -> list[dict[str, np.ndarray]]:
    """The result columns of one chunk, one block per (workload, scenario[, mapping])."""
    if ctx.single_thread:
        _single_thread()
    points = chunk_points(ctx.spec, chunk_index)
    n = len(next(iter(points.values()))) if points else (1 if chunk_index == 0 else 0)
    if n == 0:
        return []
    return evaluate_design_points(ctx, points, start=chunk_index * ctx.spec.chunk_size, n=n)


def evaluate_design_points(ctx: SweepContext, points: dict[str, np.ndarray], *, start: int = 0,
                           n: int | None = None) -> list[dict[str, np.ndarray]]:
    """Result blocks for explicit parameter values (path -> array), e.g. an optimiser's population."""
    spec = ctx.spec
    if n is None:
        n = len(next(iter(points.values()))) if points else 1
    hwa = hardware_arrays(ctx, points) if points else hardware_arrays(ctx, {}).repeat_to(n)
    base = {"point_id": np.arange(start, start + n, dtype=np.int64), **points}
    if ctx.area_on:
        base.update(_area_columns(ctx, hwa))
    choices = spec.mapping_choices
    combos = choices.combos() if choices else [{}]
    blocks: list[dict[str, np.ndarray]] = []
    invalid: list[tuple[dict[str, np.ndarray], Any, CosimInputError]] = []
    for wi, wl in enumerate(ctx.workloads):
        for si, scenario in enumerate(ctx.scenarios):
            extra = {**base, "workload": np.full(n, wi, dtype=np.int32), "scenario": np.full(n, si, dtype=np.int64)}
            best_only = choices is not None and choices.select == "best" and len(combos) > 1
            for combo in [{}] if best_only else combos:
                sc = _apply(scenario, combo)
                try:
                    if best_only:
                        cols = _select_best(ctx, hwa, wl, scenario, combos, extra)
                    else:
                        cols = _evaluate_one(ctx, hwa, wl, sc, extra)
                        cols.update(_mapping_columns(sc, n))
                except CosimInputError as err:
                    if not _is_mapping_error(err):
                        raise
                    invalid.append((extra, sc, err))
                    continue
                blocks.append(cols)
    if invalid and not blocks:  # no layout the model can take: nothing to sweep, say why
        raise invalid[0][2]
    blocks += [_invalid_block(blocks[0], {**extra, **_mapping_columns(sc, n)}, n) for extra, sc, _ in invalid]
    return blocks


def _is_mapping_error(err: CosimInputError) -> bool:
    """A parallel layout the model cannot take (TP or SP not dividing its heads, ...): a result, not an error."""
    return str(getattr(err, "field", "") or "").startswith("parallelism.")


def _invalid_block(template: dict[str, np.ndarray], given: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """Rows for design points under a mapping the model cannot take: its own point and mapping columns,
    infeasible with reason code `mapping`, every measured column NaN (the columns of a valid block)."""
    from cosim.engines.analytical import REASON_MAPPING

    out: dict[str, np.ndarray] = {}
    for name, values in template.items():
        if name in given:
            out[name] = given[name]
        elif name in ("feasible", "meets_constraints"):
            out[name] = np.zeros(n, dtype=bool)
        elif name == "reason_code":
            out[name] = np.full(n, REASON_MAPPING, dtype=values.dtype)
        elif name == "bottleneck":
            out[name] = np.full(n, -1, dtype=values.dtype)  # no step: a null label in the Parquet file
        elif values.dtype.kind == "f":
            out[name] = np.full(n, np.nan)
        else:
            out[name] = np.zeros(n, dtype=values.dtype)
    return out


def evaluate_chunk(ctx: SweepContext, chunk_index: int):
    """(pyarrow Table, stats) for one chunk; the table is empty past the last point."""
    import pyarrow as pa

    blocks = evaluate_chunk_columns(ctx, chunk_index)
    if not blocks:
        return None, None
    order = _column_order(blocks[0])
    labels = {"workload": [w.name for w in ctx.workloads], "precision": list(PRECISIONS)}
    arrays = {}
    for name in order:
        parts = [b[name] for b in blocks]
        values = np.concatenate(parts) if len(parts) > 1 else parts[0]
        if name == "bottleneck" and values.dtype.kind in "iu":
            # -1: a row with no step (a mapping the model cannot take): a null label
            codes = pa.array(values.astype(np.int32), mask=values < 0)
            arrays[name] = pa.DictionaryArray.from_arrays(codes, pa.array(_bottleneck_labels(max(int(values.max()), 0) + 1)))
        elif name in labels:  # integer codes -> dictionary column
            arrays[name] = pa.DictionaryArray.from_arrays(pa.array(values.astype(np.int32)), pa.array(labels[name]))
        else:
            arrays[name] = _to_arrow(values)
    table = pa.table(arrays)
    merged = {k: np.concatenate([b[k] for b in blocks]) for k in ("feasible", "meets_constraints")}
    for c in ctx.spec.constraints:
        merged[c.column] = np.concatenate([np.asarray(b[c.column], dtype=np.float64) for b in blocks])
    for o in ctx.spec.objectives:
        merged[o.column] = np.concatenate([np.asarray(b[o.column], dtype=np.float64) for b in blocks])
    return table, chunk_stats(merged, ctx.spec.constraints, ctx.spec.objectives)


def evaluate_chunk_remote(payload: dict[str, Any], chunk_index: int):
    """Worker entry point (module level, picklable): rebuild the context once, evaluate a chunk."""
    return evaluate_chunk(SweepContext.from_payload(payload), chunk_index)


_FIRST = ("point_id", "workload", "scenario")
_LAST = ("tp", "pp", "ep", "batch", "precision")


def _column_order(block: dict[str, np.ndarray]) -> list[str]:
    head = [c for c in _FIRST if c in block]
    tail = [c for c in _LAST if c in block] + (["meets_constraints"] if "meets_constraints" in block else [])
    return head + [c for c in block if c not in head and c not in tail] + tail


def _to_arrow(values: np.ndarray):
    """Numbers as they are; labels (strings) dictionary-encoded, cheaply when constant."""
    import pyarrow as pa

    if values.dtype.kind not in ("O", "U", "S"):
        return pa.array(values)
    if len(values) and (values == values[0]).all():
        uniq, inverse = np.asarray([values[0]]), np.zeros(len(values), dtype=np.int32)
    else:
        uniq, inverse = np.unique(values.astype(str), return_inverse=True)
    return pa.DictionaryArray.from_arrays(pa.array(inverse.astype(np.int32)), pa.array(uniq.astype(str)))


def _bottleneck_labels(n: int) -> list[str]:
    """Names of the analytical engine's bottleneck codes (codes beyond its list keep their number)."""
    try:
        from cosim.engines.analytical import BOTTLENECKS
    except ImportError:
        BOTTLENECKS = ()
    names = list(BOTTLENECKS)
    return names + [str(i) for i in range(len(names), n)] if n > len(names) else names


def _single_thread() -> None:
    """Numba kernels on distributed workers run single-threaded (one task per core)."""
    import sys

    if "numba" in sys.modules:
        import numba

        if numba.get_num_threads() != 1:
            numba.set_num_threads(1)
