"""Specs page: browse the catalog with every figure's source; edit or upload a spec and validate it."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from cosim.app import cache
from cosim.app.specio import SpecText, parse_any
from cosim.app.widgets import csv_download, show_failure
from cosim.errors import CosimInputError


def _catalog_text(slug: str, kind: str) -> str:
    from cosim.specs.loader import catalog_dir

    return (catalog_dir(kind) / f"{slug}.yaml").read_text(encoding="utf-8")


def render() -> None:
    st.title("Specs")
    cat = cache.catalog()
    tab_browse, tab_edit = st.tabs(["Browse the catalog", "Edit or upload a spec"])
    with tab_browse:
        c1, c2 = st.columns(2)
        c1.subheader("Hardware")
        hw = pd.DataFrame(cat["hardware"])
        c1.dataframe(hw, hide_index=True, height=260)
        with c1:
            csv_download(hw, "hardware_catalog.csv", key="spec_dl_hw")
        c2.subheader("Workloads")
        wl = pd.DataFrame(cat["workloads"])
        c2.dataframe(wl, hide_index=True, height=260)
        with c2:
            csv_download(wl, "workload_catalog.csv", key="spec_dl_wl")
        slugs = cat["hardware_slugs"] + cat["workload_slugs"]
        slug = st.selectbox("Spec", slugs, key="spec_pick")
        try:
            info = cache.describe(slug)
        except CosimInputError as err:
            show_failure(err)
            return
        st.markdown(f"**{info['display_name']}** ({info['type']})")
        if info.get("figures"):
            figs = pd.DataFrame(info["figures"])
            st.dataframe(figs, hide_index=True)
            csv_download(figs, f"{slug}_figures.csv", label="Download figures CSV", key="spec_dl_figs")
        else:
            st.json({k: v for k, v in info.items() if k != "spec"}, expanded=False)
        kind = "hardware_specs" if slug in cat["hardware_slugs"] else "workloads"
        st.download_button("Download YAML", _catalog_text(slug, kind).encode("utf-8"), file_name=f"{slug}.yaml",
                           mime="application/x-yaml", key="spec_dl_yaml")
    with tab_edit:
        editor()


def editor() -> None:
    """A YAML text area (pre-filled from a catalog spec) or an upload, validated with field-level errors."""
    cat = cache.catalog()
    start = st.selectbox("Start from", cat["hardware_slugs"] + cat["workload_slugs"], key="spec_edit_from")
    kind = "hardware_specs" if start in cat["hardware_slugs"] else "workloads"
    up = st.file_uploader("...or upload a spec (YAML, or a Hugging Face config.json)", type=["yaml", "yml", "json"],
                          key="spec_upload")
    if up is not None:
        try:
            text, name = up.getvalue().decode("utf-8"), up.name
        except UnicodeDecodeError:
            st.error(f"{up.name}: not a UTF-8 text file")
            return
        ref = SpecText(name, text)
        _validate(ref)
        st.download_button("Download YAML", text.encode("utf-8"), file_name=name, key="spec_dl_upload")
        return
    text = st.text_area("Spec YAML", _catalog_text(start, kind), height=400, key=f"spec_text_{start}")
    _validate(SpecText(f"{start}.yaml (edited)", text))
    st.download_button("Download YAML", text.encode("utf-8"), file_name=f"{start}-edited.yaml",
                       mime="application/x-yaml", key="spec_dl_edit")


def _validate(ref: SpecText) -> None:
    try:
        spec = parse_any(ref)
    except CosimInputError as err:
        where = f" (field `{err.field}`)" if err.field else ""
        st.error(f"Invalid spec{where}: {err}")
        return
    st.success(f"Valid {type(spec).__name__} spec '{spec.name}'.")


if __name__ == "__main__":
    render()
