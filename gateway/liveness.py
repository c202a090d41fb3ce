"""Liveness: is this process's event loop still running its callbacks on time?

A watchdog task sleeps ``INTERVAL`` at a time and notes how late each wake-up is. ``/livez`` answers from
what it noted, and from nothing else: a broker or store that is down is ``/readyz``'s business, and
restarting a process whose loop is healthy would not bring Redis back.

What can answer depends on how the loop is stuck. While it is blocked outright (a synchronous call that
never returns), nothing on it answers at all, ``/livez`` included: the probe's own timeout is what fails
then, so give it one (Kubernetes ``timeoutSeconds``). While it is merely starved (callbacks keep it busy
so long that timers fire seconds late), requests are still answered, slowly, and ``/livez`` says 503 once
the watchdog is late by more than the limit; it says 503 too if the watchdog task itself has stopped.
"""

import asyncio
import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)

INTERVAL = 0.5
"""Seconds between the watchdog's wake-ups: the lag it reports is at most this stale."""


@dataclass(frozen=True, slots=True)
class Verdict:
    alive: bool
    lag: float
    """Seconds the watchdog is late now, or its last wake-up was, whichever is more."""
    detail: str = ""


class LoopWatchdog:
    def __init__(self, limit: float, interval: float = INTERVAL) -> None:
        self.limit = limit
        self.interval = interval
        self.lag = 0.0
        """How late the latest wake-up was, in seconds (the ``pulse_event_loop_lag_seconds`` gauge)."""
        self._due = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._due = loop.time() + self.interval
        self._task = loop.create_task(self._run(), name="loop-watchdog")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.interval)
            now = loop.time()
            self.lag = max(0.0, now - self._due)
            self._due = now + self.interval
            if self.lag > self.limit:
                log.warning("the event loop ran %.1f s late: something blocked it", self.lag)

    def verdict(self) -> Verdict:
        """Whether the loop is live, asked from the loop itself (an answer means it runs now)."""
        if self._task is None or self._task.done():
            return Verdict(False, self.lag, "the loop watchdog is not running")
        # A wake-up still pending past its time counts: the loop is late with it right now.
        late = max(self.lag, asyncio.get_running_loop().time() - self._due)
        if late > self.limit:
            return Verdict(False, late, f"the event loop is {late:.1f} s behind (limit {self.limit:g} s)")
        return Verdict(True, late)
