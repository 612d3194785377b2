"""Scatter charts: a sweep's Pareto front, and predicted vs measured (log-log with y = x)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go


def pareto_scatter(frame: pd.DataFrame, x: str, y: str, front: np.ndarray, *, title: str | None = None,
                   max_background: int = 5000) -> go.Figure:
    """All points (grey, thinned to `max_background` evenly) and the front (highlighted, joined by a line).

    `customdata` of each trace holds the row index in `frame`, so a selection maps back to a design.
    """
    front = np.asarray(front, dtype=bool)
    idx = np.arange(len(frame))
    rest = idx[~front]
    if len(rest) > max_background:
        rest = rest[np.linspace(0, len(rest) - 1, max_background).astype(np.int64)]
    fig = go.Figure()
    fig.add_trace(go.Scattergl(x=frame[x].to_numpy()[rest], y=frame[y].to_numpy()[rest], mode="markers",
                               name="design points", customdata=rest, marker={"size": 5, "color": "#bbbbbb"},
                               hovertemplate=f"{x} %{{x:.4g}}<br>{y} %{{y:.4g}}<br>row %{{customdata}}<extra></extra>"))
    on = idx[front]
    on = on[np.argsort(frame[x].to_numpy()[on], kind="stable")]
    fig.add_trace(go.Scatter(x=frame[x].to_numpy()[on], y=frame[y].to_numpy()[on], mode="lines+markers",
                             name="Pareto front", customdata=on, marker={"size": 9, "color": "#d62728"},
                             hovertemplate=f"{x} %{{x:.4g}}<br>{y} %{{y:.4g}}<br>row %{{customdata}}<extra></extra>"))
    fig.update_xaxes(title_text=x)
    fig.update_yaxes(title_text=y)
    fig.update_layout(title=title or f"Pareto front: {y} vs {x}", margin={"t": 50, "b": 40, "l": 60, "r": 20})
    return fig


def predicted_vs_measured(rows: pd.DataFrame, *, color: str | None = None, title: str | None = None) -> go.Figure:
    """Log-log scatter of `predicted` against `measured` with the y = x line spanning both."""
    df = rows[(pd.to_numeric(rows["predicted"], errors="coerce") > 0)
              & (pd.to_numeric(rows["measured"], errors="coerce") > 0)]
    fig = go.Figure()
    groups = [(None, df)] if not color or color not in df else list(df.groupby(color, sort=True))
    for key, sub in groups:
        text = sub["id"].astype(str) if "id" in sub else None
        fig.add_trace(go.Scatter(x=sub["measured"].astype(float), y=sub["predicted"].astype(float), mode="markers",
                                 name=str(key) if key is not None else "points", text=text,
                                 hovertemplate="%{text}<br>measured %{x:.4g}<br>predicted %{y:.4g}<extra></extra>"))
    if len(df):
        lo = float(min(df["measured"].astype(float).min(), df["predicted"].astype(float).min())) / 1.5
        hi = float(max(df["measured"].astype(float).max(), df["predicted"].astype(float).max())) * 1.5
    else:
        lo, hi = 1e-3, 1e3
    fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="y = x",
                             line={"dash": "dash", "color": "#444"}, hoverinfo="skip"))
    fig.update_xaxes(type="log", title_text="measured")
    fig.update_yaxes(type="log", title_text="predicted")
    fig.update_layout(title=title or "Predicted vs measured", margin={"t": 50, "b": 40, "l": 60, "r": 20})
    return fig
