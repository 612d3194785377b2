"""Unified sequence parallelism (Ulysses x ring) for video DiTs: the exchange's bytes against a hand-derived
closed form, the attention split, the layout checks, and the link fraction the exchange runs at."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_graph_decoder import named

from cosim.engines.efficiency import params_for
from cosim.engines.estimate import estimate
from cosim.errors import CosimInputError
from cosim.graph import video_graph
from cosim.graph.sharding import resolve
from cosim.specs.loader import load_hardware, load_workload
from cosim.specs.scenario import Parallelism, Scenario

# Wan2.1-T2V-1.3B at 480x832, 81 frames: 21 latent frames x 30 x 52 patches; hidden 1536, 12 heads of 128
TOKENS, HIDDEN, HEADS, BF16 = 21 * 30 * 52, 1536, 12, 2
WAN_13B = "wan2.1-t2v-1.3b"


def scenario(sp: int = 1, sp_kind: str = "ulysses", sp_ring: int | None = None, **kw) -> Scenario:
    par = Parallelism(sp=sp, sp_kind=sp_kind, sp_ring=sp_ring)
    return Scenario(phase="video", parallelism=par, frames=81, height=480, width=832, steps=50, **kw)


def exchange_bytes(sp: int, ring: int) -> tuple[float, float]:
    """(all-to-all bytes, ring K/V bytes) of one self-attention block call per rank, by hand: each rank holds
    S / sp tokens of each of Q, K, V and O; the Ulysses ranks (sp / ring) swap all but their own share of the
    four; each ring rank then sends its K and V chunk (S / ring tokens x HIDDEN / Ulysses) on ring - 1 hops.
    Classifier-free guidance runs two sequences (prompt and negative prompt) per denoising step."""
    uly, sequences = sp // ring, 2
    share = sequences * TOKENS / sp * HIDDEN * BF16
    a2a = 4 * share * (uly - 1) / uly
    kv = 2 * sequences * (TOKENS / ring) * (HIDDEN / uly) * BF16 * (ring - 1)
    return a2a, kv


@pytest.mark.parametrize(("sp", "kind", "ring"), [(8, "ulysses", 2), (8, "ulysses", 4), (8, "ring", None),
                                                  (4, "ulysses", None), (4, "ulysses", 2), (2, "ring", None)])
def test_exchange_bytes_match_the_hand_closed_form(sp, kind, ring):
    graph = video_graph(load_workload(WAN_13B), scenario(sp, kind, ring))
    ring_degree = sp if kind == "ring" else ring or 1
    a2a, kv = exchange_bytes(sp, ring_degree)
    calls = float(np.max(graph.repeat[np.array([n == "block.self.attention" for n in graph.name])]))
    assert named(graph, "block.self.sp_a2a", "comm_bytes") / calls == pytest.approx(a2a, rel=1e-3)
    assert named(graph, "block.self.ring_kv", "comm_bytes") / calls == pytest.approx(kv, rel=1e-3)


def test_a_hybrid_splits_heads_over_ulysses_and_queries_over_the_ring():
    graph = video_graph(load_workload(WAN_13B), scenario(8, "ulysses", 2))
    core = graph.select(np.array([n == "block.self.attention" for n in graph.name]))
    assert core.heads[0] == HEADS // 4 and core.q_len[0] == TOKENS // 2 and core.kv_len[0] == TOKENS
    one = video_graph(load_workload(WAN_13B), scenario())
    assert named(graph, "block.self.attention") * 8 == pytest.approx(named(one, "block.self.attention"), rel=1e-9)


def test_layout_checks_name_the_field():
    wl = load_workload(WAN_13B)
    with pytest.raises(ValueError, match="must divide sp"):
        Parallelism(sp=8, sp_ring=3)
    with pytest.raises(ValueError, match="needs sp_kind ulysses"):
        Parallelism(sp=8, sp_kind="ring", sp_ring=2)
    with pytest.raises(CosimInputError, match="does not divide dit.num_heads=12"):  # Ulysses 8 over 12 heads
        resolve(wl, scenario(8))
    assert resolve(wl, scenario(8, "ulysses", 2)).sp_ulysses == 4
    with pytest.raises(CosimInputError, match="sp / sp_ring = 16 / 2 = 8"):  # Ulysses 8 over 12 heads
        resolve(wl, scenario(16, "ulysses", 2))
    lm = Scenario(phase="prefill", parallelism=Parallelism(sp=4, sp_ring=2))
    with pytest.raises(CosimInputError, match="video DiTs only"):
        resolve(load_workload("llama-3.1-8b"), lm)


def test_more_of_sp_on_the_ring_is_never_faster_at_a_fixed_gpu_count():
    """The exchange's bytes grow as ranks move from Ulysses to the ring (294, 419, 671 and 1,174 MB per rank
    per block call of Wan2.1-14B at 8 ranks, guidance's two sequences), and nothing else in the step changes:
    8x1 <= 4x2 <= 2x4 <= 1x8."""
    times = [estimate("h100-sxm", "wan2.1-t2v-14b", scenario(8, kind, ring)).seconds_per_video
             for kind, ring in (("ulysses", None), ("ulysses", 2), ("ulysses", 4), ("ring", None))]
    assert times == sorted(times) and times[-1] > times[0]


def test_the_sp_link_fraction_prices_the_exchange_only():
    hw = load_hardware("h100-sxm")
    base = params_for(hw)
    assert base.sp_link_fraction == pytest.approx(0.17)  # cosim/data/efficiency/nvidia-gpu.yaml
    assert params_for(load_hardware("a100-sxm-80gb")).sp_link_fraction is None  # no measurement: link_fraction
    sc = scenario(8, "ulysses", 2)
    slow = estimate(hw, WAN_13B, sc, params=base).breakdown
    fast = estimate(hw, WAN_13B, sc, params=base.with_overrides(sp_link_fraction=2 * base.sp_link_fraction)).breakdown

    def seconds(frame, prefix):
        return float(frame.loc[frame["name"].str.startswith(prefix), "time_s"].sum())

    # bandwidth-bound at these sizes: twice the fraction, about half the time (latency terms aside)
    assert seconds(fast, "block.self.ring_kv") == pytest.approx(seconds(slow, "block.self.ring_kv") / 2, rel=0.02)
    assert seconds(fast, "block.self.sp_a2a") == pytest.approx(seconds(slow, "block.self.sp_a2a") / 2, rel=0.02)
    assert seconds(fast, "block.self.attention") == seconds(slow, "block.self.attention")


@settings(max_examples=15, deadline=None)
@given(low=st.floats(0.05, 0.5), gain=st.floats(1.0, 4.0))
def test_a_faster_exchange_never_slows_a_video(low, gain):
    hw = load_hardware("b200")
    base = params_for(hw)
    sc = scenario(8, "ulysses", 4)
    slow = estimate(hw, WAN_13B, sc, params=base.with_overrides(sp_link_fraction=low)).seconds_per_video
    fast = estimate(hw, WAN_13B, sc, params=base.with_overrides(sp_link_fraction=min(1.0, low * gain)))
    assert fast.seconds_per_video <= slow * (1 + 1e-12)


def test_cli_takes_the_hybrid_and_rejects_a_bad_one(capsys):
    from cosim.cli.main import main

    assert main(["estimate", "--hardware", "h100-sxm", "--workload", WAN_13B, "--phase", "video", "--sp", "8",
                 "--sp-ring", "2", "--format", "json"]) == 0
    assert main(["estimate", "--hardware", "h100-sxm", "--workload", WAN_13B, "--phase", "video", "--sp", "8",
                 "--sp-ring", "3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sp_ring=3 must divide sp=8" in err[0]


def test_the_video_page_lays_out_usp_as_xdit_users_do():
    from cosim.app.compute import video_parallelism

    assert video_parallelism("usp", 8, 12) == {"sp": 8, "sp_ring": 2}  # Ulysses 4 (divides 12) x ring 2
    assert video_parallelism("usp", 8, 40) == {"sp": 8}  # 40 heads: all Ulysses
    assert video_parallelism("ring", 4, 12) == {"sp": 4, "sp_kind": "ring"}
    assert video_parallelism("tp", 2, 12) == {"tp": 2}
