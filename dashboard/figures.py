"""A panel as a plotly figure.

Per series: where the stored part is in buckets, a band from each bucket's minimum to its maximum (low
opacity, so every spike of the bucket stays visible at any zoom) under the line of the bucket means; where
it is raw samples, a plain line. The live part continues the same line. The line is downsampled to at
most ``max_points`` (min/max decimation: spikes survive) before it leaves Python.

The browser gets numpy arrays (plotly sends them as base64 typed arrays, not JSON lists of numbers), with
x in milliseconds since the epoch on a date axis, so a redraw costs the same for 1k or 1M points behind it.
"""

import numpy as np
import plotly.graph_objects as go
from plotly.colors import hex_to_rgb, qualitative

from dashboard.arrays import FloatArray
from dashboard.downsample import DEFAULT_MAX_POINTS, downsample
from dashboard.markup import escape_plotly
from dashboard.panel import Panel, Trace

CHART_HEIGHT = 320
PALETTE = qualitative.Plotly
BAND_OPACITY = 0.25


def _ms(ts: FloatArray) -> FloatArray:
    return np.multiply(ts, 1000.0)


def _line(trace: Trace, max_points: int) -> tuple[FloatArray, FloatArray]:
    """The series as one line: the stored means (the samples, when raw), then the live points."""
    ts = np.concatenate((trace.history.t, trace.ts))
    values = np.concatenate((trace.history.mean, trace.values))
    return downsample(ts, values, max_points)


def _band(figure: go.Figure, trace: Trace, name: str, group: str, color: str) -> None:
    """The min..max envelope of the stored buckets: an invisible upper edge, the lower one filled to it."""
    history = trace.history
    red, green, blue = hex_to_rgb(color)
    x = _ms(history.t)
    edge = {"width": 0, "color": color}
    common = {"legendgroup": group, "showlegend": False, "hoverinfo": "skip", "mode": "lines"}
    figure.add_trace(go.Scatter(x=x, y=history.max, name=f"{name} max", line=edge, **common))
    figure.add_trace(
        go.Scatter(
            x=x,
            y=history.min,
            name=f"{name} min",
            line=edge,
            fill="tonexty",
            fillcolor=f"rgba({red},{green},{blue},{BAND_OPACITY})",
            **common,
        )
    )


def build_figure(
    panel: Panel, *, max_points: int = DEFAULT_MAX_POINTS, revision: str | None = None, fixed: bool = False
) -> go.Figure:
    """``revision`` names what the user is looking at (the view): plotly keeps their legend clicks across
    redraws while it stays the same (default: the channel). ``fixed``: the x axis spans exactly the
    panel's range; otherwise (a window that slides with the clock) it fits the data, so a redraw with
    no new data sends the same figure and a drag across the chart is not cut short by a redraw."""
    figure = go.Figure()
    for index, trace in enumerate(panel.traces):
        color = PALETTE[index % len(PALETTE)]
        name = escape_plotly(trace.series)
        group = f"series-{index}"
        if trace.history.bucket and len(trace.history):
            _band(figure, trace, name, group, color)
        ts, values = _line(trace, max_points)
        figure.add_trace(
            go.Scatter(
                x=_ms(ts),
                y=values,
                name=name,
                legendgroup=group,
                mode="lines",
                line={"width": 1.5, "color": color},
            )
        )
    figure.update_layout(
        height=CHART_HEIGHT,
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0},
        hovermode="x unified",
        # A drag selects a time range (the page zooms into it by reading it again at full resolution).
        dragmode="select",
        selectdirection="h",
        # Keeps the user's legend clicks when the same chart is redrawn with new data.
        uirevision=revision or panel.channel,
    )
    figure.update_xaxes(type="date")
    if fixed:
        figure.update_xaxes(range=[panel.span.start * 1000.0, panel.span.end * 1000.0])
    return figure
