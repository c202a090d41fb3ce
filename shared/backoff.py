"""Exponential backoff with jitter for clients that retry or reconnect, and the bookkeeping of one outage.

Shared by the simulator (HTTP retries) and the dashboard consumer (WebSocket reconnects), so every
Pulseboard client spreads its retries the same way after losing the gateway.
"""

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    first: float = 0.25
    cap: float = 5.0
    rng: random.Random = field(default_factory=random.Random)
    failures: int = 0
    """Consecutive failures; 0 when the gateway answered last time."""
    until: float = 0.0
    """Monotonic time before which nothing should be sent."""
    outage_started: float | None = None

    def ready(self, now: float) -> bool:
        return now >= self.until

    @property
    def in_outage(self) -> bool:
        return self.failures > 0

    def failed(self, now: float) -> float:
        """Record a failure at ``now``; return the delay before the next attempt."""
        if self.outage_started is None:
            self.outage_started = now
        # The exponent is capped: 2.0**1024 overflows, and a day-long outage reaches that many failures.
        delay = min(self.cap, self.first * 2.0 ** min(self.failures, 64))
        # Jitter spreads the retries of several simulators that lost the same gateway at the same moment.
        delay *= self.rng.uniform(0.5, 1.0)
        self.failures += 1
        self.until = now + delay
        return delay

    def succeeded(self, now: float) -> float | None:
        """Record an answer at ``now``; return the outage's length if this ends one."""
        outage = None if self.outage_started is None else now - self.outage_started
        self.failures = 0
        self.until = 0.0
        self.outage_started = None
        return outage
