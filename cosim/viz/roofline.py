"""Roofline chart: the chip's compute roof and memory slope, its ridge point, and each op as a point.

An op sits at (arithmetic intensity = FLOPs / bytes moved, achieved FLOP/s = FLOPs / time). The roof
is min(peak, bandwidth x intensity); the ridge point is where the two meet, at intensity
peak / bandwidth. Ops that move no bytes or do no FLOPs (pure communication, embeddings) cannot be
placed on a log-log chart and are left out (the figure's `meta` counts them).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go


def roofline_figure(breakdown: pd.DataFrame, peak_flops_per_s: float, bandwidth_bytes_per_s: float,
                    *, title: str = "Roofline") -> go.Figure:
    """Roof line, ridge point marker and one scatter point per op (columns: name, flops, bytes, time_s)."""
    peak, bw = float(peak_flops_per_s), float(bandwidth_bytes_per_s)
    ridge = peak / bw
    placed = pd.DataFrame(columns=["name", "intensity", "achieved"])
    if len(breakdown):
        df = breakdown[(breakdown["flops"] > 0) & (breakdown["bytes"] > 0) & (breakdown["time_s"] > 0)]
        placed = pd.DataFrame({
            "name": df["name"].astype(str).to_numpy(),
            "intensity": (df["flops"] / df["bytes"]).to_numpy(dtype=np.float64),
            "achieved": (df["flops"] / df["time_s"]).to_numpy(dtype=np.float64),
            "bound": df["bound"].astype(str).to_numpy() if "bound" in df else "",
            "time_s": df["time_s"].to_numpy(dtype=np.float64),
        })
    lo = min([ridge / 100.0] + ([float(placed["intensity"].min()) / 2.0] if len(placed) else []))
    hi = max([ridge * 100.0] + ([float(placed["intensity"].max()) * 2.0] if len(placed) else []))
    x = np.geomspace(lo, hi, 200)
    traces = [
        go.Scatter(x=x, y=np.minimum(peak, bw * x), mode="lines", name="roofline", line={"color": "#444", "width": 2},
                   hovertemplate="intensity %{x:.3g} FLOP/B<br>roof %{y:.3g} FLOP/s<extra></extra>"),
        go.Scatter(x=[ridge], y=[peak], mode="markers", name="ridge point",
                   marker={"symbol": "diamond", "size": 12, "color": "#d62728"},
                   hovertemplate="ridge %{x:.3g} FLOP/B<extra></extra>"),
    ]
    if len(placed):
        traces.append(go.Scatter(
            x=placed["intensity"], y=placed["achieved"], mode="markers", name="ops", text=placed["name"],
            customdata=np.stack([placed["bound"], placed["time_s"]], axis=1),
            marker={"size": 8, "color": "#1f77b4", "opacity": 0.8},
            hovertemplate=("%{text}<br>intensity %{x:.3g} FLOP/B<br>achieved %{y:.3g} FLOP/s"
                           "<br>bound %{customdata[0]}<br>time %{customdata[1]:.3g} s<extra></extra>")))
    fig = go.Figure(traces, layout={
        "title": title, "margin": {"t": 50, "b": 40, "l": 60, "r": 20},
        "xaxis": {"type": "log", "title": {"text": "arithmetic intensity (FLOP / byte)"}},
        "yaxis": {"type": "log", "title": {"text": "FLOP/s"}},
        "meta": {"ridge_flop_per_byte": ridge, "ops_left_out": int(len(breakdown) - len(placed))}})
    return fig
