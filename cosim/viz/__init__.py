"""Figures as pure functions: data in, `plotly.graph_objects.Figure` out.

Shared by the Streamlit explorer (`app.py`, `cosim/app/pages`) and generated reports. No function
here computes a model figure: each one draws numbers it is given (an estimate's per-op breakdown, a
sweep's result table, a cost report's Monte Carlo percentiles) so tests can check a figure's traces,
axes and values directly.
"""

from cosim.viz.bars import breakdown_bars, comparison_bars, memory_bars, tornado_chart
from cosim.viz.cost import cost_band
from cosim.viz.roofline import roofline_figure
from cosim.viz.scatter import pareto_scatter, predicted_vs_measured
from cosim.viz.video import video_chart

__all__ = ["breakdown_bars", "comparison_bars", "cost_band", "memory_bars", "pareto_scatter",
           "predicted_vs_measured", "roofline_figure", "tornado_chart", "video_chart"]
