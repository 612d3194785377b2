"""A closed-form roofline over HardwareArrays: the stand-in evaluator the explore tests run against.

It is independent of cosim's engines, so sweep/pareto/optimise tests check explore's own logic with
results a reader can recompute by hand. The tests below pin it to hand calculations.
"""

import numpy as np
import pytest

from cosim.engines.hwarrays import HardwareArrays
from cosim.specs.hardware import BYTES_PER_ELEMENT, PRECISIONS
from cosim.specs.loader import load_hardware, load_workload
from cosim.specs.scenario import Parallelism, Scenario
from cosim.workloads.params import kv_cache_bytes_per_token, params_active, params_total


def roofline(hwa, workload, scenario, *, chips=None):
    """Decode/prefill roofline: time = max(bytes / HBM bandwidth, FLOPs / peak), per tensor-parallel group."""
    par = scenario.parallelism
    shard = par.tp * par.pp
    wbytes = params_total(workload) * BYTES_PER_ELEMENT[scenario.weight_precision]
    kv_tok = kv_cache_bytes_per_token(workload, BYTES_PER_ELEMENT[scenario.kv_precision])
    kv = scenario.batch * (scenario.input_len + scenario.output_len) * kv_tok
    peak = hwa.peak_flops_per_s[:, PRECISIONS.index(scenario.activation_precision)]
    bw = hwa.mem_bandwidth_bytes_per_s
    flops_tok = 2.0 * params_active(workload)
    t_mem = (wbytes + kv) / (par.tp * bw)
    t_cmp = flops_tok * scenario.batch / (par.tp * peak)
    tpot = np.maximum(t_mem, t_cmp)
    ttft = np.maximum(wbytes / (par.tp * bw), flops_tok * scenario.batch * scenario.input_len / (par.tp * peak))
    mem = (wbytes + kv) / shard
    return {
        "latency_s": ttft + scenario.output_len * tpot,
        "throughput_tokens_per_s": scenario.batch * par.dp / tpot,
        "tpot_s": tpot,
        "ttft_s": ttft,
        "memory_bytes_per_chip": np.full(len(hwa), mem),
        "feasible": mem <= hwa.mem_capacity_bytes,
        "bottleneck": np.where(t_mem >= t_cmp, "memory", "compute"),
        "mfu": t_cmp / tpot,
    }


def test_roofline_matches_hand_calculation_for_llama8b_on_h100():
    hw = load_hardware("h100-sxm")
    wl = load_workload("llama-3.1-8b")
    sc = Scenario(phase="decode", batch=1, input_len=1000, output_len=24, parallelism=Parallelism(tp=1))
    out = roofline(HardwareArrays.from_hardware(hw), wl, sc)
    # 8.03e9 params x 2 bytes + 1024 tokens x (2 x 32 layers x 8 heads x 128 x 2 bytes) over 3.35 TB/s
    params = params_total(wl)
    assert params == pytest.approx(8.03e9, rel=0.001)
    expected = (params * 2 + 1024 * 131072) / 3.35e12
    assert out["tpot_s"][0] == pytest.approx(expected, rel=1e-9)
    assert out["bottleneck"][0] == "memory"
    assert bool(out["feasible"][0])
