"""What one chart panel shows: a channel's stored history over the view, joined to the live points of the
session's buffer.

For each series: the range read's buckets (min..max envelope and mean, or the raw samples), then the
buffer's points newer than the read's ``cut`` (``dashboard.ranges``): the same line going on live.

A ``Panel`` is a plain value (arrays and numbers), so the Live page can keep one as the frozen view while
paused, and the figure, the metrics and the CSV export all read the same copy.
"""

from dataclasses import dataclass

import numpy as np

from dashboard.arrays import FloatArray, empty_trace
from dashboard.channel_buffer import ChannelBuffer, ChannelInfo
from dashboard.ranges import History, RangeFailure, StoredRange
from dashboard.stats import DEFAULT_RATE_WINDOW, SeriesStats, series_stats
from dashboard.windows import TimeRange

_EMPTY_INFO = ChannelInfo("", None, False, None, None, None, 0, 0, 0, 0, ())


@dataclass(frozen=True, slots=True)
class Trace:
    series: str
    history: History
    ts: FloatArray
    """The live part: the buffer's points after the stored ones."""
    values: FloatArray
    stats: SeriesStats

    @property
    def points(self) -> int:
        return len(self.history) + len(self.ts)


@dataclass(frozen=True, slots=True)
class Panel:
    channel: str
    info: ChannelInfo
    traces: tuple[Trace, ...]
    known_series: tuple[str, ...]
    """Every series of the channel, stored or live, shown or not: what the series picker offers."""
    span: TimeRange
    """The range shown."""
    resolution: str
    """What the chart shows, in words: "1 min buckets from the 1m tier, then live samples"."""
    problem: str | None
    """Why the stored history is missing (the gateway's words), None when it was read."""
    taken_at: float
    stored_key: tuple[float, float] | None = None
    """Names the stored range read (when it was read, where live takes over): a new one redraws."""

    @property
    def points(self) -> int:
        return sum(trace.points for trace in self.traces)

    def series_index(self, series: str) -> int:
        """The series' place among the channel's: its colour, whichever of them a chart shows."""
        try:
            return self.known_series.index(series)
        except ValueError:
            return len(self.known_series)

    @property
    def empty(self) -> bool:
        return self.points == 0

    @property
    def gap_visible(self) -> bool:
        """A gap was marked and it falls inside the range shown."""
        gap = self.info.gap_since
        return gap is not None and self.span.start <= gap


def take_panel(
    source: ChannelBuffer | None,
    channel: str,
    series: list[str] | None,
    span: TimeRange,
    stored: StoredRange | RangeFailure | None,
    now: float,
    *,
    live_until: float | None = None,
) -> Panel:
    """``channel`` over ``span``: the stored range (when ``stored`` is one) and then the buffer's points
    after its cut, up to ``live_until`` (None: no bound, for a window that ends now). ``series`` None or
    empty means every series."""
    info = source.info() if source is not None else _EMPTY_INFO
    kept = stored.series if isinstance(stored, StoredRange) else {}
    cut = stored.cut if isinstance(stored, StoredRange) else -np.inf
    # The buffer's order (as published) first: the stored range lists series by name, and whether a
    # series is stored yet must not reorder the table or change its colour from one redraw to the next.
    known = dict.fromkeys([*info.series, *kept])
    names = [name for name in known if not series or name in series]
    rate_window = source.rate_window if source is not None else DEFAULT_RATE_WINDOW
    traces = []
    for name in names:
        found = kept.get(name)
        history = History.empty() if found is None else found.within(span)
        ts, values = _live(source, name, span, cut, live_until)
        stats = _stats(history, ts, values, now, rate_window)
        traces.append(Trace(name, history, ts, values, stats))
    problem = stored.reason if isinstance(stored, RangeFailure) else None
    resolution = describe_resolution(
        stored, any(len(trace.history) for trace in traces), any(len(trace.ts) for trace in traces)
    )
    stored_key = (stored.fetched_at, stored.cut) if isinstance(stored, StoredRange) else None
    return Panel(channel, info, tuple(traces), tuple(known), span, resolution, problem, now, stored_key)


def _live(
    source: ChannelBuffer | None, series: str, span: TimeRange, cut: float, live_until: float | None
) -> tuple[FloatArray, FloatArray]:
    if source is None:
        return empty_trace()
    ts, values = source.snapshot(series, max(span.start, cut))
    first = int(np.searchsorted(ts, cut, "right"))
    last = len(ts) if live_until is None else int(np.searchsorted(ts, live_until, "left"))
    return ts[first:last], values[first:last]


def _stats(
    history: History, ts: FloatArray, values: FloatArray, now: float, rate_window: float
) -> SeriesStats:
    """The live part's statistics, widened by the stored part: count, min and max over both."""
    live = series_stats(ts, values, now=now, rate_window=rate_window)
    if not len(history):
        return live
    low, high = float(history.min.min()), float(history.max.max())
    return SeriesStats(
        count=live.count + int(history.count.sum()),
        current=live.current if live.current is not None else float(history.last[-1]),
        current_ts=live.current_ts if live.current_ts is not None else float(history.t[-1]),
        minimum=low if live.minimum is None else min(low, live.minimum),
        maximum=high if live.maximum is None else max(high, live.maximum),
        rate=live.rate,
    )


def describe_resolution(stored: StoredRange | RangeFailure | None, history: bool, live: bool) -> str:
    """The panel's resolution in words: which tier and bucket the stored part is, and whether live
    samples follow."""
    parts = []
    if isinstance(stored, StoredRange) and history:
        resolution = stored.resolution
        if resolution.bucket:
            parts.append(f"{seconds_text(resolution.bucket)} buckets from the {resolution.tier} tier")
        else:
            parts.append("raw samples")
    if live:
        parts.append("then live samples" if parts else "live samples")
    return ", ".join(parts) or "no data in this range"


def seconds_text(seconds: float) -> str:
    """A bucket width for people: ``0.2 s``, ``1 s``, ``2 min``, ``1 h``, ``1.5 d``."""
    for unit, size in (("d", 86_400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:.3g} s"
