"""Memory feasibility: closed forms for weights and KV, --batch max, infeasible results."""

from __future__ import annotations

import pytest

from cosim.cli.common import build_scenario
from cosim.engines.estimate import estimate
from cosim.engines.memory import footprint, max_batch
from cosim.specs.loader import load_hardware, load_workload

WL = load_workload("llama-3.1-8b")


def test_weights_and_kv_closed_forms():
    sc = build_scenario(phase="decode", batch=4, input_len=1000, tp=2)
    fp = footprint(WL, sc)
    assert fp.weights == pytest.approx(8.03e9 * 2 / 2, rel=0.01)  # published 8.03B params, bf16, TP2
    # 2 (K, V) x 32 layers x 8 KV heads / TP2 x 128 dims x 2 bytes per token
    assert fp.kv_cache == pytest.approx(2 * 32 * 4 * 128 * 2 * 1000 * 4, rel=1e-12)


def test_batch_max_is_the_largest_that_fits():
    hw = load_hardware("h100-sxm")
    sc = build_scenario(phase="decode", batch=1, input_len=4096)
    usable = hw.main_memory.capacity_bytes.value * 0.9
    b = max_batch(WL, sc, hw.main_memory.capacity_bytes.value, 0.1)
    assert footprint(WL, sc, b).total <= usable < footprint(WL, sc, b + 1).total
    r = estimate(hw, WL, sc, batch_max=True)
    assert r.feasible and r.batch == b


def test_infeasible_mapping_is_a_result_with_numbers():
    sc = build_scenario(phase="decode", batch=1, input_len=1024)
    r = estimate("h100-sxm", "llama-3.1-405b", sc)
    assert r.feasible is False
    assert "does not fit" in r.reason and "GB" in r.reason
    r = estimate("h100-sxm", "llama-3.1-405b", sc, batch_max=True)
    assert r.feasible is False and r.batch is None
