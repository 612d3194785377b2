"""Result columns of a sweep: their units, constraint checks and the per-chunk feasibility statistics.

Statistics are small and additive (counts, best values), so a sweep of any size can say how many
points met the constraints and, when none did, which constraint was the tightest.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cosim.explore.spec import Constraint, Objective

_OPS = {
    "<=": np.less_equal, ">=": np.greater_equal, "<": np.less, ">": np.greater, "==": np.equal,
}

_UNIT_SUFFIXES = (
    ("_tokens_per_s", "token/s"), ("_bytes_per_s", "byte/s"), ("_flops_per_s", "FLOP/s"),
    ("_usd_per_hour", "USD/h"), ("usd_per_hour", "USD/h"), ("usd_per_million_tokens", "USD/Mtoken"),
    ("_j_per_token", "J/token"), ("_j_per_byte", "J/byte"), ("_bytes_per_chip", "byte"), ("_bytes", "byte"),
    ("_mm2", "mm^2"), ("_usd", "USD"), ("_hz", "Hz"), ("_w", "W"), ("_j", "J"), ("_s", "s"),
)


def unit_of(column: str) -> str:
    """The unit a column name spells (`tpot_s` -> s); '1' for counts, ratios and labels."""
    last = column.rsplit(".", 1)[-1]
    if "peak_flops_per_s" in column:
        return "FLOP/s"
    for suffix, unit in _UNIT_SUFFIXES:
        if last.endswith(suffix) or last == suffix.lstrip("_"):
            return unit
    return "1"


def constraint_mask(columns: dict[str, np.ndarray], c: Constraint) -> np.ndarray:
    """True where the constraint holds (NaN never does)."""
    values = np.asarray(columns[c.column], dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return _OPS[c.op](values, c.value)


def objective_score(columns: dict[str, np.ndarray], o: Objective) -> np.ndarray:
    """Larger is better; NaN -> -inf."""
    v = np.asarray(columns[o.column], dtype=np.float64)
    s = v if o.sense == "max" else -v
    return np.where(np.isnan(s), -np.inf, s)


def chunk_stats(columns: dict[str, np.ndarray], constraints: list[Constraint],
                objectives: list[Objective]) -> dict[str, Any]:
    """Counts and best values of one chunk (JSON-ready, mergeable with `merge_stats`)."""
    feasible = np.asarray(columns["feasible"], dtype=bool)
    meets = np.asarray(columns["meets_constraints"], dtype=bool)
    stats: dict[str, Any] = {
        "rows": int(len(feasible)), "engine_feasible": int(feasible.sum()), "meets": int(meets.sum()),
        "constraints": {}, "objectives": {},
    }
    for c in constraints:
        ok = constraint_mask(columns, c)
        v = np.asarray(columns[c.column], dtype=np.float64)
        finite = v[np.isfinite(v)]
        best = (float(finite.min()) if c.op in ("<=", "<") else float(finite.max())) if finite.size else None
        stats["constraints"][str(c)] = {"violated": int((~ok).sum()), "best": best}
    for o in objectives:
        v = np.asarray(columns[o.column], dtype=np.float64)[meets]
        v = v[np.isfinite(v)]
        stats["objectives"][o.column] = (float(v.max() if o.sense == "max" else v.min()) if v.size else None)
    return stats


def merge_stats(parts: list[dict[str, Any]], constraints: list[Constraint],
                objectives: list[Objective]) -> dict[str, Any]:
    """Add up chunk statistics."""
    total: dict[str, Any] = {"rows": 0, "engine_feasible": 0, "meets": 0, "constraints": {}, "objectives": {}}
    for s in parts:
        for k in ("rows", "engine_feasible", "meets"):
            total[k] += s[k]
    for c in constraints:
        key = str(c)
        entries = [s["constraints"][key] for s in parts if key in s["constraints"]]
        bests = [e["best"] for e in entries if e["best"] is not None]
        pick = min if c.op in ("<=", "<") else max
        total["constraints"][key] = {"violated": sum(e["violated"] for e in entries),
                                     "best": pick(bests) if bests else None}
    for o in objectives:
        vals = [s["objectives"].get(o.column) for s in parts]
        vals = [v for v in vals if v is not None]
        total["objectives"][o.column] = (max(vals) if o.sense == "max" else min(vals)) if vals else None
    return total


def tightest_constraint(stats: dict[str, Any]) -> str | None:
    """The constraint violated by the most rows (engine infeasibility counts as 'fits in memory')."""
    rows = stats["rows"]
    if not rows:
        return None
    candidates = [(rows - stats["engine_feasible"], "the engine's feasibility (e.g. fits in memory)", None)]
    candidates += [(e["violated"], key, e["best"]) for key, e in stats["constraints"].items()]
    violated, name, best = max(candidates, key=lambda t: t[0])
    if violated == 0:
        return None
    share = 100.0 * violated / rows
    best_text = f"; best value reached {best:.4g}" if best is not None and math.isfinite(best) else ""
    return f"{name} (violated by {share:.1f}% of rows{best_text})"
