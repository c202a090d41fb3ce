"""The time-series store seam: what the recorder writes and the range API reads.

A store keeps every sample of every ``data:`` publication (channel, series, time, value, and the
publication's offset and epoch) in tiers (``gateway.history.tiers``). It is used from worker threads,
never from the event loop: one writer thread (``write``, ``maintain``) and any number of readers
(``query``), each call on a connection of its own. Backends are chosen by URL in
``gateway.history.make_store``.

Obligations of every backend:
- a sample is stored once: a retried ``write`` of a publication already stored adds nothing;
- a ``write`` is atomic, and so is a ``query`` (one snapshot: the position it reports and the samples
  it returns agree);
- rollups are complete for every bucket the stored samples touch, the newest one included, once the
  ``write`` returns.
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from gateway.history.tiers import Tier
from shared.messages import StreamPosition

Int64s = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


class StoreError(Exception):
    """The store could not do it (the database is down, full or refused the statement)."""


@dataclass(slots=True)
class Layout:
    """Publications of one channel and epoch that carry the same series (in the same order), in columns."""

    channel: str
    epoch: str
    names: tuple[str, ...]
    offset: list[int] = field(default_factory=list)
    time: list[int] = field(default_factory=list)
    """Microseconds since the epoch, one per publication."""
    values: list[float] = field(default_factory=list)
    """``len(names)`` values per publication, flat."""

    @property
    def samples(self) -> int:
        return len(self.values)

    def since(self, horizon: int) -> "Layout":
        """The publications at or after ``horizon``."""
        width = len(self.names)
        kept = Layout(self.channel, self.epoch, self.names)
        for index, at in enumerate(self.time):
            if at >= horizon:
                kept.offset.append(self.offset[index])
                kept.time.append(at)
                kept.values += self.values[index * width : (index + 1) * width]
        return kept


@dataclass(slots=True)
class SampleBatch:
    """Publications to store, grouped by layout (channel, epoch and series names).

    A channel's points usually carry the same series, so the event loop's part of recording one is a
    dict lookup and three appends, and a store turns each layout into columns with a few vector
    operations (series ids resolved once per layout, not per sample) while holding the GIL briefly."""

    layouts: dict[tuple[str, str, tuple[str, ...]], Layout] = field(default_factory=dict)
    samples: int = 0

    def __len__(self) -> int:
        return self.samples

    def add(self, channel: str, epoch: str, offset: int, time: int, values: dict[str, float]) -> None:
        names = tuple(values)
        layout = self.layouts.get((channel, epoch, names))
        if layout is None:
            layout = self.layouts[channel, epoch, names] = Layout(channel, epoch, names)
        layout.offset.append(offset)
        layout.time.append(time)
        layout.values += values.values()
        self.samples += len(names)

    def times(self) -> Int64s:
        """Every publication's time (µs), layout by layout."""
        # One C-level conversion per layout, not a Python step per publication (the writer holds the GIL).
        columns = [np.asarray(layout.time, np.int64) for layout in self.layouts.values()]
        return np.concatenate(columns) if columns else np.empty(0, np.int64)

    def since(self, horizon: int) -> "SampleBatch":
        """The publications at or after ``horizon`` (µs)."""
        kept = SampleBatch()
        for key, layout in self.layouts.items():
            fresh = layout.since(horizon)
            if fresh.time:
                kept.layouts[key] = fresh
                kept.samples += fresh.samples
        return kept

    def spans(self) -> dict[str, tuple[int, int, int]]:
        """Per channel: the oldest and newest sample time and the number of samples."""
        found: dict[str, tuple[int, int, int]] = {}
        for layout in self.layouts.values():
            if not layout.time:
                continue
            first, last, count = found.get(layout.channel, (layout.time[0], layout.time[0], 0))
            found[layout.channel] = (
                min(first, *layout.time),
                max(last, *layout.time),
                count + layout.samples,
            )
        return found


@dataclass(frozen=True, slots=True)
class Buckets:
    """One series over a range: per bucket its start time, min, max, sum, count and last value."""

    time: Int64s
    min: Floats
    max: Floats
    sum: Floats
    count: Int64s
    last: Floats

    @property
    def mean(self) -> Floats:
        result: Floats = self.sum / np.maximum(self.count, 1)
        return result


@dataclass(frozen=True, slots=True)
class RangeResult:
    series: dict[str, Buckets]
    tier: Tier
    """The finest tier the result was read from (older parts may come from coarser ones)."""
    width: int
    """Output bucket width in microseconds; 0 when these are the raw samples themselves."""
    position: StreamPosition | None
    """The newest stored publication of the channel when the range was read (None: nothing stored)."""


@dataclass(frozen=True, slots=True)
class StoreStats:
    samples: dict[str, int]
    """Rows per tier."""
    bytes_on_disk: int | None


class HistoryStore(ABC):
    backend: str
    tiers: tuple[Tier, ...]

    @abstractmethod
    def open(self) -> None:
        """Connect and create what is missing; raises ``StoreError`` when the database cannot be reached."""

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def write(self, batch: SampleBatch) -> int:
        """Store the samples and bring every rollup they touch up to date, atomically; returns how many
        samples were new (a retry of stored ones adds none)."""

    @abstractmethod
    def maintain(self, now: int) -> None:
        """Drop what each tier's retention no longer keeps."""

    @abstractmethod
    def series_names(self, channel: str) -> list[str]:
        """Every series the store holds for ``channel``, sorted."""

    @abstractmethod
    def query(
        self, channel: str, series: list[str], start: int, end: int, points: int, now: int
    ) -> RangeResult:
        """``series`` of ``channel`` over ``[start, end)`` in at most about ``points`` buckets each."""

    @abstractmethod
    def stats(self) -> StoreStats: ...
