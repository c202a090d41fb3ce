"""The recorder: hands every accepted ``data:`` publication to the history store, off the event loop.

``record`` runs on the event loop for each publish and only appends to a list. A writer thread takes what
has gathered every ``flush_interval`` seconds, turns it into columns and writes it in one transaction,
and runs the retention now and then. Publishing never waits for the store:

- a store that is slow or down makes the pending list grow up to ``max_pending`` samples; the writer
  retries the same batch (a retry stores nothing twice) and catches up when the store is back;
- past ``max_pending`` the oldest pending batches (a flush interval's worth each) are dropped, counted,
  and remembered as holes (per channel, the time span lost), which ``/readyz`` reports;
- samples older than the raw tier's retention are not stored (counted as ``too_old``): their rollups could
  no longer be computed exactly.

The writer thread runs at a niceness of its own (``PULSE_HISTORY_WRITER_NICE``, 19 by default): on a
core the event loop keeps busy, the kernel then gives the writer only what fan-out leaves idle. Measured
at full speed on one core (docs/benchmarks.md), this is what keeps subscribers' latency where it is with
the store off; the writes are late instead, and the pending bound above limits how late.

After ``kill -9`` what was pending is lost: at most ``flush_interval`` seconds of samples, which the broker
still has if it outlived the gateway (Redis).
"""

import asyncio
import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.history.base import HistoryStore, RangeResult, SampleBatch, StoreError
from gateway.history.tiers import MICROS
from shared.channels import Namespace

log = logging.getLogger(__name__)
DATA_PREFIX = f"{Namespace.DATA}:"
MAINTAIN_SECONDS = 60.0
"""How often the retention runs."""
RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0)
"""Waits between attempts while the store fails (the last one repeats)."""


@dataclass
class Hole:
    """Samples of a channel that were dropped before they could be stored."""

    channel: str
    first: float
    last: float
    samples: int


@dataclass
class RecorderStats:
    stored: int = 0
    dropped: int = 0
    """Samples dropped because the pending list was full (the store was down or too slow)."""
    too_old: int = 0
    failures: int = 0
    holes: dict[str, Hole] = field(default_factory=dict)
    error: str = ""
    """The store's last error while it is failing; empty when the last write worked."""


class Recorder:
    def __init__(
        self, store: HistoryStore, *, flush_interval: float, max_pending: int, nice: int = 0
    ) -> None:
        self.store = store
        self.flush_interval = flush_interval
        self.max_pending = max_pending
        self.nice = nice
        self.stats = RecorderStats()
        # The event loop adds to ``_filling``; the writer seals it into ``_sealed`` (oldest first) and
        # writes those one by one, so the loop's part is a few appends per publication and the writer
        # gets columns ready for numpy.
        self._filling = SampleBatch()
        self._sealed: deque[SampleBatch] = deque()
        self._writing: SampleBatch | None = None
        self._pending_samples = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._opened = False

    # --- event loop side ------------------------------------------------------------------------

    def record(self, channel: str, epoch: str, first_offset: int, payloads: Sequence[dict[str, Any]]) -> None:
        """Queue the samples of publications a broker just accepted (``data:`` channels only)."""
        if not channel.startswith(DATA_PREFIX):
            return
        with self._lock:
            batch = self._filling
            before = batch.samples
            for index, payload in enumerate(payloads):
                batch.add(
                    channel, epoch, first_offset + index, round(payload["ts"] * MICROS), payload["values"]
                )
            self._pending_samples += batch.samples - before
            if self._pending_samples > self.max_pending:
                self._drop_oldest()

    def _drop_oldest(self) -> None:
        """Drop whole pending batches, oldest first (never the one being written), until within bounds."""
        while self._pending_samples > self.max_pending:
            droppable = [batch for batch in self._sealed if batch is not self._writing]
            oldest = droppable[0] if droppable else self._filling
            if oldest is self._filling:
                self._filling = SampleBatch()
            else:
                self._sealed.remove(oldest)
            self._pending_samples -= oldest.samples
            self.stats.dropped += oldest.samples
            for channel, (first, last, count) in oldest.spans().items():
                first_s, last_s = first / MICROS, last / MICROS
                hole = self.stats.holes.get(channel)
                if hole is None:
                    self.stats.holes[channel] = Hole(channel, first_s, last_s, count)
                else:
                    hole.first, hole.last = min(hole.first, first_s), max(hole.last, last_s)
                    hole.samples += count
            if oldest.samples == 0:
                return

    async def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="history-writer", daemon=True)
        self._thread.start()

    async def close(self) -> None:
        """Write what is pending (one last try) and stop the writer."""
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
        await asyncio.to_thread(self.store.close)

    async def query(
        self, channel: str, series: list[str] | None, start: float, end: float, points: int
    ) -> tuple[list[str], RangeResult]:
        """The known series of ``channel`` and the range of ``series`` (all when None), in a worker thread."""
        return await asyncio.to_thread(self._query, channel, series, start, end, points)

    def _query(
        self, channel: str, series: list[str] | None, start: float, end: float, points: int
    ) -> tuple[list[str], RangeResult]:
        known = self.store.series_names(channel)
        wanted = known if series is None else series
        now = round(time.time() * MICROS)
        return known, self.store.query(
            channel, wanted, round(start * MICROS), round(end * MICROS), points, now
        )

    @property
    def ok(self) -> bool:
        return self._opened and not self.stats.error

    @property
    def pending(self) -> int:
        return self._pending_samples

    # --- writer thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        self._lower_priority()
        failures = 0
        next_maintenance = 0.0
        stopping = False
        while True:
            try:
                if not self._opened:
                    self.store.open()
                    self._opened = True
                    log.info("history store %s ready", self.store.backend)
                self._flush()
                if time.monotonic() >= next_maintenance:
                    self.store.maintain(round(time.time() * MICROS))
                    next_maintenance = time.monotonic() + MAINTAIN_SECONDS
                if failures:
                    log.warning("history store %s is back; pending samples written", self.store.backend)
                failures = 0
                self.stats.error = ""
            except StoreError as exc:
                failures += 1
                self.stats.failures += 1
                if not self.stats.error:
                    log.error("history store failing, samples kept pending: %s", exc)
                self.stats.error = str(exc) or type(exc).__name__
            if stopping:
                return
            stopping = self._stop.wait(self.flush_interval if failures == 0 else self._backoff(failures))

    def _lower_priority(self) -> None:
        """Give this thread (only: on Linux a thread id names one thread) the configured niceness.

        Elsewhere ``setpriority`` would apply to the whole process, event loop included, so it is skipped."""
        if not self.nice or sys.platform != "linux":
            return
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.nice)
        except OSError as exc:
            log.warning("history writer keeps its priority (niceness %d refused: %s)", self.nice, exc)

    @staticmethod
    def _backoff(failures: int) -> float:
        return RETRY_SECONDS[min(failures, len(RETRY_SECONDS)) - 1]

    def _flush(self) -> None:
        with self._lock:
            if self._filling.samples:
                self._sealed.append(self._filling)
                self._filling = SampleBatch()
        while True:
            with self._lock:
                if not self._sealed:
                    return
                batch = self._writing = self._sealed[0]
            try:
                self._write(batch)
            finally:
                with self._lock:
                    self._writing = None
            with self._lock:
                # The loop may have dropped it meanwhile (then it was counted as dropped, though written).
                if self._sealed and self._sealed[0] is batch:
                    self._sealed.popleft()
                    self._pending_samples -= batch.samples

    def _write(self, batch: SampleBatch) -> None:
        horizon = round(time.time() * MICROS) - self.store.tiers[0].retention
        if int(batch.times().min(initial=horizon)) < horizon:
            kept = batch.since(horizon)
            self.stats.too_old += batch.samples - kept.samples
            batch = kept
        if batch.samples:
            self.stats.stored += self.store.write(batch)
