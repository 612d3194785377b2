"""Sweep & Pareto page: vary a few hardware fields, run in chunks with a progress bar, pick from the front."""

from __future__ import annotations

import streamlit as st

from cosim.app import cache, compute, session
from cosim.app.compute import SWEEP_MAX_POINTS, SWEEP_OBJECTIVES, NotAvailable
from cosim.app.state import scenario_kwargs, training_knobs_set
from cosim.app.widgets import csv_download, index_of, scenario_form, show_failure
from cosim.errors import CosimInputError

RESULT_KEY = "sweep_result"
DEFAULT_PARAMS = (("memory.hbm.bandwidth_bytes_per_s", "1 TB/s", "8 TB/s", False),
                  ("compute.peak_flops_per_s.bf16", "200 TFLOP/s", "2000 TFLOP/s", True),
                  ("memory.hbm.capacity_bytes", "40 GB", "192 GB", False))


def _parameter_inputs(paths: list[str], n: int) -> list[dict]:
    params = []
    for i in range(n):
        d_path, d_low, d_high, d_log = DEFAULT_PARAMS[i] if i < len(DEFAULT_PARAMS) else (paths[0], "", "", False)
        c1, c2, c3, c4 = st.columns([3, 2, 2, 1])
        path = c1.selectbox(f"Parameter {i + 1}", paths, index=paths.index(d_path) if d_path in paths else 0,
                            key=f"sw_path_{i}")
        low = c2.text_input("low (units allowed)", d_low, key=f"sw_low_{i}")
        high = c3.text_input("high", d_high, key=f"sw_high_{i}")
        log = c4.checkbox("log", d_log, key=f"sw_log_{i}")
        params.append({"path": path, "low": low, "high": high, "log": log})
    return params


def render() -> None:
    st.title("Sweep & Pareto")
    st.caption(f"Vary hardware fields of one chip, evaluate every design point with the vectorised engine and "
               f"explore the Pareto front. At most {SWEEP_MAX_POINTS:,} design points here; use `cosim sweep` "
               "for millions.")
    cat = cache.catalog()
    state = session.get()
    c1, c2 = st.columns(2)
    hw = c1.selectbox("Base hardware", cat["hardware_slugs"], key="sw_hw",
                      index=index_of(cat["hardware_slugs"], state["hw"]))
    wl = c2.selectbox("Workload", cat["lm_slugs"], key="sw_wl",
                      index=index_of(cat["lm_slugs"], state["wl"]))
    session.update(hw=hw, wl=wl)
    scenario_form("swsc", submit_label="Use scenario")
    state = session.get()
    if state["phase"] == "train" and training_knobs_set(state):
        st.info("Sweeps have no training knobs yet: their points train with ZeRO 0, each replica's whole batch "
                "in one micro-batch, no interleaving and selective recompute. The Estimate page and "
                "`cosim estimate` take them.")
    try:
        paths = compute.sweepable_paths(hw)
    except (CosimInputError, NotAvailable, ImportError) as err:
        show_failure(err if not isinstance(err, ImportError) else NotAvailable(str(err)))
        return
    objectives = list(SWEEP_OBJECTIVES)
    with st.form("sw_form"):
        n_params = st.number_input("Parameters", min_value=1, max_value=3, value=2, key="sw_nparams")
        params = _parameter_inputs(paths, int(n_params))
        c1, c2, c3, c4, c5 = st.columns(5)
        method = c1.selectbox("Sampling", ["sobol", "random", "lhs", "grid"], key="sw_method")
        points = c2.number_input(f"Points (≤ {SWEEP_MAX_POINTS:,})", min_value=1, max_value=SWEEP_MAX_POINTS,
                                 value=2000, step=500, key="sw_points", help="grid: 5 values per parameter")
        seed = c3.number_input("Seed", min_value=0, value=0, key="sw_seed")
        x = c4.selectbox("x objective", objectives, index=objectives.index("usd_per_million_tokens"), key="sw_x")
        y = c5.selectbox("y objective", objectives, index=objectives.index("throughput_tokens_per_s"), key="sw_y")
        run = st.form_submit_button("Run sweep", type="primary")
    if run:
        try:
            spec = compute.sweep_spec(hw, wl, scenario_kwargs(state, training=False),
                                      params, method=method, points=int(points), seed=int(seed), objectives=[x, y])
            bar = st.progress(0.0, text="evaluating design points...")
            frame = compute.run_sweep(spec, progress=lambda f: bar.progress(f, text=f"evaluated {f:.0%}"))
            bar.empty()
            front = compute.pareto_front(frame, [x, y])
            st.session_state[RESULT_KEY] = {"frame": frame, "front": front, "x": x, "y": y,
                                            "params": [p["path"] for p in params]}
        except (CosimInputError, NotAvailable) as err:
            show_failure(err)
            return
        except ValueError as err:  # a unit or range the spec parser rejected
            st.error(str(err))
            return
    result = st.session_state.get(RESULT_KEY)
    if result is None:
        st.info("Define the sweep and press **Run sweep**.")
        return
    show(result)


def show(result: dict) -> None:
    from cosim.viz import pareto_scatter

    frame, front, x, y = result["frame"], result["front"], result["x"], result["y"]
    n_ok = int(frame["feasible"].sum()) if "feasible" in frame else len(frame)
    st.write(f"{len(frame):,} design points, {n_ok:,} feasible, {int(front.sum()):,} on the Pareto front.")
    if not front.any():
        st.warning("No feasible design point: nothing on the front. Widen the ranges or change the scenario.")
        csv_download(frame, "sweep_all.csv", label="Download all points CSV", key="sw_dl_all")
        return
    fig = pareto_scatter(frame, x, y, front)
    event = st.plotly_chart(fig, key="sw_fig", on_select="rerun", selection_mode="points")
    front_rows = frame.index[front].tolist()
    picked = None
    points = (event or {}).get("selection", {}).get("points", []) if isinstance(event, dict) else \
        getattr(getattr(event, "selection", None), "points", []) or []
    if points:
        cd = points[0].get("customdata")
        picked = int(cd[0] if isinstance(cd, list) else cd) if cd is not None else None
    options = front_rows
    choice = st.selectbox("Design on the front", options, key="sw_pick",
                          format_func=lambda i: f"row {i}: {x} {frame.at[i, x]:.4g}, {y} {frame.at[i, y]:.4g}")
    row = picked if picked is not None else choice
    st.subheader(f"Design point (row {row})")
    cols = [c for c in result["params"] + [x, y, "feasible", "latency_s", "tpot_s", "mfu", "bottleneck",
                                            "memory_bytes_per_chip", "chips", "usd_per_hour", "power_w", "tp", "pp",
                                            "batch", "precision"] if c in frame]
    st.dataframe(frame.loc[[row], list(dict.fromkeys(cols))].T.rename(columns={row: "value"}))
    c1, c2 = st.columns(2)
    with c1:
        csv_download(frame[front], "pareto_front.csv", label="Download front CSV", key="sw_dl_front")
    with c2:
        csv_download(frame, "sweep_all.csv", label="Download all points CSV", key="sw_dl_all")


if __name__ == "__main__":
    render()
