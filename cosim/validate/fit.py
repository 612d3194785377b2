"""Fit the calibration: a few physical scale factors per hardware generation, with honest CV errors.

For each generation (rows whose hardware slug matches its patterns), scipy least squares minimises
log(predicted / measured) over the generation's rows plus a Gaussian prior on the log of each scale
factor (sigma `PRIOR_SIGMA`), so a generation with one row cannot bend far from first principles.
Leave-one-out: each row is re-predicted with the parameters refitted without it (one Gauss-Newton step
from the full fit, using the Jacobian at the optimum) and its error reported; that cross-validated
error is the figure to quote.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd
import yaml

from cosim.engines.calibration import CALIBRATION_PATH, OVERHEAD_BOUNDS, SCALE_BOUNDS, scaled_params

#: hardware generations that share kernels and hence achievable fractions of peak
GENERATIONS: dict[str, tuple[str, ...]] = {
    "nvidia-ampere": ("a100*",),
    "nvidia-ada": ("rtx-4090",),
    "nvidia-hopper": ("h100*", "h200*", "h800", "h20"),
    "nvidia-blackwell": ("b200", "gb200*", "gb300*"),
    "amd-cdna3": ("mi300x", "mi325x"),
    "amd-cdna4": ("mi355x",),
    "google-tpu": ("tpu-*",),
}
PARAMS = ("compute_scale", "memory_scale", "overhead_scale", "attention_scale", "link_scale")
#: log-space sd of the prior on each factor: a 1.4x change of a GEMM or memory fraction of peak is one sd;
#: attention is less certain (FlashAttention-2 reaches ~35% of H100 peak, FlashAttention-3 ~62%: one sd
#: = 1.8x); the host overhead per sequence far less (one sd = 10x)
PRIOR_SIGMA = np.array([0.35, 0.35, 2.3, 0.6, 0.35])
#: rows used for fitting: published measurements we trust (high and medium reliability)
FIT_RELIABILITY = ("high", "medium")


def generation_of(slug: str) -> str | None:
    for name, patterns in GENERATIONS.items():
        if any(fnmatch.fnmatch(slug, p) for p in patterns):
            return name
    return None


@dataclass
class FamilyFit:
    name: str
    theta: np.ndarray  # log scale factors
    rows: list[str]
    in_sample: np.ndarray  # signed errors
    loo: np.ndarray  # signed errors


def _predict_all(table: pd.DataFrame, theta: np.ndarray) -> np.ndarray:
    from cosim.validate.runner import predict_rows

    cs, ms, os_, as_, ls = np.exp(theta)
    return predict_rows(table.copy(), lambda hw: scaled_params(hw, cs, ms, os_, as_, ls))


def fit_generation(name: str, table: pd.DataFrame, verbose: bool = True) -> FamilyFit:
    from scipy.optimize import least_squares

    measured = table["measured"].to_numpy(dtype=float)
    lo = np.log([SCALE_BOUNDS[0], SCALE_BOUNDS[0], OVERHEAD_BOUNDS[0], SCALE_BOUNDS[0], SCALE_BOUNDS[0]])
    hi = np.log([SCALE_BOUNDS[1], SCALE_BOUNDS[1], OVERHEAD_BOUNDS[1], SCALE_BOUNDS[1], SCALE_BOUNDS[1]])

    def residuals(theta: np.ndarray) -> np.ndarray:
        pred = _predict_all(table, theta)
        r = np.log(np.where(np.isfinite(pred) & (pred > 0), pred, measured * 10.0) / measured)
        return np.concatenate([r, theta / PRIOR_SIGMA])

    theta0 = np.zeros(len(PARAMS))
    sol = least_squares(residuals, theta0, bounds=(lo, hi), diff_step=0.05, x_scale=0.2, max_nfev=30)
    theta = sol.x
    jac = sol.jac
    r_full = sol.fun
    n = len(table)
    in_sample = np.exp(r_full[:n]) - 1.0
    prior = np.diag(1.0 / PRIOR_SIGMA**2)
    loo = np.empty(n)
    for i in range(n):
        keep = np.arange(n) != i
        J = jac[:n][keep]
        r = r_full[:n][keep]
        # Gauss-Newton step for the fit without row i (prior included), from the full optimum
        g = J.T @ r + prior @ theta
        H = J.T @ J + prior
        theta_i = np.clip(theta - np.linalg.solve(H, g), lo, hi)
        pred_i = _predict_all(table.iloc[[i]], theta_i)[0]
        loo[i] = pred_i / measured[i] - 1.0 if np.isfinite(pred_i) else np.nan
    if verbose:
        print(f"calibrate {name}: {n} rows, scales {np.round(np.exp(theta), 3)}, "
              f"median |err| in-sample {np.nanmedian(np.abs(in_sample)):.3f}, LOO {np.nanmedian(np.abs(loo)):.3f}",
              file=sys.stderr)
    return FamilyFit(name=name, theta=theta, rows=list(table["id"]), in_sample=in_sample, loo=loo)


def calibrate(verbose: bool = True) -> tuple[dict, pd.DataFrame]:
    """Fit every generation with rows; write cosim/data/calibration.yaml; return it and the LOO table."""
    from cosim.validate.runner import base_table

    table = base_table()
    # performance rows only: energy rows are scored here but calibrated by cosim/energy/calibration.py
    table = table[table["reliability"].isin(FIT_RELIABILITY)
                  & ~table["metric"].isin(["energy_per_token", "system_energy_per_token"])].reset_index(drop=True)
    table["generation"] = [generation_of(s) for s in table["hardware"]]
    families: dict[str, dict] = {}
    loo_rows = []
    for name in GENERATIONS:
        sub = table[table["generation"] == name].reset_index(drop=True)
        if sub.empty:
            continue
        fit = fit_generation(name, sub, verbose)
        cs, ms, os_, as_, ls = np.exp(fit.theta)
        families[name] = {
            "match": list(GENERATIONS[name]),
            "compute_scale": round(float(cs), 4), "memory_scale": round(float(ms), 4),
            "overhead_scale": round(float(os_), 4), "attention_scale": round(float(as_), 4),
            "link_scale": round(float(ls), 4),
            "rows": fit.rows,
            "in_sample_median_abs_error": round(float(np.nanmedian(np.abs(fit.in_sample))), 4),
            "loo_median_abs_error": round(float(np.nanmedian(np.abs(fit.loo))), 4),
        }
        for rid, e_in, e_loo in zip(fit.rows, fit.in_sample, fit.loo, strict=True):
            loo_rows.append({"id": rid, "generation": name, "in_sample_error": float(e_in), "loo_error": float(e_loo)})
    loo = pd.DataFrame(loo_rows)
    doc = {
        "schema_version": 1,
        "date": dt.date.today().isoformat(),
        "method": ("scipy.optimize.least_squares on log(predicted/measured) per hardware generation, "
                   f"parameters {list(PARAMS)} scaling the first-principles fractions of peak FLOP/s and memory "
                   f"bandwidth, the per-sequence host overhead, the attention fraction of peak and the link-bandwidth fraction, Gaussian prior sigma {PRIOR_SIGMA.tolist()} in log space, "
                   f"bounds {list(SCALE_BOUNDS)} (overhead {list(OVERHEAD_BOUNDS)}); "
                   f"rows of reliability {list(FIT_RELIABILITY)}; leave-one-out by one Gauss-Newton refit step"),
        "families": families,
        "loo_errors": {r["id"]: round(r["loo_error"], 4) for r in loo_rows if np.isfinite(r["loo_error"])},
    }
    CALIBRATION_PATH.write_text("# Generated by `cosim validate --calibrate`; do not edit by hand.\n"
                                + yaml.safe_dump(doc, sort_keys=False, width=110))
    from cosim.engines.calibration import load_calibration

    load_calibration.cache_clear()
    return doc, loo
