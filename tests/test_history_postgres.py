"""The shared history store on a real PostgreSQL (a private cluster started by the fixtures): known data
read back exactly, retried writes, two writers on one channel, retention by partition; and two gateways on
Redis + PostgreSQL storing every publication once, through a PostgreSQL outage while publishing goes on."""

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg
import pytest

from gateway.history.base import Buckets, SampleBatch, StoreError
from gateway.history.postgres import DAY, PostgresStore, partition_name
from gateway.history.tiers import MICROS, Tier, build_tiers
from tests.postgres_server import PostgresServer
from tests.servers import GatewayProcess
from tests.waiting import eventually

T0 = 1_800_000_000 * MICROS
"""An hour boundary (2027-01-15 08:00 UTC): the stores are told it is shortly after this."""
NOW = T0 + 3600 * MICROS
TIERS = build_tiers(2 * 86_400, 8 * 86_400, 90 * 86_400, 730 * 86_400)

MakeStore = Callable[..., PostgresStore]


@pytest.fixture
def make_store(postgres_url: str) -> Iterator[MakeStore]:
    """Open stores on the test's database (each as another gateway would: its own connections); all closed
    afterwards."""
    stores: list[PostgresStore] = []

    def make(tiers: tuple[Tier, ...] = TIERS) -> PostgresStore:
        store = PostgresStore(postgres_url, tiers)
        store.open()
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


def batch_of(
    pubs: list[tuple[int, int, dict[str, float]]], channel: str = "data:x", epoch: str = "e1"
) -> SampleBatch:
    """A batch of publications given as (offset, time in µs, values)."""
    batch = SampleBatch()
    for offset, at, values in pubs:
        batch.add(channel, epoch, offset, at, values)
    return batch


def expected_buckets(
    times: np.ndarray[Any, Any], values: np.ndarray[Any, Any], width: int
) -> dict[str, list[Any]]:
    """Per bucket of ``width`` µs: start, min, max, sum, count and the value of the latest sample."""
    starts = times - times % width
    result: dict[str, list[Any]] = {key: [] for key in ("time", "min", "max", "sum", "count", "last")}
    for start in np.unique(starts):
        mine = starts == start
        result["time"].append(int(start))
        result["min"].append(float(values[mine].min()))
        result["max"].append(float(values[mine].max()))
        result["sum"].append(float(values[mine].sum()))
        result["count"].append(int(mine.sum()))
        result["last"].append(float(values[mine][np.argmax(times[mine])]))
    return result


def as_lists(buckets: Buckets) -> dict[str, list[Any]]:
    return {key: getattr(buckets, key).tolist() for key in ("time", "min", "max", "sum", "count", "last")}


def known_pubs(count: int, spacing: int, rng: np.random.Generator) -> list[tuple[int, int, dict[str, float]]]:
    """``count`` publications of series a and b, ``spacing`` µs apart from T0 + 0.25 s, with integer values
    (sums are then exact in any order)."""
    values = rng.integers(-1000, 1000, size=(count, 2)).astype(float)
    return [
        (index + 1, T0 + MICROS // 4 + index * spacing, {"a": values[index, 0], "b": values[index, 1]})
        for index in range(count)
    ]


def test_known_samples_read_back_exactly_from_every_tier(make_store: MakeStore) -> None:
    """Raw samples, 10 s buckets from the 1 s tier and 1 min buckets from the 1 min tier hold exactly the
    written values, envelopes, sums, counts and last values, written in batches out of order."""
    store = make_store()
    pubs = known_pubs(600, MICROS // 2, np.random.default_rng(7))
    for part in (pubs[400:], pubs[:200], pubs[200:400]):
        store.write(batch_of(part))
    times = np.array([at for _, at, _ in pubs])
    for name in ("a", "b"):
        values = np.array([v[name] for _, _, v in pubs])
        raw = store.query("data:x", [name], T0, T0 + 60 * MICROS, 1000, NOW)
        assert (raw.tier.name, raw.width) == ("raw", 0)
        assert raw.series[name].time.tolist() == times[:120].tolist()
        assert raw.series[name].min.tolist() == values[:120].tolist()
        for seconds, points, tier in ((10, 30, "1s"), (60, 60, "1m")):
            result = store.query("data:x", [name], T0, T0 + points * seconds * MICROS, points, NOW)
            assert (result.tier.name, result.width) == (tier, seconds * MICROS)
            assert as_lists(result.series[name]) == expected_buckets(times, values, seconds * MICROS)
            assert result.position is not None
            assert (result.position.offset, result.position.epoch) == (600, "e1")
    assert store.series_names("data:x") == ["a", "b"]


def test_a_retried_write_stores_nothing_twice(make_store: MakeStore) -> None:
    """The same batch written again adds no sample and changes no rollup; a batch that overlaps a stored
    one adds only its new publications."""
    store = make_store()
    pubs = known_pubs(200, MICROS // 10, np.random.default_rng(3))
    assert store.write(batch_of(pubs[:150])) == 300

    def snapshot() -> tuple[dict[str, int], list[dict[str, list[Any]]]]:
        reads = [
            store.query("data:x", ["a", "b"], T0, T0 + 3600 * MICROS, points, NOW) for points in (60, 360)
        ]
        return store.stats().samples, [as_lists(read.series[n]) for read in reads for n in ("a", "b")]

    before = snapshot()
    assert store.write(batch_of(pubs[:150])) == 0
    assert snapshot() == before
    assert store.write(batch_of(pubs[100:])) == 100
    assert store.stats().samples["raw"] == 400
    times = np.array([at for _, at, _ in pubs])
    values = np.array([v["a"] for _, _, v in pubs])
    whole = store.query("data:x", ["a"], T0, T0 + 3600 * MICROS, 60, NOW)
    assert as_lists(whole.series["a"]) == expected_buckets(times, values, 60 * MICROS)


@pytest.mark.parametrize("epochs", [("e1", "e1"), ("e1", "e2")], ids=["one epoch", "two epochs"])
def test_two_writers_on_one_channel_keep_every_rollup_exact(
    make_store: MakeStore, epochs: tuple[str, str]
) -> None:
    """Two stores (as two gateways) write the odd and the even offsets of one channel at the same time into
    the same buckets (also across an epoch change, where they share series but not a stream): every sample
    is stored once and every rollup bucket counts both writers' samples."""
    first, second = make_store(), make_store()
    rng = np.random.default_rng(11)
    count = 600
    values = rng.integers(-1000, 1000, size=(count, 3)).astype(float)
    times = T0 + np.arange(count) * (MICROS // 100)
    pubs = [(i + 1, int(times[i]), dict(zip("abc", values[i].tolist(), strict=True))) for i in range(count)]
    per_batch = 20
    rounds = count // (2 * per_batch)
    barrier = threading.Barrier(2)
    added: list[int] = []

    errors: list[str] = []

    def writer(store: PostgresStore, parity: int) -> None:
        mine = pubs[parity::2]
        try:
            for index in range(rounds):
                barrier.wait(timeout=30)
                part = mine[index * per_batch : (index + 1) * per_batch]
                added.append(store.write(batch_of(part, epoch=epochs[parity])))
        except (StoreError, threading.BrokenBarrierError) as exc:
            errors.append(repr(exc))
            barrier.abort()

    threads = [threading.Thread(target=writer, args=(store, n)) for n, store in enumerate((first, second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sum(added) == 3 * count and len(added) == 2 * rounds
    assert first.stats().samples["raw"] == 3 * count
    for index, name in enumerate("abc"):
        seconds = first.query("data:x", [name], T0, T0 + 6 * MICROS, 6, NOW)
        assert seconds.tier.name == "1s"
        assert as_lists(seconds.series[name]) == expected_buckets(times, values[:, index], MICROS)
        minute = second.query("data:x", [name], T0, T0 + 3600 * MICROS, 60, NOW)
        assert as_lists(minute.series[name]) == expected_buckets(times, values[:, index], 60 * MICROS)
        assert minute.position is not None
        newest = {epochs[0]: count - 1, epochs[1]: count}  # odd offsets (first), even (second)
        assert minute.position.offset == newest[minute.position.epoch]


def test_retention_drops_whole_raw_days_and_old_rollup_buckets(
    make_store: MakeStore, postgres_url: str
) -> None:
    """Raw samples go a whole day at a time, once all of that day is past the raw retention (the day that
    straddles the horizon stays); rollups are deleted bucket by bucket at their own retentions; the next
    day's partition is made ahead; and a later write to a dropped day still works."""
    store = make_store(build_tiers(86_400, 2 * 86_400, 90 * 86_400, 730 * 86_400))
    today = T0 // DAY
    hours = 3600 * MICROS
    pubs = [
        (offset, (today + day) * DAY + hour * hours, {"a": float(offset), "b": -float(offset)})
        for offset, (day, hour) in enumerate(((d, h) for d in (-3, -2, -1, 0) for h in (6, 18)), start=1)
    ]
    store.write(batch_of(pubs))
    assert store.raw_partitions() == [partition_name(today + day) for day in (-3, -2, -1, 0)]
    store.maintain(today * DAY + 12 * hours)
    assert store.raw_partitions() == [partition_name(today + day) for day in (-1, 0, 1)]
    # Raw keeps days -1 and 0 whole (day -1 at 06:00 is past the horizon, its day is not); 1 s keeps what
    # is younger than 2 days (from day -2 18:00 on); 1 min and 1 h keep everything.
    assert store.stats().samples == {"raw": 8, "1s": 10, "1m": 16, "1h": 16}
    with psycopg.connect(postgres_url) as connection:
        rows = connection.execute("SELECT min(ts) FROM tier_raw").fetchone()
        assert rows is not None and rows[0] == (today - 1) * DAY + 6 * hours
    old = store.query("data:x", ["a"], (today - 3) * DAY, today * DAY, 72, today * DAY + 12 * hours)
    assert old.series["a"].count.tolist() == [1] * 6 and old.series["a"].last.tolist() == [1, 2, 3, 4, 5, 6]
    assert store.write(batch_of([(9, (today - 3) * DAY + 7 * hours, {"a": 9.0})])) == 1
    assert partition_name(today - 3) in store.raw_partitions()


def test_a_store_that_is_down_raises_store_error_and_works_once_back(
    make_store: MakeStore, postgres_server: PostgresServer
) -> None:
    """With the server stopped, writes and reads raise StoreError (never a driver error); once it is back
    the same store writes again, and a thread whose connection died with the old server reads at once."""
    store = make_store()
    pubs = known_pubs(20, MICROS, np.random.default_rng(5))

    def read() -> int:
        return int(store.query("data:x", ["a"], T0, T0 + 60 * MICROS, 100, NOW).series["a"].count.sum())

    with ThreadPoolExecutor(1) as writer, ThreadPoolExecutor(1) as other_reader:
        writer.submit(store.write, batch_of(pubs[:10])).result()
        assert read() == 10  # this thread's connection, which the restart will cut
        postgres_server.stop()
        try:
            with pytest.raises(StoreError, match="postgresql"):
                writer.submit(store.write, batch_of(pubs[10:])).result()
            with pytest.raises(StoreError, match="postgresql"):
                other_reader.submit(read).result()
        finally:
            postgres_server.start()
        assert read() == 10
        assert writer.submit(store.write, batch_of(pubs[10:])).result() == 20
        assert other_reader.submit(read).result() == 20


# --- two gateways on Redis + PostgreSQL ------------------------------------------------------------------

CHANNEL = "data:shared"


@pytest.fixture
def pair(
    tmp_path: Path, redis_url: str, postgres_url: str
) -> Iterator[tuple[GatewayProcess, GatewayProcess]]:
    """Two gateways on one Redis and one PostgreSQL (the second spells its URL ``postgres://``)."""
    gateways = []
    for name, url in (("a", postgres_url), ("b", postgres_url.replace("postgresql://", "postgres://", 1))):
        env = {"PULSE_BROKER_URL": redis_url, "PULSE_HISTORY_URL": url, "PULSE_HISTORY_FLUSH_INTERVAL": "0.2"}
        (tmp_path / name).mkdir()
        gateways.append(GatewayProcess(tmp_path / name, env=env))
    try:
        for gateway in gateways:
            gateway.start()
        yield gateways[0], gateways[1]
    finally:
        for gateway in gateways:
            gateway.stop()


def publish(gateway: GatewayProcess, numbers: list[int]) -> httpx.Response:
    payloads = [{"values": {"n": float(n), "neg": -float(n)}} for n in numbers]
    return httpx.post(f"{gateway.http_url}/api/publish/{CHANNEL}", json=payloads, timeout=10)


def stored(gateway: GatewayProcess, start: float) -> dict[str, Any]:
    """The range API's answer for the channel since ``start``, raw samples (points well above the count)."""
    response = httpx.get(
        f"{gateway.http_url}/api/channels/{CHANNEL}/range",
        params={"start": start, "end": time.time() + 60, "points": 10_000},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def numbers_on(gateway: GatewayProcess, start: float) -> list[float]:
    series = stored(gateway, start)["series"]
    return sorted(series["n"]["mean"]) if "n" in series else []


def readiness(gateway: GatewayProcess) -> tuple[int, dict[str, Any]]:
    response = httpx.get(f"{gateway.http_url}/readyz", timeout=5)
    history: dict[str, Any] = response.json()["history"]
    return response.status_code, history


def holds(gateway: GatewayProcess, start: float, expected: list[float]) -> bool:
    """Whether the range API on ``gateway`` shows exactly ``expected`` as series n."""
    return numbers_on(gateway, start) == expected


def ready(gateway: GatewayProcess) -> bool:
    return readiness(gateway)[0] == 200


def unready(gateway: GatewayProcess) -> dict[str, Any] | None:
    """The history part of ``/readyz`` when it answers 503, else None."""
    status, history = readiness(gateway)
    return history if status == 503 else None


@pytest.mark.slow
def test_two_gateways_store_each_publication_once(
    pair: tuple[GatewayProcess, GatewayProcess], postgres_url: str
) -> None:
    """Publications accepted by either gateway are each stored once: the range API on both shows every one
    exactly once, both series, and the newest offset as the position."""
    start = time.time() - 1
    count = 240

    statuses: list[int] = []

    def publisher(gateway: GatewayProcess, numbers: list[int]) -> None:
        for index in range(0, len(numbers), 4):
            statuses.append(publish(gateway, numbers[index : index + 4]).status_code)

    threads = [
        threading.Thread(target=publisher, args=(gateway, list(range(n, count, 2))))
        for n, gateway in enumerate(pair)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert statuses == [200] * (count // 4)
    expected = [float(n) for n in range(count)]
    for gateway in pair:
        eventually(partial(holds, gateway, start, expected), timeout=20, what="all publications stored")
        body = stored(gateway, start)
        assert sorted(body["series"]["neg"]["mean"]) == sorted(-n for n in expected)
        assert body["series"]["n"]["count"] == [1] * count
        assert body["position"]["offset"] == count
    with psycopg.connect(postgres_url) as connection:
        rows = connection.execute(
            "SELECT count(*), count(DISTINCT (stream_id, pub)) FROM tier_raw"
        ).fetchone()
    assert rows == (2 * count, count)


@pytest.mark.slow
def test_postgres_going_away_and_back_while_publishing(
    pair: tuple[GatewayProcess, GatewayProcess], postgres_server: PostgresServer
) -> None:
    """PostgreSQL stopped while both gateways publish: publishing never fails, /readyz says 503 with the
    store's error, then 200 once it is back, and every publication is stored exactly once after catch-up."""
    start = time.time() - 1
    stop = threading.Event()
    sent: list[int] = []
    failures: list[str] = []

    def publisher() -> None:
        n = 0
        while not stop.is_set():
            response = publish(pair[n % 2], [n])
            if response.status_code == 200:
                sent.append(n)
            else:
                failures.append(f"{response.status_code} {response.text}")
            n += 1
            time.sleep(0.01)

    thread = threading.Thread(target=publisher)
    thread.start()
    try:
        eventually(lambda: len(numbers_on(pair[0], start)) >= 20, timeout=20, what="history being stored")
        postgres_server.stop()
        try:
            for gateway in pair:
                history = eventually(partial(unready, gateway), timeout=20, what="/readyz 503")
                assert history is not None
                assert history["ok"] is False and "postgresql" in history["detail"]
            eventually(lambda: readiness(pair[0])[1]["pending"] > 0, what="samples pending while down")
        finally:
            postgres_server.start()
        for gateway in pair:
            eventually(partial(ready, gateway), timeout=30, what="/readyz 200 again")
    finally:
        stop.set()
        thread.join(30)
    assert failures == []
    expected = sorted(float(n) for n in sent)
    for gateway in pair:
        eventually(partial(holds, gateway, start, expected), timeout=30, what="all stored")
        _, history = readiness(gateway)
        assert history["dropped"] == 0 and history["holes"] == []
