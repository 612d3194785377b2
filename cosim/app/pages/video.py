"""Video page: seconds and dollars per generated video across resolution, frames, steps and chip count."""

from __future__ import annotations

import streamlit as st

from cosim.app import cache, session
from cosim.app.compute import VIDEO_MAX_POINTS, VIDEO_SPLITS, NotAvailable, parse_int_list, parse_resolutions
from cosim.app.state import PRECISIONS
from cosim.app.widgets import csv_download, index_of, show_failure
from cosim.errors import CosimInputError


def render() -> None:
    from cosim.viz import video_chart

    st.title("Video generation")
    st.caption(f"Seconds and $ per generated video (video DiT workloads from the catalog). At most "
               f"{VIDEO_MAX_POINTS} combinations per run.")
    cat = cache.catalog()
    state = session.get()
    vids = cat["video_slugs"]
    if not vids:
        st.info("No video workloads in the catalog.")
        return
    with st.form("vid_form"):
        c1, c2 = st.columns(2)
        wl = c1.selectbox("Video workload", vids, index=index_of(vids, state["vwl"]),
                          key="vid_wl")
        hws = c2.multiselect("Chips", cat["hardware_slugs"], default=["h100-sxm"], max_selections=4, key="vid_hw")
        c3, c4, c5, c6 = st.columns(4)
        res = c3.text_input("Resolutions (HxW)", "480x720, 720x1280", key="vid_res")
        frames = c4.text_input("Frames", "49", key="vid_frames")
        steps = c5.text_input("Denoising steps", "50", key="vid_steps")
        chips = c6.text_input("Chips per video", "1, 2, 4, 8", key="vid_chips")
        c7, c8 = st.columns(2)
        precision = c7.selectbox("Precision", PRECISIONS, key="vid_prec")
        split = c8.selectbox("Split a video across chips by", list(VIDEO_SPLITS), key="vid_split",
                             format_func=VIDEO_SPLITS.get)
        st.form_submit_button("Estimate videos", type="primary")
    if wl != state["vwl"]:
        session.update(vwl=wl)
    session.mirror()
    try:
        resolutions = parse_resolutions(res)
        table = cache.video(tuple(hws), wl, tuple(resolutions), tuple(parse_int_list(frames, "frames", high=1024)),
                            tuple(parse_int_list(steps, "steps", high=1000)),
                            tuple(parse_int_list(chips, "chips", high=1024)), precision, split)
    except (CosimInputError, NotAvailable) as err:
        show_failure(err)
        return
    bad = table[~table["feasible"].astype(bool)]
    if len(bad):
        st.warning(f"{len(bad)} of {len(table)} combinations cannot run; first reason: {bad['reason'].iloc[0]}")
    table = table.assign(series=table["hardware"] + " " + table["resolution"] + " f" + table["frames"].astype(str)
                         + " s" + table["steps"].astype(str))
    st.plotly_chart(video_chart(table, "chips", "seconds_per_video", color="series", log_y=True,
                                title="Seconds per video"), key="vid_fig_s")
    st.plotly_chart(video_chart(table, "chips", "usd_per_video", color="series", title="$ per video (cloud price)"),
                    key="vid_fig_usd")
    st.dataframe(table.drop(columns=["series"]), hide_index=True)
    csv_download(table.drop(columns=["series"]), "video.csv", key="vid_dl")


if __name__ == "__main__":
    render()
