"""cosim explorer (Streamlit). Run with `make run`; pages call the cosim API only."""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="cosim explorer", layout="wide")


def catalog_page() -> None:
    import pandas as pd

    from cosim.api import catalog_summary

    st.title("cosim catalog")
    summary = catalog_summary()
    st.subheader("Hardware")
    st.dataframe(pd.DataFrame(summary["hardware"]), hide_index=True)
    st.subheader("Workloads")
    st.dataframe(pd.DataFrame(summary["workloads"]), hide_index=True)


pages = [st.Page(catalog_page, title="Catalog", url_path="catalog", default=True)]
st.navigation(pages).run()
