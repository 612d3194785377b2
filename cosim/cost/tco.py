"""Dollars per chip-hour (cloud or owned TCO) and what they buy: tokens, requests, videos, runs.

Owned, per chip-hour at full use (all lines vectorised over Monte Carlo samples):

    capex        = price + price * f_server + (price + server) * f_net
    depreciation = capex_component / (L * 8760 * availability)          (one line per component)
    financing    = capex * (CRF(r, L) - 1/L) / (8760 * availability)      (0 at r = 0)
    energy       = system W per chip / 1000 * PUE * USD/kWh
    hosting      = USD/kW-month * TDP * server_power_over_tdp / 1000 / 730
    operations   = USD per chip-year / 8760

Cloud is the $/chip-hour. Either rate divided by utilisation is the cost of a useful chip-hour; a
unit cost is that rate times the chip-time the unit takes: $/token = rate / (3600 * tokens/s).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cosim.cost.finance import FinanceInputs, crf
from cosim.errors import CosimInputError

HOURS_PER_YEAR = 8760.0
HOURS_PER_MONTH = HOURS_PER_YEAR / 12.0
SECONDS_PER_DAY = 86400.0
OWNED_LINES = ("capex_accelerator", "capex_server", "capex_network", "financing", "energy", "hosting",
               "operations")


@dataclass(frozen=True)
class ChipFacts:
    """What the cost model needs from a hardware spec."""

    slug: str
    tdp_w: float
    chips_per_node: float
    cloud_price_usd_per_hour: float | None = None
    cloud_price_date: str | None = None
    cloud_price_source: str | None = None
    purchase_price_usd: float | None = None
    purchase_price_source: str | None = None

    @classmethod
    def from_hardware(cls, hw) -> ChipFacts:
        c = hw.cost
        cloud = c.cloud_price_usd_per_hour
        buy = c.purchase_price_usd
        return cls(
            slug=hw.name, tdp_w=hw.power.tdp_w.value, chips_per_node=hw.system.chips_per_node.value,
            cloud_price_usd_per_hour=cloud.value if cloud else None, cloud_price_date=c.cloud_price_date,
            cloud_price_source=hw.sources.get(cloud.source, cloud.source) if cloud else None,
            purchase_price_usd=buy.value if buy else None,
            purchase_price_source=hw.sources.get(buy.source, buy.source) if buy else None,
        )


@dataclass(frozen=True)
class Capacity:
    """Work one chip does: throughputs (per chip) and the sizes of a request, a video, a run."""

    output_tokens_per_s_per_chip: float | None = None
    input_tokens_per_s_per_chip: float | None = None
    input_len: float | None = None
    output_len: float | None = None
    chip_seconds_per_video: float | None = None
    video_seconds: float | None = None
    training_chip_hours: float | None = None

    def __post_init__(self) -> None:
        for name in ("output_tokens_per_s_per_chip", "input_tokens_per_s_per_chip", "chip_seconds_per_video",
                     "video_seconds", "training_chip_hours"):
            v = getattr(self, name)
            if v is not None and not (math.isfinite(v) and v > 0):
                raise CosimInputError(f"must be > 0, got {v}", field=name)
        for name in ("input_len", "output_len"):
            v = getattr(self, name)
            if v is not None and not (math.isfinite(v) and v >= 0):
                raise CosimInputError(f"must be >= 0, got {v}", field=name)


def resolve(fin: FinanceInputs, chip: ChipFacts, samples: dict[str, np.ndarray] | None = None,
            ) -> dict[str, np.ndarray | float | None]:
    """Input values (base, or Monte Carlo samples where given) with spec values filled in."""
    values: dict[str, np.ndarray | float | None] = {k: fin.base(k) for k in fin.dists}
    if samples:
        values.update(samples)
    if values.get("cloud_price_usd_per_hour") is None:
        values["cloud_price_usd_per_hour"] = chip.cloud_price_usd_per_hour
    if values.get("accelerator_price_usd") is None:
        values["accelerator_price_usd"] = chip.purchase_price_usd
    return values


def owned_hourly(v: dict, tdp_w: float, modelled_system_power_w: float | None = None) -> dict[str, np.ndarray]:
    """Owned cost lines per chip-hour at full use, and `total`."""
    price = v["accelerator_price_usd"]
    if price is None:
        raise CosimInputError("owned mode needs a purchase price: set accelerator_price_usd or the spec's "
                              "cost.purchase_price_usd", field="accelerator_price_usd")
    server = price * v["server_overhead_fraction"]
    network = (price + server) * v["network_overhead_fraction"]
    life, avail = v["lifetime_years"], v["availability"]
    hours = life * HOURS_PER_YEAR * avail
    power = v.get("system_power_w_per_chip")
    if power is None:
        power = (modelled_system_power_w if modelled_system_power_w is not None
                 else tdp_w * v["server_power_over_tdp"] * v["average_power_fraction"])
    lines = {
        "capex_accelerator": price / hours,
        "capex_server": server / hours,
        "capex_network": network / hours,
        "financing": (price + server + network) * (crf(v["cost_of_capital"], life) - 1.0 / life)
        / (HOURS_PER_YEAR * avail),
        "energy": power / 1000.0 * v["pue"] * v["electricity_usd_per_kwh"],
        "hosting": v["hosting_usd_per_kw_month"] * tdp_w * v["server_power_over_tdp"] / 1000.0 / HOURS_PER_MONTH,
        "operations": v["operations_usd_per_chip_year"] / HOURS_PER_YEAR,
    }
    lines = {k: np.asarray(x, dtype=np.float64) + 0.0 for k, x in lines.items()}
    lines["total"] = sum(lines[k] for k in OWNED_LINES)
    return lines


def unit_costs(rate_usd_per_chip_hour, cap: Capacity, throughput_factor=1.0) -> dict[str, np.ndarray | None]:
    """$ per token, per million input/output tokens, per request, per video (-second), per run."""
    rate = np.asarray(rate_usd_per_chip_hour, dtype=np.float64)
    out: dict[str, np.ndarray | None] = dict.fromkeys((
        "usd_per_token", "usd_per_million_output_tokens", "usd_per_million_input_tokens", "usd_per_request",
        "usd_per_video", "usd_per_video_second", "usd_per_training_run"))
    tps_out = tps_in = None
    if cap.output_tokens_per_s_per_chip:
        tps_out = cap.output_tokens_per_s_per_chip * np.asarray(throughput_factor, dtype=np.float64)
        out["usd_per_token"] = rate / (3600.0 * tps_out)
        out["usd_per_million_output_tokens"] = out["usd_per_token"] * 1e6
    if cap.input_tokens_per_s_per_chip:
        tps_in = cap.input_tokens_per_s_per_chip * np.asarray(throughput_factor, dtype=np.float64)
        out["usd_per_million_input_tokens"] = rate / (3600.0 * tps_in) * 1e6
    chip_s = request_chip_seconds(cap, tps_out, tps_in)
    if chip_s is not None:
        out["usd_per_request"] = rate * chip_s / 3600.0
    if cap.chip_seconds_per_video:
        out["usd_per_video"] = rate * cap.chip_seconds_per_video / 3600.0 / np.asarray(throughput_factor)
        if cap.video_seconds:
            out["usd_per_video_second"] = out["usd_per_video"] / cap.video_seconds
    if cap.training_chip_hours:
        out["usd_per_training_run"] = rate * cap.training_chip_hours / np.asarray(throughput_factor)
    return out


def request_chip_seconds(cap: Capacity, tps_out=None, tps_in=None):
    """Chip-seconds one request takes: output_len / decode rate + input_len / prefill rate."""
    if cap.output_len is None or tps_out is None:
        return None
    chip_s = cap.output_len / tps_out
    if cap.input_len and tps_in is not None:
        chip_s = chip_s + cap.input_len / tps_in
    return chip_s


def fleet(cap: Capacity, chip: ChipFacts, utilization: float, *, target_tokens_per_day: float | None = None,
          target_requests_per_s: float | None = None) -> dict[str, float] | None:
    """Chips and nodes to serve a target load at the given average utilisation (base values)."""
    if target_tokens_per_day is None and target_requests_per_s is None:
        return None
    if not cap.output_tokens_per_s_per_chip:
        raise CosimInputError("a fleet size needs the per-chip throughput (--tokens-per-s-per-chip or --workload)",
                              field="tokens_per_s_per_chip")
    if target_tokens_per_day is not None:
        if not target_tokens_per_day > 0:
            raise CosimInputError(f"must be > 0, got {target_tokens_per_day}", field="target_tokens_per_day")
        busy = target_tokens_per_day / SECONDS_PER_DAY / cap.output_tokens_per_s_per_chip
    else:
        if not target_requests_per_s > 0:
            raise CosimInputError(f"must be > 0, got {target_requests_per_s}", field="target_requests_per_s")
        if cap.output_len is None:
            raise CosimInputError("a request rate needs --output-len (tokens per request)", field="output_len")
        busy = target_requests_per_s * request_chip_seconds(
            cap, cap.output_tokens_per_s_per_chip, cap.input_tokens_per_s_per_chip)
    chips = math.ceil(busy / utilization - 1e-9)
    chips = max(chips, 1)
    return {"busy_chips": busy, "chips": chips, "nodes": math.ceil(chips / chip.chips_per_node)}
