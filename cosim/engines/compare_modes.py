"""Per-op analytical vs cycle-engine time, and why they differ (for `cosim estimate --mode cycle`)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def analytical_vs_cycle(hardware, workload, scenario, *, chips: int | None = None) -> pd.DataFrame:
    """One row per GEMM/attention op of the main graph: both engines' time (x repeat), their ratio, and the
    cycle engine's folds/waves, utilisation and reason for a shape running below peak.

    Both sides are first-principles (no calibration), so the ratio shows what the fold/wave model sees
    that the roofline's efficiency tables do not."""
    from cosim.engines.cycle import explain
    from cosim.engines.efficiency import params_for
    from cosim.engines.estimate import estimate
    from cosim.graph.build import build_graph
    from cosim.specs.loader import load_hardware, load_workload

    hw, wl = load_hardware(hardware), load_workload(workload)
    params = params_for(hw, calibrated=False)
    ana = estimate(hw, wl, scenario, chips=chips, mode="analytical", params=params).breakdown
    cyc = estimate(hw, wl, scenario, chips=chips, mode="cycle", params=params).breakdown
    if ana.empty or cyc.empty:
        return pd.DataFrame()
    key = ["graph", "name"]
    both = ana[key + ["kind", "time_s"]].merge(cyc[key + ["time_s"]], on=key, suffixes=("_analytical", "_cycle"))
    both = both[both["kind"].isin(["gemm", "grouped_gemm", "attention"])]
    table = build_graph(wl, scenario)
    why = explain(hw, table)
    why = why.assign(name=np.asarray(table.name))[["name", "folds_or_waves", "utilization", "mapping_efficiency",
                                                     "reason"]].drop_duplicates("name")
    both = both.merge(why, on="name", how="left")
    with np.errstate(divide="ignore", invalid="ignore"):
        both["cycle_over_analytical"] = both["time_s_cycle"] / both["time_s_analytical"]
    return both.sort_values("time_s_cycle", ascending=False).reset_index(drop=True)
