"""What one chart panel shows: the visible window of a channel's selected series, copied out of the buffer.

A ``Panel`` is a plain value (arrays and numbers), so the Live page can keep one as the frozen view while
paused, and the figure, the metrics and the CSV export all read the same copy.
"""

from dataclasses import dataclass

from dashboard.arrays import FloatArray
from dashboard.channel_buffer import ChannelInfo
from dashboard.session_buffer import SessionBuffer
from dashboard.stats import SeriesStats, series_stats

WINDOWS: dict[str, float | None] = {"1 min": 60.0, "5 min": 300.0, "1 h": 3600.0, "All retained": None}
"""The time-window choices: label to seconds back from now (None: everything the buffer holds)."""
DEFAULT_WINDOW = "5 min"


@dataclass(frozen=True, slots=True)
class Trace:
    series: str
    ts: FloatArray
    values: FloatArray
    stats: SeriesStats


@dataclass(frozen=True, slots=True)
class Panel:
    channel: str
    info: ChannelInfo
    traces: tuple[Trace, ...]
    since: float | None
    """Start of the window (unix seconds), None for all retained."""
    taken_at: float

    @property
    def points(self) -> int:
        return sum(len(trace.ts) for trace in self.traces)

    @property
    def gap_visible(self) -> bool:
        """A gap was marked and it falls inside the window shown."""
        gap = self.info.gap_since
        return gap is not None and (self.since is None or gap >= self.since)


def take_panel(
    buffer: SessionBuffer, channel: str, series: list[str] | None, window: str, now: float
) -> Panel:
    """Copy ``channel``'s window out of ``buffer``; ``series`` None or empty means every series."""
    seconds = WINDOWS.get(window, WINDOWS[DEFAULT_WINDOW])
    since = None if seconds is None else now - seconds
    source = buffer.channel(channel)
    info = source.info()
    names = [name for name in info.series if not series or name in series]
    traces = []
    for name in names:
        ts, values = source.snapshot(name, since)
        stats = series_stats(ts, values, now=now, rate_window=source.rate_window)
        traces.append(Trace(name, ts, values, stats))
    return Panel(channel, info, tuple(traces), since, now)
