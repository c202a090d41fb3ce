"""A channel's stored history for the Live page: ``GET /api/channels/{channel}/range`` (docs/history.md),
read from the script thread and kept per session for a short while.

Obligations:

- **Off the redraw path.** A read is cached per ``(channel, view)`` for ``refresh`` seconds: the page
  redraws every second, the gateway is asked about once per ``refresh``. A failure is remembered for
  ``retry_after`` seconds, so a gateway that is down costs one timeout per channel per ``retry_after``,
  not one per redraw. The cache keeps at most ``MAX_ENTRIES`` reads (zooms add entries).
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
from pydantic import ValidationError

from dashboard.channel_buffer import ChannelBuffer, Clock
from dashboard.windows import TimeRange
from shared.api import ErrorBody, HistoryRange

DEFAULT_POINTS = 1500
"""Points per series asked for: about a wide chart's width in pixels (``PULSE_DASHBOARD_RANGE_POINTS``)."""
DEFAULT_REFRESH = 30.0
"""Seconds a read is used before it is read again (``PULSE_DASHBOARD_RANGE_REFRESH``)."""
RETRY_AFTER = 5.0
"""Seconds a failed read is remembered before it is tried again."""
TIMEOUT = 5.0
"""Seconds one read may take before it counts as failed."""
MAX_ENTRIES = 64
STORE_RESOLUTION = 1e-6
"""Seconds: the store keeps times in whole microseconds."""


@dataclass(frozen=True, slots=True)
class StoredRange:
    """One range read, and where the buffer's live points take over from it."""

    body: HistoryRange
    fetched_at: float
    cut: float
    """Buffer points after this time are newer than the stored ones: the live part."""
    exact: bool
    """``cut`` is the time of the stored position's own publication (not the end of the stored data)."""

    @classmethod
    def read_at(cls, body: HistoryRange, fetched_at: float, buffer: ChannelBuffer | None) -> "StoredRange":
        """``body`` as read at ``fetched_at``, its cut placed in ``buffer`` if it can be."""
        stored = cls(body, fetched_at, _data_end(body), exact=False)
        return stored if buffer is None else stored.placed_in(buffer)

    def placed_in(self, buffer: ChannelBuffer) -> "StoredRange":
        """With ``cut`` at the time of the stored position's publication, when ``buffer`` logged it."""
        position = self.body.position
        at = None if position is None else buffer.time_of(position)
        return self if at is None else replace(self, cut=at, exact=True)

    @property
    def empty(self) -> bool:
        return not any(series.t for series in self.body.series.values())


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
            return RangeFailure(f"HTTP {response.status_code}: {_detail(response)}", now)
        try:
            body = HistoryRange.model_validate_json(response.content)
        except ValidationError as exc:
            return RangeFailure(f"not a range: {exc.error_count()} errors", now)
        return StoredRange.read_at(body, now, buffer)


def _detail(response: httpx.Response) -> str:
    try:
        return ErrorBody.model_validate_json(response.content).detail
    except ValidationError:
        return response.text[:200]


def _data_end(body: HistoryRange) -> float:
    """The end of the stored data in ``body``: after its last sample, or its last bucket."""
    ends = [series.t[-1] + body.resolution.bucket for series in body.series.values() if series.t]
    # The store keeps whole microseconds: a sample's stored time and the buffer's copy of it (a float of
    # seconds) may differ by a fraction of one.
    return max(ends, default=-float("inf")) + STORE_RESOLUTION
