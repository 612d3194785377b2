"""Serving & cost page (finance): load, SLO, cloud vs owned TCO with ranges, fleet, P10/P50/P90, tornado."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from cosim.app import cache, session
from cosim.app.compute import FINANCE_KEY_INPUTS, MONTE_CARLO_MAX, SERVING_MAX_REQUESTS, NotAvailable
from cosim.app.state import scenario_kwargs
from cosim.app.widgets import csv_download, fmt, index_of, money, show_failure
from cosim.errors import CosimInputError

LABELS = {"cloud_price_usd_per_hour": "Cloud $/chip-hour", "accelerator_price_usd": "Chip purchase price $",
          "electricity_usd_per_kwh": "Electricity $/kWh", "pue": "PUE", "utilization": "Utilisation (0-1]",
          "lifetime_years": "Lifetime (years)", "cost_of_capital": "Cost of capital"}


def _num(v) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def render() -> None:
    from cosim.viz import cost_band, tornado_chart

    st.title("Serving & cost")
    st.caption("What a chip-hour, a million tokens and a fleet cost, cloud vs owned, and how sure we are. "
               "Capacity comes from the engine at the shared scenario (set on the Estimate page).")
    cat = cache.catalog()
    state = session.get()
    c1, c2 = st.columns(2)
    hw = c1.selectbox("Hardware", cat["hardware_slugs"], key="fin_hw",
                      index=index_of(cat["hardware_slugs"], state["hw"]))
    wl = c2.selectbox("Workload", cat["lm_slugs"], key="fin_wl",
                      index=index_of(cat["lm_slugs"], state["wl"]))
    session.update(hw=hw, wl=wl)
    state = session.get()
    st.caption(f"Scenario: {state['phase']}, batch {state['batch']}, {state['input_len']} in / "
               f"{state['output_len']} out, {state['precision']}, tp {state['tp']}.")
    try:
        view = cache.estimate(hw, wl, scenario_kwargs(state), chips=state["chips"], batch_max=state["batch_max"])
        defaults = cache.finance_defaults(hw)
    except (CosimInputError, NotAvailable) as err:
        show_failure(err)
        return
    tps = view.metrics.get("throughput_tokens_per_s")
    engine_tps = tps / view.chips if view.metrics["feasible"] and tps else None
    if engine_tps is None:
        st.warning(f"The engine gives no throughput here ({view.metrics.get('reason') or 'no tokens'}); "
                   "enter tokens/s per chip below.")
    base = {r["input"]: r for r in defaults.to_dict("records")}
    with st.form("fin_form"):
        st.subheader("Load and capacity")
        c1, c2, c3 = st.columns(3)
        tokens = c1.number_input("Output tokens/s per chip", min_value=0.0, value=float(engine_tps or 0.0),
                                 key="fin_tps", help="from the engine; override to price a measured figure")
        target = c2.number_input("Target output tokens per day", min_value=0.0, value=1e10, format="%.3g",
                                 key="fin_target")
        samples = c3.number_input(f"Monte Carlo draws (≤ {MONTE_CARLO_MAX:,})", min_value=0, max_value=MONTE_CARLO_MAX,
                                  value=2000, step=1000, key="fin_mc")
        st.subheader("Finance inputs (low / base / high)")
        ranges = {}
        for name in FINANCE_KEY_INPUTS:
            r = base.get(name, {})
            b = _num(r.get("base"))
            cols = st.columns([2, 1, 1, 1, 4])
            cols[0].markdown(f"**{LABELS[name]}**")
            lo = cols[1].number_input("low", value=_num(r.get("low")), key=f"fin_{name}_low", format="%.4g")
            mid = cols[2].number_input("base", value=b, key=f"fin_{name}_base", format="%.4g")
            hi = cols[3].number_input("high", value=_num(r.get("high")), key=f"fin_{name}_high", format="%.4g")
            cols[4].caption(str(r.get("source") or ""))
            ranges[name] = (lo, mid, hi)
        st.form_submit_button("Update costs", type="primary")
    session.mirror()
    try:
        report = cache.finance(hw, tokens_per_s_per_chip=tokens or None, ranges=ranges,
                               target_tokens_per_day=target or None, monte_carlo=int(samples), seed=0,
                               input_len=state["input_len"], output_len=state["output_len"])
    except (CosimInputError, NotAvailable) as err:
        show_failure(err)
        return
    modes = [m for m in ("cloud", "owned") if report.get(m)]
    cols = st.columns(4)
    for i, m in enumerate(modes):
        cols[i].metric(f"{m.title()} $ per chip-hour", money(report[m]["usd_per_chip_hour"]))
        cols[i + 2].metric(f"{m.title()} $ per M output tokens", money(report[m].get("usd_per_million_output_tokens")))
    fl = report.get("fleet")
    cols = st.columns(4)
    if fl:
        cols[0].metric("Fleet (chips)", f"{fl['chips']:,}")
        for i, m in enumerate(modes):
            cols[1 + i].metric(f"Monthly cost ({m})", money(fl["monthly_cost_usd"][m]))
    be = report.get("break_even_utilization")
    cols[3].metric("Break-even utilisation", "-" if be is None else ("never" if be > 1 else f"{be:.0%}"),
                   help="owning beats renting on demand above this utilisation")
    c1, c2 = st.columns(2)
    if report.get("owned"):
        br = report["owned"]["breakdown_usd_per_chip_hour"]
        import plotly.graph_objects as go

        fig = go.Figure(go.Bar(x=list(br), y=list(br.values())))
        fig.update_layout(title="Owned TCO per chip-hour at full use", yaxis_title="$ per chip-hour")
        c1.plotly_chart(fig, key="fin_fig_tco")
    if report.get("monte_carlo"):
        c2.plotly_chart(cost_band(report["monte_carlo"]), key="fin_fig_band")
        mc = report["monte_carlo"]
        st.dataframe(pd.DataFrame([{"mode": m, **mc[m]} for m in modes if m in mc]), hide_index=True)
    if report.get("tornado"):
        mode = st.radio("Tornado for", modes, horizontal=True, key="fin_tornado_mode")
        st.plotly_chart(tornado_chart(report["tornado"], mode=mode), key="fin_fig_tornado")
    else:
        st.caption("No input is a range, so there is no tornado chart.")
    from cosim.app.compute import cost_long_table

    csv_download(cost_long_table(report), "cost.csv", label="Download cost CSV", key="fin_dl")
    st.divider()
    serving_section(hw, wl, state)


def serving_section(hw: str, wl: str, state: dict) -> None:
    """Serving under a Poisson load (TTFT/TPOT percentiles, goodput, the highest QPS meeting the SLO) or a
    closed loop of a fixed number of clients (the way genai-perf and vLLM's --max-concurrency measure)."""
    st.subheader("Serving under load (continuous batching)")
    st.caption(f"At most {SERVING_MAX_REQUESTS:,} simulated requests (QPS x duration, or 10 per client).")
    with st.form("srv_form"):
        load = st.radio("Load", ["Poisson arrivals (QPS)", "Fixed concurrency (clients)"], horizontal=True,
                        key="srv_load", help="clients: each sends its next request when its last one completes")
        c = st.columns(7)
        qps = c[0].number_input("QPS", min_value=0.01, max_value=10_000.0, value=2.0, key="srv_qps")
        duration = c[1].number_input("Duration (s)", min_value=1.0, max_value=3600.0, value=60.0, key="srv_dur")
        clients = c[6].number_input("Clients", min_value=1, max_value=100_000, value=16, step=1, key="srv_clients")
        in_len = c[2].text_input("Input length", str(state["input_len"]), key="srv_in",
                                 help="N, uniform:LO:HI, lognormal:MEAN:SIGMA, profile:NAME")
        out_len = c[3].text_input("Output length", str(state["output_len"]), key="srv_out")
        ttft = c[4].number_input("SLO TTFT p99 (s)", min_value=0.0, value=1.0, key="srv_ttft")
        tpot = c[5].number_input("SLO TPOT p99 (s)", min_value=0.0, value=0.05, key="srv_tpot")
        go = st.form_submit_button("Simulate serving")
    if not go and "srv_result" not in st.session_state:
        st.info("Press **Simulate serving** to run the serving simulator.")
        return
    if go:
        try:
            closed = load.startswith("Fixed")
            st.session_state["srv_result"] = cache.serving(
                hw, wl, scenario_kwargs(state, training=False), chips=state["chips"], qps=qps, duration_s=duration,
                input_len=in_len, output_len=out_len, slo_ttft_s=ttft or None, slo_tpot_s=tpot or None,
                concurrency=int(clients) if closed else None)
        except (CosimInputError, NotAvailable) as err:
            show_failure(err)
            return
    res = st.session_state["srv_result"]
    if not res.get("feasible"):
        st.warning(f"Infeasible: {res.get('reason')}")
        return
    if res.get("reason"):
        st.warning(res["reason"])
    cols = st.columns(6)
    cols[0].metric("Output tokens/s", fmt(res.get("output_tokens_per_s")))
    cols[1].metric("TTFT p50 / p99", f"{fmt(res.get('ttft_p50_s'), 's')} / {fmt(res.get('ttft_p99_s'), 's')}")
    cols[2].metric("TPOT p50 / p99", f"{fmt(res.get('tpot_p50_s'), 's')} / {fmt(res.get('tpot_p99_s'), 's')}")
    cols[3].metric("Goodput (req/s)", fmt(res.get("goodput_requests_per_s")))
    cols[4].metric("Max QPS at SLO", fmt(res.get("max_qps_at_slo")))
    cols[5].metric("$ per M output tokens", money(res.get("usd_per_million_output_tokens")))
    flat = {k: v for k, v in res.items() if not isinstance(v, list | dict)}
    frame = pd.DataFrame([{"metric": k, "value": v} for k, v in flat.items()])
    st.dataframe(frame.astype({"value": str}), hide_index=True, height=240)
    csv_download(frame, "serving.csv", label="Download serving CSV", key="srv_dl")


if __name__ == "__main__":
    render()
