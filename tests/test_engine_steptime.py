"""Step-time tables for the serving simulator agree with single-point estimates."""

from __future__ import annotations

import numpy as np
import pytest

from cosim.cli.common import build_scenario
from cosim.engines.efficiency import engine_params
from cosim.engines.hwarrays import HardwareArrays
from cosim.engines.steptime import step_time_table
from cosim.engines.vectorized import evaluate_points
from cosim.errors import CosimInputError
from cosim.specs.loader import load_hardware

HW = load_hardware("h100-sxm")
P = engine_params("nvidia-gpu")


def test_decode_grid_matches_point_estimates_and_grows_with_context():
    sc = build_scenario(phase="decode", batch=1, tp=2)
    grid = step_time_table(HW, "llama-3.1-8b", sc, np.array([1, 16]), np.array([128, 4096]), "decode",
                           params=P)
    for a, b in enumerate((1, 16)):
        for c_idx, c in enumerate((128, 4096)):
            one = evaluate_points(HardwareArrays.from_hardware(HW), "llama-3.1-8b",
                                  build_scenario(phase="decode", batch=b, input_len=c, tp=2), params=P)
            assert grid[a, c_idx] == pytest.approx(one["tpot_s"][0], rel=1e-12)
    assert np.all(np.diff(grid, axis=1) > 0)


def test_prefill_chunk_with_cached_context_costs_more():
    sc = build_scenario(phase="prefill", batch=1)
    grid = step_time_table(HW, "llama-3.1-8b", sc, np.array([512]), np.array([0, 8192]), "prefill", params=P)
    one = evaluate_points(HardwareArrays.from_hardware(HW), "llama-3.1-8b",
                          build_scenario(phase="prefill", batch=1, input_len=512), params=P)
    assert grid[0, 0] == pytest.approx(one["ttft_s"][0], rel=1e-12)
    assert grid[0, 1] > grid[0, 0]


def test_bad_kind_is_input_error():
    with pytest.raises(CosimInputError):
        step_time_table(HW, "llama-3.1-8b", build_scenario(phase="decode"), np.array([1]), np.array([1]), "x")
