"""Video generation chart: seconds (or $) per video against one swept setting, a line per group."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go


def video_chart(frame: pd.DataFrame, x: str, y: str, *, color: str | None = None, log_y: bool = False,
                title: str | None = None) -> go.Figure:
    """Lines of `y` against `x`, one per value of `color`; infeasible rows (y NaN/None) are gaps."""
    fig = go.Figure()
    groups = [(None, frame)] if not color else list(frame.groupby(color, sort=True))
    for key, sub in groups:
        sub = sub.sort_values(x)
        fig.add_trace(go.Scatter(x=sub[x].tolist(), y=pd.to_numeric(sub[y], errors="coerce").tolist(),
                                 mode="lines+markers", name=str(key) if key is not None else y,
                                 hovertemplate=f"{x} %{{x}}<br>{y} %{{y:.4g}}<extra>{key if key is not None else ''}</extra>"))
    fig.update_xaxes(title_text=x)
    fig.update_yaxes(title_text=y, type="log" if log_y else "linear")
    fig.update_layout(title=title or f"{y} by {x}", margin={"t": 50, "b": 40, "l": 60, "r": 20},
                      legend_title_text=color or "")
    return fig
