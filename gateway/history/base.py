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
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import compress

import numpy as np
import numpy.typing as npt

from gateway.history.tiers import Tier
from shared.messages import StreamPosition

Int64s = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


class StoreError(Exception):
    """The store could not do it (the database is down, full or refused the statement)."""


@dataclass(slots=True)
class SampleBatch:
    """Publications to store, in columns: one entry per publication, each with its series and values.

    Kept per publication rather than per sample: a channel's points usually carry the same series, so a
    store resolves series ids once per distinct ``(channel, names)`` rather than once per sample."""

    channel: list[str] = field(default_factory=list)
    epoch: list[str] = field(default_factory=list)
    offset: list[int] = field(default_factory=list)
    time: list[int] = field(default_factory=list)
    """Microseconds since the epoch."""
    names: list[tuple[str, ...]] = field(default_factory=list)
    values: list[tuple[float, ...]] = field(default_factory=list)
    samples: int = 0

    def __len__(self) -> int:
        return self.samples

    def add(self, channel: str, epoch: str, offset: int, time: int, values: dict[str, float]) -> None:
        self.channel.append(channel)
        self.epoch.append(epoch)
        self.offset.append(offset)
        self.time.append(time)
        self.names.append(tuple(values))
        self.values.append(tuple(values.values()))
        self.samples += len(values)

    def select(self, keep: Sequence[bool]) -> "SampleBatch":
        """The publications where ``keep`` is true."""
        names = list(compress(self.names, keep))
        return SampleBatch(
            channel=list(compress(self.channel, keep)),
            epoch=list(compress(self.epoch, keep)),
            offset=list(compress(self.offset, keep)),
            time=list(compress(self.time, keep)),
            names=names,
            values=list(compress(self.values, keep)),
            samples=sum(map(len, names)),
        )

    def spans(self) -> dict[str, tuple[int, int, int]]:
        """Per channel: the oldest and newest sample time and the number of samples."""
        found: dict[str, tuple[int, int, int]] = {}
        for channel, time, names in zip(self.channel, self.time, self.names, strict=True):
            first, last, count = found.get(channel, (time, time, 0))
            found[channel] = (min(first, time), max(last, time), count + len(names))
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
