"""A fully connected fabric gives each peer its own links: a group smaller than the domain reaches only its peers.

Hand calculations from the specs' own figures (MI300X: 7 xGMI links of 64 GB/s per direction, 448 GB/s per chip;
Gaudi 3: 21 scale-up RoCE ports, 525 GB/s per chip, 3 ports per peer), through `network.collective`'s plain-Python
original; the engine and the Hypothesis property check that the fabric's split reaches the estimates.
"""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from cosim.engines.network import ALL_GATHER, ALL_REDUCE, TOPO_FULL, TOPO_SWITCH, collective

coll = collective.py_func
G = 1e9


def _full(kind, nbytes, p, bw, alpha=0.0, domain=8.0):
    return coll(kind, nbytes, p, bw, alpha, domain, TOPO_FULL, 0.0, 1.0, 1.0, 1.0, 50 * G, 0.0)[0]


def test_two_chips_of_an_mi300x_node_all_reduce_over_one_link():
    # 64 MB all-reduced by 2 of 8 chips: 2 x (1/2) x 64 MB over the pair's one 64 GB/s link = 1 ms
    s = 64e6
    assert math.isclose(_full(ALL_REDUCE, s, 2.0, 448 * G), s / (64 * G), rel_tol=1e-12)


def test_the_whole_domain_keeps_the_chip_bandwidth():
    # 8 of 8: direct all-reduce 2 x 7/8 x S / 448 GB/s, as on a switch
    s = 64e6
    want = 2 * 7 / 8 * s / (448 * G)
    assert math.isclose(_full(ALL_REDUCE, s, 8.0, 448 * G), want, rel_tol=1e-12)
    switch = coll(ALL_REDUCE, s, 8.0, 448 * G, 0.0, 8.0, TOPO_SWITCH, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0)[0]
    assert math.isclose(_full(ALL_REDUCE, s, 8.0, 448 * G), switch, rel_tol=1e-12)


def test_four_gaudi3_cards_use_nine_of_their_21_ports():
    # all-gather of 4 shards of 10 MB on 4 of 8 cards: (3/4) x 40 MB over 3/7 x 525 GB/s (9 of 21 ports)
    want = 0.75 * 40e6 / (525 * G * 3 / 7)
    assert math.isclose(_full(ALL_GATHER, 10e6, 4.0, 525 * G), want, rel_tol=1e-12)


@settings(max_examples=60, deadline=None)
@given(p=st.integers(2, 8), nbytes=st.floats(1e3, 1e9))
def test_a_smaller_group_is_never_faster_per_byte_than_the_whole_domain(p, nbytes):
    # per chip, a group of p moves (p - 1)/p of the buffer over (p - 1)/7 of the bandwidth: (7/p) S/B >= (7/8) S/B
    t = _full(ALL_REDUCE, nbytes, float(p), 448 * G)
    assert t >= _full(ALL_REDUCE, nbytes, 8.0, 448 * G) * (1 - 1e-12)
    assert math.isclose(t, 2 * 7 / p * nbytes / (448 * G), rel_tol=1e-9)


def test_tp2_on_an_mi300x_node_prices_the_all_reduce_at_one_link():
    from cosim.engines.estimate import estimate
    from cosim.specs.scenario import Parallelism, Scenario

    sc = Scenario(phase="decode", batch=64, input_len=1024, output_len=128, weight_precision="fp8",
                  parallelism=Parallelism(tp=2))
    res = estimate("mi300x", "llama-2-70b", sc, chips=2)
    net = res.breakdown
    rows = net[net["name"].str.endswith("tp_allreduce")]
    assert len(rows)
    # a decode all-reduce of 64 x 8192 BF16 values = 1 MiB: 2 x (1/2) x 1 MiB over one 64 GB/s link x the link
    # fraction, plus two synchronisations; at least the bandwidth term of one link at its full datasheet rate
    per_call = float((rows["time_s"] / rows["repeat"]).max())
    assert per_call >= 64 * 8192 * 2 / (64 * G)


def test_an_mi300x_all_reduce_meets_amds_graph_launched_rccl_times():
    """AMD's rccl-tests on 8x MI300X with HIP graphs (ROCm blog, March 2025; the spec's source rccl_blog_mi300x):
    8 KB in 7.64 us, 64 KB in 9.14 us, 1 GB in 5,961.9 us. The spec's latency (two synchronisations of 3.9 us) and
    its 448 GB/s at the engine's default link fraction put the 8 KB message within 5% (+3%), 64 KB at -11%, the
    largest within 15%
    (cosim slightly fast, as on every fabric where the mid-size pipelining is not modelled)."""
    from cosim.engines.efficiency import params_for
    from cosim.specs.loader import load_hardware

    hw = load_hardware("mi300x")
    up = hw.interconnect.scale_up
    bw = up.bandwidth_bytes_per_s.value * params_for(hw, calibrated=False).link_fraction
    alpha = up.latency_s.value
    assert alpha == 3.9e-6
    for size, measured_us, rel in ((8192, 7.64, 0.05), (65536, 9.14, 0.16), (1073741824, 5961.9, 0.15)):
        t = _full(ALL_REDUCE, float(size), 8.0, bw, alpha)
        assert math.isclose(t * 1e6, measured_us, rel_tol=rel), (size, t * 1e6)
