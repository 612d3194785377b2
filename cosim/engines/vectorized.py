"""Sweep entry point: evaluate N hardware design points against one workload and scenario in one call.

`evaluate_points(hw_arrays, workload, scenario)` builds the op graph once, then runs the Numba kernel
(`cosim.engines.analytical.evaluate_kernel`, `prange` over points) and returns columns, not objects.
The single-point `cosim.engines.estimate.estimate` goes through the same function with N = 1.
Numba compiles on the first call (cached on disk); `warmup()` triggers it ahead of time.
"""

from __future__ import annotations

import numpy as np

from cosim.engines.analytical import BOTTLENECKS
from cosim.engines.efficiency import EngineParams, engine_params
from cosim.engines.hwarrays import HardwareArrays
from cosim.errors import CosimInputError
from cosim.specs.scenario import Scenario


def replicas_for(scenario: Scenario, chips: int | None) -> int:
    """Copies of the mapping that `chips` holds (1 when chips is None); bad counts are input errors."""
    per = scenario.parallelism.chips
    if chips is None:
        return 1
    if chips <= 0:
        raise CosimInputError(f"--chips must be a positive integer, got {chips}")
    if chips % per:
        raise CosimInputError(
            f"--chips {chips} is not a multiple of the chips one mapping uses (tp x pp x sp x dp = {per})")
    return chips // per


def evaluate_points(hw_arrays: HardwareArrays, workload, scenario: Scenario, *, chips: int | None = None,
                    params: EngineParams | None = None, family: str = "nvidia-gpu",
                    tables: dict | None = None, override=None, hardware=None) -> dict[str, np.ndarray]:
    """Columns for every design point: latency_s, throughput_tokens_per_s, ttft_s, tpot_s,
    seconds_per_video, memory_bytes_per_chip, feasible, bottleneck (code into BOTTLENECKS), mfu, mbu,
    plus the energy counters (flops, bytes_main_memory, bytes_onchip, comm_bytes_scale_up/out,
    step_time_s, tokens_per_step). NaN where a column does not apply to the phase.

    Efficiency parameters: `params` if given, else those of the base `hardware` spec (its family and
    calibrated generation), else the first-principles defaults of `family`.
    """
    from cosim.engines.memory import footprint
    from cosim.engines.phases import run_phase
    from cosim.specs.loader import load_workload

    workload = load_workload(workload)
    if params is None:
        if hardware is not None:
            from cosim.engines.efficiency import params_for
            from cosim.specs.loader import load_hardware

            params = params_for(load_hardware(hardware))
        else:
            params = engine_params(family)
    replicas = replicas_for(scenario, chips)
    out = run_phase(hw_arrays, workload, scenario, params, replicas=replicas, tables=tables, override=override)
    out["memory_bytes_per_chip"] = np.full(len(hw_arrays), footprint(workload, scenario).total)
    out["chips"] = np.full(len(hw_arrays), float(scenario.parallelism.chips * replicas))
    return out


def bottleneck_names(codes: np.ndarray) -> list[str]:
    return [BOTTLENECKS[int(c)] for c in codes]


def warmup() -> None:
    """Compile (or load from cache) the kernels on a tiny synthetic table, so the first sweep is fast."""
    from cosim.engines import analytical as A
    from cosim.graph.optable import OpTable

    table = OpTable.from_rows([
        {"name": "g", "kind": 0, "precision": 2, "m": 8, "k": 64, "n": 64, "flops": 2 * 8 * 64 * 64,
         "bytes_weight": 8192, "bytes_act_in": 1024, "bytes_act_out": 1024},
        {"name": "a", "kind": 2, "precision": 2, "q_len": 1, "heads": 8, "kv_heads": 1, "flops": 1e6,
         "bytes_kv_read": 1e5},
        {"name": "c", "kind": 5, "comm_kind": 1, "comm_group": 2, "comm_bytes": 1024},
    ])
    params = engine_params("nvidia-gpu")
    hw = _tiny_hw()
    opf, opi = A.pack_ops(table, params)
    prm = A.pack_params(params, footprint_bytes=0.0, weight_footprint_bytes=0.0)
    A.run_points(hw, opf, opi, prm, params)
    A.run_ops(hw, opf, opi, prm, params)


def _tiny_hw() -> HardwareArrays:
    from dataclasses import fields

    from cosim.specs.hardware import PRECISIONS

    cols = {}
    for f in fields(HardwareArrays):
        cols[f.name] = np.ones((1, len(PRECISIONS))) * 1e12 if f.name == "peak_flops_per_s" else np.ones(1)
    return HardwareArrays(**cols)
