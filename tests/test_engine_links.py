"""Achievable link-bandwidth fraction: collectives slow down exactly as the bandwidth term predicts."""

import numpy as np
from kernel_check import assert_kernel_matches_reference

from cosim.cli.common import build_scenario
from cosim.engines import analytical as A
from cosim.engines.efficiency import engine_params
from cosim.engines.hwarrays import HardwareArrays
from cosim.graph.build import decode_graph
from cosim.graph.optable import CommKind, OpKind
from cosim.specs.loader import load_hardware, load_workload

H100 = load_hardware("h100-sxm")
P = engine_params("nvidia-gpu")
TABLE = decode_graph(load_workload("llama-3.1-70b"), build_scenario(phase="decode", batch=256, tp=8), 2048)


def _ops(params):
    opf, opi = A.pack_ops(TABLE, params)
    prm = A.pack_params(params, footprint_bytes=1e10, weight_footprint_bytes=1e12)
    return A.run_ops(HardwareArrays.from_hardware(H100), opf, opi, prm, params)


def test_halving_the_link_fraction_doubles_the_bandwidth_term():
    comm = TABLE.kind == int(OpKind.COMM)
    allreduce = comm & (TABLE.comm_kind == int(CommKind.ALL_REDUCE))
    full, half = _ops(P.with_overrides(link_fraction=0.8)), _ops(P.with_overrides(link_fraction=0.4))
    # in-switch all-reduce of S bytes on NVSwitch: S/B + 2a (cosim/engines/network.py); halving B doubles S/B
    lat = 2 * H100.interconnect.scale_up.latency_s.value
    t_full, t_half = full["time_s"][allreduce], half["time_s"][allreduce]
    assert allreduce.sum() >= 2
    np.testing.assert_allclose(t_half - lat, 2 * (t_full - lat), rtol=1e-9)
    assert np.all(half["time_s"][comm] > full["time_s"][comm])  # every collective slows down
    assert np.all(half["time_s"][~comm] == full["time_s"][~comm])


def test_kernel_matches_reference_with_a_link_fraction():
    params = P.with_overrides(link_fraction=0.37)
    hw = HardwareArrays.from_hardware(H100, 3)
    fast = assert_kernel_matches_reference(hw, TABLE, params, footprint_bytes=1e10, weight_footprint_bytes=1e12)
    assert fast["network_s"][0] > 0
