"""Streamlit caches: the catalog and a Numba warm-up once per process, bounded result caches.

Every cached function is keyed by plain values (slugs, `SpecText`, tuples of scenario items) that
decide its result; nothing that affects a result is passed as an unhashed `_arg`. The validation keeps
its own process-wide store, keyed the same way, so that a fresh run can drive a progress bar.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import streamlit as st

from cosim.app import compute
from cosim.app.specio import SpecText


@st.cache_resource(show_spinner="Loading the catalog...")
def catalog() -> dict[str, Any]:
    """Catalog summary plus slug lists by kind (hardware, language workloads, video workloads)."""
    from cosim.api import catalog_summary

    summary = catalog_summary()
    return {
        **summary,
        "hardware_slugs": [h["name"] for h in summary["hardware"]],
        "workload_slugs": [w["name"] for w in summary["workloads"]],
        "lm_slugs": [w["name"] for w in summary["workloads"] if w["family"] != "video_dit"],
        "video_slugs": [w["name"] for w in summary["workloads"] if w["family"] == "video_dit"],
    }


@st.cache_resource(show_spinner="Compiling the engine kernels (once per process)...")
def warm_up() -> dict[str, Any]:
    """Run the engine once on a tiny case, so the first user interaction is not a Numba compile."""
    t0 = time.perf_counter()
    status: dict[str, Any] = {"ok": True, "message": ""}
    try:
        compute.run_estimate("h100-sxm", "llama-3.1-8b", {"phase": "decode", "batch": 1, "input_len": 128,
                                                          "output_len": 8})
    except Exception as err:  # the explorer still starts; pages report what is missing
        status = {"ok": False, "message": f"engine warm-up failed: {err}"}
    status["seconds"] = time.perf_counter() - t0
    return status


def _items(d: dict[str, Any]) -> tuple:
    return tuple(sorted(d.items()))


@st.cache_data(max_entries=256, show_spinner=False)
def _estimate(hw_ref: str | SpecText, wl_ref: str | SpecText, scenario: tuple, chips: int, batch_max: bool,
              stack: str = "tuned"):
    return compute.run_estimate(hw_ref, wl_ref, dict(scenario), chips=chips or None, batch_max=batch_max,
                                stack=stack)


def estimate(hw_ref, wl_ref, scenario: dict[str, Any], *, chips: int = 0, batch_max: bool = False,
             stack: str = "tuned"):
    return _estimate(hw_ref, wl_ref, _items(scenario), int(chips or 0), bool(batch_max), stack)


@st.cache_resource(max_entries=64, show_spinner=False)
def _estimate_figures(hw_ref, wl_ref, scenario: tuple, chips: int, batch_max: bool,
                      stack: str = "tuned") -> dict[str, Any]:
    """The Estimate page's three figures, built once per estimate (shared read-only, never mutated)."""
    from cosim.viz import breakdown_bars, memory_bars, roofline_figure

    view = _estimate(hw_ref, wl_ref, scenario, chips, batch_max, stack)
    figs: dict[str, Any] = {"memory": memory_bars(view.memory_breakdown, view.capacity_bytes,
                                                  usable_bytes=view.usable_bytes)}
    if len(view.breakdown):
        figs["breakdown"] = breakdown_bars(view.breakdown)
        if view.peak_flops_per_s and view.bandwidth_bytes_per_s:
            figs["roofline"] = roofline_figure(view.breakdown, view.peak_flops_per_s, view.bandwidth_bytes_per_s,
                                               title=f"Roofline at {view.precision}: {view.hardware}")
    return figs


def estimate_figures(hw_ref, wl_ref, scenario: dict[str, Any], *, chips: int = 0, batch_max: bool = False,
                     stack: str = "tuned"):
    return _estimate_figures(hw_ref, wl_ref, _items(scenario), int(chips or 0), bool(batch_max), stack)


@st.cache_data(max_entries=64, show_spinner=False)
def _compare(pairs: tuple, scenario: tuple, chips: int):
    return compute.compare_table(list(pairs), dict(scenario), chips=chips or None)


def compare(pairs, scenario: dict[str, Any], *, chips: int = 0):
    return _compare(tuple(pairs), _items(scenario), int(chips or 0))


@st.cache_data(max_entries=32, show_spinner=False)
def video(hardware: tuple, wl_ref, resolutions: tuple, frames: tuple, steps: tuple, chips: tuple, precision: str,
          split: str):
    return compute.video_table(list(hardware), wl_ref, resolutions=list(resolutions), frames=list(frames),
                               steps=list(steps), chips=list(chips), precision=precision, split=split)


@st.cache_data(max_entries=32, show_spinner=False)
def finance_defaults(hw_ref):
    return compute.finance_defaults(hw_ref)


@st.cache_data(max_entries=32, show_spinner=False)
def _finance(hw_ref, tokens_per_s_per_chip, ranges: tuple, target_tokens_per_day, monte_carlo: int, seed: int,
             input_len, output_len, modelled_system_power_w):
    return compute.finance_report(hw_ref, tokens_per_s_per_chip=tokens_per_s_per_chip, ranges=dict(ranges),
                                  target_tokens_per_day=target_tokens_per_day, monte_carlo=monte_carlo, seed=seed,
                                  input_len=input_len, output_len=output_len,
                                  modelled_system_power_w=modelled_system_power_w)


def finance(hw_ref, *, tokens_per_s_per_chip, ranges: dict, target_tokens_per_day, monte_carlo: int, seed: int,
            input_len=None, output_len=None, modelled_system_power_w=None):
    return _finance(hw_ref, tokens_per_s_per_chip, _items(ranges), target_tokens_per_day, int(monte_carlo),
                    int(seed), input_len, output_len, modelled_system_power_w)


@st.cache_data(max_entries=32, show_spinner=False)
def _serving(hw_ref, wl_ref, scenario: tuple, chips: int, qps: float, duration_s: float, input_len: str,
             output_len: str, slo_ttft_s, slo_tpot_s, find_max: bool, seed: int, concurrency: int | None):
    return compute.serving_run(hw_ref, wl_ref, dict(scenario), chips=chips or None, qps=qps, duration_s=duration_s,
                               input_len=input_len, output_len=output_len, slo_ttft_s=slo_ttft_s,
                               slo_tpot_s=slo_tpot_s, find_max=find_max, seed=seed, concurrency=concurrency)


def serving(hw_ref, wl_ref, scenario: dict[str, Any], *, chips: int, qps: float, duration_s: float, input_len: str,
            output_len: str, slo_ttft_s, slo_tpot_s, find_max: bool = True, seed: int = 0,
            concurrency: int | None = None):
    return _serving(hw_ref, wl_ref, _items(scenario), int(chips or 0), float(qps), float(duration_s),
                    str(input_len), str(output_len), slo_ttft_s, slo_tpot_s, bool(find_max), int(seed),
                    None if concurrency is None else int(concurrency))


#: (filter, uncalibrated) -> (rows, summary) of finished validations, shared by every session of the process
#: (a dict rather than st.cache_data: the run reports progress to a bar drawn outside it, which a cached
#: function's element replay cannot hold)
_VALIDATIONS: dict[tuple[str, bool], Any] = {}
_VALIDATIONS_MAX = 8
_VALIDATIONS_LOCK = threading.Lock()


def validation(filter_expr: str, uncalibrated: bool, progress=None):
    """(rows, summary) of `cosim validate` for a filter, computed once per process; `progress` (0..1) is
    told how far a fresh run has got."""
    key = (filter_expr or "", bool(uncalibrated))
    with _VALIDATIONS_LOCK:
        hit = _VALIDATIONS.get(key)
    if hit is not None:
        return hit
    result = compute.validation(filter_expr or None, uncalibrated, progress=progress)
    with _VALIDATIONS_LOCK:
        if len(_VALIDATIONS) >= _VALIDATIONS_MAX:
            _VALIDATIONS.pop(next(iter(_VALIDATIONS)))
        _VALIDATIONS[key] = result
    return result


@st.cache_data(max_entries=1, show_spinner=False)
def targets():
    """The accuracy targets against the stored cross-validated errors (`cosim.validate.targets`)."""
    from cosim.validate.targets import target_table

    return target_table()


@st.cache_data(max_entries=1, show_spinner=False)
def misses():
    """The rows beyond a target's worst-case bound with their stated causes (`cosim.validate.misses`)."""
    from cosim.validate.misses import target_misses

    return target_misses()


@st.cache_data(max_entries=64, show_spinner=False)
def describe(slug: str) -> dict[str, Any]:
    from cosim.api import describe_spec

    return describe_spec(slug)
