"""Compare page: one workload across several chips, or several workloads on one chip, side by side."""

from __future__ import annotations

import streamlit as st

from cosim.app import cache, session
from cosim.app.compute import COMPARE_MAX, NotAvailable
from cosim.app.state import scenario_kwargs
from cosim.app.widgets import csv_download, index_of, scenario_form, show_failure
from cosim.errors import CosimInputError

METRICS = ("throughput_tokens_per_s", "latency_s", "energy_j_per_token", "usd_per_million_tokens")


def render() -> None:
    from cosim.viz import comparison_bars

    st.title("Compare")
    st.caption(f"Tokens/s, latency, J/token and $/M tokens side by side (at most {COMPARE_MAX} at once). "
               "The scenario is shared with the Estimate page.")
    cat = cache.catalog()
    state = session.get()
    labels = {"chips": "One workload, several chips", "workloads": "Several workloads, one chip"}
    by = st.radio("Compare", list(labels), format_func=labels.get, horizontal=True, key="cmp_by_radio",
                  index=list(labels).index(state["cmp_by"]))
    if by != state["cmp_by"]:
        session.update(cmp_by=by)
    if by == "chips":
        wl = st.selectbox("Workload", cat["lm_slugs"], key="cmp_wl_one",
                          index=index_of(cat["lm_slugs"], state["wl"]))
        hws = st.multiselect("Chips", cat["hardware_slugs"], key="cmp_hw_multi", max_selections=COMPARE_MAX,
                             default=[h for h in state["cmp_hw"] if h in cat["hardware_slugs"]])
        session.update(wl=wl, cmp_hw=tuple(hws))
        pairs = [(h, wl) for h in hws]
        label_col = "hardware"
    else:
        hw = st.selectbox("Chip", cat["hardware_slugs"], key="cmp_hw_one",
                          index=index_of(cat["hardware_slugs"], state["hw"]))
        wls = st.multiselect("Workloads", cat["lm_slugs"], key="cmp_wl_multi", max_selections=COMPARE_MAX,
                             default=[w for w in state["cmp_wl"] if w in cat["lm_slugs"]])
        session.update(hw=hw, cmp_wl=tuple(wls))
        pairs = [(hw, w) for w in wls]
        label_col = "workload"
    scenario_form("cmp", submit_label="Compare")
    state = session.get()
    if not pairs:
        st.info("Pick at least one entry to compare.")
        return
    try:
        table = cache.compare(pairs, scenario_kwargs(state), chips=state["chips"])
    except (CosimInputError, NotAvailable) as err:
        show_failure(err)
        return
    for _, row in table[~table["feasible"].astype(bool)].iterrows():
        st.warning(f"{row['hardware']} / {row['workload']}: {row['reason']}")
    shown = table[[label_col, "feasible", *METRICS, "chips", "bottleneck", "memory_bytes_per_chip", "reason"]]
    st.dataframe(shown, hide_index=True)
    csv_download(table, "compare.csv", key="cmp_dl")
    normalise = st.toggle("Normalise each metric to its largest value", value=True, key="cmp_norm")
    st.plotly_chart(comparison_bars(table, label_col, METRICS, normalise=normalise,
                                    title="Side by side (higher tokens/s is better; lower is better for the rest)"),
                    key="cmp_fig")


if __name__ == "__main__":
    render()
