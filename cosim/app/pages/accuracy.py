"""Accuracy page: `cosim validate` -- predicted vs measured per reference point, errors per group."""

from __future__ import annotations

import streamlit as st

from cosim.app import cache
from cosim.app.compute import NotAvailable
from cosim.app.widgets import csv_download, show_failure
from cosim.errors import CosimInputError


def render() -> None:
    from cosim.viz import predicted_vs_measured

    st.title("Accuracy")
    st.caption("How far cosim's predictions are from published measurements (`cosim validate`).")
    with st.form("acc_form"):
        c1, c2 = st.columns([3, 1])
        filt = c1.text_input("Filter (e.g. hardware=h200-sxm)", "", key="acc_filter")
        uncal = c2.checkbox("Uncalibrated", key="acc_uncal")
        st.form_submit_button("Validate")
    if not uncal:
        table = cache.targets().copy()
        for col in ("cv_median_abs_error", "cv_worst_error", "target_median_abs_error", "target_worst_abs_error"):
            table[col] = (100 * table[col].astype(float)).round(1)
        st.subheader("Targets (cross-validated, leave-one-out; percent)")
        st.dataframe(table.rename(columns=lambda c: c.replace("_abs_error", " |err| %").replace("_error", " err %")),
                     hide_index=True)
        missed = cache.misses()
        if len(missed):
            st.subheader(f"Rows beyond the worst-case target ({len(missed)}), and why")
            st.caption("Each row's leave-one-out error and the stated cause of its family "
                       "(cosim/data/reference/known_misses.yaml; measurements in reports/validation.md).")
            # two decimals: a row just past the bound (-30.03%) must not read as on it
            shown = missed.assign(error=(100 * missed["error"]).round(2))
            st.dataframe(shown[["id", "error", "family", "cause", "see"]].rename(columns={"error": "error %"}),
                         hide_index=True)
    bar = st.empty()
    try:
        rows, summary = cache.validation(filt.strip(), bool(uncal), progress=lambda f: bar.progress(
            f, text=f"Predicting every reference point: {f:.0%}"))
    except (CosimInputError, NotAvailable) as err:
        bar.empty()
        show_failure(err)
        return
    bar.empty()
    if not len(rows):
        st.warning("No reference point matches this filter.")
        return
    st.subheader("Summary per group")
    st.dataframe(summary, hide_index=True)
    csv_download(summary, "validation_summary.csv", label="Download summary CSV", key="acc_dl_summary")
    color = "metric" if "metric" in rows else None
    st.plotly_chart(predicted_vs_measured(rows, color=color), key="acc_fig")
    st.subheader("Reference points")
    st.dataframe(rows, hide_index=True)
    csv_download(rows, "validation.csv", label="Download rows CSV", key="acc_dl_rows")


if __name__ == "__main__":
    render()
