"""Die area and die cost of custom silicon from per-node figures (cosim/data/area_nodes.yaml).

So an architect can trade SRAM for compute under an area budget and see what the silicon costs, not
only what the rental costs. The model is deliberately first-order and every constant is sourced data:

    die area = (MACs x mm2/MAC + SRAM + HBM PHYs + HBM controllers) / (1 - uncore fraction)
    die cost = wafer price / (dies per wafer x yield)          yield: Murphy (default) or Poisson

All functions are vectorised over design points (NumPy arrays in, arrays out).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import yaml

from cosim.errors import CosimInputError
from cosim.specs.hardware import PRECISIONS

DATA_FILE = Path(__file__).resolve().parent.parent / "data" / "area_nodes.yaml"
MIB = float(2**20)
YieldModel = Literal["murphy", "poisson"]


@dataclass(frozen=True)
class NodeFigures:
    """The figures of one process node, as plain floats (units in the names)."""

    key: str
    mm2_per_mac: dict[str, float]
    sram_mm2_per_byte: float
    logic_density_mtr_per_mm2: float
    wafer_price_usd: float
    defect_density_per_mm2: float


@functools.lru_cache(maxsize=1)
def load_area_data(path: str | None = None) -> dict:
    """The parsed YAML (cached)."""
    with open(path or DATA_FILE, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _v(entry) -> float:
    return float(entry["value"] if isinstance(entry, dict) else entry)


def node_key(node: str | int | float | None, default_nm: float | None = None) -> str:
    """Resolve `n5`, `5`, `4` (an N5-family process) or a spec's process_node_nm to a node key."""
    data = load_area_data()
    if node is None:
        node = default_nm
    if node is None:
        raise CosimInputError("no process node: set area.node (e.g. n5)", field="area.node")
    text = str(node).strip().lower()
    if text in data["nodes"]:
        return text
    try:
        nm = int(round(float(text.removeprefix("n"))))
    except ValueError:
        nm = None
    if nm is not None and nm in data["aliases"]:
        return data["aliases"][nm]
    known = sorted(data["nodes"]) + [str(k) for k in data["aliases"]]
    raise CosimInputError(f"unknown process node '{node}'; known: {', '.join(known)}", field="area.node")


@functools.lru_cache(maxsize=16)
def node_figures(key: str) -> NodeFigures:
    """Per-node figures, with mm2 per MAC derived from the 28 nm anchor by logic density."""
    data = load_area_data()
    node = data["nodes"][key]
    anchor = data["int8_mac_anchor"]
    anchor_density = _v(data["nodes"][anchor["node"]]["logic_density_mtr_per_mm2"])
    density = _v(node["logic_density_mtr_per_mm2"])
    int8 = _v(anchor["mm2_per_mac"]) * anchor_density / density
    ratios = {p: _v(r) for p, r in data["precision_area_ratio"].items()}
    return NodeFigures(
        key=key,
        mm2_per_mac={p: int8 * ratios[p] for p in PRECISIONS},
        sram_mm2_per_byte=_v(node["sram_mm2_per_mib"]) / MIB,
        logic_density_mtr_per_mm2=density,
        wafer_price_usd=_v(node["wafer_price_usd"]),
        defect_density_per_mm2=_v(node["defect_density_per_cm2"]) / 100.0,
    )


def macs_per_chip(systolic_rows, systolic_cols, arrays_per_core, cores, peak_flops_per_s, clock_hz):
    """MAC units per chip: the larger of the systolic geometry and peak / (2 x clock).

    A chip must hold enough MACs both for its declared arrays and to deliver its peak at its clock,
    so sweeping either the array size or the peak moves the area.
    """
    rows = np.asarray(systolic_rows, dtype=np.float64)
    geometric = rows * systolic_cols * np.maximum(arrays_per_core, 1.0) * np.maximum(cores, 1.0)
    clock = np.asarray(clock_hz, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        from_peak = np.where(clock > 0, np.asarray(peak_flops_per_s) / (2.0 * clock), np.nan)
    return np.fmax(np.where(rows > 0, geometric, np.nan), from_peak)


def hbm_stacks(bandwidth_bytes_per_s) -> np.ndarray:
    """HBM stacks needed for a bandwidth, at the JEDEC HBM3 per-stack rate (rounded up)."""
    per_stack = _v(load_area_data()["hbm_stack_bandwidth_bytes_per_s"])
    bw = np.asarray(bandwidth_bytes_per_s, dtype=np.float64)
    return np.ceil(np.maximum(bw, 0.0) / per_stack - 1e-9)


def die_area_mm2(macs, sram_bytes, stacks, *, node: str, precision: str = "bf16") -> np.ndarray:
    """Die area (mm2) of a design: MAC array + SRAM + HBM PHYs and controllers, plus uncore."""
    data = load_area_data()
    fig = node_figures(node)
    if precision not in fig.mm2_per_mac:
        raise CosimInputError(f"unknown precision '{precision}'", field="area.precision")
    phy = _v(data["hbm_phy_mm2_per_stack"])
    ctrl = _v(data["hbm_controller_mtr_per_stack"]) / fig.logic_density_mtr_per_mm2
    core = (np.asarray(macs, dtype=np.float64) * fig.mm2_per_mac[precision]
            + np.asarray(sram_bytes, dtype=np.float64) * fig.sram_mm2_per_byte
            + np.asarray(stacks, dtype=np.float64) * (phy + ctrl))
    return core / (1.0 - _v(data["uncore_fraction"]))


def dies_per_wafer(area_mm2, wafer_diameter_mm: float | None = None) -> np.ndarray:
    """Gross dies per wafer with edge loss: pi (d/2)^2 / A - pi d / sqrt(2 A), floored, >= 0."""
    d = wafer_diameter_mm or _v(load_area_data()["wafer_diameter_mm"])
    a = np.asarray(area_mm2, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        n = math.pi * (d / 2.0) ** 2 / a - math.pi * d / np.sqrt(2.0 * a)
    return np.floor(np.maximum(np.nan_to_num(n, nan=0.0, posinf=0.0), 0.0))


def die_yield(area_mm2, defect_density_per_mm2, model: YieldModel = "murphy") -> np.ndarray:
    """Fraction of good dies: Poisson exp(-A D0) or Murphy ((1 - exp(-A D0)) / (A D0))^2."""
    ad = np.asarray(area_mm2, dtype=np.float64) * defect_density_per_mm2
    if model == "poisson":
        return np.exp(-ad)
    if model == "murphy":
        with np.errstate(divide="ignore", invalid="ignore"):
            y = (-np.expm1(-ad) / ad) ** 2
        return np.where(ad > 0, y, 1.0)
    raise CosimInputError(f"unknown yield model '{model}'; expected murphy or poisson", field="area.yield_model")


def die_cost_usd(area_mm2, *, node: str, yield_model: YieldModel = "murphy") -> np.ndarray:
    """Cost of one good die: wafer price / (dies per wafer x yield); inf when no die fits."""
    fig = node_figures(node)
    good = dies_per_wafer(area_mm2) * die_yield(area_mm2, fig.defect_density_per_mm2, yield_model)
    with np.errstate(divide="ignore"):
        return np.where(good > 0, fig.wafer_price_usd / np.where(good > 0, good, 1.0), np.inf)
