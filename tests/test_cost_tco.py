"""Cost model identities: $/token, CRF, the hand-computed H100 TCO, energy line, Monte Carlo, tornado."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cosim.cost import Capacity, ChipFacts, cost_report, crf, load_finance
from cosim.cost.finance import parse_dist
from cosim.cost.report import evaluate, monte_carlo, tornado
from cosim.cost.tco import owned_hourly, resolve
from cosim.errors import CosimInputError


def points(**overrides):
    """Finance inputs with every default range collapsed to its base, then `overrides`."""
    defaults = load_finance()
    return load_finance(overrides={**{k: defaults.base(k) for k in defaults.uncertain()}, **overrides})


H100 = ChipFacts(slug="h100-sxm", tdp_w=700.0, chips_per_node=8.0, cloud_price_usd_per_hour=12.29,
                 purchase_price_usd=31905.0)


@settings(max_examples=100, deadline=None)
@given(price=st.floats(0.01, 100), tps=st.floats(0.1, 1e6))
def test_usd_per_token_is_price_over_3600_tokens_per_s_exactly(price, tps):
    fin = load_finance(overrides={"cloud_price_usd_per_hour": price})
    r = cost_report(H100, fin, Capacity(output_tokens_per_s_per_chip=tps), mode="cloud")
    assert r["cloud"]["usd_per_token"] == price / (3600 * tps)
    assert r["cloud"]["usd_per_million_output_tokens"] == pytest.approx(price / (3600 * tps) * 1e6, rel=1e-15)


def test_crf_closed_form():
    assert crf(0.08, 5) == pytest.approx(0.25046, abs=5e-6)
    assert crf(0.0, 5) == 0.2
    assert np.allclose(crf(np.array([0.0, 0.08]), 5), [0.2, 0.2504564545])


def test_hand_computed_h100_owned_tco_from_the_facts_file():
    # energy_cost_facts.yaml derived_example_H100_owned: 33,750 x 1.235 / (5 x 8760) ~ 0.95 $/h;
    # 0.956 kW x 1.2 x 0.0826 ~ 0.095 $/h; ~1.05 $/h before operations, financing, utilisation
    fin = load_finance(overrides={"accelerator_price_usd": 33750, "server_overhead_fraction": 0.0,
                                  "network_overhead_fraction": 0.235, "lifetime_years": 5, "cost_of_capital": 0,
                                  "pue": 1.2, "electricity_usd_per_kwh": 0.0826})
    lines = owned_hourly(resolve(fin, H100), H100.tdp_w)
    capex = float(lines["capex_accelerator"] + lines["capex_server"] + lines["capex_network"])
    assert capex == pytest.approx(33750 * 1.235 / (5 * 8760))
    assert capex == pytest.approx(0.95, abs=0.005)
    assert float(lines["energy"]) == pytest.approx(0.7 * 1.82 * 0.75 * 1.2 * 0.0826)
    assert float(lines["energy"]) == pytest.approx(0.095, abs=0.001)
    assert float(lines["financing"]) == 0.0
    assert float(lines["total"]) == pytest.approx(1.05, abs=0.01)


def test_financing_line_is_the_annuity_minus_straight_line():
    fin = load_finance(overrides={"accelerator_price_usd": 10000, "server_overhead_fraction": 0,
                                  "network_overhead_fraction": 0, "cost_of_capital": 0.08, "lifetime_years": 5})
    lines = owned_hourly(resolve(fin, H100), H100.tdp_w)
    assert float(lines["financing"]) == pytest.approx(10000 * (0.2504564545 - 0.2) / 8760)


@settings(max_examples=50, deadline=None)
@given(kwh=st.floats(0.01, 1.0), pue=st.floats(1.0, 2.0), r=st.floats(0, 0.2), host=st.floats(0, 300))
def test_doubling_electricity_moves_only_the_energy_line(kwh, pue, r, host):
    base = {"electricity_usd_per_kwh": kwh, "pue": pue, "cost_of_capital": r, "hosting_usd_per_kw_month": host,
            "operations_usd_per_chip_year": 1000}
    a = owned_hourly(resolve(load_finance(overrides=base), H100), H100.tdp_w)
    b = owned_hourly(resolve(load_finance(overrides={**base, "electricity_usd_per_kwh": 2 * kwh}), H100), H100.tdp_w)
    for line in a:
        if line == "energy":
            assert float(b[line]) == pytest.approx(2 * float(a[line]))
        elif line == "total":
            assert float(b[line] - a[line]) == pytest.approx(float(a["energy"]))
        else:
            assert float(b[line]) == float(a[line])


def test_monte_carlo_with_degenerate_distributions_returns_the_point_estimate():
    fin = points(pue={"low": 1.2, "base": 1.2, "high": 1.2},
                 lifetime_years={"dist": "uniform", "low": 5, "high": 5},
                 electricity_usd_per_kwh={"dist": "lognormal", "median": 0.0826, "sigma": 0})
    assert fin.uncertain() == []
    cap = Capacity(output_tokens_per_s_per_chip=1500)
    point = cost_report(H100, fin, cap)
    mc = monte_carlo(fin, H100, cap, ("cloud", "owned"), 1000, seed=4)
    for mode in ("cloud", "owned"):
        expected = point[mode]["usd_per_million_output_tokens"]
        assert mc[mode]["p10"] == pytest.approx(expected, rel=1e-12)
        assert mc[mode]["p50"] == pytest.approx(expected, rel=1e-12)
        assert mc[mode]["p90"] == pytest.approx(expected, rel=1e-12)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), lo=st.floats(1.0, 1.3), span=st.floats(0.0, 0.5), sigma=st.floats(0, 1))
def test_percentiles_are_ordered(seed, lo, span, sigma):
    fin = load_finance(overrides={"pue": {"low": lo, "base": lo + span / 2, "high": lo + span},
                                  "cloud_price_usd_per_hour": {"dist": "lognormal", "median": 3.0, "sigma": sigma},
                                  "utilization": {"dist": "uniform", "low": 0.3, "high": 1.0}})
    mc = monte_carlo(fin, H100, Capacity(output_tokens_per_s_per_chip=1000), ("cloud", "owned"), 500, seed)
    for mode in ("cloud", "owned"):
        assert mc[mode]["p10"] <= mc[mode]["p50"] <= mc[mode]["p90"]


def test_default_ranges_give_a_spread():
    mc = monte_carlo(load_finance(), H100, Capacity(output_tokens_per_s_per_chip=1000), ("owned",), 2000, 1)
    assert mc["owned"]["p10"] < mc["owned"]["p50"] < mc["owned"]["p90"]


def test_monte_carlo_is_seeded():
    fin = load_finance(overrides={"pue": {"low": 1.1, "base": 1.2, "high": 1.6}})
    cap = Capacity(output_tokens_per_s_per_chip=1000)
    assert monte_carlo(fin, H100, cap, ("owned",), 300, 7) == monte_carlo(fin, H100, cap, ("owned",), 300, 7)


def test_tornado_ranks_by_swing_and_ignores_inputs_a_mode_does_not_use():
    fin = points(pue={"low": 1.09, "base": 1.2, "high": 1.58}, lifetime_years={"low": 3, "base": 5, "high": 6})
    rows = tornado(fin, H100, Capacity(output_tokens_per_s_per_chip=1000), ("cloud", "owned"))
    owned = [r for r in rows if r["mode"] == "owned"]
    assert [r["input"] for r in owned] == ["lifetime_years", "pue"]  # capex dominates energy
    assert all(r["swing"] == 0 for r in rows if r["mode"] == "cloud")
    assert owned[0]["swing"] >= owned[1]["swing"] > 0


def test_fleet_size_and_monthly_cost_by_hand():
    fin = load_finance(overrides={"utilization": 0.6})
    r = cost_report(H100, fin, Capacity(output_tokens_per_s_per_chip=2400), target_tokens_per_day=5e9)
    busy = 5e9 / 86400 / 2400
    assert r["fleet"]["busy_chips"] == pytest.approx(busy)
    assert r["fleet"]["chips"] == math.ceil(busy / 0.6) == 41
    assert r["fleet"]["nodes"] == 6
    assert r["fleet"]["monthly_cost_usd"]["cloud"] == pytest.approx(41 * 12.29 * 730)
    assert r["break_even_utilization"] == pytest.approx(r["owned"]["usd_per_chip_hour"] / 12.29)


def test_request_cost_adds_prefill_and_decode_chip_time():
    fin = load_finance(overrides={"cloud_price_usd_per_hour": 3.6})
    cap = Capacity(output_tokens_per_s_per_chip=1000, input_tokens_per_s_per_chip=10000, input_len=2000,
                   output_len=500)
    r = cost_report(H100, fin, cap, mode="cloud", target_requests_per_s=10)
    # chip-seconds per request = 500/1000 + 2000/10000 = 0.7 s; $3.6/h = $0.001/s
    assert r["cloud"]["usd_per_request"] == pytest.approx(0.0007)
    assert r["fleet"]["chips"] == 7


def test_named_values_and_bad_inputs():
    assert parse_dist("pue", "hyperscaler", named={"pue": {"hyperscaler": 1.1}}).base == 1.1
    with pytest.raises(CosimInputError, match="pue"):
        parse_dist("pue", 0.9)
    with pytest.raises(CosimInputError, match="utilization"):
        parse_dist("utilization", 1.5)
    with pytest.raises(CosimInputError, match="lifetime_years"):
        parse_dist("lifetime_years", 0)
    with pytest.raises(CosimInputError, match="low <= base <= high"):
        parse_dist("pue", {"low": 1.5, "base": 1.2, "high": 1.6})


def test_video_and_training_unit_costs():
    fin = load_finance(overrides={"cloud_price_usd_per_hour": 7.2})
    r = cost_report(H100, fin, Capacity(chip_seconds_per_video=500, video_seconds=5, training_chip_hours=1000),
                    mode="cloud")
    assert r["cloud"]["usd_per_video"] == pytest.approx(1.0)
    assert r["cloud"]["usd_per_video_second"] == pytest.approx(0.2)
    assert r["cloud"]["usd_per_training_run"] == pytest.approx(7200)
    assert evaluate(resolve(fin, H100), H100, Capacity(), ("cloud",))["cloud"]["usd_per_token"] is None
