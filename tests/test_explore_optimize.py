"""Constrained design search (differential evolution) and mapping tuning, against known optima."""

import numpy as np
import pytest
from test_explore_roofline import roofline

from cosim.engines.hwarrays import HardwareArrays
from cosim.errors import CosimInputError
from cosim.explore.mapping import best_mapping
from cosim.explore.optimize import run_optimize
from cosim.explore.spec import sweep_from_dict
from cosim.specs.loader import load_hardware, load_workload
from cosim.specs.scenario import Parallelism, Scenario

BASE = {
    "hardware": "h100-sxm", "workloads": ["llama-3.1-8b"],
    "scenarios": [{"phase": "decode", "batch": 16, "input_len": 1024, "precision": "fp8"}],
    "parameters": [
        {"path": "memory.hbm.bandwidth_bytes_per_s", "range": {"low": "1 TB/s", "high": "8 TB/s"}},
        {"path": "cost.cloud_price_usd_per_hour", "range": {"low": 2, "high": 12}},
    ],
    "sampling": {"method": "sobol", "points": 16, "seed": 4},
}


def test_unconstrained_optimum_is_the_corner():
    # $/M tokens falls with bandwidth (memory-bound decode) and with price: best at 8 TB/s, $2/h
    spec = sweep_from_dict({**BASE, "objectives": ["usd_per_million_tokens:min"]})
    r = run_optimize(spec, evaluator=roofline, maxiter=40, popsize=10)
    assert r["feasible"]
    assert r["parameters"]["memory.hbm.bandwidth_bytes_per_s"] == pytest.approx(8e12, rel=0.01)
    assert r["parameters"]["cost.cloud_price_usd_per_hour"] == pytest.approx(2.0, rel=0.01)


def test_binding_constraint_and_reproducibility():
    spec = sweep_from_dict({**BASE, "objectives": ["throughput_tokens_per_s:max"],
                            "constraints": ["memory.hbm.bandwidth_bytes_per_s <= 5 TB/s"]})
    a = run_optimize(spec, evaluator=roofline, maxiter=40, popsize=10, seed=11)
    b = run_optimize(spec, evaluator=roofline, maxiter=40, popsize=10, seed=11)
    assert a["parameters"] == b["parameters"]
    bw = a["parameters"]["memory.hbm.bandwidth_bytes_per_s"]
    assert bw <= 5e12 and bw == pytest.approx(5e12, rel=0.01)


def test_infeasible_box_is_a_result_not_an_error():
    spec = sweep_from_dict({**BASE, "objectives": ["throughput_tokens_per_s:max"], "constraints": ["tpot_s <= 1e-9"]})
    r = run_optimize(spec, evaluator=roofline, maxiter=5, popsize=5)
    assert r["feasible"] is False and "constraint" in r["reason"]


def test_optimize_needs_an_objective():
    with pytest.raises(CosimInputError, match="objective"):
        run_optimize(sweep_from_dict(BASE), evaluator=roofline)


def test_best_mapping_matches_brute_force():
    hw, wl = load_hardware("h100-sxm"), load_workload("llama-3.1-8b")
    sc = Scenario(phase="decode", batch=1, input_len=2048, output_len=128)
    slo = {"tpot_s": 0.004}
    cands = {"tp": [1, 2, 4, 8], "pp": [1], "batch": [1, 8, 32, 128], "precision": ["bf16", "fp8"]}
    r = best_mapping(hw, wl, sc, slo, candidates=cands, evaluator=roofline)
    hwa = HardwareArrays.from_hardware(hw)
    best = -np.inf
    for tp in cands["tp"]:
        for batch in cands["batch"]:
            for p in cands["precision"]:
                s = sc.model_copy(update={"batch": batch, "parallelism": Parallelism(tp=tp), "weight_precision": p,
                                          "activation_precision": p, "kv_precision": p})
                out = roofline(hwa, wl, s)
                if out["feasible"][0] and out["tpot_s"][0] <= 0.004:
                    best = max(best, out["throughput_tokens_per_s"][0] / tp)
    assert r["feasible"] and r["objective"]["value"] == pytest.approx(best)
    assert r["metrics"]["tpot_s"] <= 0.004


def test_best_mapping_reports_the_tightest_slo():
    sc = Scenario(phase="decode", batch=1, input_len=2048)
    r = best_mapping("h100-sxm", "llama-3.1-8b", sc, ["tpot_s <= 1e-7"], evaluator=roofline,
                     candidates={"tp": [1, 2], "pp": [1], "batch": [1, 4], "precision": ["bf16"]})
    assert r["feasible"] is False and "tpot_s <= 1e-07" in r["reason"]
