"""Token buckets: ``rate`` tokens per second, bursts of up to ``burst``; one bucket, or one per key.

A token is whatever the caller counts: an op (the per-connection limiter), a byte (direct messages) or a
point (HTTP publishing).
"""

import time


class TokenBucket:
    __slots__ = ("_burst", "_rate", "_tokens", "_updated")

    def __init__(self, rate: float, burst: float) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._updated = time.monotonic()

    def _refill(self) -> float:
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._updated) * self._rate)
        self._updated = now
        return self._tokens

    def take(self, cost: float = 1.0) -> bool:
        """Take ``cost`` tokens if they are all there; else take none."""
        if self._refill() >= cost:
            self._tokens -= cost
            return True
        return False

    def spend(self, cost: float) -> None:
        """Take ``cost`` tokens even if fewer are there: the bucket owes the rest, and refuses until the
        refill has paid it back (a whole batch is charged once it was let in)."""
        self._refill()
        self._tokens -= cost

    def wait(self, cost: float = 1.0) -> float:
        """Seconds until ``cost`` tokens are there (0 when they are now)."""
        return max(0.0, cost - self._refill()) / self._rate

    @property
    def full(self) -> bool:
        """Refilled to ``burst``: the same as a new bucket."""
        return self._refill() >= self._burst


class KeyedBuckets:
    """One ``TokenBucket`` per key (an identity), made on first use.

    Memory stays bounded by the keys seen recently: a full bucket is the same as a new one, so whenever
    the map has doubled since the last sweep the full ones are dropped (amortised O(1) per use).
    """

    __slots__ = ("_buckets", "_burst", "_rate", "_sweep_at")

    MIN_SWEEP = 1024

    def __init__(self, rate: float, burst: float) -> None:
        self._rate = rate
        self._burst = burst
        self._buckets: dict[str, TokenBucket] = {}
        self._sweep_at = self.MIN_SWEEP

    def __getitem__(self, key: str) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._sweep_at:
                self._sweep()
            bucket = self._buckets[key] = TokenBucket(self._rate, self._burst)
        return bucket

    def __len__(self) -> int:
        return len(self._buckets)

    def _sweep(self) -> None:
        self._buckets = {key: bucket for key, bucket in self._buckets.items() if not bucket.full}
        self._sweep_at = max(self.MIN_SWEEP, 2 * len(self._buckets))
