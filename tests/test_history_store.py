"""The embedded history store on a real DuckDB file: exact values and envelopes, tiers stitched at their
boundaries, late samples, retries and retention, checked against a brute-force computation."""

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from gateway.history.base import SampleBatch
from gateway.history.embedded import EmbeddedStore
from gateway.history.tiers import MICROS, build_tiers, pick, segments

HOUR = 3600
DAY = 24 * HOUR
NOW = 1_800_000_000 * MICROS
"""A fixed "now" on a whole hour, so bucket boundaries in the tests are easy to reason about."""


def brute(
    times: np.ndarray, values: np.ndarray, start: int, end: int, width: int
) -> dict[int, tuple[float, ...]]:
    """Per bucket start: (min, max, sum, count, last), straight from the samples."""
    result: dict[int, tuple[float, ...]] = {}
    inside = (times >= start) & (times < end)
    for t, v in zip(times[inside].tolist(), values[inside].tolist(), strict=True):
        key = t - t % width
        low, high, total, count, _last = result.get(key, (v, v, 0.0, 0, v))
        result[key] = (min(low, v), max(high, v), total + v, count + 1, v)
    return result


def batch_of(channel: str, times: np.ndarray, values: np.ndarray, first_offset: int = 1) -> SampleBatch:
    batch = SampleBatch()
    for index, (t, v) in enumerate(zip(times.tolist(), values.tolist(), strict=True)):
        batch.add(channel, "epoch-1", first_offset + index, t, {"v": v})
    return batch


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EmbeddedStore]:
    tiers = build_tiers(raw=2 * HOUR, second=DAY, minute=30 * DAY, hour=365 * DAY)
    opened = EmbeddedStore(tmp_path / "history.duckdb", tiers)
    opened.open()
    yield opened
    opened.close()


def samples(count: int, step: int, end: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    times = end - step * np.arange(count, 0, -1, dtype=np.int64)
    values = np.round(rng.normal(50, 10, count), 2)
    values[count // 3] = 1000.0  # a spike: it must survive every zoom level
    return times, values


def assert_buckets(result_series, expected: dict[int, tuple[float, ...]]) -> None:  # type: ignore[no-untyped-def]
    assert result_series.time.tolist() == sorted(expected)
    rows = [expected[key] for key in sorted(expected)]
    assert result_series.min.tolist() == [row[0] for row in rows]
    assert result_series.max.tolist() == [row[1] for row in rows]
    assert result_series.sum.tolist() == pytest.approx([row[2] for row in rows], rel=1e-12)
    assert result_series.count.tolist() == [row[3] for row in rows]
    assert result_series.last.tolist() == [row[4] for row in rows]


def test_a_range_read_gives_exact_envelopes_from_the_tier_it_picks(store: EmbeddedStore) -> None:
    """An hour of 10 Hz samples read as 100 points comes from the 1 s tier, and every bucket's min, max,
    sum, count and last equal the brute-force values (the spike included)."""
    times, values = samples(36_000, 100_000, NOW)
    store.write(batch_of("data:a", times, values))
    start, end = NOW - HOUR * MICROS, NOW
    result = store.query("data:a", ["v"], start, end, 100, NOW)
    assert result.tier.name == "1s" and result.width == 36 * MICROS
    assert_buckets(result.series["v"], brute(times, values, start, end, result.width))
    assert max(result.series["v"].max) == 1000.0
    assert result.position is not None and result.position.offset == 36_000


def test_few_samples_come_back_raw_with_their_own_times(store: EmbeddedStore) -> None:
    """A range holding fewer samples than the points asked for returns the samples themselves."""
    times, values = samples(50, 100_000, NOW)
    store.write(batch_of("data:a", times, values))
    result = store.query("data:a", ["v"], NOW - 10 * MICROS, NOW, 2000, NOW)
    assert result.width == 0
    assert result.series["v"].time.tolist() == times.tolist()
    assert result.series["v"].min.tolist() == values.tolist()


def test_older_parts_of_a_range_come_from_coarser_tiers_stitched_at_the_boundary(
    store: EmbeddedStore,
) -> None:
    """Raw keeps 2 h here: a 3 h read at fine resolution takes the last 2 h from raw and the hour before
    from the 1 s tier, and every bucket, the one at the boundary too, is exact."""
    times, values = samples(3 * 3600 * 2, 500_000, NOW)
    store.write(batch_of("data:a", times, values))
    start, end = NOW - 3 * HOUR * MICROS, NOW
    chosen = pick(store.tiers, start, end, 20_000)
    parts = segments(store.tiers, chosen, start, end, NOW)
    assert [tier.name for tier, _, _ in parts] == ["raw", "1s"]
    assert parts[0][1] == parts[1][2] == NOW - 2 * HOUR * MICROS
    result = store.query("data:a", ["v"], start, end, 20_000, NOW)
    boundary = NOW - 2 * HOUR * MICROS
    expected = brute(times, values, boundary, end, result.width)
    expected.update(brute(times, values, start, boundary, MICROS))  # the 1 s tier's own buckets
    assert_buckets(result.series["v"], expected)


def test_late_samples_and_retries_keep_rollups_exact(store: EmbeddedStore) -> None:
    """Samples published out of time order (an older hour backfilled after the newer one) and a retried
    batch: the rollups match the samples as if each had been written once, in time order."""
    times, values = samples(7200, 1_000_000, NOW)
    late = times < NOW - HOUR * MICROS
    assert store.write(batch_of("data:a", times[~late], values[~late], first_offset=1)) == 3600
    retried = batch_of("data:a", times[~late], values[~late], first_offset=1)
    assert store.write(retried) == 0
    store.write(batch_of("data:a", times[late], values[late], first_offset=3601))
    start, end = NOW - 2 * HOUR * MICROS, NOW
    for points in (10, 500):
        result = store.query("data:a", ["v"], start, end, points, NOW)
        assert result.tier.name in ("1m", "1s")
        assert_buckets(result.series["v"], brute(times, values, start, end, result.width))
    assert store.stats().samples["raw"] == 7200


def test_retention_drops_what_each_tier_no_longer_keeps(store: EmbeddedStore) -> None:
    """After the retention runs, raw holds only its last 2 h and the 1 s tier its last day, while the
    1 min tier still answers for the older part."""
    times, values = samples(3 * 24 * 60, 60 * MICROS // 2, NOW)  # 36 h at one sample per 30 s
    store.write(batch_of("data:a", times, values))
    store.maintain(NOW)
    counts = store.stats().samples
    assert counts["raw"] == 2 * 60 * 2
    assert counts["1s"] == 24 * 60 * 2
    result = store.query("data:a", ["v"], NOW - 36 * HOUR * MICROS, NOW, 36 * 60, NOW)
    assert result.tier.name == "1m"
    assert int(result.series["v"].count.sum()) == len(times)


def test_unknown_series_and_empty_ranges_give_empty_lists(store: EmbeddedStore) -> None:
    """A series the store never saw, or a range with no samples, is empty, not an error."""
    times, values = samples(10, MICROS, NOW)
    store.write(batch_of("data:a", times, values))
    assert store.series_names("data:a") == ["v"]
    result = store.query("data:a", ["v", "w"], NOW - 2 * DAY * MICROS, NOW - DAY * MICROS, 100, NOW)
    assert len(result.series["v"].time) == 0 and len(result.series["w"].time) == 0


def test_the_file_keeps_everything_across_a_reopen(tmp_path: Path, store: EmbeddedStore) -> None:
    """Closed and opened again, the store answers the same range with the same buckets."""
    times, values = samples(3600, 1_000_000, NOW)
    store.write(batch_of("data:a", times, values))
    before = store.query("data:a", ["v"], NOW - HOUR * MICROS, NOW, 60, NOW)
    store.close()
    again = EmbeddedStore(store.path, store.tiers)
    again.open()
    after = again.query("data:a", ["v"], NOW - HOUR * MICROS, NOW, 60, NOW)
    assert after.series["v"].max.tolist() == before.series["v"].max.tolist()
    assert after.position == before.position
    again.close()
