"""Cost uncertainty band: P10 / P50 / P90 of a Monte Carlo cost metric per mode (cloud, owned)."""

from __future__ import annotations

from collections.abc import Mapping

import plotly.graph_objects as go


def cost_band(monte_carlo: Mapping, *, title: str | None = None) -> go.Figure:
    """A P50 marker per mode with error bars down to P10 and up to P90 (`cost_report()['monte_carlo']`)."""
    modes = [m for m in ("cloud", "owned") if m in monte_carlo]
    p10 = [float(monte_carlo[m]["p10"]) for m in modes]
    p50 = [float(monte_carlo[m]["p50"]) for m in modes]
    p90 = [float(monte_carlo[m]["p90"]) for m in modes]
    fig = go.Figure(go.Scatter(
        x=modes, y=p50, mode="markers", name="P50", marker={"size": 14, "color": "#1f77b4"},
        error_y={"type": "data", "symmetric": False, "array": [b - a for a, b in zip(p50, p90, strict=True)],
                 "arrayminus": [a - b for a, b in zip(p50, p10, strict=True)], "width": 12},
        customdata=list(zip(p10, p90, strict=True)),
        hovertemplate="%{x}: P50 %{y:.4g} (P10 %{customdata[0]:.4g}, P90 %{customdata[1]:.4g})<extra></extra>"))
    metric = str(monte_carlo.get("metric", "cost"))
    fig.update_yaxes(title_text=metric)
    fig.update_layout(title=title or f"P10 / P50 / P90 of {metric} ({monte_carlo.get('samples', '?')} draws)",
                      margin={"t": 50, "b": 40, "l": 60, "r": 20})
    return fig
