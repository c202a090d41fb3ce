"""A channel's stored history for the Live page: ``GET /api/channels/{channel}/range`` (docs/history.md),
read from the script thread and kept per session for a short while.

Obligations:

- **Off the redraw path.** A read is cached per ``(channel, view)`` for ``refresh`` seconds: the page
  redraws every second, the gateway is asked about once per ``refresh``. A failure is remembered for
  ``retry_after`` seconds, so a gateway that is down costs one timeout per channel per ``retry_after``,
  not one per redraw. The cache keeps at most ``MAX_ENTRIES`` reads, as numpy arrays.
- **Re-read when the live side says so.** An entry is read again early when the channel's epoch changed
  (the gateway restarted) or a gap was marked or cleared since it was read.
- **Stitched at the stored position.** Each read notes ``cut``: the time of the newest publication the
  store held (``position``), looked up in the session's buffer. The buffer's points after ``cut`` are
  the live part; those up to it are in the read. No gap and no duplicate, whatever the resolution.
  While the buffer has not seen that publication (it arrives a moment later, or it is from an older
  epoch), ``cut`` is the end of the stored data instead, and the lookup is tried again on each use.
- **Per session, script thread only.** One ``RangeReader`` per session (``dashboard.session``), used
  only by that session's script runs, which never overlap: no lock. It owns one ``httpx.Client``.

No Streamlit here.
"""

import time
from dataclasses import dataclass, replace

import httpx
import numpy as np
from pydantic import ValidationError

from dashboard.arrays import FloatArray, empty_trace
from dashboard.channel_buffer import ChannelBuffer, Clock
from dashboard.windows import TimeRange
from pulseboard.gateway_api import error_detail
from shared.api import HistoryRange, RangeResolution, SeriesRange
from shared.messages import StreamPosition

DEFAULT_POINTS = 1500
"""Points per series asked for: about a wide chart's width in pixels (``PULSE_DASHBOARD_RANGE_POINTS``)."""
DEFAULT_REFRESH = 30.0
"""Seconds a read is used before it is read again (``PULSE_DASHBOARD_RANGE_REFRESH``)."""
RETRY_AFTER = 5.0
"""Seconds a failed read is remembered before it is tried again."""
TIMEOUT = 5.0
"""Seconds one read may take before it counts as failed."""
MAX_ENTRIES = 512
"""Reads a session keeps (least recently used dropped first): more than the channels one page shows
(a connection subscribes to at most 128), so a page of many charts never reads them all again on each
redraw. A read is at most ``points`` x 6 x 8 bytes per series."""
STORE_RESOLUTION = 1e-6
"""Seconds: the store keeps times in whole microseconds."""


@dataclass(frozen=True, slots=True)
class History:
    """One series' stored part: per point its time and min, max, mean, last value and sample count, as
    numpy arrays (a read's JSON lists of Python floats would take four times the memory).

    With ``bucket`` 0 the points are raw samples (min = max = mean = last = the value); otherwise each
    is a bucket of ``bucket`` seconds starting at its time.
    """

    t: FloatArray
    min: FloatArray
    max: FloatArray
    mean: FloatArray
    last: FloatArray
    count: FloatArray
    bucket: float

    @classmethod
    def empty(cls) -> "History":
        nothing, _ = empty_trace()
        return cls(nothing, nothing, nothing, nothing, nothing, nothing, 0.0)

    @classmethod
    def of(cls, series: SeriesRange, bucket: float) -> "History":
        columns = (series.t, series.min, series.max, series.mean, series.last, series.count)
        t, low, high, mean, last, count = (np.asarray(column, dtype=np.float64) for column in columns)
        return cls(t, low, high, mean, last, count, bucket)

    def within(self, span: TimeRange) -> "History":
        """The points that fall in ``span`` (a bucket counts if it overlaps it)."""
        t = self.t
        first = int(np.searchsorted(t, span.start - self.bucket, "right" if self.bucket else "left"))
        last = int(np.searchsorted(t, span.end, "left"))
        if first == 0 and last == len(t):
            return self
        part = slice(first, last)
        return History(
            t[part],
            self.min[part],
            self.max[part],
            self.mean[part],
            self.last[part],
            self.count[part],
            self.bucket,
        )

    def __len__(self) -> int:
        return len(self.t)


@dataclass(frozen=True, slots=True)
class StoredRange:
    """One range read, and where the buffer's live points take over from it."""

    resolution: RangeResolution
    position: StreamPosition | None
    """The newest stored publication when the range was read."""
    series: dict[str, History]
    fetched_at: float
    cut: float
    """Buffer points after this time are newer than the stored ones: the live part."""
    exact: bool
    """``cut`` is the time of the stored position's own publication (not the end of the stored data)."""

    @classmethod
    def read_at(cls, body: HistoryRange, fetched_at: float, buffer: ChannelBuffer | None) -> "StoredRange":
        """``body`` as read at ``fetched_at``, its cut placed in ``buffer`` if it can be."""
        bucket = body.resolution.bucket
        series = {name: History.of(values, bucket) for name, values in body.series.items()}
        ends = [history.t[-1] + bucket for history in series.values() if len(history)]
        # The store keeps whole microseconds: a sample's stored time and the buffer's copy of it (a float
        # of seconds) may differ by a fraction of one.
        end = max(ends, default=-np.inf) + STORE_RESOLUTION
        stored = cls(body.resolution, body.position, series, fetched_at, end, exact=False)
        return stored if buffer is None else stored.placed_in(buffer)

    def placed_in(self, buffer: ChannelBuffer) -> "StoredRange":
        """With ``cut`` at the time of the stored position's publication, when ``buffer`` logged it."""
        at = None if self.position is None else buffer.time_of(self.position)
        return self if at is None else replace(self, cut=at, exact=True)

    @property
    def empty(self) -> bool:
        return not any(len(history) for history in self.series.values())


@dataclass(frozen=True, slots=True)
class RangeFailure:
    """A read that did not give a range; ``reason`` is the gateway's text (publisher text may be in it)."""

    reason: str
    fetched_at: float


@dataclass(frozen=True, slots=True)
class _Entry:
    result: StoredRange | RangeFailure
    epoch: str | None
    gap_since: float | None


class RangeReader:
    """Range reads of one session, cached; see the module docstring."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        points: int = DEFAULT_POINTS,
        refresh: float = DEFAULT_REFRESH,
        retry_after: float = RETRY_AFTER,
        timeout: float = TIMEOUT,
        clock: Clock = time.time,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=base_url, headers=headers, timeout=httpx.Timeout(timeout), trust_env=False
        )
        self.points = points
        self.refresh = refresh
        self.retry_after = retry_after
        self._clock = clock
        self._entries: dict[tuple[str, str], _Entry] = {}
        self.reads = 0
        """HTTP reads made (cache misses): for tests and the operator."""

    def close(self) -> None:
        self._http.close()

    def read(
        self, channel: str, view_key: str, span: TimeRange, buffer: ChannelBuffer | None
    ) -> StoredRange | RangeFailure:
        """The stored range of ``channel`` over ``span`` (cached under ``view_key``), or why not."""
        now = self._clock()
        info = buffer.info() if buffer is not None else None
        epoch = info.position.epoch if info is not None and info.position is not None else None
        gap_since = info.gap_since if info is not None else None
        key = (channel, view_key)
        entry = self._entries.get(key)
        if entry is not None and self._fresh(entry, now, epoch, gap_since):
            self._entries[key] = self._entries.pop(key)  # the most recently used last
            result = entry.result
            if isinstance(result, StoredRange) and not result.exact and buffer is not None:
                result = result.placed_in(buffer)
                if result.exact:
                    self._entries[key] = replace(entry, result=result)
            return result
        result = self._fetch(channel, span, buffer, now)
        self._entries.pop(key, None)
        self._entries[key] = _Entry(result, epoch, gap_since)
        while len(self._entries) > MAX_ENTRIES:
            del self._entries[next(iter(self._entries))]
        return result

    def forget(self) -> None:
        """Drop every cached read: the next ``read`` of each asks the gateway."""
        self._entries.clear()

    def _fresh(self, entry: _Entry, now: float, epoch: str | None, gap_since: float | None) -> bool:
        ttl = self.refresh if isinstance(entry.result, StoredRange) else self.retry_after
        return now - entry.result.fetched_at < ttl and entry.epoch == epoch and entry.gap_since == gap_since

    def _fetch(
        self, channel: str, span: TimeRange, buffer: ChannelBuffer | None, now: float
    ) -> StoredRange | RangeFailure:
        self.reads += 1
        params: dict[str, str | int | float] = {"start": span.start, "end": span.end, "points": self.points}
        try:
            response = self._http.get(f"/api/channels/{channel}/range", params=params)
        except httpx.HTTPError as exc:
            return RangeFailure(f"the gateway did not answer ({type(exc).__name__}: {exc})", now)
        if response.status_code != 200:
            return RangeFailure(f"HTTP {response.status_code}: {error_detail(response)}", now)
        try:
            body = HistoryRange.model_validate_json(response.content)
        except ValidationError as exc:
            return RangeFailure(f"not a range: {exc.error_count()} errors", now)
        return StoredRange.read_at(body, now, buffer)
