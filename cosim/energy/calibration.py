"""Fit the energy model's three per-family parameters to measured GPU power (ML.ENERGY v3).

The parameters are `k_deliver` (operand-delivery factor on the node-scaled datapath energy per
FLOP), `static_fraction_of_tdp` and `mem_path_factor` (on-chip delivery factor on DRAM pJ/bit).
The fit is isolated from cosim's performance model: each measured row is turned into per-GPU
counters per second from first principles, with the row's own measured throughput and inter-token
latency standing in for time:

* concurrent sequences B = throughput x ITL (Little's law);
* FLOP/s = 2 x params x tokens/s x (1 + input/output) + attention (decode over the mean context,
  prefill causal), split over the tensor-parallel GPUs;
* HBM bytes/s = (weights + B x context x KV bytes per token) / ITL + KV writes;
* on-chip bytes/s = HBM bytes/s (each byte staged once through SRAM);
* NVLink bytes/s = 2 all-reduces per layer per token, ring volume 2 (N - 1) / N.

The modelled power (`step_energy_arrays` over one second, TDP cap included) is compared with the
measured average W per GPU; since energy per token = N x power / throughput with the measured
throughput, the same relative error holds for J/token. Least squares in log space (scipy), then
leave-one-out. `python -m cosim.energy.calibration` rewrites cosim/data/energy_calibration.yaml.
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from cosim.energy import defaults as D
from cosim.energy.model import EnergyArrays, step_energy_arrays

PARAM_NAMES = ("k_deliver", "static_fraction_of_tdp", "mem_path_factor")
LOWER = np.log([0.5, 0.02, 0.5])
UPPER = np.log([200.0, 0.9, 50.0])
START = np.log([15.0, 0.3, 3.0])
FAMILY_MATCH = {
    "nvidia-hopper": ["h100*", "h200*", "h800*", "gh200*"],
    "nvidia-blackwell": ["b100*", "b200*", "b300*", "gb200*", "gb300*"],
}


@dataclass
class Counters:
    """Per-GPU rates for a set of rows (arrays of shape (R,)), plus each row's GPU constants."""

    ids: list[str]
    flops_per_s: np.ndarray
    hbm_bytes_per_s: np.ndarray
    onchip_bytes_per_s: np.ndarray
    comm_bytes_per_s: np.ndarray
    measured_w: np.ndarray
    tdp_w: np.ndarray
    node_nm: np.ndarray
    hbm_j_per_byte: np.ndarray


def load_anchors(path: Path | None = None) -> dict[str, Any]:
    return yaml.safe_load((path or D.ANCHORS_FILE).read_text(encoding="utf-8"))


def row_counters(anchors: dict[str, Any], rows: list[dict], chat_ratio_scale: float = 1.0) -> Counters:
    """First-principles per-GPU counters per second for `rows` (see the module docstring)."""
    from cosim.specs.loader import load_workload
    from cosim.workloads.params import kv_cache_bytes_per_token, params_active, params_total

    a = anchors["assumptions"]
    wb, kvb_el = float(a["weight_bytes_per_param"]), float(a["kv_bytes_per_element"])
    cols: dict[str, list[float]] = {k: [] for k in ("f", "m", "c", "w", "tdp", "nm", "hbm")}
    for r in rows:
        arch = load_workload(r["arch"])  # the catalog spec (workloads/<slug>.yaml)
        gpu = anchors["gpus"][r["gpu"]]
        n = float(r["num_gpus"])
        tput = float(r["output_tokens_per_s"])
        itl = float(r["median_itl_ms"]) / 1e3
        out_len = float(r["avg_output_len"])
        if r["task"] in a["input_tokens_over_output_tokens"]:
            in_len = float(a["input_tokens_over_output_tokens"][r["task"]]) * chat_ratio_scale * out_len
        else:
            in_len = float(a["input_tokens"][r["task"]])
        batch = tput * itl
        ctx = in_len + out_len / 2.0
        layers = arch.attention_layers  # layers with attention (all but a hybrid model's Mamba/MLP blocks)
        qdim = arch.attention.num_heads * arch.attention.head_dim
        kvb = kv_cache_bytes_per_token(arch, kvb_el)
        req_per_s = tput / out_len
        flops = (2.0 * params_active(arch) * tput * (1.0 + in_len / out_len)
                 + 4.0 * layers * qdim * ctx * tput + 2.0 * layers * qdim * in_len ** 2 * req_per_s)
        hbm = (params_total(arch) * wb + batch * ctx * kvb) / itl + kvb * (tput + req_per_s * in_len)
        comm = 0.0
        if n > 1:
            comm = 2.0 * arch.num_layers * arch.hidden_size * 2.0 * 2.0 * (n - 1.0) / n * tput * (1.0 + in_len / out_len)
        cols["f"].append(flops / n)
        cols["m"].append(hbm / n)
        cols["c"].append(comm / n)
        cols["w"].append(float(r["avg_power_w_per_gpu"]))
        cols["tdp"].append(float(gpu["tdp_w"]))
        cols["nm"].append(float(gpu["process_node_nm"]))
        cols["hbm"].append(float(gpu["hbm_pj_per_bit"]) * 8 * D.PJ)
    arr = {k: np.asarray(v, dtype=np.float64) for k, v in cols.items()}
    return Counters(ids=[r["id"] for r in rows], flops_per_s=arr["f"], hbm_bytes_per_s=arr["m"],
                    onchip_bytes_per_s=arr["m"].copy(), comm_bytes_per_s=arr["c"], measured_w=arr["w"],
                    tdp_w=arr["tdp"], node_nm=arr["nm"], hbm_j_per_byte=arr["hbm"])


def predict_power(c: Counters, k_deliver: float, static_fraction: float, mem_path: float) -> np.ndarray:
    """Modelled average W per GPU (accelerator boundary, TDP-capped) for BF16 rows."""
    n = len(c.ids)
    node = np.asarray(D.node_factor(c.node_nm))
    e45 = D.delivered_flop_energy_45nm_j_array(k_deliver)
    link = D.value("link_energy_pj_per_bit", "scale_up") * 8 * D.PJ
    ea = EnergyArrays(
        tdp_w=c.tdp_w, static_power_w=static_fraction * c.tdp_w,
        j_per_flop=node[:, None] * e45[None, :], mem_j_per_byte=c.hbm_j_per_byte * mem_path,
        onchip_j_per_byte=np.array([D.sram_energy_j_per_byte(nm) for nm in c.node_nm]),
        scale_up_j_per_byte=np.full(n, link), scale_out_j_per_byte=np.full(n, link),
        host_overhead_fraction=np.zeros(n), host_w_per_chip=np.full(n, np.nan), pue=np.ones(n))
    out = step_energy_arrays(
        ea, flops_by_precision={"bf16": c.flops_per_s}, bytes_main_memory=c.hbm_bytes_per_s,
        bytes_onchip=c.onchip_bytes_per_s, comm_bytes_scale_up=c.comm_bytes_per_s, comm_bytes_scale_out=0.0,
        time_s=1.0)
    return out["accelerator_j"] / out["time_s_capped"]


def _subset(c: Counters, mask: np.ndarray) -> Counters:
    idx = np.flatnonzero(mask)
    return Counters(ids=[c.ids[i] for i in idx], **{
        k: getattr(c, k)[idx] for k in ("flops_per_s", "hbm_bytes_per_s", "onchip_bytes_per_s",
                                        "comm_bytes_per_s", "measured_w", "tdp_w", "node_nm", "hbm_j_per_byte")})


def gemm_power_uncapped(gpu: dict[str, Any], k_deliver: float, static_fraction: float) -> float:
    """Modelled power of a dense BF16 GEMM at peak FLOP/s before the TDP cap (HBM traffic neglected)."""
    e_flop = D.fma_energy_45nm_j("bf16") / 2.0 * float(D.node_factor(float(gpu["process_node_nm"]))) * k_deliver
    return static_fraction * float(gpu["tdp_w"]) + e_flop * float(gpu["bf16_dense_flops_per_s"])


def fit(c: Counters, gpu: dict[str, Any] | None = None, gemm_weight: float = 0.0,
        ) -> tuple[dict[str, float], np.ndarray]:
    """Least-squares fit of the three parameters in log space; returns (params, log residuals).

    With `gpu` and `gemm_weight` > 0, one more residual asks that a dense GEMM at peak draws TDP.
    """
    from scipy.optimize import least_squares

    def residuals(x: np.ndarray) -> np.ndarray:
        k, s, f = np.exp(x)
        res = np.log(predict_power(c, k, s, f) / c.measured_w)
        if gpu is not None and gemm_weight > 0:
            res = np.append(res, gemm_weight * np.log(gemm_power_uncapped(gpu, k, s) / float(gpu["tdp_w"])))
        return res

    upper = UPPER.copy()
    if gpu is not None and "static_fraction_max" in gpu:
        upper[1] = math.log(float(gpu["static_fraction_max"]))
    start = np.clip(START, LOWER, upper - 1e-6)
    sol = least_squares(residuals, start, bounds=(LOWER, upper), method="trf", x_scale=1.0)
    params = dict(zip(PARAM_NAMES, (float(v) for v in np.exp(sol.x)), strict=True))
    return params, residuals(sol.x)


def _errors(pred: np.ndarray, meas: np.ndarray) -> dict[str, float]:
    rel = pred / meas - 1.0
    return {"mape_pct": round(float(np.mean(np.abs(rel)) * 100), 2),
            "max_abs_pct": round(float(np.max(np.abs(rel)) * 100), 2),
            "rms_log": round(float(np.sqrt(np.mean(np.log(pred / meas) ** 2))), 4)}


def calibrate_family(anchors: dict[str, Any], gpu: str, chat_ratio_scale: float = 1.0) -> dict[str, Any]:
    """Fit one chip family on the rows measured on `gpu`, with in-sample and leave-one-out errors."""
    rows = [r for r in anchors["rows"] if r["gpu"] == gpu]
    c = row_counters(anchors, rows, chat_ratio_scale)
    info = anchors["gpus"][gpu]
    weight = float(anchors.get("gemm_at_peak_draws_tdp", {}).get("weight", 0.0))
    params, _ = fit(c, info, weight)
    pred = predict_power(c, *params.values())
    loo = np.empty(len(rows))
    for i in range(len(rows)):
        mask = np.ones(len(rows), dtype=bool)
        mask[i] = False
        p_i, _ = fit(_subset(c, mask), info, weight)
        loo[i] = predict_power(_subset(c, ~mask), *p_i.values())[0]
    return {
        "params": params,
        "gemm_at_peak_w_uncapped": round(gemm_power_uncapped(info, params["k_deliver"],
                                                             params["static_fraction_of_tdp"]), 1),
        "in_sample": _errors(pred, c.measured_w), "leave_one_out": _errors(loo, c.measured_w),
        "per_row": [{"id": c.ids[i], "measured_w": float(c.measured_w[i]), "predicted_w": round(float(pred[i]), 1),
                     "loo_predicted_w": round(float(loo[i]), 1)} for i in range(len(rows))],
    }


def run(anchors: dict[str, Any] | None = None) -> dict[str, Any]:
    """The calibration document written to energy_calibration.yaml."""
    anchors = anchors or load_anchors()
    families: dict[str, Any] = {}
    for gpu, info in anchors["gpus"].items():
        result = calibrate_family(anchors, gpu)
        sens = {}
        for scale in (0.5, 2.0):
            alt = calibrate_family(anchors, gpu, scale)
            sens[f"chat_input_x{scale:g}"] = {**{k: round(v, 4) for k, v in alt["params"].items()},
                                              "in_sample_mape_pct": alt["in_sample"]["mape_pct"]}
        families[info["family"]] = {
            "match": FAMILY_MATCH.get(info["family"], []),
            "anchor_gpu": gpu,
            **{k: round(v, 4) for k, v in result["params"].items()},
            "fitted_on": _dt.date.today().isoformat(),
            "method": ("scipy least_squares on log(modelled/measured W per GPU), 3 parameters, BF16 rows, "
                       "plus the GEMM-at-peak-draws-TDP pseudo-observation"),
            "n_rows": len(result["per_row"]),
            "gemm_at_peak_w_uncapped": result["gemm_at_peak_w_uncapped"],
            "in_sample": result["in_sample"],
            "leave_one_out": result["leave_one_out"],
            "sensitivity_to_prompt_length": sens,
            "rows": result["per_row"],
        }
    geo = {k: round(math.exp(float(np.mean([math.log(f[k]) for f in families.values()]))), 4) for k in PARAM_NAMES}
    return {
        "schema": "cosim.energy_calibration/1",
        "generated_by": "python -m cosim.energy.calibration",
        "source": anchors["source"],
        "assumptions": anchors["assumptions"],
        "families": families,
        "uncalibrated": {**geo, "note": "geometric mean of the fitted families; used for chips in no family"},
    }


def main() -> None:
    doc = run()
    header = ("# Generated by `python -m cosim.energy.calibration` from cosim/data/energy_anchors.yaml;\n"
              "# do not edit by hand. Errors are on average W per GPU (equivalently J per output token).\n")
    D.CALIBRATION_FILE.write_text(header + yaml.safe_dump(doc, sort_keys=False, width=110), encoding="utf-8")
    D.load_calibration.cache_clear()
    for name, fam in doc["families"].items():
        print(f"{name}: k={fam['k_deliver']:.3g} static={fam['static_fraction_of_tdp']:.3g}xTDP "
              f"mem_path={fam['mem_path_factor']:.3g}  in-sample MAPE {fam['in_sample']['mape_pct']}% "
              f"LOO MAPE {fam['leave_one_out']['mape_pct']}% (n={fam['n_rows']})")


if __name__ == "__main__":
    main()
