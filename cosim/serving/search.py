"""The highest sustainable request rate that meets an SLO, by bisection on the offered QPS.

Each probe simulates a fresh seeded request stream at that rate for the same duration; a rate
passes when the run is sustainable (the waiting queue does not grow) and, when an SLO is given, its
p99 TTFT and TPOT are within the limits. The upper bracket starts at the offline capacity (requests/s
with every request queued at t = 0), which no online rate can exceed for long.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cosim.serving.metrics import Slo, summarize
from cosim.serving.simulator import RequestSet, ServingConfig, simulate
from cosim.serving.steptime import StepTimeTable


@dataclass(frozen=True)
class SearchResult:
    max_qps: float | None
    summary: dict[str, Any] | None  # the figures at max_qps
    probes: list[tuple[float, bool]]


#: the bracket's lower end, as a fraction of the offline capacity: a load light enough that only an SLO no
#: rate can meet fails it
LIGHT_LOAD_FRACTION = 0.02


def passes(summary: dict[str, Any], slo: Slo | None) -> bool:
    if not summary["sustainable"]:
        return False
    if slo is not None and slo.any:
        return bool(summary["slo_met"])
    return True


def find_max_qps(make_requests: Callable[[float], RequestSet], table: StepTimeTable, cfg: ServingConfig,
                 capacity_rps: float, slo: Slo | None = None, rel_tol: float = 0.02,
                 max_probes: int = 14, summarize_kw: dict | None = None) -> SearchResult:
    """Bisection on QPS in (0, 1.25 x capacity]; None when even a light load (`LIGHT_LOAD_FRACTION` of
    capacity) misses the SLO."""
    kw = summarize_kw or {}
    probes: list[tuple[float, bool]] = []

    def probe(qps: float):
        s = summarize(simulate(make_requests(qps), table, cfg), slo, **kw)
        ok = passes(s, slo)
        probes.append((qps, ok))
        return ok, s

    hi = 1.25 * capacity_rps
    ok, s_hi = probe(hi)
    if ok:
        return SearchResult(hi, s_hi, probes)
    # the light-load floor is probed only if no faster rate passes: its requests run in small batches, so it
    # takes the most steps of any probe to simulate; it keeps its place in the probe budget
    lo, best = LIGHT_LOAD_FRACTION * capacity_rps, None
    while len(probes) < max_probes - 1 and (hi - lo) > rel_tol * hi:
        mid = 0.5 * (lo + hi)
        ok, s = probe(mid)
        if ok:
            lo, best = mid, s
        else:
            hi = mid
    if best is None:
        ok, best = probe(lo)
        if not ok:
            return SearchResult(None, None, probes)
    return SearchResult(lo, best, probes)
