"""A panel as a plotly figure: each trace downsampled to at most ``max_points`` before it leaves Python.

The browser gets numpy arrays (plotly sends them as base64 typed arrays, not JSON lists of numbers), with
x in milliseconds since the epoch on a date axis, so a redraw costs the same for 1k or 1M buffered points.
"""

import numpy as np
import plotly.graph_objects as go

from dashboard.downsample import DEFAULT_MAX_POINTS, downsample
from dashboard.markup import escape_plotly
from dashboard.panel import Panel

CHART_HEIGHT = 320


def build_figure(panel: Panel, *, max_points: int = DEFAULT_MAX_POINTS) -> go.Figure:
    figure = go.Figure()
    for trace in panel.traces:
        ts, values = downsample(trace.ts, trace.values, max_points)
        x_ms = np.multiply(ts, 1000.0)
        figure.add_trace(
            go.Scatter(x=x_ms, y=values, name=escape_plotly(trace.series), mode="lines", line={"width": 1.5})
        )
    figure.update_layout(
        height=CHART_HEIGHT,
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0},
        hovermode="x unified",
        # Keeps the user's zoom and legend clicks when the same chart is redrawn with new data.
        uirevision=panel.channel,
    )
    figure.update_xaxes(type="date")
    return figure
