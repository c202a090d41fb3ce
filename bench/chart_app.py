"""The Streamlit app ``bench.chart_paths`` runs once per chart path: one live chart, nothing else.

``bench.chart_paths`` writes a two-line script per path into a temporary folder (``run("plotly")`` and so
on) and starts ``streamlit run`` on it. Every path draws the same data: 3 series of ``POINTS`` points at
``RATE`` points/s ending now (a function of the clock alone, so every session and every path shows the
same values), redrawn by a ``st.fragment(run_every=1)``; the window slides by ``RATE`` points a second, as
the Live page's does.

- ``plotly``: ``st.plotly_chart`` of a figure built as the Live page built it until 1ab1066 (one
  ``go.Scatter`` line per series, a date axis, ``uirevision`` kept).
- ``altair``: ``st.altair_chart`` of a Vega-Lite line chart (the data as one wide table, folded into
  series by Vega-Lite, so each point travels once).
- ``dygraphs``: the dashboard's own chart (``dashboard.chart``: ``chart_data``, ``show_chart``) fed the
  way the Live page feeds it: the points in a ``SessionBuffer``, taken as a ``Panel``. Its script is
  served from ``static/`` beside the generated app (Streamlit serves a script's ``static`` folder when
  ``server.enableStaticServing`` is on).
- ``uplot``: uPlot in a v2 component, when ``bench.chart_paths`` was given uPlot's script (``--uplot``);
  it sits in ``static/`` beside the app too.
"""

import time
from typing import Any

import numpy as np
import streamlit as st

from dashboard.arrays import FloatArray

POINTS = 3000
RATE = 10.0
"""Points per second: the window slides by this many points a second."""
SERIES = ("a", "b", "c")
HEIGHT = 320
CHANNEL = "data:bench"
PATHS = ("plotly", "altair", "dygraphs", "uplot")


def window(now: float) -> tuple[FloatArray, list[FloatArray]]:
    """The ``POINTS`` samples up to ``now``: times (Unix seconds) and one value array per series."""
    last = int(now * RATE)
    index = np.arange(last - POINTS + 1, last + 1, dtype=np.int64)
    ts = index / RATE
    values = []
    for number in range(len(SERIES)):
        noise = ((index * 2654435761 + number * 97) % 1000) / 100.0 - 5.0  # the same for every session
        values.append(50.0 + 20.0 * np.sin(index / (RATE * 60.0) + number) + noise)
    return ts, values


def draw_plotly(ts: FloatArray, values: list[FloatArray]) -> None:
    import plotly.graph_objects as go

    figure = go.Figure()
    for name, series in zip(SERIES, values, strict=True):
        figure.add_trace(go.Scatter(x=ts * 1000.0, y=series, name=name, mode="lines", line={"width": 1.5}))
    figure.update_layout(
        height=HEIGHT,
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0},
        hovermode="x unified",
        uirevision="chart",
    )
    figure.update_xaxes(type="date")
    st.plotly_chart(figure, key="chart", config={"displaylogo": False})


def draw_altair(ts: FloatArray, values: list[FloatArray]) -> None:
    import altair as alt
    import pandas as pd

    table = pd.DataFrame({"t": ts * 1000.0, **dict(zip(SERIES, values, strict=True))})
    chart = (
        alt.Chart(table)
        .transform_fold(list(SERIES), as_=["series", "value"])
        .mark_line(strokeWidth=1.5)
        .encode(x=alt.X("t:T", title=None), y=alt.Y("value:Q", title=None), color="series:N")
        .properties(height=HEIGHT)
    )
    st.altair_chart(chart, key="chart")


def draw_dygraphs(ts: FloatArray, values: list[FloatArray]) -> None:
    from dashboard.chart import chart_data, show_chart
    from dashboard.panel import take_panel
    from dashboard.session_buffer import SessionBuffer
    from dashboard.windows import TimeRange

    buffer = SessionBuffer(max_points=POINTS)
    channel = buffer.channel(CHANNEL)
    for name, series in zip(SERIES, values, strict=True):
        channel.extend(name, ts, series)
    now = float(ts[-1])
    panel = take_panel(buffer.find(CHANNEL), CHANNEL, None, TimeRange(float(ts[0]), now + 1.0), None, now)
    show_chart(chart_data(panel, max_points=POINTS), key="chart", on_zoom=_nothing, on_unzoom=_nothing)


def _nothing() -> None:
    pass


UPLOT_JS = """
// uPlot (static/uPlot.iife.min.js, static/uPlot.min.css) drawing {x: [s], series: [[...], ...]}: created
// on the first render, given new data with setData afterwards.
function load() {
  if (!window.benchUplot) {
    window.benchUplot = new Promise((resolve, reject) => {
      const styles = document.createElement("link");
      styles.rel = "stylesheet";
      styles.href = new URL("app/static/uPlot.min.css", window.location.href).href;
      document.head.appendChild(styles);
      const script = document.createElement("script");
      script.src = new URL("app/static/uPlot.iife.min.js", window.location.href).href;
      script.onload = () => resolve(window.uPlot);
      script.onerror = reject;
      document.head.appendChild(script);
    });
  }
  return window.benchUplot;
}

export default function (component) {
  const { data, parentElement } = component;
  const root = parentElement.querySelector(".bench-uplot");
  if (!root || !data) return;
  load().then((uPlot) => {
    const columns = [data.x, ...data.series];
    if (root.plot) {
      root.plot.setData(columns);
    } else {
      const colors = ["#636efa", "#ef553b", "#00cc96"];
      root.plot = new uPlot({
        width: Math.max(300, root.clientWidth || 1000),
        height: data.height,
        series: [
          {},
          ...data.names.map((name, i) => ({ label: name, stroke: colors[i % colors.length], width: 1.5 })),
        ],
      }, columns, root);
    }
    root.dataset.points = String(data.x.length);
  });
}
"""


def draw_uplot(ts: FloatArray, values: list[FloatArray]) -> None:
    component = _uplot_component()
    data = {
        "x": ts.tolist(),
        "series": [series.tolist() for series in values],
        "names": list(SERIES),
        "height": HEIGHT,
    }
    component(data=data, key="chart")


@st.cache_resource
def _uplot_component() -> Any:
    return st.components.v2.component(
        "bench_uplot", html="<div class='bench-uplot'></div>", js=UPLOT_JS, isolate_styles=False
    )


DRAW = {"plotly": draw_plotly, "altair": draw_altair, "dygraphs": draw_dygraphs, "uplot": draw_uplot}


def run(path: str) -> None:
    """The app for ``path`` (one of ``PATHS``)."""
    draw = DRAW[path]
    st.set_page_config(page_title=f"chart path: {path}", layout="wide")
    st.title(f"Chart path: {path}")

    @st.fragment(run_every=1.0)
    def live() -> None:
        ts, values = window(time.time())
        draw(ts, values)

    live()
