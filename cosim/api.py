"""The public Python API: thin functions over specs, graph, engines, energy/cost and serving.

The CLI and the explorer call only these functions (and the modules they name).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from cosim.specs.figure import FigureBase
from cosim.specs.hardware import Hardware
from cosim.specs.loader import list_slugs, load_any, load_hardware, load_workload
from cosim.specs.units import UNIT_OF_KIND
from cosim.specs.workload import DecoderLM, VideoDiT


def catalog_summary() -> dict[str, list[dict[str, Any]]]:
    """Every hardware and workload slug in the built-in catalog with a few headline figures."""
    from cosim.workloads.params import params_active, params_total

    hardware = []
    for slug in list_slugs("hardware_specs"):
        hw = load_hardware(slug)
        bf16 = hw.peak_flops("bf16") or hw.peak_flops("fp16") or hw.peak_flops("int8")
        hardware.append({
            "name": slug, "display_name": hw.display_name, "vendor": hw.vendor, "kind": hw.kind,
            "peak_bf16_flops_per_s": bf16,
            "memory_bytes": hw.main_memory.capacity_bytes.value,
            "memory_bandwidth_bytes_per_s": (hw.main_memory.bandwidth_bytes_per_s.value
                                             if hw.main_memory.bandwidth_bytes_per_s else None),
            "tdp_w": hw.power.tdp_w.value,
        })
    workloads = []
    for slug in list_slugs("workloads"):
        wl = load_workload(slug)
        workloads.append({
            "name": slug, "display_name": wl.display_name, "family": wl.family,
            "params_total": params_total(wl), "params_active": params_active(wl),
        })
    return {"hardware": hardware, "workloads": workloads}


def _figure_row(path: str, fig: FigureBase, sources: dict[str, str]) -> dict[str, Any]:
    return {
        "field": path, "value": fig.value, "unit": UNIT_OF_KIND[type(fig)._kind],
        "source": fig.source, "citation": sources.get(fig.source, ""),
        "estimate": fig.estimate, "derivation": fig.derivation or "",
    }


def figure_rows(model: BaseModel, prefix: str = "", sources: dict[str, str] | None = None) -> list[dict]:
    """Flatten every sourced figure of a spec into rows: path, SI value, unit, source, estimate."""
    rows: list[dict] = []
    sources = sources if sources is not None else getattr(model, "sources", {})
    for key, value in model.__dict__.items():
        path = f"{prefix}{key}"
        if isinstance(value, FigureBase):
            rows.append(_figure_row(path, value, sources))
        elif isinstance(value, BaseModel):
            rows += figure_rows(value, f"{path}.", sources)
        elif isinstance(value, tuple | list):
            for i, item in enumerate(value):
                if isinstance(item, BaseModel):
                    rows += figure_rows(item, f"{path}.{getattr(item, 'name', i)}.", sources)
        elif isinstance(value, dict):
            rows += [_figure_row(f"{path}.{k}", v, sources) for k, v in value.items() if isinstance(v, FigureBase)]
    return rows


def describe_spec(name_or_path: str | Path) -> dict[str, Any]:
    """A JSON-ready description of a hardware or workload spec (by slug or path)."""
    from cosim.errors import CosimInputError

    text = str(name_or_path)
    spec: Hardware | DecoderLM | VideoDiT
    if Path(text).suffix.lower() in (".yaml", ".yml", ".json") or "/" in text:
        spec = load_any(text)
    else:
        hw_slugs, wl_slugs = list_slugs("hardware_specs"), list_slugs("workloads")
        if text in hw_slugs:
            spec = load_hardware(text)
        elif text in wl_slugs:
            spec = load_workload(text)
        else:
            import difflib

            close = difflib.get_close_matches(text, hw_slugs + wl_slugs, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise CosimInputError(f"unknown spec '{text}'{hint}")
    if isinstance(spec, Hardware):
        return {
            "type": "hardware", "name": spec.name, "display_name": spec.display_name, "vendor": spec.vendor,
            "kind": spec.kind, "process_node": spec.process_node, "launch_year": spec.launch_year,
            "figures": figure_rows(spec), "sources": dict(spec.sources),
        }
    from cosim.workloads.params import kv_cache_bytes_per_token, params_active, params_total

    info: dict[str, Any] = {
        "type": "workload", "name": spec.name, "display_name": spec.display_name, "family": spec.family,
        "params_total": params_total(spec), "params_active": params_active(spec),
    }
    if isinstance(spec, DecoderLM):
        info["kv_cache_bytes_per_token_bf16"] = kv_cache_bytes_per_token(spec, 2.0)
    info["spec"] = spec.model_dump(mode="json")
    return info


# --- thin entry points over the layers (the CLI and the explorer call these) -------------------------

def estimate(hardware, workload, scenario, **kwargs):
    """Latency, throughput, energy and $ of one scenario (`cosim.engines.estimate.estimate`)."""
    from cosim.engines.estimate import estimate as _estimate

    return _estimate(hardware, workload, scenario, **kwargs)


def serve(hardware, workload, scenario, *, chips: int | None, requests, **kwargs):
    """Simulate serving a request set (`cosim.serving.service.serve`); build requests with `make_requests`."""
    from cosim.serving.service import serve as _serve

    return _serve(hardware, workload, scenario, chips=chips, requests=requests, **kwargs)


def make_requests(**kwargs):
    """A seeded request set (`cosim.serving.service.make_requests`)."""
    from cosim.serving.service import make_requests as _make

    return _make(**kwargs)


def run_sweep(spec_path: str | Path, output: str | Path, **kwargs):
    """Run (or resume) a sweep spec into a Parquet file (`cosim.explore.sweep.run_sweep`)."""
    from cosim.explore.spec import load_sweep_spec
    from cosim.explore.sweep import run_sweep as _run

    spec = load_sweep_spec(spec_path)
    return _run(spec, output, base_dir=Path(spec_path).resolve().parent, **kwargs)


def pareto_front(path: str | Path, objectives: list[str], **kwargs):
    """Non-dominated rows of a sweep result (`cosim.explore.pareto.pareto_front_table`)."""
    from cosim.explore.pareto import pareto_front_table

    return pareto_front_table(path, objectives, **kwargs)


def best_mapping(hardware, workload, scenario, slo=None, **kwargs):
    """The best parallelism, batch and precision under an SLO (`cosim.explore.mapping.best_mapping`)."""
    from cosim.explore.mapping import best_mapping as _best

    return _best(hardware, workload, scenario, slo, **kwargs)


def run_validation(filter_expr: str | None = None, uncalibrated: bool = False):
    """Predicted vs measured on the reference rows (`cosim.validate.run_validation`)."""
    from cosim.validate import run_validation as _run

    return _run(filter_expr, uncalibrated)
