"""What ``st.metric`` shows for one series: count, current value, minimum, maximum and recent rate.

Pure functions of a snapshot's copies: they run outside every lock, from any thread.
"""

from dataclasses import dataclass

import numpy as np

from dashboard.arrays import FloatArray

DEFAULT_RATE_WINDOW = 5.0
"""Seconds over which ``SeriesStats.rate`` counts points."""


@dataclass(frozen=True, slots=True)
class SeriesStats:
    """What ``st.metric`` shows for one series over a window."""

    count: int
    """Points in the window."""
    current: float | None
    """The newest value in the window; None when the window is empty."""
    current_ts: float | None
    minimum: float | None
    maximum: float | None
    rate: float
    """Points per second over the last ``rate_window`` seconds before ``now``."""


def series_stats(
    ts: FloatArray, values: FloatArray, *, now: float, rate_window: float = DEFAULT_RATE_WINDOW
) -> SeriesStats:
    """Statistics of a chronological snapshot, so a script that charts a snapshot need not take another."""
    if len(ts) == 0:
        return SeriesStats(0, None, None, None, None, 0.0)
    recent = len(ts) - int(np.searchsorted(ts, now - rate_window, "right"))
    return SeriesStats(
        count=len(ts),
        current=float(values[-1]),
        current_ts=float(ts[-1]),
        minimum=float(values.min()),
        maximum=float(values.max()),
        rate=recent / rate_window,
    )
