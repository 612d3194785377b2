"""Estimate page: one workload on one chip -- headline metrics, per-op breakdown, roofline, memory."""

from __future__ import annotations

import streamlit as st

from cosim.app import cache, session
from cosim.app.compute import NotAvailable
from cosim.app.widgets import csv_download, fmt, money, scenario_form, show_failure, spec_picker
from cosim.errors import CosimInputError


def render() -> None:
    st.title("Estimate")
    st.caption("Latency, throughput, energy and cost of one workload on one chip spec (analytical engine).")
    cat = cache.catalog()
    state = session.get()
    c1, c2 = st.columns(2)
    with c1:
        hw = spec_picker("hardware", key="est_hw", options=cat["hardware_slugs"], state_key="hw", label="Hardware")
    with c2:
        wl = spec_picker("workload", key="est_wl", options=cat["lm_slugs"], state_key="wl", label="Workload")
    scenario_form("est", show_stack=True)
    state = session.get()
    session.mirror()
    if hw is None or wl is None:
        st.info("Choose a hardware spec and a workload (catalog or a valid upload) to see an estimate.")
        return
    from cosim.app.state import scenario_kwargs

    args = (hw, wl, scenario_kwargs(state))
    try:
        kw = dict(chips=state["chips"], batch_max=state["batch_max"], stack=state["stack"])
        view = cache.estimate(*args, **kw)
        figs = cache.estimate_figures(*args, **kw)
    except (CosimInputError, NotAvailable) as err:
        show_failure(err)
        return
    show(view, figs)


def show(view, figs: dict) -> None:
    """Draw an EstimateView and its figures: metrics, warnings, breakdown, roofline, memory, downloads."""
    m = view.metrics
    if not m["feasible"]:
        st.warning(f"Infeasible: {m['reason']}")
    for note in view.notes:
        st.caption(note)
    cols = st.columns(6)
    if m.get("seconds_per_video") is not None:
        cols[0].metric("Seconds per video", fmt(m["seconds_per_video"], "s"))
    else:
        cols[0].metric("Throughput (tokens/s)", fmt(m["throughput_tokens_per_s"]))
    cols[1].metric("Latency", fmt(m["latency_s"], "s"))
    cols[2].metric("TPOT" if m.get("tpot_s") is not None else "TTFT", fmt(m.get("tpot_s") or m.get("ttft_s"), "s"))
    cols[3].metric("Energy per token", fmt(m["energy_j_per_token"], "J"))
    cols[4].metric("$ per M tokens", money(m["usd_per_million_tokens"]))
    cols[5].metric("Bottleneck", m["bottleneck"] or "-")
    c = st.columns(6)
    c[0].metric("Batch", fmt(m["batch"]))
    c[1].metric("Chips", str(view.chips))
    c[2].metric("MFU", "-" if m["mfu"] is None else f"{m['mfu']:.1%}")
    c[3].metric("MBU", "-" if m["mbu"] is None else f"{m['mbu']:.1%}")
    c[4].metric("Memory per chip", fmt(m["memory_bytes_per_chip"], "B"))
    c[5].metric("Avg power", fmt(m["avg_power_w"], "W"))
    csv_download(view.metrics_frame(), "estimate.csv", label="Download metrics CSV", key="est_dl_metrics")
    tab_b, tab_r, tab_m = st.tabs(["Per-op breakdown", "Roofline", "Memory per chip"])
    with tab_b:
        if len(view.breakdown):
            st.plotly_chart(figs["breakdown"], key="est_fig_breakdown")
            frame = view.breakdown.sort_values("time_s", ascending=False)
            st.dataframe(frame, hide_index=True, height=320)
            csv_download(frame, "breakdown.csv", label="Download breakdown CSV", key="est_dl_breakdown")
        else:
            st.info("No per-op breakdown for this configuration.")
    with tab_r:
        if "roofline" in figs:
            st.plotly_chart(figs["roofline"], key="est_fig_roof")
            st.caption(f"Ridge point: {view.peak_flops_per_s / view.bandwidth_bytes_per_s:.0f} FLOP/byte "
                       f"(peak {fmt(view.peak_flops_per_s, 'FLOP/s')} / {fmt(view.bandwidth_bytes_per_s, 'B/s')}).")
            cols = ["name", "kind", "flops", "bytes", "time_s", "achieved_flops_per_s", "bound"]
            csv_download(view.breakdown[cols], "roofline.csv", label="Download roofline CSV", key="est_dl_roof")
        else:
            st.info(f"No {view.precision} peak or memory bandwidth in the spec: no roofline.")
    with tab_m:
        import pandas as pd

        st.plotly_chart(figs["memory"], key="est_fig_mem")
        mem = pd.DataFrame([{"part": k, "bytes": v} for k, v in view.memory_breakdown.items()]
                           + [{"part": "capacity", "bytes": view.capacity_bytes}])
        csv_download(mem, "memory.csv", label="Download memory CSV", key="est_dl_mem")


if __name__ == "__main__":
    render()
