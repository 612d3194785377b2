"""Error bands for any estimate from the cross-validated residuals of its group.

If cosim's prediction p relates to the truth m by p = m (1 + e), the truth given p is p / (1 + e).
Using the leave-one-out errors e of the rows in the same metric group (stored by the calibration),
P10 and P90 of the truth are p / (1 + e_q90) and p / (1 + e_q10).
"""

from __future__ import annotations

import numpy as np

from cosim.engines.calibration import load_calibration
from cosim.validate.mapping import load_mapping

#: which validation metric each estimate/serve output is judged by
OUTPUT_METRIC = {
    "throughput_tokens_per_s": "offline_throughput",
    "output_tokens_per_s": "offline_throughput",
    "seconds_per_video": "video_seconds",
    "tpot_s": "per_user_decode",
    "mfu": "training_mfu",
}
MIN_ROWS = 3


def loo_errors(metric: str) -> np.ndarray:
    """Cross-validated signed errors of the rows of one metric (empty before calibration)."""
    mapping = load_mapping()
    errs = load_calibration().get("loo_errors") or {}
    return np.array([e for rid, e in errs.items() if rid in mapping.rows and mapping.rows[rid].kind == metric])


def band(output: str, value: float | None) -> dict[str, float | None] | None:
    """{'p10': ..., 'p90': ..., 'n': rows} for an output value, or None without enough evidence."""
    if value is None or output not in OUTPUT_METRIC:
        return None
    metric = OUTPUT_METRIC[output]
    if output == "tpot_s":  # per-user speed rows are 1/TPOT; fall back on throughput rows when few
        e = loo_errors(metric)
        if len(e) < MIN_ROWS:
            e = loo_errors("offline_throughput")
        e = 1.0 / (1.0 + e) - 1.0  # an error on a rate is the inverse error on a time
    else:
        e = loo_errors(metric)
    if len(e) < MIN_ROWS:
        return None
    q10, q90 = np.quantile(e, [0.1, 0.9])
    lo, hi = value / (1.0 + q90), value / (1.0 + q10)
    return {"p10": float(min(lo, hi)), "p90": float(max(lo, hi)), "n": int(len(e))}


def bands_for(result: dict) -> dict[str, dict | None]:
    """Bands for every output of a result dict that has a metric group."""
    return {k: band(k, result.get(k)) for k in OUTPUT_METRIC if result.get(k) is not None}
