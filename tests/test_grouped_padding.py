"""GEMMs pad varying rows in expectation: each MoE expert's Poisson rows, and the steps an average step stands for."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kernel_check import assert_kernel_matches_reference
from scipy.stats import poisson

from cosim.engines import analytical as A
from cosim.engines import reference
from cosim.engines.efficiency import engine_params
from cosim.engines.hwarrays import HardwareArrays
from cosim.graph.optable import OpTable
from cosim.specs.loader import load_hardware

P = engine_params("nvidia-gpu")
FP8 = 4


def _exact_tiles(mu: float, t: float) -> float:
    """E[ceil(N / t)] = sum_j P(N > j t), from scipy's Poisson survival function (independent of cosim)."""
    top = int((mu + 40 * math.sqrt(mu) + 100) // t) + 2
    return float(sum(poisson.sf(j * t, mu) for j in range(top)))


@pytest.mark.parametrize("mu", [0.3, 2.0, 33.0, 63.75, 66.0, 150.0, 199.0])
@pytest.mark.parametrize("t", [64.0, 128.0])
def test_expected_tiles_match_the_poisson_sum_exactly_below_the_normal_switch(mu, t):
    assert A._poisson_tiles.py_func(mu, t) == pytest.approx(_exact_tiles(mu, t), rel=1e-9)


@pytest.mark.parametrize("mu", [250.0, 512.0, 4096.0])
def test_expected_tiles_of_large_rates_stay_within_the_normal_approximation_error(mu):
    assert A._poisson_tiles.py_func(mu, 64.0) == pytest.approx(_exact_tiles(mu, 64.0), rel=2e-3)


def test_expected_tiles_of_a_wide_spread_are_the_mean_over_the_tile_plus_the_mean_residue():
    # N spread over many tiles: N mod t is uniform on 0..t-1, so E[ceil(N/t)] = mu/t + (t - 1) / (2 t)
    mu, t = 5000.0, 64.0
    assert A._poisson_tiles.py_func(mu, t) == pytest.approx(mu / t + (t - 1) / (2 * t), rel=1e-6)


@pytest.mark.parametrize("m", [1.001, 1.5, 3.0, 40.0, 500.0])
def test_the_truncated_rate_reproduces_the_mean_load_of_the_touched_experts(m):
    mu = A._truncated_poisson_rate.py_func(m)
    assert mu / (1.0 - math.exp(-mu)) == pytest.approx(m, rel=1e-10)


def test_one_token_per_touched_expert_takes_one_smallest_tile():
    assert A._grouped_row_tiles.py_func(1.0, 64.0, 128.0) == (64.0, 1.0)


def test_a_mean_at_the_tile_still_spills_into_a_second_tile_for_about_half_the_experts():
    # mean 64 rows per expert, tile 64: N ~ Poisson(~64) exceeds 64 about half the time
    tile, tiles = A._grouped_row_tiles.py_func(64.0, 64.0, 128.0)
    mu = A._truncated_poisson_rate.py_func(64.0)
    assert tile == 64.0
    assert tiles == pytest.approx(1.0 + poisson.sf(64, mu) + poisson.sf(128, mu), rel=1e-6)
    assert 1.4 < tiles < 1.6


def _grouped_eff(m: float) -> float:
    return A._gemm_eff.py_func(m, 2880.0, 5760.0, 128.0, 128.0, 256.0, 64.0, 132.0, 0.0, 0.0, 0.0, 64.0, 64.0,
                               1.0, True, 0.0, 0.0)


def test_a_grouped_gemm_has_no_cliff_where_the_mean_crosses_a_multiple_of_its_tile():
    # padding the mean on the 128-row tile jumps about 2x between 127 and 130 rows per expert (one tile
    # against two); with the rows spread, the two differ by a few percent
    assert (127 / 128) / (130 / 256) > 1.9
    assert _grouped_eff(127.0) / _grouped_eff(130.0) == pytest.approx(1.0, abs=0.06)


def test_where_the_tile_itself_changes_the_step_is_smaller_than_padding_the_mean():
    # 63.75 rows take a 64-row tile, 66 a 128-row one: the mean alone pads 0.996 against 0.52 of the rows;
    # spread, the 64-row tile already spills into a second tile for about half the experts
    assert (63.75 / 64) / (66 / 128) > 1.9
    assert 1.2 < _grouped_eff(63.75) / _grouped_eff(66.0) < 1.5


@settings(max_examples=60, deadline=None)
@given(m=st.floats(1.0, 20000.0), tile_m=st.sampled_from([64.0, 128.0, 256.0]))
def test_expected_padded_rows_never_fall_below_the_rows(m, tile_m):
    tile, tiles = A._grouped_row_tiles.py_func(m, 64.0, tile_m)
    assert tile * tiles >= m * (1 - 1e-9)
    assert 0.0 < _grouped_eff(m) <= 1.0


def test_kernel_and_reference_agree_on_grouped_gemms_across_both_poisson_regimes():
    rows = [{"name": f"experts{m}", "kind": 1, "precision": FP8, "m": m, "k": 7168, "n": 4096, "groups": 32,
             "flops": 2.0 * m * 7168 * 4096 * 32, "bytes_weight": 32 * 7168 * 4096, "repeat": 58}
            for m in (1.0, 1.7, 37.0, 63.75, 66.0, 199.0, 201.0, 900.0, 6000.0)]
    hw = HardwareArrays.from_hardware(load_hardware("h200-sxm"), 3)
    hw.tile_m[:] = [64.0, 128.0, 256.0]
    assert_kernel_matches_reference(hw, OpTable.from_rows(rows), P, footprint_bytes=5e10,
                                    weight_footprint_bytes=4e10)
    for m in (37.0, 201.0, 6000.0):
        tile, tiles = reference.grouped_row_tiles(m, 64.0, 128.0)
        assert (tile, tiles) == pytest.approx(A._grouped_row_tiles.py_func(m, 64.0, 128.0), rel=1e-9)
    assert np.isfinite(reference.poisson_tiles(300.0, 64.0))


def _eff(m: float, prompt: float = 0.0, step: float = 0.0) -> float:
    # one 8192 x 8192 dense GEMM (n tiles of 256, row tiles up to 128) on 132 units
    return A._gemm_eff.py_func(m, 8192.0, 8192.0, 1.0, 128.0, 256.0, 64.0, 132.0, 0.0, 0.0, 0.0, 64.0, 64.0,
                               1.0, False, prompt, step)


def test_an_average_step_pads_the_steps_it_averages_by_hand():
    # 206 decode rows and a 128-row prompt in one step out of 16 (12.875 prompt rows on average, Llama-3.3-70B
    # on one H200 at 128/2048): 15/16 of the steps pad 206 rows to 2 x 128, 1/16 pad 334 to 3 x 128
    rows, tiles = A._mixed_rows.py_func(218.875, 12.875, 128.0, 64.0, 128.0, 0.0)
    f = 12.875 / 128
    assert rows == pytest.approx((1 - f) * 256 + f * 384, rel=1e-12)
    assert tiles == pytest.approx((1 - f) * 2 + f * 3, rel=1e-12)
    # more prompt rows than one prompt: every step carries 1 or 2 prompts of 1000 rows beside 680 decode rows;
    # each takes the tile that pads it least: 1680 -> 27 x 64 = 1728, 2680 -> 21 x 128 = 2688
    rows, _ = A._mixed_rows.py_func(680.0 + 1500.0, 1500.0, 1000.0, 64.0, 128.0, 0.0)
    assert rows == pytest.approx(0.5 * 27 * 64 + 0.5 * 21 * 128, rel=1e-12)
    # a small decode batch pads 25 rows to one 64-row tile, the 20,025-row prompt step to 313 x 64 = 20,032
    rows, _ = A._mixed_rows.py_func(25.0 + 250.0, 250.0, 20000.0, 64.0, 128.0, 0.0)
    assert rows == pytest.approx(0.9875 * 64 + 0.0125 * 20032, rel=1e-12)


def test_an_average_step_has_no_cliff_where_its_mean_crosses_a_multiple_of_the_tile():
    # Llama-3.1-405B on four B200s at 1000/2000, 687 against 680 sequences: padding the mean rows 1,030.5
    # and 1,020 to 128-row tiles gives 9 against 8 of them; the steps they average (with a 1000-row prompt
    # or without) do not jump
    assert (1020 / 1024) / (1030.5 / 1152) > 1.1
    assert _eff(1020.0, 340.0, 1000.0) / _eff(1030.5, 343.5, 1000.0) == pytest.approx(1.0, abs=0.03)


def test_mixed_steps_mark_their_dense_gemms_and_decode_steps_do_not():
    from cosim.cli.common import build_scenario
    from cosim.graph.build import decode_graph, mixed_step_graph
    from cosim.graph.optable import OpKind, Stage
    from cosim.specs.loader import load_workload

    model = load_workload("llama-3.1-8b")
    sc = build_scenario(phase="generate", batch=64, input_len=1000, output_len=500, chunked_prefill=True)
    mixed = mixed_step_graph(model, sc, 1200)
    # the per-token GEMMs run over decode + prompt tokens (128 a step on average: 64 x 1000 / 500, whole
    # prompts of 1000); the LM head only over the decoding sequences
    gemm = (mixed.kind == OpKind.GEMM) & (mixed.stage != Stage.LM_HEAD)
    assert gemm.any()
    assert (mixed.m_prompt[gemm] == 128.0).all() and (mixed.m_prompt_step[gemm] == 1000.0).all()
    assert (mixed.m_prompt[~gemm] == 0.0).all() and (mixed.m[gemm] == 64.0 + 128.0).all()
    decode = decode_graph(model, sc, 1200)
    assert (decode.m_prompt == 0.0).all() and (decode.m_prompt_step == 0.0).all()


def test_kernel_and_reference_agree_on_averaged_step_gemms():
    rows = [{"name": f"g{m}", "kind": 0, "precision": FP8, "m": m + p, "k": 8192, "n": 8192, "m_prompt": p,
             "m_prompt_step": step, "flops": 2.0 * (m + p) * 8192 * 8192, "bytes_weight": 8192 * 8192,
             "repeat": 126}
            for m, p, step in ((3.0, 0.5, 128.0), (70.0, 12.0, 1000.0), (206.0, 12.875, 128.0),
                               (680.0, 1500.0, 1000.0), (25.0, 250.0, 20000.0))]
    hw = HardwareArrays.from_hardware(load_hardware("b200"), 2)
    hw.tile_m[:] = [128.0, 256.0]
    assert_kernel_matches_reference(hw, OpTable.from_rows(rows), P, footprint_bytes=5e10,
                                    weight_footprint_bytes=4e10)


@pytest.mark.parametrize(("m", "tile"), [(190.0, 64.0), (256.0, 128.0), (100.0, 128.0), (30.0, 64.0),
                                         (1030.5, 64.0), (8192.0, 128.0)])
def test_a_dense_gemm_takes_the_row_tile_that_pads_least(m, tile):
    # 190 rows: 3 x 64 = 192 against 2 x 128 = 256; 100 rows: 128 either way, the larger tile on a tie
    assert A._least_padding_tile.py_func(m, 64.0, 128.0) == tile
    assert reference.least_padding_tile(m, 64.0, 128.0) == tile
