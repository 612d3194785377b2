"""Interleaved 1F1B pipelines (`--vpp`): bubble, P2P sends, in-flight activations, bad input.

Closed forms from Narayanan et al., "Efficient Large-Scale Language Model Training on GPU Clusters
Using Megatron-LM" (SC 2021), Sec. 2.2: with m micro-batches over p stages, 1F1B idles (p - 1) micro-batch
times per step; with v model chunks per chip the idle time is (p - 1) / v and each micro-batch crosses v
times as many stage boundaries. The first chip's warm-up under the interleaved schedule is
2 (p - 1) + (v - 1) p chunk passes (Megatron-LM's interleaved schedule) before its first backward.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cosim.cli.common import build_scenario
from cosim.cli.main import main
from cosim.engines.hwarrays import HardwareArrays
from cosim.engines.memory import footprint, pipeline_bubble, pipeline_in_flight
from cosim.engines.vectorized import evaluate_points
from cosim.graph.build import pipeline_stages
from cosim.graph.optable import CommKind, OpKind
from cosim.specs.loader import load_hardware, load_workload

WL = load_workload("llama-3.1-8b")
H, L = 4096, 32  # Llama-3.1-8B hidden size and layers


def _train(**kw):
    base = {"phase": "train", "batch": 32, "input_len": 2048, "tp": 2, "pp": 4, "dp": 4}
    base.update(kw)
    return build_scenario(**base)


def test_bubble_closed_forms():
    # Llama 3 405B's pretraining layout: 16 stages, 16 micro-batches per replica
    assert pipeline_bubble(16, 1, 16) == pytest.approx(31 / 16, rel=1e-15)
    assert pipeline_bubble(16, 4, 16) == pytest.approx(1 + 15 / 64, rel=1e-15)
    assert pipeline_bubble(1, 1, 7) == 1.0


@settings(max_examples=200, deadline=None)
@given(pp=st.integers(2, 64), vpp=st.integers(1, 16), m=st.integers(1, 512))
def test_more_chunks_never_lengthen_the_bubble(pp, vpp, m):
    b = pipeline_bubble(pp, vpp, m)
    assert b == pytest.approx(1 + (pp - 1) / (vpp * m), rel=1e-12)
    assert 1.0 < b <= pipeline_bubble(pp, 1, m)
    assert pipeline_bubble(pp, vpp + 1, m) < b


@pytest.mark.parametrize(("pp", "vpp", "m"), [(8, 2, 64), (4, 4, 32), (16, 4, 16), (8, 2, 5), (4, 3, 100)])
def test_in_flight_counts_the_first_chips_warm_up(pp, vpp, m):
    warm_up = 2 * (pp - 1) + (vpp - 1) * pp  # chunk passes before the first backward
    chunk_passes = min(warm_up + 1, m * vpp)  # a replica has m x vpp chunk passes in all
    assert pipeline_in_flight(pp, vpp, m) == pytest.approx(chunk_passes / vpp, rel=1e-12)
    assert pipeline_in_flight(pp, 1, m) == min(pp, m)


def test_interleaving_divides_the_bubble_in_the_engine():
    hw = HardwareArrays.from_hardware(load_hardware("h100-sxm"))
    sc = _train(vpp=2, microbatch=1)  # 8 micro-batches per replica
    many = evaluate_points(hw, WL, sc)["latency_s"][0]
    one = evaluate_points(hw, WL, sc.model_copy(update={
        "parallelism": sc.parallelism.model_copy(update={"microbatch": 8})}))["latency_s"][0]
    # the same graph either way: (1 + 3 / 2) / 1 against (8 + 3 / 2) / 8
    assert one / many == pytest.approx(2.5 / (9.5 / 8.0), rel=1e-12)


def test_each_chip_sends_once_per_chunk():
    plain, inter = (pipeline_stages(WL, _train(vpp=v)) for v in (1, 2))

    def p2p(table):
        rows = (table.kind == int(OpKind.COMM)) & (table.comm_kind == int(CommKind.P2P))
        return float((table.comm_bytes[rows] * table.repeat[rows]).sum())

    tokens = 32 // 4 * 2048  # sequences per replica x sequence length: the table covers the local batch
    for stage in range(3):  # stages 0-2 send to the next one: once per chunk
        assert p2p(plain[stage]) == pytest.approx(tokens * H * 2, rel=1e-12)
        assert p2p(inter[stage]) == pytest.approx(2 * tokens * H * 2, rel=1e-12)
    # the last chip sends its first chunk's output back to the first chip: vpp - 1 sends
    assert p2p(plain[3]) == 0.0
    assert p2p(inter[3]) == pytest.approx(tokens * H * 2, rel=1e-12)


def test_interleaving_holds_more_activations():
    # 4 stages, 2 chunks, 8 micro-batches: 4 + 3 / 2 in flight instead of 4 (selective recompute: 34 s h / tp)
    per_microbatch_stage = 34 * 2048 * H / 2 * (L / 4)
    assert footprint(WL, _train(vpp=1)).activations == pytest.approx(per_microbatch_stage * 4, rel=1e-12)
    assert footprint(WL, _train(vpp=2)).activations == pytest.approx(per_microbatch_stage * 5.5, rel=1e-12)


@pytest.mark.parametrize(("args", "needle"), [
    (["--workload", "llama-3.1-8b", "--phase", "train", "--vpp", "2"], "needs pipeline stages"),
    (["--workload", "llama-3.1-8b", "--phase", "decode", "--pp", "2", "--vpp", "2"], "interleaves a training pipeline"),
    (["--workload", "wan2.1-t2v-14b", "--phase", "video", "--pp", "2", "--vpp", "2"], "interleaves a training"),
    (["--workload", "llama-3.1-8b", "--phase", "train", "--pp", "16", "--vpp", "4", "--batch", "16"],
     "exceed the number of layers (32)"),
    (["--workload", "llama-3.1-8b", "--phase", "train", "--pp", "2", "--vpp", "0"], "--vpp must be a positive integer"),
])
def test_bad_interleaving_is_one_readable_line(args, needle, capsys):
    assert main(["estimate", "--hardware", "h100-sxm", *args]) == 2
    out = capsys.readouterr()
    text = out.err + out.out
    assert needle in text and "Traceback" not in text


def test_the_embedding_and_the_loss_may_take_a_chunk_each():
    """Megatron-LM can count the embedding and the loss as pipeline layers: NVIDIA's Llama 3.1 405B recipes
    run PP16 x VP8 = 128 chunks over 126 layers; a 129th chunk has nothing to hold."""
    from cosim.graph.sharding import check_interleaving

    wl = load_workload("llama-3.1-405b")
    ok = build_scenario(phase="train", batch=64, input_len=2048, tp=4, pp=16, dp=1, vpp=8, microbatch=1)
    check_interleaving(wl.num_layers, ok)  # 128 = 126 + 2
    too_many = build_scenario(phase="train", batch=64, input_len=2048, tp=1, pp=43, dp=1, vpp=3, microbatch=1)
    with pytest.raises(Exception, match=r"exceed the number of layers \(126\) plus the embedding and the loss"):
        check_interleaving(wl.num_layers, too_many)  # 129 chunks
