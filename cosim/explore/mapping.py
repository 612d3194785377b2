"""Mapping tuning: the best parallelism, batch and precision for one hardware, model and SLO.

`best_mapping(hardware, workload, scenario, slo={"ttft_s": 0.5, "tpot_s": 0.05})` enumerates candidate
mappings — TP over powers of two up to the scale-up domain, PP in {1, 2, 4}, EP in {1, TP} for MoE
models, batch over powers of two, and the precisions the chip runs natively — evaluates each with the
vectorised engine, and keeps the best objective (default: throughput per chip) among those that fit
and meet the SLO. Infeasible everywhere is a result (`feasible: false` with the reason), not an error.
This is what `--mapping auto` on `estimate` and `serve` calls.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cosim.errors import CosimInputError
from cosim.explore.spec import Constraint

NATIVE_PRECISIONS = ("bf16", "fp8", "fp4", "int8")
DEFAULT_BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


def _slo_constraints(slo) -> list[Constraint]:
    if slo is None:
        return []
    if isinstance(slo, dict):
        return [Constraint(column=k, op="<=", value=float(v)) for k, v in slo.items()]
    return [c if isinstance(c, Constraint) else Constraint.parse(c) for c in slo]


def candidate_mappings(hardware, workload, scenario) -> dict[str, list]:
    """The default candidate lists for a chip and a model."""
    domain = 1
    up = hardware.interconnect.scale_up
    if up is not None and up.domain_size is not None:
        domain = int(up.domain_size.value)
    tps = [t for t in (1, 2, 4, 8, 16, 32, 64) if t <= max(domain, 1)]
    heads = getattr(getattr(workload, "attention", None), "num_heads", None)
    if heads:
        tps = [t for t in tps if heads % t == 0] or [1]
    moe = getattr(workload, "moe", None)
    precisions = [p for p in NATIVE_PRECISIONS if hardware.peak_flops(p)]
    if scenario.activation_precision not in precisions:
        precisions.append(scenario.activation_precision)
    batches = list(DEFAULT_BATCHES) if scenario.phase in ("decode", "generate", "prefill") else [scenario.batch]
    return {"tp": tps, "pp": [1, 2, 4], "ep": None if moe is None else "tp", "batch": batches,
            "precision": precisions}


def best_mapping(hardware, workload, scenario, slo=None, *, objective: str = "throughput_tokens_per_s",
                 sense: str = "max", per_chip: bool = True, candidates: dict[str, list] | None = None,
                 evaluator=None) -> dict[str, Any]:
    """The best mapping (tp, pp, ep, batch, precision) for `scenario` under `slo`.

    `slo` is a dict of upper bounds (`{"tpot_s": 0.05}`) or constraint strings (`"ttft_s <= 0.5"`).
    `per_chip` divides a throughput objective by the chips the mapping uses, so more chips must earn
    their keep. Returns `{"feasible", "mapping", "metrics", "reason", "evaluated"}`.
    """
    from cosim.engines.hwarrays import HardwareArrays
    from cosim.explore.engine import _apply, _call, resolve_evaluator
    from cosim.specs.loader import load_hardware, load_workload

    hw = load_hardware(hardware)
    wl = load_workload(workload)
    if sense not in ("max", "min"):
        raise CosimInputError(f"sense must be max or min, got '{sense}'")
    constraints = _slo_constraints(slo)
    fn = resolve_evaluator(_ref(evaluator))
    cand = {**candidate_mappings(hw, wl, scenario), **(candidates or {})}
    hwa = HardwareArrays.from_hardware(hw)
    best: dict[str, Any] | None = None
    best_key = None
    tightest: dict[str, int] = {}
    evaluated = 0
    for pp in sorted(cand["pp"]):
        if best is not None:  # deeper pipelines only when shallower ones found nothing feasible
            break
        for tp in cand["tp"]:
            eps = [1] if cand.get("ep") is None else ([1, tp] if cand["ep"] == "tp" else list(cand["ep"]))
            for ep in sorted(set(eps)):
                for precision in cand["precision"]:
                    for batch in cand["batch"]:
                        combo = {"tp": tp, "pp": pp, "ep": ep, "batch": batch, "precision": precision}
                        try:
                            out = _call(fn, hwa, wl, _apply(scenario, combo), hw)
                        except CosimInputError:
                            continue
                        evaluated += 1
                        found = _judge(out, combo, constraints, objective, sense, per_chip, tightest)
                        if found is not None and (best_key is None or found[0] > best_key):
                            best_key, best = found
    if best is None:
        reason = "no candidate mapping fits and meets the SLO"
        if tightest:
            worst = max(tightest, key=tightest.get)
            reason += f"; tightest: {worst} (failed by {tightest[worst]} of {evaluated} candidates)"
        return {"feasible": False, "mapping": None, "metrics": None, "reason": reason, "evaluated": evaluated}
    return {"feasible": True, **best, "reason": None, "evaluated": evaluated}


def _judge(out, combo, constraints, objective, sense, per_chip, tightest):
    """(key, result) for a candidate that fits and meets the SLO, else None (failures are tallied)."""
    from cosim.explore.results import constraint_mask

    metrics = {k: _first(v) for k, v in out.items()}
    chips = float(metrics.get("chips") or (combo["tp"] * combo["pp"]))
    if not bool(metrics.get("feasible", True)):
        tightest["fits in memory"] = tightest.get("fits in memory", 0) + 1
        return None
    cols = {k: np.atleast_1d(np.asarray(v, dtype=float)) for k, v in metrics.items() if isinstance(v, int | float)}
    missing = [c.column for c in constraints if c.column not in cols]
    if missing:
        raise CosimInputError(f"SLO on unknown column(s) {missing}", field="slo")
    failed = [str(c) for c in constraints if not constraint_mask(cols, c)[0]]
    for f in failed:
        tightest[f] = tightest.get(f, 0) + 1
    if failed:
        return None
    value = float(metrics.get(objective, np.nan))
    if per_chip and objective.startswith("throughput"):
        value /= chips
    if not np.isfinite(value):
        return None
    result = {"mapping": combo, "metrics": {**metrics, "chips": chips},
              "objective": {"column": objective, "sense": sense, "value": value, "per_chip": per_chip}}
    return (value if sense == "max" else -value), result


def _ref(evaluator) -> str:
    from cosim.explore.engine import evaluator_ref

    return evaluator_ref(evaluator)


def _first(v):
    a = np.asarray(v)
    if a.ndim == 0:
        return a.item()
    x = a[0]
    return x.item() if isinstance(x, np.generic) else x
