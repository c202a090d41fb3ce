"""One ``data:`` channel in memory: its series and bookkeeping. The consumer thread writes, the script reads.

Obligations:

- **Bounded.** Every series is a ``SeriesRing`` of ``max_points``, and a channel keeps at most
  ``max_series`` series: memory grows by one ring per new series, never per point. The worst case is
  ``max_series x max_points x 16`` bytes per channel, reached only as rings fill.
- **Age-bounded.** With ``max_age`` set, points older than ``clock() - max_age`` are not stored, are
  dropped from the head of the ring on append and on read, and are never returned.
- **Thread-safe.** Any thread may call any method. Writes are meant to come from one consumer thread and
  reads from the script thread: each ``ChannelBuffer`` has its own lock, so the data hot path never waits
  for chat, status or another channel. The lock is held only to copy data in or out; statistics and
  downsampling run on the copies, outside.
- **Duplicate-free.** Appends that carry ``(offset, epoch)`` are dropped when they are not above the last
  position seen in that epoch (docs/protocol.md §11, rule 6), so a resume never doubles a point.
- **Positions to times.** The newest ``PUBLICATION_LOG`` publications that carried an offset are logged
  with their point's time (16 bytes each, a fixed ring per channel): ``time_of`` turns the position a
  range read reports into the time where the stored history ends and this buffer's live part begins.

No Streamlit here: the consumer thread and benchmarks use this module as it is.
"""

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from dashboard.arrays import FloatArray, check_trace, empty_trace
from dashboard.positions import is_replay, stream_position
from dashboard.ring import SeriesRing
from dashboard.stats import DEFAULT_RATE_WINDOW, SeriesStats, series_stats
from shared.messages import StreamPosition

Clock = Callable[[], float]

DEFAULT_MAX_POINTS = 100_000
"""Points kept per series (``PULSE_DASHBOARD_MAX_POINTS``): 1.6 MB per series when full."""
PUBLICATION_LOG = 8192
"""Publications whose ``offset -> time`` a channel remembers (``time_of``): seconds of data at the usual
rates, enough to place a range read's position, which is at most a flush interval old."""
DEFAULT_MAX_SERIES = 64
"""Series kept per channel. The protocol allows 256 per point, but the names may change from point to
point: without a cap, a publisher could make the dashboard allocate rings without end."""


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """A consistent copy of one data channel's bookkeeping."""

    name: str
    position: StreamPosition | None
    """The last ``(offset, epoch)`` seen: what a resume subscribes with."""
    gap: bool
    gap_since: float | None
    latency: float | None
    """Seconds from the gateway's publish to our receipt, for the latest message that had both."""
    last_received_at: float | None
    messages: int
    """Messages accepted (duplicates excluded)."""
    duplicates: int
    points: int
    """Values stored, all series together, since the start."""
    dropped: int
    """Values refused: older than the age bound, older than a full ring, or beyond ``max_series``."""
    series: tuple[str, ...]


class ChannelBuffer:
    """The series of one ``data:`` channel and its bookkeeping, behind one short-held lock."""

    def __init__(
        self,
        name: str,
        *,
        max_points: int = DEFAULT_MAX_POINTS,
        max_age: float | None = None,
        max_series: int = DEFAULT_MAX_SERIES,
        rate_window: float = DEFAULT_RATE_WINDOW,
        clock: Clock = time.time,
    ) -> None:
        if max_points < 1:
            raise ValueError(f"max_points must be at least 1, got {max_points}")
        if max_age is not None and max_age <= 0:
            raise ValueError(f"max_age must be positive, got {max_age}")
        if rate_window <= 0:
            raise ValueError(f"rate_window must be positive, got {rate_window}")
        self.name = name
        self.max_points = max_points
        self.max_age = max_age
        self.max_series = max_series
        self.rate_window = rate_window
        self._clock = clock
        self._lock = threading.Lock()
        self._rings: dict[str, SeriesRing] = {}
        # Offset and epoch as two plain fields: no object to allocate per message.
        self._offset: int | None = None
        self._epoch: str | None = None
        # Keyed by offset, valued by the point's time; cleared when the epoch changes.
        self._published = SeriesRing(PUBLICATION_LOG)
        self._gap_since: float | None = None
        self._latency: float | None = None
        self._last_received_at: float | None = None
        self._messages = 0
        self._duplicates = 0
        self._points = 0
        self._dropped = 0

    # -- writes (the consumer thread) -------------------------------------------------------------

    def append(
        self,
        ts: float,
        values: Mapping[str, float],
        *,
        received_at: float | None = None,
        published_at: float | None = None,
        offset: int | None = None,
        epoch: str | None = None,
    ) -> bool:
        """Store one data point (``ts``: the point's own timestamp; ``values``: series to value).

        ``published_at`` is the envelope's ``ts`` (the gateway's clock at publish) and ``received_at`` the
        consumer's clock on receipt; their difference is the latency (``ts`` stands in when
        ``published_at`` is None). With ``offset`` and ``epoch``, a point at or below the last offset of
        the same epoch is a duplicate: it is not stored and the call returns False.
        """
        cutoff = self._cutoff()
        with self._lock:
            if offset is not None and epoch is not None:
                if is_replay(offset, epoch, self._offset, self._epoch):
                    self._duplicates += 1
                    return False
                if epoch != self._epoch:
                    self._published.clear()
                self._offset, self._epoch = offset, epoch
                self._published.append(float(offset), ts)
            self._messages += 1
            if received_at is not None:
                self._last_received_at = received_at
                self._latency = received_at - (ts if published_at is None else published_at)
            if cutoff is not None and ts < cutoff:
                self._dropped += len(values)
                return True
            rings = self._rings
            stored = 0
            for series, value in values.items():
                ring = rings.get(series)
                if ring is None:
                    ring = self._ring(series)
                if ring is not None and ring.append(ts, value):
                    stored += 1
                    if cutoff is not None:
                        ring.drop_before(cutoff)
            self._points += stored
            self._dropped += len(values) - stored
            return True

    def extend(self, series: str, ts: npt.ArrayLike, values: npt.ArrayLike) -> None:
        """Store many points of one series in one go (history backfill, benchmarks); any order."""
        ts_array = np.asarray(ts, dtype=np.float64)
        value_array = np.asarray(values, dtype=np.float64)
        check_trace(ts_array, value_array)
        total = len(ts_array)
        cutoff = self._cutoff()
        if cutoff is not None:
            keep = ts_array >= cutoff
            ts_array, value_array = ts_array[keep], value_array[keep]
        with self._lock:
            ring = self._ring(series)
            stored = 0 if ring is None else ring.extend(ts_array, value_array)
            if ring is not None and cutoff is not None:
                ring.drop_before(cutoff)
            self._points += stored
            self._dropped += total - stored

    def backfill(self, points: Iterable[tuple[float, Mapping[str, float]]]) -> None:
        """Store a page of older ``(ts, values)`` points, such as history fetched after a gap.

        After ``recovered: false`` the missing publications are the ones at or below the offset the socket
        already went past, so they bypass the duplicate check and leave the position alone. Each series
        is merged in one vectorised pass: appending them one by one would insert each late point
        separately, shifting the newer ones every time.
        """
        columns: dict[str, tuple[list[float], list[float]]] = {}
        for ts, values in points:
            for series, value in values.items():
                column = columns.get(series)
                if column is None:
                    column = columns[series] = ([], [])
                column[0].append(ts)
                column[1].append(value)
        for series, (ts_list, value_list) in columns.items():
            self.extend(series, ts_list, value_list)

    def set_position(self, offset: int, epoch: str) -> None:
        """Record the position a ``subscribed`` reply (or a history page) reached."""
        with self._lock:
            if epoch != self._epoch:
                self._published.clear()
            self._offset, self._epoch = offset, epoch

    def mark_gap(self, at: float | None = None) -> None:
        """The gateway answered ``recovered: false``: some points are missing until a backfill."""
        with self._lock:
            if self._gap_since is None:
                self._gap_since = self._clock() if at is None else at

    def clear_gap(self) -> None:
        with self._lock:
            self._gap_since = None

    def _ring(self, series: str) -> SeriesRing | None:
        # Called with the lock held. An empty ring is falsy (it has a length): test for None, never `or`.
        ring = self._rings.get(series)
        if ring is None and len(self._rings) < self.max_series:
            ring = self._rings[series] = SeriesRing(self.max_points)
        return ring

    def _cutoff(self) -> float | None:
        return None if self.max_age is None else self._clock() - self.max_age

    # -- reads (the script thread) ----------------------------------------------------------------

    @property
    def position(self) -> StreamPosition | None:
        with self._lock:
            offset, epoch = self._offset, self._epoch
        return stream_position(offset, epoch)

    def time_of(self, position: StreamPosition) -> float | None:
        """The time of the point published at ``position``, while it is among the newest
        ``PUBLICATION_LOG`` this buffer received in the current epoch; None otherwise."""
        with self._lock:
            if position.epoch != self._epoch:
                return None
            return self._published.value_at(float(position.offset))

    @property
    def gap(self) -> bool:
        return self._gap_since is not None

    def series_names(self) -> list[str]:
        """Series in first-seen order."""
        with self._lock:
            return list(self._rings)

    def snapshot(self, series: str, since_ts: float | None = None) -> tuple[FloatArray, FloatArray]:
        """Copies of ``(timestamps, values)`` from ``since_ts`` on (all retained when None), oldest first."""
        cutoff = self._cutoff()
        if cutoff is not None and (since_ts is None or since_ts < cutoff):
            since_ts = cutoff
        with self._lock:
            ring = self._rings.get(series)
            if ring is None:
                return empty_trace()
            if cutoff is not None:
                ring.drop_before(cutoff)
            return ring.window(since_ts)

    def stats(self, series: str, since_ts: float | None = None) -> SeriesStats:
        """``series_stats`` of the window: min and max over it, current value, recent rate."""
        ts, values = self.snapshot(series, since_ts)
        return series_stats(ts, values, now=self._clock(), rate_window=self.rate_window)

    @property
    def nbytes(self) -> int:
        """Bytes held by this channel's rings: grows by one ring per new series, never per point."""
        with self._lock:
            return sum(ring.nbytes for ring in self._rings.values())

    def retained(self, series: str) -> int:
        """Points of ``series`` held now."""
        with self._lock:
            ring = self._rings.get(series)
            return 0 if ring is None else len(ring)

    def info(self) -> ChannelInfo:
        with self._lock:
            offset, epoch = self._offset, self._epoch
            info = ChannelInfo(
                name=self.name,
                position=None,
                gap=self._gap_since is not None,
                gap_since=self._gap_since,
                latency=self._latency,
                last_received_at=self._last_received_at,
                messages=self._messages,
                duplicates=self._duplicates,
                points=self._points,
                dropped=self._dropped,
                series=tuple(self._rings),
            )
        # Built outside the lock: pydantic validation is the slowest part of this call.
        position = stream_position(offset, epoch)
        return info if position is None else replace(info, position=position)
