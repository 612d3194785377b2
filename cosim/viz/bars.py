"""Bar charts: per-op time breakdown, side-by-side comparison, memory per chip, tornado."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

GB = 1e9


def breakdown_bars(breakdown: pd.DataFrame, *, top: int = 15, title: str = "Time per op") -> go.Figure:
    """Horizontal bars of time per op (seconds, largest first); the rest summed into 'other'."""
    fig = go.Figure()
    if len(breakdown):
        label = breakdown["name"].astype(str)
        if "graph" in breakdown and breakdown["graph"].nunique() > 1:
            label = breakdown["graph"].astype(str) + ": " + label
        agg = breakdown.assign(label=label).groupby("label", sort=False)["time_s"].sum().sort_values(ascending=False)
        head = agg.iloc[:top]
        if len(agg) > top:
            head = pd.concat([head, pd.Series({"other": float(agg.iloc[top:].sum())})])
        total = float(agg.sum()) or 1.0
        fig.add_trace(go.Bar(x=head.to_numpy()[::-1], y=list(head.index)[::-1], orientation="h", name="time",
                             customdata=(head.to_numpy() / total)[::-1],
                             hovertemplate="%{y}<br>%{x:.3g} s (%{customdata:.1%})<extra></extra>"))
    fig.update_xaxes(title_text="time per step (s)")
    fig.update_layout(title=title, margin={"t": 50, "b": 40, "l": 10, "r": 20}, height=max(300, 24 * min(top + 1, 20)))
    return fig


def comparison_bars(frame: pd.DataFrame, label_col: str, metrics: Sequence[str], *, normalise: bool = True,
                    title: str = "Comparison") -> go.Figure:
    """Grouped bars, one group per metric, one bar per row; normalised: each metric / its largest value."""
    fig = go.Figure()
    for _, row in frame.iterrows():
        values = []
        for m in metrics:
            v = row.get(m)
            v = np.nan if v is None else float(v)
            if normalise:
                col = pd.to_numeric(frame[m], errors="coerce")
                peak = float(col.max()) if col.notna().any() else np.nan
                v = v / peak if peak and np.isfinite(peak) and peak > 0 else np.nan
            values.append(v)
        fig.add_trace(go.Bar(x=list(metrics), y=values, name=str(row[label_col])))
    fig.update_layout(barmode="group", title=title, margin={"t": 50, "b": 40, "l": 60, "r": 20})
    fig.update_yaxes(title_text="relative to the largest (1 = largest)" if normalise else "value")
    return fig


def memory_bars(memory_breakdown: Mapping[str, float], capacity_bytes: float, *, usable_bytes: float | None = None,
                title: str = "Memory per chip") -> go.Figure:
    """One stacked bar of the footprint parts (GB) against the chip's capacity (and usable) lines."""
    bars = [go.Bar(x=["per chip"], y=[float(v) / GB], name=part, hovertemplate=f"{part}: %{{y:.2f}} GB<extra></extra>")
            for part, v in memory_breakdown.items() if part != "total" and v]
    lines = [(float(capacity_bytes), "capacity", "#d62728", "dash")]
    if usable_bytes is not None:
        lines.append((float(usable_bytes), "usable", "#ff7f0e", "dot"))
    shapes = [{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": v / GB, "y1": v / GB,
               "line": {"color": color, "dash": dash}} for v, _, color, dash in lines]
    notes = [{"xref": "paper", "x": 1, "y": v / GB, "text": f"{name} {v / GB:.1f} GB", "showarrow": False,
              "xanchor": "right", "yanchor": "bottom"} for v, name, _, _ in lines]
    return go.Figure(bars, layout={"barmode": "stack", "title": title, "shapes": shapes, "annotations": notes,
                                   "yaxis": {"title": {"text": "GB"}},
                                   "margin": {"t": 50, "b": 40, "l": 60, "r": 20}})


def tornado_chart(rows: Sequence[Mapping], *, mode: str | None = None, title: str | None = None) -> go.Figure:
    """Tornado: per input, a bar from the base value to the metric at its low and at its high input.

    `rows` are `cosim.cost.report.tornado` rows (input, metric, metric_at_base/low/high, swing, mode).
    The widest swing is drawn at the top.
    """
    sel = [r for r in rows if mode is None or r.get("mode") == mode]
    sel = sorted(sel, key=lambda r: r["swing"])  # plotly draws the first category at the bottom
    fig = go.Figure()
    if sel:
        base = float(sel[0]["metric_at_base"])
        names = [r["input"] for r in sel]
        low = np.array([r["metric_at_low"] for r in sel], dtype=np.float64)
        high = np.array([r["metric_at_high"] for r in sel], dtype=np.float64)
        fig.add_trace(go.Bar(y=names, x=low - base, base=base, orientation="h", name="input at low",
                             marker_color="#1f77b4", hovertemplate="%{y} low: %{x:.4g}<extra></extra>"))
        fig.add_trace(go.Bar(y=names, x=high - base, base=base, orientation="h", name="input at high",
                             marker_color="#ff7f0e", hovertemplate="%{y} high: %{x:.4g}<extra></extra>"))
        fig.add_vline(x=base, line_color="#444")
        fig.update_xaxes(title_text=str(sel[0]["metric"]))
    fig.update_layout(barmode="overlay", title=title or "Tornado: one input at a time at its low / high",
                      margin={"t": 50, "b": 40, "l": 10, "r": 20})
    return fig
