"""cosim explorer (Streamlit): `make run`. Pages call the cosim API only (cosim/app/pages/*.py).

The scenario lives in `st.session_state` and in the URL's query parameters, so a view is a
shareable link; the catalog and a Numba warm-up are cached once per process.
"""

from __future__ import annotations

import streamlit as st

from cosim.app import cache, session

st.set_page_config(page_title="cosim explorer", page_icon=":material/memory:", layout="wide")

PAGES = [
    st.Page("cosim/app/pages/estimate.py", title="Estimate", icon=":material/speed:", url_path="estimate",
            default=True),
    st.Page("cosim/app/pages/compare.py", title="Compare", icon=":material/compare_arrows:", url_path="compare"),
    st.Page("cosim/app/pages/sweep.py", title="Sweep & Pareto", icon=":material/scatter_plot:", url_path="sweep"),
    st.Page("cosim/app/pages/finance.py", title="Serving & cost", icon=":material/payments:", url_path="finance"),
    st.Page("cosim/app/pages/video.py", title="Video", icon=":material/movie:", url_path="video"),
    st.Page("cosim/app/pages/specs.py", title="Specs", icon=":material/description:", url_path="specs"),
    st.Page("cosim/app/pages/accuracy.py", title="Accuracy", icon=":material/fact_check:", url_path="accuracy"),
]

page = st.navigation(PAGES)
session.init()
session.show_query_problems()
warm = cache.warm_up()
if not warm["ok"]:
    st.sidebar.warning(warm["message"])
st.sidebar.caption("The scenario is kept in the link: copy the URL to share this view.")
page.run()
