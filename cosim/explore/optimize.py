"""Continuous design search under constraints: `scipy.optimize.differential_evolution` over a sweep spec.

The sweep's parameters are the decision variables (ranges: continuous, in log space when `log: true`,
integer when `integer: true`; value lists: an integer index). The first objective is optimised; the
constraints, and the engine's own feasibility, enter as a penalty that ranks every infeasible design
below every feasible one (by total relative violation), which keeps the search derivative-free and
deterministic. Each generation is evaluated as one vectorised batch. Reproducible: same spec and seed,
same answer. With several workloads or scenarios the design is scored by its worst case.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cosim.errors import CosimInputError
from cosim.explore.engine import SweepContext, evaluate_design_points
from cosim.explore.results import constraint_mask, objective_score
from cosim.explore.spec import SweepSpec

_INFEASIBLE = 1e12


def _decoder(spec: SweepSpec):
    """Bounds, integrality, and x -> parameter values."""
    bounds, integral = [], []
    for p in spec.parameters:
        if p.values is not None:
            bounds.append((0, len(p.numeric_values) - 1))
            integral.append(True)
        else:
            low, high = p.bounds
            if p.range.log:
                bounds.append((np.log(low), np.log(high)))
                integral.append(False)
            else:
                bounds.append((np.ceil(low), np.floor(high)) if p.integer else (low, high))
                integral.append(p.integer)

    def decode(x: np.ndarray) -> dict[str, np.ndarray]:
        out = {}
        for i, p in enumerate(spec.parameters):
            xi = np.asarray(x[i], dtype=np.float64)
            if p.values is not None:
                vals = np.asarray(p.numeric_values)
                out[p.path] = vals[np.clip(np.round(xi).astype(np.int64), 0, len(vals) - 1)]
            elif p.range.log:
                v = np.exp(xi)
                out[p.path] = np.round(v) if p.integer else v
            else:
                out[p.path] = np.round(xi) if p.integer else xi
        return out

    return bounds, np.asarray(integral), decode


def _violation(cols: dict[str, np.ndarray], spec: SweepSpec) -> np.ndarray:
    """Sum of relative constraint violations (0 when all hold), engine infeasibility counting 1."""
    total = np.where(np.asarray(cols["feasible"], dtype=bool), 0.0, 1.0)
    for c in spec.constraints:
        v = np.asarray(cols[c.column], dtype=np.float64)
        scale = abs(c.value) or 1.0
        gap = (v - c.value) if c.op in ("<=", "<", "==") else (c.value - v)
        if c.op == "==":
            gap = np.abs(gap)
        amount = np.where(np.isnan(v), 1.0, np.maximum(gap, 0.0) / scale)
        total += np.where(constraint_mask(cols, c), 0.0, np.maximum(amount, 1e-9))
    return total


def run_optimize(spec: SweepSpec, *, evaluator=None, base_dir=None, maxiter: int = 100, popsize: int = 15,
                 seed: int | None = None, tol: float = 1e-6) -> dict[str, Any]:
    """Search the spec's parameter box for the best first objective under the constraints."""
    from scipy.optimize import differential_evolution

    if not spec.objectives:
        raise CosimInputError("optimize needs at least one objective (e.g. throughput_tokens_per_s:max)",
                              field="objectives")
    if not spec.parameters:
        raise CosimInputError("optimize needs at least one parameter to vary", field="parameters")
    ctx = SweepContext.build(spec, evaluator=evaluator, base_dir=base_dir)
    objective = spec.objectives[0]
    bounds, integrality, decode = _decoder(spec)
    evaluations = 0

    def score(x: np.ndarray) -> np.ndarray:
        nonlocal evaluations
        x = np.asarray(x, dtype=np.float64)
        x = x[:, None] if x.ndim == 1 else x
        points = decode(x)
        n = x.shape[1]
        evaluations += n
        worst = np.full(n, np.inf)
        for cols in evaluate_design_points(ctx, points, n=n):
            viol = _violation(cols, spec)
            s = -objective_score(cols, objective)
            s = np.where(np.isfinite(s), s, _INFEASIBLE / 2)
            f = np.where(viol > 0, _INFEASIBLE * (1.0 + viol), s)
            worst = np.where(np.isinf(worst), f, np.maximum(worst, f))
        return worst

    result = differential_evolution(
        score, bounds, seed=spec.sampling.seed if seed is None else seed, maxiter=maxiter, popsize=popsize,
        tol=tol, polish=False, vectorized=True, updating="deferred", integrality=integrality,
    )
    best = decode(np.asarray(result.x)[:, None])
    blocks = evaluate_design_points(ctx, best, n=1)
    rows = [_labelled({k: _scalar(v[0]) for k, v in b.items()}, ctx) for b in blocks]
    feasible = all(bool(r["meets_constraints"]) for r in rows)
    out: dict[str, Any] = {
        "feasible": feasible,
        "objective": {"column": objective.column, "sense": objective.sense,
                      "value": min((r[objective.column] for r in rows),
                                   key=lambda v: v if objective.sense == "max" else -v)},
        "parameters": {path: float(v[0]) for path, v in best.items()},
        "results": rows,
        "evaluations": evaluations,
        "generations": int(result.nit),
        "seed": spec.sampling.seed if seed is None else seed,
        "message": str(result.message),
    }
    if not feasible:
        out["reason"] = "no design in the parameter box met every constraint (best violation shown)"
    return out


def _labelled(row: dict[str, Any], ctx: SweepContext) -> dict[str, Any]:
    """Integer codes back to names (workload, precision, bottleneck)."""
    from cosim.explore.engine import _bottleneck_labels
    from cosim.specs.hardware import PRECISIONS

    row["workload"] = ctx.workloads[int(row["workload"])].name
    row["precision"] = PRECISIONS[int(row["precision"])]
    if isinstance(row.get("bottleneck"), int):
        row["bottleneck"] = _bottleneck_labels(row["bottleneck"] + 1)[row["bottleneck"]]
    return row


def _scalar(v):
    if isinstance(v, np.generic):
        return v.item()
    return v
