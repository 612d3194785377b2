"""Dollars: cloud $/chip-hour, owned TCO with a breakdown, unit costs, fleets, Monte Carlo, tornado."""

from cosim.cost.finance import Dist, FinanceInputs, crf, load_finance
from cosim.cost.report import cost_report
from cosim.cost.tco import Capacity, ChipFacts, owned_hourly, unit_costs


def cost_for_estimate(hw, result, finance: FinanceInputs | None = None, mode: str = "cloud") -> dict:
    """`usd_per_million_tokens` and `usd_per_video` for `cosim estimate` JSON (None where n/a).

    Reads `throughput_tokens_per_s`, `seconds_per_video` and `chips` from an engine result; the
    price is the spec's cloud price (mode "cloud") or the default owned TCO (mode "owned").
    """
    from cosim.cost.report import evaluate
    from cosim.cost.tco import resolve

    fin = finance or load_finance()
    chip = ChipFacts.from_hardware(hw)
    chips = float(getattr(result, "chips", 1) or 1)
    tps = getattr(result, "throughput_tokens_per_s", None)
    spv = getattr(result, "seconds_per_video", None)
    cap = Capacity(output_tokens_per_s_per_chip=tps / chips if tps else None,
                   chip_seconds_per_video=spv * chips if spv else None)
    values = resolve(fin, chip)
    if mode == "cloud" and values["cloud_price_usd_per_hour"] is None:
        return {"usd_per_million_tokens": None, "usd_per_video": None}
    res = evaluate(values, chip, cap, (mode,))[mode]
    pick = res.get("usd_per_million_output_tokens")
    video = res.get("usd_per_video")
    return {"usd_per_million_tokens": None if pick is None else float(pick),
            "usd_per_video": None if video is None else float(video)}


__all__ = ["Capacity", "ChipFacts", "Dist", "FinanceInputs", "cost_for_estimate", "cost_report", "crf",
           "load_finance", "owned_hourly", "unit_costs"]
