"""One series in memory: the newest points of a trace in two preallocated rings, sorted by time.

Obligations:

- **Bounded.** A ring is two preallocated float64 arrays (timestamps, values) of ``capacity``: 16 bytes a
  point, fixed at construction. Once full, appends overwrite it in place: memory stays flat over a long
  session and no per-point Python object is kept (``np.empty`` leaves untouched pages unallocated, so a
  ring costs its full size only as it fills).
- **Time-ordered.** A ring holds its points sorted by timestamp: a late point (a publisher's own clock, a
  history backfill after a gap) is inserted where it belongs, so every read is chronological and
  windows are found by binary search.
- **Not thread-safe.** The owner (``ChannelBuffer``) locks around every call. Reads return copies, so the
  owner can release its lock before working on them.
"""

from typing import Literal

import numpy as np

from dashboard.arrays import FloatArray


class SeriesRing:
    """The newest ``capacity`` points of one series, sorted by timestamp.

    Not thread-safe: the ``ChannelBuffer`` that owns it locks around every call.
    """

    __slots__ = ("_last", "_size", "_start", "_ts", "_values", "capacity")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._ts: FloatArray = np.empty(capacity, dtype=np.float64)
        self._values: FloatArray = np.empty(capacity, dtype=np.float64)
        self._start = 0
        self._size = 0
        # The newest timestamp as a Python float: the in-order test on every append then costs no numpy
        # scalar read. Only appends and extends can raise it; trimming to empty resets it.
        self._last = -np.inf

    def __len__(self) -> int:
        return self._size

    @property
    def nbytes(self) -> int:
        """Bytes held by the two rings: fixed at construction."""
        return self._ts.nbytes + self._values.nbytes

    def append(self, ts: float, value: float) -> bool:
        """Store one point; False if the ring is full and the point is older than all it holds."""
        if ts >= self._last:
            cap = self.capacity
            end = self._start + self._size
            if end >= cap:
                end -= cap
            self._ts[end] = ts
            self._values[end] = value
            self._last = ts
            if self._size == cap:
                self._start = end + 1 if end + 1 < cap else 0
            else:
                self._size += 1
            return True
        return self._insert(ts, value)

    def _insert(self, ts: float, value: float) -> bool:
        # A late point: shift the newer ones up by one. Late points are rare and usually only slightly
        # late, so the cost (proportional to how many points are newer) stays small.
        pos = self._search(ts, "right")
        if self._size == self.capacity:
            if pos == 0:
                return False
            # Evict the oldest first; the point then lands one place lower.
            self._start = (self._start + 1) % self.capacity
            self._size -= 1
            pos -= 1
        src = (self._start + np.arange(pos, self._size)) % self.capacity
        dst = (src + 1) % self.capacity
        # Fancy indexing copies the right-hand side before assigning, so the overlap is harmless.
        self._ts[dst] = self._ts[src]
        self._values[dst] = self._values[src]
        at = (self._start + pos) % self.capacity
        self._ts[at] = ts
        self._values[at] = value
        self._size += 1
        return True

    def extend(self, ts: FloatArray, values: FloatArray) -> int:
        """Store many points at once (vectorised); return how many of them the ring kept.

        The ring ends up with the newest ``capacity`` points of old and new together.
        """
        count = len(ts)
        if count == 0:
            return 0
        in_order = ts[0] >= self._last and (count == 1 or bool(np.all(ts[1:] >= ts[:-1])))
        if not in_order:
            return self._merge(ts, values)
        cap = self.capacity
        if count > cap:
            ts, values, count = ts[-cap:], values[-cap:], cap
        end = (self._start + self._size) % cap
        first = min(count, cap - end)
        self._ts[end : end + first] = ts[:first]
        self._values[end : end + first] = values[:first]
        self._ts[: count - first] = ts[first:]
        self._values[: count - first] = values[first:]
        overflow = self._size + count - cap
        if overflow > 0:
            self._start = (self._start + overflow) % cap
            self._size = cap
        else:
            self._size += count
        self._last = float(ts[-1])
        return count

    def _merge(self, ts: FloatArray, values: FloatArray) -> int:
        # Out-of-order batch (a backfill): sort old and new together once. Stable, so equal timestamps
        # keep arrival order, as single appends do.
        old = self._size
        all_ts = np.concatenate((self._copy(self._ts, 0), ts))
        all_values = np.concatenate((self._copy(self._values, 0), values))
        order = np.argsort(all_ts, kind="stable")[-self.capacity :]
        size = len(order)
        self._ts[:size] = all_ts[order]
        self._values[:size] = all_values[order]
        self._start = 0
        self._size = size
        self._last = float(self._ts[size - 1])
        return int(np.count_nonzero(order >= old))

    def drop_before(self, cutoff: float) -> int:
        """Drop the points older than ``cutoff``; return how many."""
        if self._size == 0 or self._ts[self._start] >= cutoff:
            return 0
        count = self._search(cutoff, "left")
        self._start = (self._start + count) % self.capacity
        self._size -= count
        if self._size == 0:
            self._last = -np.inf
        return count

    def clear(self) -> None:
        """Forget every point; the arrays stay allocated."""
        self._start = 0
        self._size = 0
        self._last = -np.inf

    def value_at(self, ts: float) -> float | None:
        """The value of the newest point stored at exactly ``ts``; None when there is none."""
        after = self._search(ts, "right")
        if after == 0:
            return None
        at = (self._start + after - 1) % self.capacity
        return float(self._values[at]) if self._ts[at] == ts else None

    def window(self, since: float | None = None) -> tuple[FloatArray, FloatArray]:
        """Copies of the points at or after ``since`` (all when None), oldest first."""
        first = 0 if since is None else self._search(since, "left")
        return self._copy(self._ts, first), self._copy(self._values, first)

    def _segments(self) -> tuple[FloatArray, FloatArray]:
        # The timestamps in logical order, as two views: the older part up to the end of the array and
        # the part that wrapped round to its start (empty when nothing wrapped).
        end = self._start + self._size
        if end <= self.capacity:
            return self._ts[self._start : end], self._ts[:0]
        return self._ts[self._start :], self._ts[: end - self.capacity]

    def _search(self, ts: float, side: Literal["left", "right"]) -> int:
        # Both segments are sorted and every timestamp of the first is <= every one of the second, so the
        # logical insertion point is the sum of the two.
        older, wrapped = self._segments()
        return int(np.searchsorted(older, ts, side)) + int(np.searchsorted(wrapped, ts, side))

    def _copy(self, array: FloatArray, first: int) -> FloatArray:
        begin = self._start + first
        end = self._start + self._size
        cap = self.capacity
        if end <= cap:
            return array[begin:end].copy()
        if begin >= cap:
            return array[begin - cap : end - cap].copy()
        return np.concatenate((array[begin:], array[: end - cap]))
