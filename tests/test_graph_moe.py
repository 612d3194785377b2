"""MoE graphs: expected experts touched (closed form vs Monte Carlo), weight traffic, EP conservation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_graph_decoder import named, scen
from test_graph_specs import DEEPSEEK_V3, MIXTRAL_8X7B, load

from cosim.graph import build_graph, decode_graph, prefill_graph
from cosim.graph.moe import expected_experts_touched

BF16 = 2.0


def test_one_token_touches_exactly_k_experts():
    assert expected_experts_touched(8, 2, 1) == pytest.approx(2.0, rel=1e-12)
    assert expected_experts_touched(256, 8, 1) == pytest.approx(8.0, rel=1e-12)


def test_many_tokens_touch_every_expert():
    assert expected_experts_touched(256, 8, 100_000) == pytest.approx(256.0, rel=1e-12)
    assert expected_experts_touched(256, 8, 100_000, experts_on_chip=32) == pytest.approx(32.0, rel=1e-12)


@pytest.mark.parametrize(("E", "k", "T"), [(8, 2, 3), (256, 8, 16), (128, 8, 64), (64, 6, 5)])
def test_expected_experts_matches_monte_carlo(E, k, T):
    """Brute force: each token draws k distinct experts uniformly; count distinct experts per batch."""
    rng = np.random.default_rng(1234)
    trials = 4000
    counts = np.empty(trials)
    for i in range(trials):
        picks = np.argsort(rng.random((T, E)), axis=1)[:, :k]  # k distinct experts per token
        counts[i] = len(np.unique(picks))
    stderr = counts.std() / np.sqrt(trials)
    assert expected_experts_touched(E, k, T) == pytest.approx(counts.mean(), abs=4 * stderr + 1e-9)


@given(E=st.sampled_from([8, 16, 64, 256]), k=st.integers(1, 8), T=st.integers(1, 5000))
@settings(max_examples=60, deadline=None)
def test_expected_experts_bounds(E, k, T):
    k = min(k, E)
    got = expected_experts_touched(E, k, T)
    assert k - 1e-9 <= got <= min(E, T * k) + 1e-9
    assert expected_experts_touched(E, k, T + 1) >= got - 1e-12


def test_mixtral_batch1_decode_reads_k_over_e_of_the_experts():
    model = load(MIXTRAL_8X7B)
    t = decode_graph(model, scen("decode"), 1024)
    expert_weights = 32 * 8 * 3 * 4096 * 14336 * BF16  # L x E x (gate, up, down) x h x I
    assert named(t, "moe.experts", "bytes_weight") == pytest.approx(expert_weights * 2 / 8, rel=1e-12)
    # a large batch touches (almost) all of them
    big = decode_graph(model, scen("decode", batch=256), 1024)
    assert named(big, "moe.experts", "bytes_weight") == pytest.approx(expert_weights, rel=1e-6)


def test_mixtral_prefill_flops_are_2x_active_params():
    """Routed experts run k experts per token: 2 x active params x tokens + attention (matmuls)."""
    model = load(MIXTRAL_8X7B)
    b, s, L, h, H, d, V = 1, 1024, 32, 4096, 32, 128, 32000
    t = prefill_graph(model, scen("prefill", batch=b, input_len=s))
    attn = (h * H * d * 2 + 2 * h * 8 * d)
    layer = attn + 2 * 3 * h * 14336 + h * 8  # attention + 2 experts + router
    expected = 2 * L * layer * b * s + 2 * V * h * b + 4 * L * H * d * b * s * (s + 1) / 2
    gemm_attn = sum(f * r for f, r, k in zip(t.flops, t.repeat, t.kind, strict=True) if k in (0, 1, 2))
    assert gemm_attn == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("tp", "ep", "dp"), [(2, 2, 1), (8, 8, 1), (8, 4, 1), (1, 8, 8), (2, 8, 4)])
@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_ep_conserves_expert_flops(tp, ep, dp, phase):
    """Per chip, routed-expert FLOPs with EP equal those of TP alone for the same tokens per replica."""
    model = load(DEEPSEEK_V3)
    base = build_graph(model, scen(phase, batch=4 * dp, input_len=128, tp=tp, dp=dp))
    with_ep = build_graph(model, scen(phase, batch=4 * dp, input_len=128, tp=tp, dp=dp, ep=ep))
    # the mean chip's work is conserved; the table's own rows are the busiest EP group's (>= the mean)
    assert mean_work(with_ep, "moe.experts") == pytest.approx(named(base, "moe.experts"), rel=1e-12)
    assert named(with_ep, "moe.experts") >= named(base, "moe.experts") * (1 - 1e-12)
    comm = with_ep.select(np.array([n.startswith("moe.ep_") for n in with_ep.name]))
    if ep <= tp:
        # every chip of the TP group holds the replica's tokens: no exchange, the TP all-reduce sums the experts
        assert len(comm) == 0
        allreduce = with_ep.select(np.array([n == "mlp.tp_allreduce" for n in with_ep.name]))
        assert len(allreduce) == 1 and allreduce.comm_group[0] == tp
        return
    assert len(comm) == 2 and (comm.comm_group == ep).all()
    # dispatch: tokens this chip sends x k x hidden x bytes x (ep - 1) / ep
    tokens = 4 * (128 if phase == "prefill" else 1) / tp
    assert comm.comm_bytes[0] == pytest.approx(tokens * 8 * 7168 * BF16 * (ep - 1) / ep, rel=1e-12)


def mean_work(table, prefix: str) -> float:
    """FLOPs per step of the named rows on the mean chip (work_share of the busiest rank's rows)."""
    sel = np.array([n.startswith(prefix) for n in table.name])
    return float(np.sum(table.flops[sel] * table.repeat[sel] * table.work_share[sel]))


def test_one_token_busiest_ep_group_reads_its_own_experts():
    """Batch-1 decode of DeepSeek-V3 (8 of 256 experts) at TP8 x EP4: the busiest of the 4 groups touches
    E[max of the group counts], counts multivariate hypergeometric (256 experts, 64 a group, 8 drawn), summed
    here by brute force over every split of the 8 draws; the rows' work_share gives back the mean, 2 experts."""
    from itertools import product
    from math import comb

    expected_max = sum(
        max(c) * np.prod([comb(64, x) for x in c]) / comb(256, 8)
        for c in product(range(9), repeat=4) if sum(c) == 8)
    model = load(DEEPSEEK_V3)
    t = decode_graph(model, scen("decode", batch=1, tp=8, ep=4), 1024)
    gate_up = t.select(np.array([n == "moe.experts.gate_up_proj" for n in t.name]))
    assert gate_up.groups[0] == pytest.approx(expected_max, rel=1e-9)
    assert gate_up.groups[0] * gate_up.work_share[0] == pytest.approx(2.0, rel=1e-12)
    # one token per touched expert: the busiest group's assignments are its touched experts
    assert gate_up.m[0] == pytest.approx(1.0, rel=1e-12)


@pytest.mark.parametrize(("ep", "lo", "hi"), [(2, 1.26, 1.28), (4, 1.74, 1.76), (8, 2.55, 2.58)])
def test_more_ep_groups_unbalance_a_single_token_more(ep, lo, hi):
    """Busiest over mean touched experts at one token (DeepSeek 8 of 256): 5.08/4, 3.51/2, 2.56/1 (a Monte
    Carlo of 20,000 draws gave 5.063, 3.486, 2.566), so fewer, wider EP groups balance batch-1 decode better."""
    from cosim.graph.expert_load import busiest_group_ratio

    assert lo <= busiest_group_ratio(256, 8, 1, ep) <= hi


def test_busiest_group_ratio_limits():
    from cosim.graph.expert_load import busiest_group_ratio

    assert busiest_group_ratio(128, 1, 1, 8) == pytest.approx(8.0, rel=1e-12)  # one expert touched: all on one group
    assert busiest_group_ratio(256, 8, 5000, 8) == 1.0  # every expert touched
    assert busiest_group_ratio(256, 8, 3, 1) == 1.0  # one group holds them all


@settings(max_examples=40, deadline=None)
@given(st.sampled_from([(8, 2), (16, 1), (128, 4), (128, 8), (256, 8)]), st.sampled_from([2, 4, 8]),
       st.floats(min_value=1.0, max_value=64.0))
def test_busiest_group_never_below_the_mean_nor_above_a_full_group(ek, groups, tokens):
    from cosim.graph.expert_load import busiest_group_ratio

    E, k = ek
    mean = E / groups * (1.0 - (1.0 - k / E) ** tokens)
    r = busiest_group_ratio(E, k, tokens, groups)
    assert r >= 1.0
    assert r * mean <= E / groups + 1e-9


def test_routing_imbalance_scales_the_slowest_ep_rank():
    model = load(DEEPSEEK_V3)
    even = build_graph(model, scen("prefill", batch=8, input_len=256, dp=8, ep=8))
    skew = build_graph(model, scen("prefill", batch=8, input_len=256, dp=8, ep=8, routing_imbalance=1.5))
    assert named(skew, "moe.experts") == pytest.approx(1.5 * named(even, "moe.experts"), rel=1e-12)


@pytest.mark.parametrize(("kw", "field"), [
    ({"ep": 512, "dp": 512, "batch": 512}, "parallelism.ep"),  # more chips than experts
    ({"ep": 3, "dp": 3, "batch": 3}, "parallelism.ep"),        # 256 % 3
    ({"ep": 16, "tp": 8}, "parallelism.ep"),                   # EP needs tp x dp chips
])
def test_bad_expert_parallelism(kw, field):
    from cosim.errors import CosimInputError

    with pytest.raises(CosimInputError) as err:
        build_graph(load(DEEPSEEK_V3), scen("decode", **kw))
    assert err.value.field == field


def test_cli_ep_larger_than_experts_exits_2(tmp_path, capsys):
    import yaml

    from cosim.cli.main import main

    path = tmp_path / "mixtral.yaml"
    path.write_text(yaml.safe_dump(MIXTRAL_8X7B))
    assert main(["graph", "--workload", str(path), "--phase", "decode", "--ep", "16", "--dp", "16",
                 "--batch", "16"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "parallelism.ep" in err and "exceeds the number of experts (8)" in err


def test_token_shuffle_moves_k_rows_per_token_each_way():
    """Mixtral BF16 prefill of T tokens: the permute reads and writes T x k x h elements, the combine
    reads T x k x h and writes T x h (hand count: 32 layers, k = 2, h = 4096, 2 bytes each)."""
    model = load(MIXTRAL_8X7B)
    T, L, k, h = 512, 32, 2, 4096
    t = prefill_graph(model, scen("prefill", batch=1, input_len=T))
    permute = named(t, "moe.permute", "bytes_act_in") + named(t, "moe.permute", "bytes_act_out")
    combine = named(t, "moe.combine", "bytes_act_in") + named(t, "moe.combine", "bytes_act_out")
    assert permute == pytest.approx(L * T * k * h * (BF16 + BF16), rel=1e-12)
    assert combine == pytest.approx(L * (T * k * h + T * h) * BF16, rel=1e-12)
    # no weights, and the combine's FLOPs are a scale and an add per element
    assert named(t, "moe.permute", "bytes_weight") == 0.0
    assert named(t, "moe.combine", "flops") == pytest.approx(L * T * k * h * 2.0, rel=1e-12)


def test_batch1_decode_ep_groups_cost_time_not_bytes():
    """DeepSeek-V3 batch-1 decode on 8 B200 at TP8: whatever the EP split, the mean chip reads one expert's
    worth of weights a layer (8 experts x 1/8 at EP1; 8/ep experts x ep/8 at EP ep), so the energy counters
    agree; the step waits for the busiest group, so TPOT rises with ep (the blog's EP8 -> EP4 -> EP2 moves)."""
    from cosim.engines.estimate import estimate
    from cosim.specs.scenario import Scenario

    runs = []
    for ep in (1, 2, 4, 8):
        sc = Scenario.model_validate({"phase": "decode", "batch": 1, "input_len": 1024, "output_len": 1,
                                      "weight_precision": "fp4", "parallelism": {"tp": 8, "ep": ep}})
        runs.append(estimate("b200", "deepseek-v3", sc, chips=8))
    hbm = [r.bytes_main_memory for r in runs]
    assert max(hbm) / min(hbm) - 1 < 0.02
    tpot = [r.tpot_s for r in runs]
    assert all(b > a for a, b in zip(tpot, tpot[1:], strict=False))
