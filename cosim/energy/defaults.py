"""Default energy figures from `cosim/data/energy_defaults.yaml`: per-FLOP, per-byte, node scaling.

Kept apart from the model so the numbers (and their sources) live in data, and so a sweep can ask
for the node factor of many process nodes at once (`node_factor` is vectorised).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from cosim.specs.hardware import PRECISIONS

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
DEFAULTS_FILE = DATA_DIR / "energy_defaults.yaml"
CALIBRATION_FILE = DATA_DIR / "energy_calibration.yaml"
ANCHORS_FILE = DATA_DIR / "energy_anchors.yaml"

PJ = 1e-12


@functools.cache
def load_defaults() -> dict[str, Any]:
    """The parsed defaults file (cached; treat as read-only)."""
    return yaml.safe_load(DEFAULTS_FILE.read_text(encoding="utf-8"))


@functools.cache
def load_calibration() -> dict[str, Any]:
    """The fitted per-family parameters, or an empty mapping when no fit has been stored."""
    if not CALIBRATION_FILE.is_file():
        return {}
    return yaml.safe_load(CALIBRATION_FILE.read_text(encoding="utf-8")) or {}


def value(key: str, sub: str | None = None) -> float:
    """A scalar default: `value("pue")` or `value("link_energy_pj_per_bit", "scale_up")`."""
    entry = load_defaults()[key]
    if sub is not None:
        entry = entry[sub]
    return float(entry["value"])


def fma_energy_45nm_j(precision: str) -> float:
    """Energy of one FMA (2 FLOP) in `precision` at 45 nm, 0.9 V, in joules."""
    table = load_defaults()["fma_energy_45nm_pj"]
    return float(table[precision]["value"]) * PJ


def operand_bits(precision: str) -> float:
    """Storage bits of one operand in `precision` (energy_defaults.yaml `operand_bits`)."""
    return float(load_defaults()["operand_bits"][precision])


def delivered_flop_energy_45nm_j(precision: str, k_deliver: float) -> float:
    """Energy per FLOP at 45 nm including operand delivery: the datapath (Horowitz FMA / 2) plus
    (k_deliver - 1) times the BF16 datapath energy scaled by operand bits / 16. Delivery (register
    files, operand buffers, wires) moves bits, so it scales with the operand width, not with the
    multiplier's significand squared; at BF16 this is exactly k_deliver x the BF16 datapath energy."""
    bf16 = fma_energy_45nm_j("bf16") / 2.0
    return fma_energy_45nm_j(precision) / 2.0 + (k_deliver - 1.0) * bf16 * operand_bits(precision) / 16.0


def delivered_flop_energy_45nm_j_array(k_deliver: float) -> np.ndarray:
    """`delivered_flop_energy_45nm_j` for each of `PRECISIONS`, in J/FLOP."""
    return np.array([delivered_flop_energy_45nm_j(p, k_deliver) for p in PRECISIONS], dtype=np.float64)


def node_factor(nm: float | np.ndarray) -> float | np.ndarray:
    """Logic energy factor vs 45 nm at 0.9 V; log-linear interpolation in nm, clamped to the table."""
    rows = sorted(load_defaults()["node_energy_factor_vs_45nm"], key=lambda r: r["nm"])
    xs = np.log([float(r["nm"]) for r in rows])
    ys = np.log([float(r["value"]) for r in rows])
    arr = np.asarray(nm, dtype=np.float64)
    out = np.exp(np.interp(np.log(np.clip(arr, 1e-3, None)), xs, ys))
    return float(out) if np.ndim(out) == 0 else out


def memory_energy_j_per_byte(kind: str, nm: float) -> float:
    """Default energy per byte for a memory of `kind` (SRAM-class levels are node-scaled)."""
    table = load_defaults()["memory_energy_pj_per_bit"]
    if kind in table:
        return float(table[kind]["value"]) * 8.0 * PJ
    return sram_energy_j_per_byte(nm)


def sram_energy_j_per_byte(nm: float) -> float:
    """MB-class SRAM energy per byte at process node `nm`."""
    return value("sram_energy_45nm_pj_per_bit") * 8.0 * PJ * float(node_factor(nm))
