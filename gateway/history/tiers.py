"""The history's tiers: raw samples and rollups of fixed width, each kept for its own retention.

Times are integer microseconds since the Unix epoch inside the store (exact bucket arithmetic, compact
columns); the API speaks seconds. A rollup bucket covers ``[start, start + width)`` and keeps the min,
max, sum, count and last value (by sample time) of the samples in it, so a query can rebuild any coarser
bucket exactly and draw a min/max envelope in which no spike is lost.

A query reads the coarsest tier whose buckets are still at most as wide as the buckets it asked for
(``pick``), and, where that tier's retention does not reach back to the start of the range, the older part
from the next coarser tier that does (``segments``).
"""

from dataclasses import dataclass

MICROS = 1_000_000


@dataclass(frozen=True, slots=True)
class Tier:
    name: str
    """``raw``, ``1s``, ``1m``, ``1h``: also the table's suffix."""
    width: int
    """Bucket width in microseconds; 0 for raw samples."""
    retention: int
    """Microseconds a sample or bucket is kept after its time."""

    @property
    def table(self) -> str:
        return f"tier_{self.name}"

    def horizon(self, now: int) -> int:
        """The oldest time this tier still holds at ``now``."""
        return now - self.retention


ROLLUP_WIDTHS = {"1s": MICROS, "1m": 60 * MICROS, "1h": 3600 * MICROS}


def build_tiers(raw: float, second: float, minute: float, hour: float) -> tuple[Tier, ...]:
    """The tiers, finest first, from retentions in seconds."""
    retentions = {"1s": second, "1m": minute, "1h": hour}
    return (
        Tier("raw", 0, round(raw * MICROS)),
        *(Tier(name, width, round(retentions[name] * MICROS)) for name, width in ROLLUP_WIDTHS.items()),
    )


def floor_to(time: int, width: int) -> int:
    return time - time % width


def bucket_width(start: int, end: int, points: int, tier: Tier) -> int:
    """Output buckets for ``points`` over ``[start, end)`` on ``tier``: a whole number of the tier's
    buckets (so none straddles two), at least one microsecond."""
    ideal = -(-(end - start) // points)
    if tier.width == 0:
        return max(1, ideal)
    return tier.width * max(1, -(-ideal // tier.width))


def pick(tiers: tuple[Tier, ...], start: int, end: int, points: int) -> Tier:
    """The coarsest tier whose buckets are no wider than ``points`` buckets over the range need."""
    ideal = (end - start) / points
    chosen = tiers[0]
    for tier in tiers[1:]:
        if tier.width <= ideal:
            chosen = tier
    return chosen


def segments(
    tiers: tuple[Tier, ...], chosen: Tier, start: int, end: int, now: int
) -> list[tuple[Tier, int, int]]:
    """``[start, end)`` split into ``(tier, from, to)`` parts, newest first: the chosen tier back to its
    horizon, older parts from coarser tiers back to theirs. The coarsest tier takes whatever remains."""
    parts: list[tuple[Tier, int, int]] = []
    upper = end
    coarser = tiers[tiers.index(chosen) :]
    for index, tier in enumerate(coarser):
        horizon = tier.horizon(now)
        if index == len(coarser) - 1 or horizon <= start:
            lower = start
        else:
            # Where the tier's retention cuts the range, the boundary moves up to the next bucket of the
            # coarser tier (whose width is a multiple of this one's): that tier covers what lies before,
            # in whole buckets, and no bucket is read twice.
            width = coarser[index + 1].width
            lower = min(upper, -(-horizon // width) * width)
        if lower < upper:
            parts.append((tier, lower, upper))
            upper = lower
        if upper <= start:
            break
    return parts
