"""Area and die-cost model: hand calculations, published anchors and invariants."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cosim.errors import CosimInputError
from cosim.explore import area


def test_dies_per_wafer_matches_the_textbook_formula():
    # 300 mm wafer, 100 mm2 die: pi * 150^2 / 100 - pi * 300 / sqrt(200) = 706.86 - 66.64 = 640.2
    assert area.dies_per_wafer(100.0)[()] == 640
    assert area.dies_per_wafer(1e6)[()] == 0


def test_yield_models_match_hand_values():
    # A = 100 mm2, D0 = 0.1 / cm2 = 0.001 / mm2 -> A D0 = 0.1
    assert area.die_yield(100.0, 0.001, "poisson")[()] == pytest.approx(math.exp(-0.1))
    assert area.die_yield(100.0, 0.001, "murphy")[()] == pytest.approx(((1 - math.exp(-0.1)) / 0.1) ** 2)
    assert area.die_yield(0.0, 0.001, "murphy")[()] == 1.0
    with pytest.raises(CosimInputError):
        area.die_yield(1.0, 0.001, "seeds")


def test_die_cost_is_wafer_price_over_good_dies():
    fig = area.node_figures("n5")
    assert fig.wafer_price_usd == 16988  # CSET 2020
    a = 600.0
    dpw = math.floor(math.pi * 150**2 / a - math.pi * 300 / math.sqrt(2 * a))
    y = ((1 - math.exp(-a * 0.001)) / (a * 0.001)) ** 2
    assert area.die_cost_usd(a, node="n5")[()] == pytest.approx(16988 / (dpw * y))


def test_mac_area_scales_by_logic_density_and_precision():
    n28, n5 = area.node_figures("n28"), area.node_figures("n5")
    # TPU v1: 24% of <= 331 mm2 holds 65,536 int8 MACs
    assert n28.mm2_per_mac["int8"] == pytest.approx(0.24 * 331 / 65536, rel=1e-3)
    assert n5.mm2_per_mac["int8"] == pytest.approx(n28.mm2_per_mac["int8"] * 15.3 / 138.2)
    assert n5.mm2_per_mac["bf16"] == pytest.approx(2 * n5.mm2_per_mac["fp8"])


def test_tpu_v1_die_is_reproduced_from_its_floor_plan():
    # 65,536 int8 MACs + 28 MiB SRAM at 28 nm, DDR3 (no HBM): the published die is <= 331 mm2
    a = area.die_area_mm2(65536, 28 * 2**20, 0, node="n28", precision="int8")[()]
    assert 0.8 * 331 < a <= 331


def test_generic_asic_area_by_hand():
    # 131,072 bf16 MACs, 128 MiB SRAM, 4 HBM3 stacks at N5
    mac = 131072 * 1.2121e-3 * 15.3 / 138.2 * 2
    sram = 128 * 0.4982
    hbm = 4 * (10.45 + 552.7 / 138.2)
    expected = (mac + sram + hbm) / (1 - 0.35)
    stacks = area.hbm_stacks(3.2768e12)[()]
    assert stacks == 4
    assert area.die_area_mm2(131072, 128 * 2**20, stacks, node="n5")[()] == pytest.approx(expected, rel=1e-4)


def test_macs_take_the_larger_of_geometry_and_peak():
    macs = area.macs_per_chip(np.array([128.0, 0.0]), 128.0, 4.0, 2.0, np.array([8e14, 8e14]), 1.5e9)
    assert macs[0] == pytest.approx(8e14 / 3e9)  # peak needs more MACs than 131,072
    assert macs[1] == pytest.approx(8e14 / 3e9)


def test_node_keys_and_aliases():
    assert area.node_key("n5") == "n5"
    assert area.node_key(4) == "n5"  # 4N / N4 are N5-family processes
    assert area.node_key(None, 7.0) == "n7"
    with pytest.raises(CosimInputError, match="unknown process node"):
        area.node_key("n2")


@given(st.floats(0.01, 5000.0), st.floats(1e-5, 1e-2))
def test_murphy_is_never_below_poisson(a, d0):
    assert area.die_yield(a, d0, "murphy")[()] >= area.die_yield(a, d0, "poisson")[()] - 1e-12


@given(st.floats(1.0, 800.0), st.floats(1.0, 800.0))
def test_die_cost_grows_with_area(a, b):
    lo, hi = sorted((a, b))
    assert area.die_cost_usd(lo, node="n5")[()] <= area.die_cost_usd(hi, node="n5")[()] + 1e-9


def test_every_figure_in_the_data_file_is_sourced():
    data = area.load_area_data()
    sources = set(data["sources"])

    def walk(node):
        if isinstance(node, dict):
            if "value" in node:
                assert node.get("source") in sources, node
                if node.get("estimate"):
                    assert node.get("derivation"), node
            for v in node.values():
                walk(v)

    walk({k: v for k, v in data.items() if k != "sources"})
