"""Serving figures from a simulation: throughput, latency percentiles, goodput, KV use, sustainability.

Definitions (as in vLLM's benchmark_serving, trtllm-bench and MLPerf LoadGen):
* TTFT = first token time - arrival; TPOT = (finish - first token) / (output tokens - 1), for
  requests with more than one output token; E2E = finish - arrival; queueing delay = first time
  scheduled - arrival.
* Throughput = tokens (or requests) / duration. Offline: duration = makespan (all requests queued
  at t = 0, output tokens/s = total output tokens / makespan). Online: from the first arrival to
  the last completion. Closed loop (`--concurrency N`): from t = 0, when the first N arrive, to the last
  completion (the makespan), as genai-perf and vLLM's benchmark_serving report it.
* Goodput = requests meeting both SLO limits (TTFT <= slo_ttft_s and TPOT <= slo_tpot_s) / duration.
* `slo_met`: the p99 (configurable) TTFT and TPOT are within the limits (MLPerf Server style).
* Sustainable (open-loop online runs; a closed loop holds at most N requests, so always): the waiting
  queue does not grow over the second half of the arrival window by more than 5% of the arrivals in
  that half plus two Poisson standard deviations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cosim.serving.kernel import TL_END, TL_REPLICA, TL_SEQS, TL_START, TL_TOKENS, TL_USED_BLOCKS
from cosim.serving.simulator import SimRun

PERCENTILES = (50, 90, 99)


@dataclass(frozen=True)
class Slo:
    """Latency limits (s); None = no limit on that figure."""

    ttft_s: float | None = None
    tpot_s: float | None = None
    percentile: float = 99.0

    @property
    def any(self) -> bool:
        return self.ttft_s is not None or self.tpot_s is not None


@dataclass(frozen=True)
class CostInputs:
    """Optional power and price per replica; energy and $ figures stay None without them."""

    busy_power_w_per_replica: float | None = None
    idle_power_w_per_replica: float | None = None
    usd_per_hour_per_replica: float | None = None


def _pct(x: np.ndarray, p: float) -> float | None:
    x = x[np.isfinite(x)]
    return float(np.percentile(x, p)) if len(x) else None


def latency_arrays(run: SimRun) -> dict[str, np.ndarray]:
    """Per-request TTFT, TPOT (NaN for one-token outputs), E2E and queueing delay (s)."""
    req = run.requests
    ttft = run.first_token_s - req.arrival_s
    e2e = run.finish_s - req.arrival_s
    with np.errstate(invalid="ignore", divide="ignore"):
        tpot = np.where(req.output_len > 1, (run.finish_s - run.first_token_s) / (req.output_len - 1), np.nan)
    queue = run.scheduled_s - req.arrival_s
    return {"ttft": ttft, "tpot": tpot, "e2e": e2e, "queue": queue}


def in_system(run: SimRun, t: np.ndarray) -> np.ndarray:
    """Requests arrived but not finished at times t (vectorised over t)."""
    arr = np.searchsorted(run.requests.arrival_s, t, side="right")
    fin = np.searchsorted(np.sort(run.finish_s), t, side="right")
    return arr - fin


def waiting(run: SimRun, t: np.ndarray) -> np.ndarray:
    """Requests arrived but never yet scheduled at times t."""
    arr = np.searchsorted(run.requests.arrival_s, t, side="right")
    sch = np.searchsorted(np.sort(run.scheduled_s), t, side="right")
    return arr - sch


def sustainability(run: SimRun) -> tuple[bool, str | None, float]:
    """(sustainable, reason, queue growth) for an online run; offline and closed-loop runs are always sustainable."""
    req = run.requests
    if req.offline or req.concurrency:
        return True, None, 0.0
    t_end = req.duration_s if req.duration_s else float(req.arrival_s[-1])
    half = 0.5 * t_end
    w = waiting(run, np.array([half, t_end]))
    growth = float(w[1] - w[0])
    arrivals = float(np.searchsorted(req.arrival_s, t_end, side="right") - np.searchsorted(req.arrival_s, half, side="right"))
    limit = 0.05 * arrivals + 2.0 * np.sqrt(arrivals) + 1.0
    if growth > limit:
        rate = req.offered_qps if req.offered_qps else arrivals / max(half, 1e-12)
        return False, (f"unsustainable load: the waiting queue grew by {growth:.0f} requests over the second half "
                       f"of the arrival window ({arrivals:.0f} arrivals at {rate:.3g} req/s)"), growth
    return True, None, growth


def kv_utilisation(run: SimRun) -> tuple[float, float]:
    """(time-weighted mean, peak) fraction of KV blocks in use while replicas are busy."""
    tl = run.timeline
    if len(tl) == 0:
        return 0.0, 0.0
    dt = tl[:, TL_END] - tl[:, TL_START]
    frac = tl[:, TL_USED_BLOCKS] / max(run.total_blocks, 1)
    total = float(dt.sum())
    mean = float((frac * dt).sum() / total) if total > 0 else float(frac.mean())
    return mean, float(frac.max())


def batch_timeline(run: SimRun) -> dict[str, np.ndarray]:
    """Per-iteration arrays: replica, start and end time (s), sequences and tokens in the batch."""
    tl = run.timeline
    return {"replica": tl[:, TL_REPLICA].astype(np.int64), "start_s": tl[:, TL_START],
            "end_s": tl[:, TL_END], "batch_seqs": tl[:, TL_SEQS].astype(np.int64),
            "batch_tokens": tl[:, TL_TOKENS].astype(np.int64)}


def summarize(run: SimRun, slo: Slo | None = None, cost: CostInputs | None = None) -> dict[str, Any]:
    """The reported figures (JSON-ready floats, None where not applicable)."""
    req = run.requests
    lat = latency_arrays(run)
    start = 0.0 if req.offline else float(req.arrival_s[0])
    end = float(np.nanmax(run.finish_s))
    duration = max(end - start, 1e-12)
    out_tokens = float(req.output_len.sum())
    in_tokens = float(req.input_len.sum())
    res: dict[str, Any] = {
        "num_requests": len(req),
        "duration_s": duration,
        "output_tokens_per_s": out_tokens / duration,
        "input_tokens_per_s": in_tokens / duration,
        "requests_per_s": len(req) / duration,
        "offered_qps": req.offered_qps,
    }
    if req.concurrency:
        res["concurrency"] = req.concurrency
    for name in ("ttft", "tpot", "e2e", "queue"):
        key = "queue_delay" if name == "queue" else name
        for p in PERCENTILES:
            res[f"{key}_p{p}_s"] = _pct(lat[name], p)
        finite = lat[name][np.isfinite(lat[name])]
        res[f"{key}_mean_s"] = float(finite.mean()) if len(finite) else None
    ok, reason, growth = sustainability(run)
    res["sustainable"] = ok
    res["unsustainable_reason"] = reason
    res["queue_growth_requests"] = growth
    mean_kv, peak_kv = kv_utilisation(run)
    res["kv_utilisation_mean"] = mean_kv
    res["kv_utilisation_peak"] = peak_kv
    res["preemptions"] = int(run.preemptions.sum())
    tl = run.timeline
    res["mean_batch_seqs"] = float(np.average(tl[:, TL_SEQS], weights=tl[:, TL_END] - tl[:, TL_START])) if len(tl) else None
    res["iterations"] = len(tl)
    # SLO
    if slo is not None and slo.any:
        good = np.ones(len(req), dtype=bool)
        if slo.ttft_s is not None:
            good &= lat["ttft"] <= slo.ttft_s
        if slo.tpot_s is not None:
            good &= ~(lat["tpot"] > slo.tpot_s)  # one-token outputs (NaN TPOT) pass
        res["goodput_requests_per_s"] = float(good.sum()) / duration
        res["slo_attainment"] = float(good.mean())
        met = True
        if slo.ttft_s is not None:
            met &= (_pct(lat["ttft"], slo.percentile) or 0.0) <= slo.ttft_s
        if slo.tpot_s is not None:
            v = _pct(lat["tpot"], slo.percentile)
            met &= v is None or v <= slo.tpot_s
        res["slo_met"] = bool(met and ok)
    else:
        res["goodput_requests_per_s"] = None
        res["slo_attainment"] = None
        res["slo_met"] = None
    # energy and cost
    res["energy_j_per_output_token"] = None
    res["usd_per_million_output_tokens"] = None
    if cost is not None:
        replicas = len(run.busy_s)
        if cost.busy_power_w_per_replica is not None:
            idle_w = cost.idle_power_w_per_replica or 0.0
            busy = np.minimum(run.busy_s, duration)
            energy = float((busy * cost.busy_power_w_per_replica + (duration - busy) * idle_w).sum())
            res["energy_j_per_output_token"] = energy / out_tokens
        if cost.usd_per_hour_per_replica is not None:
            usd = cost.usd_per_hour_per_replica * replicas * duration / 3600.0
            res["usd_per_million_output_tokens"] = usd / out_tokens * 1e6
    return res
