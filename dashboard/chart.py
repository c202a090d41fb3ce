"""A panel as a chart: dygraphs on a canvas, through a Streamlit v2 component (``static/pulse_chart.js``).

Why not ``st.plotly_chart``: a new tab had to load and evaluate plotly.js (4.7 MB) before its first chart,
about 2 s on the benchmark machine for a page holding one trivial chart; dygraphs is 131 KB, loaded once
per page from ``dashboard/static`` (Streamlit's static serving), and the same page paints in about 1 s
(docs/benchmarks.md). dygraphs draws a min..max band around each line natively ("custom bars"), which is
what stored buckets are.

Per series, the chart gets ``low``, ``mid`` and ``high`` on one shared time axis: the stored buckets' min,
mean and max (for raw samples and live points the band's edges are null: the line is the value), then the
live points, which are
reduced to at most ``max_points`` by min/max decimation (spikes survive) before they leave Python.
Series names go as they are: dygraphs escapes a label before its legend shows it (``pulse_chart.js`` keeps
that), and the Chromium tests check the legend shows publisher text as typed.

**Only new points travel.** A chart already drawn in the browser gets an *append*: the live points after
the last one it has (min/max-decimated to what its pixels can show of them), and the time before which
rows fall off a sliding window. A *full* drawing goes only when what the chart shows changed otherwise:
another view or series, a new stored range, or a browser that lost track (each message carries a
``version`` and an append the ``base`` it extends; a chart that does not have the base asks for a full
one with the ``resync`` trigger). ``ChartFeed`` keeps, per session, what each chart was sent.
"""

import hashlib
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, NotRequired, TypedDict

import numpy as np
import numpy.typing as npt
import streamlit as st

from dashboard.arrays import FloatArray
from dashboard.downsample import DEFAULT_MAX_POINTS, MIN_MAX_POINTS, minmax_indices
from dashboard.panel import Panel, Trace
from dashboard.ranges import History

CHART_HEIGHT = 320
PALETTE = (
    "#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a",
    "#19d3f3", "#ff6692", "#b6e880", "#ff97ff", "#fecb52",
)  # fmt: skip
"""Series colours, in order (plotly's default sequence, which the charts used before)."""
SCRIPT = Path(__file__).with_name("static") / "pulse_chart.js"
"""The chart's code, served by Streamlit's static serving (``app/static/pulse_chart.js``)."""
CHART_COMPONENT = "pulseboard_chart"
_LOADER = """export default async function (component) {
  const chart = await import(new URL("app/static/pulse_chart.js?v=%s", window.location.href).href);
  return chart.default(component);
}"""
"""What each chart message carries as its code: a component's ``js`` travels with every redraw, and the
chart's own 9 KB would be most of an append's bytes. The browser imports the module once per page (the
version in its URL makes a new release load the new code)."""


class ChartSeries(TypedDict):
    name: str
    color: str
    low: list[float | None]
    """The band's lower edge; null where it is the line itself (raw samples, live points)."""
    mid: list[float | None]
    """The line; null where the series has no point at that time."""
    high: list[float | None]


class ChartMarker(TypedDict):
    x: float
    """Milliseconds since the epoch."""
    level: str
    """A notification level (info, warning, error): the marker's colour."""
    color: str
    label: str
    """One character drawn on the marker."""
    text: str
    """Shown on hover, as text (dygraphs sets it as the marker's ``title``)."""


class ChartBand(TypedDict):
    low: float | None
    """From this value up (None: from the bottom) ..."""
    high: float | None
    """... to this one (None: to the top), the background takes ``color``."""
    color: str
    """``#rrggbb`` (the dashboard file's colours are validated)."""


class ChartStyle(TypedDict, total=False):
    """How values read on a chart: the dashboard file's unit, decimals and threshold bands."""

    unit: str
    """Written after each value in the legend (as text)."""
    decimals: int
    bands: list[ChartBand]


class ChartData(TypedDict):
    x: list[float]
    """Milliseconds since the epoch, increasing."""
    series: list[ChartSeries]
    range: list[float] | None
    """The x axis's fixed span in ms; None: it fits the data."""
    height: int
    version: NotRequired[int]
    """Counts the messages of one chart; absent: a one-off drawing."""
    base: NotRequired[int]
    """Present on an append: the version whose rows these extend."""
    keep_from: NotRequired[float | None]
    """Rows before this time (ms) are dropped: the start of a sliding window."""
    markers: NotRequired[list[ChartMarker]]
    style: NotRequired[ChartStyle]


def _columns(
    trace: Trace, max_points: int, after: float | None = None
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Time (s), low, mid and high of one series: the stored part as it is, then the live points; with
    ``after``, only the live points after that time (an append: the stored part is drawn already)."""
    history = trace.history
    ts, values = trace.ts, trace.values
    if after is not None:
        first = int(np.searchsorted(ts, after, "right"))
        ts, values, history = ts[first:], values[first:], History.empty()
    keep = minmax_indices(values, max(max_points - len(history), MIN_MAX_POINTS))
    live_t, live_v = ts[keep], values[keep]
    return (
        np.concatenate((history.t, live_t)),
        np.concatenate((history.min, live_v)),
        np.concatenate((history.mean, live_v)),
        np.concatenate((history.max, live_v)),
    )


def _listed(values: FloatArray) -> list[float | None]:
    """JSON has no NaN: a series without a point at that time gets null."""
    return [None if value != value else value for value in values.tolist()]


def _shared_axis(times: list[FloatArray]) -> tuple[FloatArray, list[npt.NDArray[np.intp]]]:
    """One time axis for all series, and where each series' points go on it.

    Points at the same time are kept, not merged (a batch published at once shares its time): the axis
    has as many rows for a time as the series with most points there, and a series' second point at
    that time goes on the second row."""
    occurrences = [np.arange(len(t)) - np.searchsorted(t, t, "left") for t in times]
    every_t = np.concatenate(times) if times else np.empty(0)
    every_occurrence = np.concatenate(occurrences) if times else np.empty(0, np.intp)
    order = np.lexsort((every_occurrence, every_t))
    sorted_t, sorted_occurrence = every_t[order], every_occurrence[order]
    new = np.ones(len(order), bool)
    new[1:] = (np.diff(sorted_t) != 0) | (np.diff(sorted_occurrence) != 0)
    axis = sorted_t[new]
    rows = [
        np.searchsorted(axis, t, "left") + occurrence
        for t, occurrence in zip(times, occurrences, strict=True)
    ]
    return axis, rows


def chart_data(
    panel: Panel,
    *,
    max_points: int = DEFAULT_MAX_POINTS,
    fixed: bool = False,
    traces: Sequence[Trace] | None = None,
    after: float | None = None,
) -> ChartData:
    """What the browser draws for ``panel`` (or for ``traces``, some of its series). ``fixed``: the x axis
    spans exactly the panel's range; otherwise (a window that slides with the clock) it fits the data.
    ``after``: only the live points after that time, for a chart that has the rest."""
    shown = panel.traces if traces is None else traces
    columns = []
    for trace in shown:
        t, low, mid, high = _columns(trace, max_points, after)
        order = np.argsort(t, kind="stable")
        columns.append((t[order], low[order], mid[order], high[order]))
    axis, rows = _shared_axis([column[0] for column in columns])
    series: list[ChartSeries] = []
    for trace, (_, low, mid, high), at in zip(shown, columns, rows, strict=True):
        placed = []
        for values in (np.where(low == mid, np.nan, low), mid, np.where(high == mid, np.nan, high)):
            column = np.full(len(axis), np.nan)
            column[at] = values
            placed.append(_listed(column))
        series.append(
            ChartSeries(
                name=trace.series,
                color=PALETTE[panel.series_index(trace.series) % len(PALETTE)],
                low=placed[0],
                mid=placed[1],
                high=placed[2],
            )
        )
    span = [panel.span.start * 1000.0, panel.span.end * 1000.0] if fixed else None
    return ChartData(x=(axis * 1000.0).tolist(), series=series, range=span, height=CHART_HEIGHT)


@dataclass(frozen=True, slots=True)
class _Sent:
    version: int
    drawing: Hashable
    """What a full drawing depends on besides new live points."""
    until: float
    """The newest live point's time the chart has (s); -inf when none."""
    markers: tuple[tuple[float, str], ...]
    rows: int
    """Rows sent since the last full drawing, that one's included (trimming not counted: an upper bound)."""


@dataclass
class ChartFeed:
    """What each chart of one session was sent, so the next message can be an append.

    Kept in the session's state; used by its script runs only, which never overlap."""

    max_points: int = DEFAULT_MAX_POINTS
    _sent: dict[str, _Sent] = field(default_factory=dict)

    def message(
        self,
        key: str,
        panel: Panel,
        traces: Sequence[Trace],
        *,
        fixed: bool,
        height: int = CHART_HEIGHT,
        markers: Sequence[ChartMarker] = (),
        style: ChartStyle | None = None,
    ) -> ChartData:
        """The next message for chart ``key`` showing ``traces`` of ``panel``: an append of the live
        points it lacks when it has everything else, otherwise a full drawing."""
        drawing = (panel.span if fixed else None, tuple(trace.series for trace in traces), panel.stored_key)
        until = max((float(trace.ts[-1]) for trace in traces if len(trace.ts)), default=-np.inf)
        sent = self._sent.get(key)
        if sent is None or sent.drawing != drawing:
            data = chart_data(panel, max_points=self.max_points, fixed=fixed, traces=traces)
            has_until = until
        else:
            # The new points get what room the chart has left, or at least the share of its pixels their
            # stretch of time takes: what a full drawing would keep of them.
            covered = max(until - max(sent.until, panel.span.start), 0.0) / panel.span.seconds
            budget = max(int(self.max_points * covered), self.max_points - sent.rows, MIN_MAX_POINTS)
            data = chart_data(panel, max_points=budget, fixed=fixed, traces=traces, after=sent.until)
            data["base"] = sent.version
            has_until = max(until, sent.until)
        marked = tuple((marker["x"], marker["text"]) for marker in markers)
        if sent is not None and "base" in data and not data["x"] and marked == sent.markers:
            version = sent.version  # nothing new: the chart has this version already
        else:
            version = 1 if sent is None else sent.version + 1
        rows = len(data["x"]) + (sent.rows if sent is not None and "base" in data else 0)
        self._sent[key] = _Sent(version, drawing, has_until, marked, rows)
        data["version"] = version
        data["height"] = height
        data["keep_from"] = None if fixed else panel.span.start * 1000.0
        data["markers"] = list(markers)
        data["style"] = style or ChartStyle()
        return data

    def forget(self, key: str) -> None:
        """The browser lost track of chart ``key``: its next message is a full drawing."""
        self._sent.pop(key, None)


@cache
def _component() -> Callable[..., Any]:
    return st.components.v2.component(
        CHART_COMPONENT,
        html="<div class='pulse-chart'><div class='pulse-plot'></div></div>",
        js=_LOADER % hashlib.blake2b(SCRIPT.read_bytes(), digest_size=6).hexdigest(),
        # In the page's DOM (not a shadow root), so dygraphs' stylesheet in the page's head applies.
        isolate_styles=False,
    )


def show_chart(
    data: ChartData,
    *,
    key: str,
    on_zoom: Callable[[], None],
    on_unzoom: Callable[[], None],
    on_resync: Callable[[], None] = lambda: None,
) -> None:
    """Mount (or update) the chart ``key``; a drag calls ``on_zoom`` (the range is then
    ``zoom_of(key)``), a double click ``on_unzoom``; a chart that got an append it cannot apply calls
    ``on_resync`` (``ChartFeed.forget``)."""
    _component()(
        data=data, key=key, on_zoom_change=on_zoom, on_unzoom_change=on_unzoom, on_resync_change=on_resync
    )


def zoom_of(key: str) -> tuple[float, float] | None:
    """The time range (Unix seconds) the user dragged across on chart ``key``, if that is what it sent."""
    state = st.session_state.get(key)
    try:
        first, last = state["zoom"]  # type: ignore[index]
        first, last = float(first) / 1000.0, float(last) / 1000.0
    except (KeyError, TypeError, ValueError):
        return None
    return (first, last) if last > first else None
