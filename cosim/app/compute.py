"""What each page shows, assembled from cosim API calls (no Streamlit, no model logic).

Each function takes plain, hashable inputs (slugs, `SpecText`, dicts of scenario values) so the
pages can cache them with `st.cache_data`, and returns frames or dicts ready to draw. A capability
that another part of cosim has not shipped yet raises `NotAvailable`, which the pages show as a
"not available yet" message rather than a number.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cosim.app.specio import SpecText, ref_label, resolve_hardware, resolve_workload
from cosim.errors import CosimInputError

SWEEP_MAX_POINTS = 20_000
SWEEP_CHUNK = 1_000
VIDEO_MAX_POINTS = 120
COMPARE_MAX = 8
SERVING_MAX_REQUESTS = 20_000
MONTE_CARLO_MAX = 100_000

HEADLINE = ("throughput_tokens_per_s", "latency_s", "ttft_s", "tpot_s", "seconds_per_video", "mfu", "mbu",
            "bottleneck", "memory_bytes_per_chip", "energy_j_per_token", "avg_power_w", "usd_per_million_tokens",
            "usd_per_video")
ENERGY_KEYS = ("energy_j", "energy_j_per_token", "system_energy_j_per_token", "avg_power_w")


class NotAvailable(RuntimeError):
    """A cosim capability the explorer calls is not installed yet."""


def _import(what: str, module: str, name: str):
    import importlib

    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        raise NotAvailable(f"{what} ({module}.{name}) is not available yet") from None


def build(scenario: Mapping[str, Any], hw=None):
    """A validated Scenario from the state's scenario values (CosimInputError names the field); an unset FP4
    layout is `hw`'s own (NVFP4 on NVIDIA, MXFP4 elsewhere)."""
    from cosim.cli.common import build_scenario
    from cosim.specs.hardware import native_fp4_format

    kw = dict(scenario)
    if kw.get("fp4_format") is None and hw is not None:
        kw["fp4_format"] = native_fp4_format(hw.vendor)
    return build_scenario(**kw)


@dataclass
class EstimateView:
    """One estimate as the Estimate page shows it."""

    hardware: str
    workload: str
    metrics: dict[str, Any]
    breakdown: pd.DataFrame
    memory_breakdown: dict[str, float]
    capacity_bytes: float
    usable_bytes: float | None
    peak_flops_per_s: float | None
    bandwidth_bytes_per_s: float | None
    precision: str
    chips: int
    notes: list[str] = field(default_factory=list)

    def metrics_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{"hardware": self.hardware, "workload": self.workload, **self.metrics}])


def complete_metrics(hw, result) -> tuple[dict[str, Any], list[str]]:
    """The result's contract dict with energy and $ filled by the energy and cost models where empty."""
    d = result.to_dict()
    notes: list[str] = []
    if not d["feasible"]:
        return d, notes
    if all(d.get(k) is None for k in ENERGY_KEYS):
        try:
            energy_for_estimate = _import("energy model", "cosim.energy", "energy_for_estimate")
            e = energy_for_estimate(hw, result)
            d.update({k: e.get(k) for k in ENERGY_KEYS})
        except NotAvailable as err:
            notes.append(str(err))
    if d.get("usd_per_million_tokens") is None and d.get("usd_per_video") is None:
        try:
            cost_for_estimate = _import("cost model", "cosim.cost", "cost_for_estimate")
            d.update(cost_for_estimate(hw, result))
            if d.get("usd_per_million_tokens") is None and d.get("usd_per_video") is None:
                notes.append(f"{hw.name} has no cloud price in its spec, so no $ figures")
        except NotAvailable as err:
            notes.append(str(err))
    for k, v in d.items():
        if isinstance(v, float) and not math.isfinite(v):
            d[k] = None
    return d, notes


def _peak(hw, precision: str) -> float | None:
    """The roofline's compute ceiling: the chip's peak at `precision` or the one it runs that at (None if none)."""
    try:
        peak_with_fallback = _import("analytical engine", "cosim.engines.hwarrays", "peak_with_fallback")
    except NotAvailable:
        return hw.peak_flops(precision)
    return peak_with_fallback(hw, precision) or None


def run_estimate(hw_ref: str | SpecText, wl_ref: str | SpecText, scenario: Mapping[str, Any], *,
                 chips: int | None = None, batch_max: bool = False, stack: str = "tuned") -> EstimateView:
    """`cosim.engines.estimate.estimate` plus energy/$ and the chip figures the charts need; `stack` applies
    that software's fitted factor, as `cosim estimate --stack` does."""
    estimate = _import("analytical engine", "cosim.engines.estimate", "estimate")
    hw = resolve_hardware(hw_ref)
    wl = resolve_workload(wl_ref)
    sc = build(scenario, hw)
    from cosim.cli.common import stack_run

    sc, params = stack_run(hw, wl, sc, stack)
    result = estimate(hw, wl, sc, chips=chips or None, batch_max=batch_max, params=params)
    metrics, notes = complete_metrics(hw, result)
    cap = float(hw.main_memory.capacity_bytes.value)
    usable = None
    try:
        params_for = _import("engine parameters", "cosim.engines.efficiency", "params_for")
        usable = cap * (1.0 - float(params_for(hw).memory_reserve_fraction))
    except (NotAvailable, AttributeError):
        pass
    prec = sc.compute_precision
    bw = hw.main_memory.bandwidth_bytes_per_s
    return EstimateView(
        hardware=ref_label(hw_ref), workload=ref_label(wl_ref), metrics=metrics, breakdown=result.breakdown,
        memory_breakdown=dict(result.memory_breakdown), capacity_bytes=cap, usable_bytes=usable,
        peak_flops_per_s=_peak(hw, prec), bandwidth_bytes_per_s=bw.value if bw else None, precision=prec,
        chips=int(result.chips or 1), notes=notes)


def compare_table(pairs: Sequence[tuple[str | SpecText, str | SpecText]], scenario: Mapping[str, Any], *,
                  chips: int | None = None) -> pd.DataFrame:
    """One row per (hardware, workload): headline metrics; a pair that cannot run gives its reason."""
    if len(pairs) > COMPARE_MAX:
        raise CosimInputError(f"compare at most {COMPARE_MAX} at once, got {len(pairs)}", field="compare")
    rows = []
    for hw_ref, wl_ref in pairs:
        row: dict[str, Any] = {"hardware": ref_label(hw_ref), "workload": ref_label(wl_ref)}
        try:
            view = run_estimate(hw_ref, wl_ref, scenario, chips=chips)
            row.update({"feasible": view.metrics["feasible"], "reason": view.metrics["reason"],
                        "chips": view.chips, **{k: view.metrics.get(k) for k in HEADLINE}})
        except CosimInputError as err:
            row.update({"feasible": False, "reason": str(err)})
        rows.append(row)
    cols = ["hardware", "workload", "feasible", "reason", "chips", *HEADLINE]
    return pd.DataFrame(rows).reindex(columns=cols)


def parse_int_list(text: str, name: str, *, low: int = 1, high: int = 1_000_000) -> list[int]:
    """'25, 50' -> [25, 50]; each value checked against [low, high]."""
    out = []
    for part in str(text).replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            v = int(part)
        except ValueError:
            raise CosimInputError(f"expected whole numbers separated by commas, got '{part}'", field=name) from None
        if not low <= v <= high:
            raise CosimInputError(f"each value must be between {low} and {high:,}, got {v:,}", field=name)
        out.append(v)
    if not out:
        raise CosimInputError("give at least one value", field=name)
    return sorted(set(out))


def parse_resolutions(text: str) -> list[tuple[int, int]]:
    """'480x720, 720x1280' -> [(480, 720), (720, 1280)] as (height, width)."""
    out = []
    for part in str(text).replace(";", ",").split(","):
        part = part.strip().lower()
        if not part:
            continue
        h, sep, w = part.partition("x")
        try:
            hh, ww = int(h), int(w)
        except ValueError:
            raise CosimInputError(f"a resolution looks like HEIGHTxWIDTH (e.g. 480x720), got '{part}'",
                                  field="resolution") from None
        if not sep or not (16 <= hh <= 8192 and 16 <= ww <= 8192):
            raise CosimInputError(f"height and width must be 16..8192 pixels, got '{part}'", field="resolution")
        out.append((hh, ww))
    if not out:
        raise CosimInputError("give at least one resolution", field="resolution")
    return sorted(set(out))


#: how the Video page splits one video over its chips (`video_table`'s `split`)
VIDEO_SPLITS = {"sp": "sequence parallel (Ulysses)", "usp": "Ulysses x ring (xDiT USP: Ulysses as far as the "
                "heads allow)", "ring": "ring attention", "tp": "tensor parallel"}


def video_parallelism(split: str, chips: int, heads: int) -> dict[str, Any]:
    """Scenario parallelism values of one video over `chips` chips: Ulysses (sp), ring attention, tensor
    parallel, or USP, whose Ulysses degree is the largest divisor of `chips` that divides the heads and the
    rest a ring, as xDiT's users lay out a model whose heads do not divide the GPU count."""
    if split == "tp":
        return {"tp": chips}
    if split == "ring":
        return {"sp": chips, "sp_kind": "ring"}
    if split == "usp":
        ulysses = max(u for u in range(1, chips + 1) if chips % u == 0 and heads % u == 0)
        return {"sp": chips, "sp_ring": chips // ulysses} if ulysses < chips else {"sp": chips}
    return {"sp": chips}


def video_table(hardware: Sequence[str], wl_ref: str | SpecText, *, resolutions: Sequence[tuple[int, int]],
                frames: Sequence[int], steps: Sequence[int], chips: Sequence[int], precision: str = "bf16",
                split: str = "sp") -> pd.DataFrame:
    """Seconds and $ per video over hardware x resolution x frames x steps x chips (`split`: a key of
    VIDEO_SPLITS)."""
    n = len(hardware) * len(resolutions) * len(frames) * len(steps) * len(chips)
    if n == 0:
        raise CosimInputError("nothing to evaluate: pick at least one chip and one value of each setting")
    if n > VIDEO_MAX_POINTS:
        raise CosimInputError(f"{n} combinations requested; the page evaluates at most {VIDEO_MAX_POINTS}",
                              field="video grid")
    if split not in VIDEO_SPLITS:
        raise CosimInputError(f"split must be one of {', '.join(VIDEO_SPLITS)}, got '{split}'", field="split")
    model = resolve_workload(wl_ref)
    heads = model.dit.num_heads if hasattr(model, "dit") else 1
    rows = []
    for hw in hardware:
        for (h, w) in resolutions:
            for f in frames:
                for s in steps:
                    for c in chips:
                        scen = {"phase": "video", "batch": 1, "frames": f, "height": h, "width": w, "steps": s,
                                "precision": precision, **video_parallelism(split, c, heads)}
                        row: dict[str, Any] = {"hardware": hw, "resolution": f"{h}x{w}", "height": h, "width": w,
                                               "frames": f, "steps": s, "chips": c}
                        try:
                            view = run_estimate(hw, wl_ref, scen)
                            m = view.metrics
                            row.update(feasible=m["feasible"], reason=m["reason"],
                                       seconds_per_video=m["seconds_per_video"], usd_per_video=m["usd_per_video"],
                                       energy_j=m["energy_j"], memory_bytes_per_chip=m["memory_bytes_per_chip"],
                                       bottleneck=m["bottleneck"])
                        except CosimInputError as err:
                            row.update(feasible=False, reason=str(err))
                        rows.append(row)
    cols = ["hardware", "resolution", "height", "width", "frames", "steps", "chips", "feasible", "reason",
            "seconds_per_video", "usd_per_video", "energy_j", "memory_bytes_per_chip", "bottleneck"]
    return pd.DataFrame(rows).reindex(columns=cols)


# --- sweeps -----------------------------------------------------------------------------------------

SWEEP_OBJECTIVES = {
    "throughput_tokens_per_s": "max", "usd_per_million_tokens": "min", "latency_s": "min", "tpot_s": "min",
    "ttft_s": "min", "mfu": "max", "power_w": "min", "memory_bytes_per_chip": "min", "usd_per_hour": "min",
}


def sweepable_paths(hw_slug: str) -> list[str]:
    """Field paths of this hardware spec a sweep can vary (from HardwareArrays' field-path map)."""
    from cosim.engines.hwarrays import field_paths
    from cosim.specs.loader import load_hardware

    return sorted(field_paths(load_hardware(hw_slug)))


def sweep_spec(hw_slug: str, wl_slug: str, scenario: Mapping[str, Any], parameters: Sequence[Mapping[str, Any]],
               *, method: str, points: int, seed: int, objectives: Sequence[str]):
    """A validated `SweepSpec` for a small in-page sweep (at most SWEEP_MAX_POINTS design points)."""
    sweep_from_dict = _import("sweeps", "cosim.explore.spec", "sweep_from_dict")
    if not parameters:
        raise CosimInputError("add at least one parameter to sweep", field="parameters")
    if len(set(objectives)) != 2:
        raise CosimInputError("pick two different objectives for the Pareto front", field="objectives")
    params = []
    for p in parameters:
        entry: dict[str, Any] = {"path": p["path"], "range": {"low": p["low"], "high": p["high"],
                                                              "log": bool(p.get("log"))}}
        if method == "grid":
            entry["range"]["num"] = int(p.get("num") or 5)
        params.append(entry)
    sc = {k: v for k, v in dict(scenario).items() if v is not None}
    doc: dict[str, Any] = {
        "name": "explorer", "hardware": hw_slug, "workloads": [wl_slug], "scenarios": [sc], "parameters": params,
        "sampling": {"method": method, "seed": int(seed), **({} if method == "grid" else {"points": int(points)})},
        "objectives": [f"{o}:{SWEEP_OBJECTIVES.get(o, 'max')}" for o in objectives], "chunk_size": SWEEP_CHUNK,
    }
    spec = sweep_from_dict(doc, "sweep (page)")
    n = spec.n_points()
    if n > SWEEP_MAX_POINTS:
        raise CosimInputError(f"{n:,} design points requested; the explorer runs at most {SWEEP_MAX_POINTS:,} "
                              "(use `cosim sweep` for more)", field="points")
    if n == 0:
        raise CosimInputError("the sweep has no design points", field="points")
    return spec


def run_sweep(spec, progress: Callable[[float], None] | None = None) -> pd.DataFrame:
    """Evaluate every chunk of `spec` in this process; one row per design point (labels decoded)."""
    SweepContext = _import("sweeps", "cosim.explore.engine", "SweepContext")
    evaluate_design_points = _import("sweeps", "cosim.explore.engine", "evaluate_design_points")
    from cosim.explore.sampling import chunk_points, n_chunks

    ctx = SweepContext.build(spec)
    total = n_chunks(spec)
    frames = []
    for k in range(total):
        blocks = evaluate_design_points(ctx, chunk_points(spec, k), start=k * spec.chunk_size)
        for b in blocks:
            frames.append(pd.DataFrame({c: np.asarray(v) for c, v in b.items() if np.ndim(v) == 1}))
        if progress:
            progress((k + 1) / total)
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if len(df):
        from cosim.engines.analytical import BOTTLENECKS
        from cosim.specs.hardware import PRECISIONS

        if "bottleneck" in df and df["bottleneck"].dtype.kind in "iu":
            df["bottleneck"] = [BOTTLENECKS[int(i)] if 0 <= int(i) < len(BOTTLENECKS) else str(int(i))
                                for i in df["bottleneck"]]
        if "precision" in df and df["precision"].dtype.kind in "iu":
            df["precision"] = [PRECISIONS[int(i)] for i in df["precision"]]
        if "workload" in df and df["workload"].dtype.kind in "iu":
            df["workload"] = [ctx.workloads[int(i)].name for i in df["workload"]]
    return df


def pareto_front(frame: pd.DataFrame, objectives: Sequence[str]) -> np.ndarray:
    """Boolean mask of the feasible non-dominated rows (senses from SWEEP_OBJECTIVES)."""
    pareto_mask = _import("Pareto fronts", "cosim.explore.pareto", "pareto_mask")
    if not len(frame):
        return np.zeros(0, dtype=bool)
    values = frame[list(objectives)].to_numpy(dtype=np.float64).copy()
    bad = ~np.isfinite(values).all(axis=1)
    if "feasible" in frame:
        bad |= ~frame["feasible"].to_numpy(dtype=bool)
    values[bad] = np.nan
    return pareto_mask(values, [SWEEP_OBJECTIVES.get(o, "max") for o in objectives])


# --- finance and serving ----------------------------------------------------------------------------

FINANCE_KEY_INPUTS = ("cloud_price_usd_per_hour", "accelerator_price_usd", "electricity_usd_per_kwh", "pue",
                      "utilization", "lifetime_years", "cost_of_capital")


def finance_defaults(hw_ref: str | SpecText) -> pd.DataFrame:
    """Every finance input: low / base / high and source (spec values filled in where the default is empty)."""
    load_finance = _import("cost model", "cosim.cost.finance", "load_finance")
    from cosim.cost.finance import source_citations
    from cosim.cost.tco import ChipFacts

    fin = load_finance()
    cites = source_citations()
    chip = ChipFacts.from_hardware(resolve_hardware(hw_ref))
    spec_values = {"cloud_price_usd_per_hour": (chip.cloud_price_usd_per_hour, chip.cloud_price_source),
                   "accelerator_price_usd": (chip.purchase_price_usd, chip.purchase_price_source)}
    rows = []
    for name, d in fin.dists.items():
        if d is None:
            value, source = spec_values.get(name, (None, None))
            rows.append({"input": name, "low": value, "base": value, "high": value,
                         "source": f"hardware spec: {source}" if value is not None else "not set"})
        else:
            src = fin.sources.get(name, "")
            key = src.split(": ", 1)[-1]
            rows.append({"input": name, "low": d.low, "base": d.base, "high": d.high,
                         "source": f"{src} ({cites[key]})" if key in cites else src})
    return pd.DataFrame(rows)


def finance_report(hw_ref: str | SpecText, *, tokens_per_s_per_chip: float | None,
                   ranges: Mapping[str, tuple[float | None, float | None, float | None]],
                   target_tokens_per_day: float | None = None, monte_carlo: int = 2000, seed: int = 0,
                   input_len: int | None = None, output_len: int | None = None,
                   modelled_system_power_w: float | None = None) -> dict[str, Any]:
    """`cosim.cost.cost_report` for both modes with the given (low, base, high) inputs, MC and tornado."""
    load_finance = _import("cost model", "cosim.cost.finance", "load_finance")
    cost_report = _import("cost model", "cosim.cost.report", "cost_report")
    from cosim.cost.tco import Capacity, ChipFacts

    if not 0 <= monte_carlo <= MONTE_CARLO_MAX:
        raise CosimInputError(f"Monte Carlo samples must be 0..{MONTE_CARLO_MAX:,}", field="monte_carlo")
    overrides: dict[str, Any] = {}
    for name, (low, base, high) in ranges.items():
        if base is None:
            continue
        lo = base if low is None else low
        hi = base if high is None else high
        overrides[name] = base if lo == base == hi else {"low": lo, "base": base, "high": hi}
    fin = load_finance(None, overrides)
    chip = ChipFacts.from_hardware(resolve_hardware(hw_ref))
    mode = "both" if fin.base("cloud_price_usd_per_hour") is not None or chip.cloud_price_usd_per_hour else "owned"
    cap = Capacity(output_tokens_per_s_per_chip=tokens_per_s_per_chip, input_len=input_len, output_len=output_len)
    return cost_report(chip, fin, cap, mode=mode, target_tokens_per_day=target_tokens_per_day,
                       monte_carlo_samples=monte_carlo, seed=seed, with_tornado=True,
                       modelled_system_power_w=modelled_system_power_w, capacity_source="cosim estimate (explorer)")


def cost_long_table(report: Mapping[str, Any]) -> pd.DataFrame:
    """The report's numbers long-form (section, mode, item, value) for a CSV download."""
    from cosim.cost.report import report_long_table

    return report_long_table(report)


def serving_run(hw_ref: str | SpecText, wl_ref: str | SpecText, scenario: Mapping[str, Any], *,
                chips: int | None, qps: float, duration_s: float, input_len: str, output_len: str,
                slo_ttft_s: float | None, slo_tpot_s: float | None, find_max: bool = True,
                seed: int = 0, concurrency: int | None = None) -> dict[str, Any]:
    """`cosim.serving.service.serve` on a Poisson load (percentiles, goodput, max QPS at the SLO), or with
    `concurrency` N on a closed loop of N clients (10 N requests, the clients spread over a request's lifetime,
    as `cosim serve --concurrency N` runs it)."""
    serve = _import("serving simulator", "cosim.serving.service", "serve")
    make_requests = _import("serving simulator", "cosim.serving.service", "make_requests")
    from cosim.serving.metrics import Slo

    if concurrency is not None:
        return _closed_loop_run(hw_ref, wl_ref, scenario, chips=chips, concurrency=concurrency,
                                input_len=input_len, output_len=output_len,
                                slo=Slo(ttft_s=slo_ttft_s, tpot_s=slo_tpot_s), seed=seed)
    if not (qps > 0 and duration_s > 0):
        raise CosimInputError("QPS and duration must be positive", field="qps")
    if qps * duration_s > SERVING_MAX_REQUESTS:
        raise CosimInputError(f"{qps * duration_s:,.0f} requests requested; the explorer simulates at most "
                              f"{SERVING_MAX_REQUESTS:,} (lower QPS or duration, or use `cosim serve`)", field="qps")
    hw = resolve_hardware(hw_ref)
    sc = build({**dict(scenario), "phase": "generate", "batch": 1, "input_len": 1, "output_len": 1}, hw)
    requests = make_requests(offline=False, num_requests=None, qps=qps, duration_s=duration_s,
                             input_len=input_len, output_len=output_len, seed=seed)
    slo = Slo(ttft_s=slo_ttft_s, tpot_s=slo_tpot_s)
    res = serve(hw, resolve_workload(wl_ref), sc, chips=chips or None, requests=requests,
                slo=slo, find_max=find_max, seed=seed, timeline=False)
    return res


def _closed_loop_run(hw_ref, wl_ref, scenario, *, chips, concurrency: int, input_len: str, output_len: str, slo,
                     seed: int) -> dict[str, Any]:
    """A closed loop of `concurrency` clients, 10 requests each (`cosim.serving.service.closed_loop_steady`)."""
    from cosim.serving.service import closed_loop_steady, make_requests, serve

    if not (isinstance(concurrency, int) and concurrency >= 1):
        raise CosimInputError(f"concurrency must be a whole number of clients >= 1, got {concurrency}",
                              field="concurrency")
    if 10 * concurrency > SERVING_MAX_REQUESTS:
        raise CosimInputError(f"{10 * concurrency:,} requests (10 per client) requested; the explorer simulates at "
                              f"most {SERVING_MAX_REQUESTS:,} (fewer clients, or use `cosim serve`)",
                              field="concurrency")
    hw = resolve_hardware(hw_ref)
    wl = resolve_workload(wl_ref)
    sc = build({**dict(scenario), "phase": "generate", "batch": 1, "input_len": 1, "output_len": 1}, hw)

    def requests_for(stagger_s: float):
        return make_requests(offline=False, num_requests=10 * concurrency, qps=None, duration_s=None,
                             input_len=input_len, output_len=output_len, seed=seed, concurrency=concurrency,
                             stagger_s=stagger_s)

    def run(requests):
        return serve(hw, wl, sc, chips=chips or None, requests=requests, slo=slo, seed=seed, timeline=False)

    return closed_loop_steady(requests_for, run, concurrency)


# --- accuracy ---------------------------------------------------------------------------------------

def validation(filter_expr: str | None = None, uncalibrated: bool = False,
               progress: Callable[[float], None] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows, summary) of `cosim.validate.run_validation`; `progress` is told the share of rows done."""
    run_validation = _import("validation", "cosim.validate", "run_validation")
    report = run_validation(filter_expr or None, uncalibrated=uncalibrated, progress=progress)
    return pd.DataFrame(report.rows), pd.DataFrame(report.summary)
