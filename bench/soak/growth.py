"""The growth detector: pure functions, unit-tested on synthetic series (``tests/test_soak.py``)."""

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

MIN_SAMPLES = 6
"""Post-warm-up samples a trend needs; with fewer the soak fails rather than pass on too little data."""


@dataclass(frozen=True, slots=True)
class Allowance:
    """How much a resource may rise across the post-warm-up window: ``absolute + relative * level``."""

    absolute: float
    relative: float = 0.0

    def at(self, level: float) -> float:
        return self.absolute + self.relative * abs(level)


@dataclass(frozen=True, slots=True)
class Growth:
    grows: bool
    """True when the series rises without bound, or when there were too few samples to tell."""
    samples: int
    level: float
    """Median of the post-warm-up samples."""
    peak: float
    rise: float
    """Robust (Theil-Sen) slope times the post-warm-up time span: how much the trend rose."""
    late_rise: float
    """Median of the last third minus median of the middle third: is it still rising at the end?"""
    allowed: float
    reason: str


def theil_sen_slope(times: Sequence[float], values: Sequence[float]) -> float:
    """The median of the slopes between every pair of points: a straight-line fit that one or two
    outliers (a GC pause, a noisy neighbour on a shared machine) cannot drag, unlike least squares."""
    slopes = [
        (values[j] - values[i]) / (times[j] - times[i])
        for i in range(len(times))
        for j in range(i + 1, len(times))
        if times[j] > times[i]
    ]
    return statistics.median(slopes) if slopes else 0.0


def detect_growth(
    times: Sequence[float],
    values: Sequence[float],
    allowance: Allowance,
    *,
    warmup: float,
    min_samples: int = MIN_SAMPLES,
) -> Growth:
    """Does ``values`` (sampled at ``times``, seconds) grow without bound after ``warmup`` seconds?

    A bounded resource can still rise for a while after the warm-up (a cache filling, the allocator
    settling), and a noisy one wanders. It "grows" only if both hold:

    1. the robust trend over the post-warm-up samples rose by more than the allowance, and
    2. the last third of the samples sits above the middle third by more than a third of the allowance
       (for a steady leak that difference is a third of the whole rise): the rise is still going on at
       the end, so it is not a ramp that levelled off, and not a spike in the last sample.

    NaN samples (a failed read, already counted as an error) are left out. With fewer than
    ``min_samples`` post-warm-up samples the answer is "grows", so a run too short cannot pass.
    """
    kept = [(t, v) for t, v in zip(times, values, strict=True) if t >= warmup and not math.isnan(v)]
    if len(kept) < min_samples:
        nan = math.nan
        reason = (
            f"only {len(kept)} samples after the {warmup:g} s warm-up, {min_samples} needed: "
            "run longer or sample more often (--interval)"
        )
        return Growth(True, len(kept), nan, nan, nan, nan, nan, reason)
    ts = [t for t, _ in kept]
    vs = [v for _, v in kept]
    level = statistics.median(vs)
    allowed = allowance.at(level)
    rise = theil_sen_slope(ts, vs) * (ts[-1] - ts[0])
    third = len(vs) // 3
    late_rise = statistics.median(vs[len(vs) - third :]) - statistics.median(vs[third : len(vs) - third])
    grows = rise > allowed and late_rise > allowed / 3
    if grows:
        reason = f"rose by {rise:g} over the window (allowed {allowed:g}) and is still rising ({late_rise:g})"
    elif rise > allowed:
        reason = f"rose by {rise:g} (allowed {allowed:g}) but levelled off (late rise {late_rise:g})"
    else:
        reason = f"rise {rise:g} within {allowed:g}"
    return Growth(grows, len(vs), level, max(vs), rise, late_rise, allowed, reason)


def band_violations(
    times: Sequence[float], values: Sequence[float], low: float, high: float, *, warmup: float
) -> list[tuple[float, float]]:
    """The post-warm-up samples ``(time, value)`` outside ``[low, high]`` (NaN counts as outside)."""
    return [
        (t, v)
        for t, v in zip(times, values, strict=True)
        if t >= warmup and (math.isnan(v) or not low <= v <= high)
    ]


def default_warmup(seconds: float, interval: float) -> float:
    """Long enough for the gateway's 5-minute idempotency window to fill on an hour's run (it is
    bounded, but it grows for its first 5 minutes), at least two intervals, at most ten minutes."""
    return min(600.0, max(2 * interval, 0.2 * seconds))
