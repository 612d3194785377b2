"""The finance answer for one chip: TCO breakdown, unit costs, fleet, break-even, P10/P50/P90, tornado.

`cost_report` is what `cosim cost` prints (its JSON keys are documented in cosim/cli/cmd_cost.py).
Monte Carlo draws every uncertain input at once (seeded, vectorised: one array per input) and
pushes the arrays through the same functions as the point estimate; the tornado table moves one
input at a time to its low and high value with the others at base.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cosim.cost.finance import FinanceInputs
from cosim.cost.tco import HOURS_PER_MONTH, Capacity, ChipFacts, fleet, owned_hourly, resolve, unit_costs
from cosim.errors import CosimInputError

MODES = ("cloud", "owned")


def _modes(mode: str) -> tuple[str, ...]:
    if mode == "both":
        return MODES
    if mode not in MODES:
        raise CosimInputError(f"--mode must be cloud, owned or both, got '{mode}'", field="mode")
    return (mode,)


def evaluate(values: dict[str, Any], chip: ChipFacts, cap: Capacity, modes: tuple[str, ...],
             modelled_system_power_w: float | None = None) -> dict[str, dict[str, Any]]:
    """Per mode: $/chip-hour (and the owned breakdown) and unit costs; arrays in, arrays out."""
    out: dict[str, dict[str, Any]] = {}
    util, factor = values["utilization"], values["throughput_factor"]
    if "cloud" in modes:
        price = values["cloud_price_usd_per_hour"]
        if price is None:
            raise CosimInputError("cloud mode needs a price: set cloud_price_usd_per_hour or the spec's "
                                  "cost.cloud_price_usd_per_hour", field="cloud_price_usd_per_hour")
        rate = np.asarray(price, dtype=np.float64) / util
        out["cloud"] = {"usd_per_chip_hour": np.asarray(price, dtype=np.float64),
                        "usd_per_chip_hour_effective": rate, **unit_costs(rate, cap, factor)}
    if "owned" in modes:
        lines = owned_hourly(values, chip.tdp_w, modelled_system_power_w)
        rate = lines["total"] / util
        out["owned"] = {"breakdown_usd_per_chip_hour": {k: v for k, v in lines.items() if k != "total"},
                        "usd_per_chip_hour": lines["total"], "usd_per_chip_hour_effective": rate,
                        **unit_costs(rate, cap, factor)}
    return out


def headline_metric(cap: Capacity) -> str:
    """The quantity Monte Carlo and the tornado report: $/M output tokens when a throughput is known."""
    if cap.output_tokens_per_s_per_chip:
        return "usd_per_million_output_tokens"
    if cap.chip_seconds_per_video:
        return "usd_per_video"
    return "usd_per_chip_hour_effective"


def monte_carlo(fin: FinanceInputs, chip: ChipFacts, cap: Capacity, modes: tuple[str, ...], n: int, seed: int,
                modelled_system_power_w: float | None = None) -> dict[str, Any]:
    """P10/P50/P90 (and mean) of the headline metric per mode from n seeded joint draws."""
    if n <= 0:
        raise CosimInputError(f"must be a positive integer, got {n}", field="monte_carlo")
    rng = np.random.default_rng(seed)
    samples = {k: d.sample(rng, n) for k, d in sorted(fin.dists.items()) if d is not None}
    values = resolve(fin, chip, samples)
    res = evaluate(values, chip, cap, modes, modelled_system_power_w)
    metric = headline_metric(cap)
    out: dict[str, Any] = {"samples": n, "seed": seed, "metric": metric, "uncertain_inputs": fin.uncertain()}
    for mode, r in res.items():
        arr = np.broadcast_to(np.asarray(r[metric], dtype=np.float64), (n,))
        p10, p50, p90 = np.percentile(arr, [10, 50, 90])
        out[mode] = {"p10": float(p10), "p50": float(p50), "p90": float(p90), "mean": float(arr.mean())}
    return out


def tornado(fin: FinanceInputs, chip: ChipFacts, cap: Capacity, modes: tuple[str, ...],
            modelled_system_power_w: float | None = None) -> list[dict[str, Any]]:
    """One row per (mode, uncertain input): the metric at the input's low and high, ranked by swing."""
    metric = headline_metric(cap)
    base_vals = resolve(fin, chip)
    base = evaluate(base_vals, chip, cap, modes, modelled_system_power_w)
    rows = []
    for name in fin.uncertain():
        d = fin.dists[name]
        at = {}
        for side, value in (("low", d.low), ("high", d.high)):
            vals = dict(base_vals)
            vals[name] = value
            at[side] = evaluate(vals, chip, cap, modes, modelled_system_power_w)
        for mode in modes:
            lo, hi = float(at["low"][mode][metric]), float(at["high"][mode][metric])
            rows.append({"mode": mode, "input": name, "low": d.low, "base": d.base, "high": d.high,
                         "metric": metric, "metric_at_base": float(base[mode][metric]),
                         "metric_at_low": lo, "metric_at_high": hi, "swing": abs(hi - lo)})
    rows.sort(key=lambda r: (r["mode"], -r["swing"]))
    return rows


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, np.ndarray):
        return float(x) if x.ndim == 0 else x.tolist()
    return x


def cost_report(chip: ChipFacts, fin: FinanceInputs, cap: Capacity, *, mode: str = "both",
                target_tokens_per_day: float | None = None, target_requests_per_s: float | None = None,
                monte_carlo_samples: int = 0, seed: int = 0, with_tornado: bool = False,
                modelled_system_power_w: float | None = None, capacity_source: str = "user") -> dict[str, Any]:
    """Everything `cosim cost` reports, as a JSON-ready dict (base values; see cmd_cost for keys)."""
    modes = _modes(mode)
    values = resolve(fin, chip)
    res = _plain(evaluate(values, chip, cap, modes, modelled_system_power_w))
    report: dict[str, Any] = {
        "hardware": chip.slug,
        "mode": mode,
        "inputs": {k: {"base": v, "low": fin.dists[k].low if fin.dists.get(k) else None,
                       "high": fin.dists[k].high if fin.dists.get(k) else None,
                       "source": fin.sources.get(k)}
                   for k, v in values.items()},
        "capacity": {**{k: getattr(cap, k) for k in cap.__dataclass_fields__}, "source": capacity_source},
    }
    report["inputs"]["cloud_price_usd_per_hour"]["source"] = (
        fin.sources.get("cloud_price_usd_per_hour") if fin.base("cloud_price_usd_per_hour") is not None
        else chip.cloud_price_source)
    report["inputs"]["cloud_price_usd_per_hour"]["date"] = fin.meta.get("cloud_price_date", chip.cloud_price_date
                                                                         if fin.base("cloud_price_usd_per_hour") is None
                                                                         else None)
    if fin.base("accelerator_price_usd") is None:
        report["inputs"]["accelerator_price_usd"]["source"] = chip.purchase_price_source
    if modelled_system_power_w is not None and fin.base("system_power_w_per_chip") is None:
        report["inputs"]["system_power_w_per_chip"] = {"base": modelled_system_power_w, "low": None, "high": None,
                                                       "source": "cosim energy model (system boundary)"}
    from cosim.cost.finance import source_citations

    report["sources"] = source_citations()
    report.update(res)
    fl = fleet(cap, chip, float(values["utilization"]), target_tokens_per_day=target_tokens_per_day,
               target_requests_per_s=target_requests_per_s)
    if fl is not None:
        fl["target_tokens_per_day"] = target_tokens_per_day
        fl["target_requests_per_s"] = target_requests_per_s
        fl["monthly_cost_usd"] = {m: fl["chips"] * res[m]["usd_per_chip_hour"] * HOURS_PER_MONTH for m in modes}
    report["fleet"] = fl
    report["break_even_utilization"] = None
    if set(modes) == set(MODES):
        owned, cloud = res["owned"]["usd_per_chip_hour"], res["cloud"]["usd_per_chip_hour"]
        report["break_even_utilization"] = owned / cloud if cloud > 0 else None
    report["monte_carlo"] = (monte_carlo(fin, chip, cap, modes, monte_carlo_samples, seed, modelled_system_power_w)
                             if monte_carlo_samples else None)
    report["tornado"] = tornado(fin, chip, cap, modes, modelled_system_power_w) if with_tornado else None
    return report


def report_long_table(report: dict):
    """A cost report long-form (section, mode, item, value): the CSV of `cosim cost` and the explorer."""
    import pandas as pd

    rows = []
    for mode in ("cloud", "owned"):
        r = report.get(mode) or {}
        for k, v in r.items():
            if isinstance(v, dict):
                rows += [{"section": k, "mode": mode, "item": kk, "value": vv} for kk, vv in v.items()]
            else:
                rows.append({"section": "unit_cost", "mode": mode, "item": k, "value": v})
    fl = report.get("fleet") or {}
    for k in ("busy_chips", "chips", "nodes"):
        if k in fl:
            rows.append({"section": "fleet", "mode": "", "item": k, "value": fl[k]})
    for m, v in (fl.get("monthly_cost_usd") or {}).items():
        rows.append({"section": "fleet", "mode": m, "item": "monthly_cost_usd", "value": v})
    if report.get("break_even_utilization") is not None:
        rows.append({"section": "break_even", "mode": "", "item": "utilization",
                     "value": report["break_even_utilization"]})
    mc = report.get("monte_carlo") or {}
    for m in ("cloud", "owned"):
        for q in ("p10", "p50", "p90", "mean"):
            if m in mc:
                rows.append({"section": f"monte_carlo:{mc['metric']}", "mode": m, "item": q, "value": mc[m][q]})
    for t in report.get("tornado") or []:
        for side in ("low", "high"):
            rows.append({"section": f"tornado:{t['metric']}", "mode": t["mode"], "item": f"{t['input']}@{side}",
                         "value": t[f"metric_at_{side}"]})
    return pd.DataFrame(rows, columns=["section", "mode", "item", "value"])
