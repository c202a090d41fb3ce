"""The dashboard's data layer: bounded time-ordered rings, session bookkeeping, min/max downsampling."""

import bisect
import threading
import time
import tracemalloc

import numpy as np
import pytest

from dashboard.arrays import FloatArray
from dashboard.channel_buffer import ChannelBuffer
from dashboard.downsample import downsample, minmax_indices
from dashboard.ring import SeriesRing
from dashboard.session_buffer import ChatEntry, ChatKind, ConnectionState, NotificationEntry, SessionBuffer
from dashboard.stats import series_stats
from shared.messages import StreamPosition


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _points(ring: SeriesRing) -> list[tuple[float, float]]:
    ts, values = ring.window()
    return list(zip(ts.tolist(), values.tolist(), strict=True))


# -- SeriesRing ------------------------------------------------------------------------------------


@pytest.mark.parametrize("capacity", [1, 7, 100])
def test_ring_wraps_and_keeps_the_newest_in_order(capacity: int) -> None:
    """After many more appends than it holds, a ring has exactly its newest `capacity` points, in order."""
    ring = SeriesRing(capacity)
    for i in range(capacity * 5 + 3):
        ring.append(float(i), float(-i))
    newest = range(capacity * 4 + 3, capacity * 5 + 3)
    assert _points(ring) == [(float(i), float(-i)) for i in newest]


@pytest.mark.parametrize(("capacity", "batch"), [(10, 3), (10, 10), (10, 25), (64, 7)])
def test_ring_extend_matches_single_appends(capacity: int, batch: int) -> None:
    """In-order batches, wrapping or larger than the ring, leave the same points as appending one by one."""
    bulk, single = SeriesRing(capacity), SeriesRing(capacity)
    for start in range(0, 200, batch):
        ts = np.arange(start, start + batch, dtype=np.float64)
        assert bulk.extend(ts, ts * 2) == min(batch, capacity)
        for t in ts.tolist():
            single.append(t, t * 2)
    assert _points(bulk) == _points(single)


def test_late_points_are_inserted_in_time_order() -> None:
    """A late point lands in its place; in a full ring one older than everything is refused."""
    ring = SeriesRing(4)
    for t in (1.0, 2.0, 4.0):
        ring.append(t, t)
    assert ring.append(3.0, 3.0)
    assert _points(ring) == [(1.0, 1.0), (2.0, 2.0), (3.0, 3.0), (4.0, 4.0)]
    assert ring.append(2.5, 2.5)  # full: the oldest (1.0) makes room
    assert _points(ring) == [(2.0, 2.0), (2.5, 2.5), (3.0, 3.0), (4.0, 4.0)]
    assert not ring.append(0.5, 0.5)
    assert [t for t, _ in _points(ring)] == [2.0, 2.5, 3.0, 4.0]


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("capacity", [1, 5, 16])
def test_ring_matches_a_sorted_list_under_random_operations(seed: int, capacity: int) -> None:
    """Random appends (in order, late, tied), batches (sorted or not) and trims match a sorted-list model."""
    rng = np.random.default_rng(seed)
    ring = SeriesRing(capacity)
    model: list[tuple[float, float]] = []  # by timestamp; equal timestamps in arrival order
    next_value = 0.0

    def insert(t: float, v: float) -> None:
        bisect.insort_right(model, (t, v), key=lambda point: point[0])
        if len(model) > capacity:
            model.pop(0)

    for step in range(300):
        op = int(rng.integers(0, 10))
        if op < 6:
            t = float(step // 2 + rng.integers(-4, 2))  # mostly in order, often tied, sometimes late
            ring.append(t, next_value)
            insert(t, next_value)
            next_value += 1
        elif op < 9:
            count = int(rng.integers(1, 2 * capacity + 3))
            ts = (step // 2 + rng.integers(-6, 6, size=count)).astype(np.float64)
            if op == 7:
                ts.sort()
            values = next_value + np.arange(count, dtype=np.float64)
            next_value += count
            kept = ring.extend(ts, values)
            for t, v in zip(ts.tolist(), values.tolist(), strict=True):
                insert(t, v)
            assert kept == len(set(values.tolist()) & {v for _, v in model})
        else:
            cutoff = float(step // 2 - rng.integers(0, 8))
            dropped = ring.drop_before(cutoff)
            survivors = [p for p in model if p[0] >= cutoff]
            assert dropped == len(model) - len(survivors)
            model = survivors
        assert _points(ring) == model
        since = float(step // 2 - rng.integers(0, 10))
        ts_window, values_window = ring.window(since)
        assert list(zip(ts_window.tolist(), values_window.tolist(), strict=True)) == [
            p for p in model if p[0] >= since
        ]


# -- ChannelBuffer ---------------------------------------------------------------------------------


def test_age_bound_drops_old_points_on_append_and_on_read() -> None:
    """With max_age, points older than now - max_age are neither stored nor returned, and leave the ring."""
    clock = FakeClock(1000.0)
    buffer = ChannelBuffer("data:x", max_age=10.0, clock=clock)
    buffer.append(985.0, {"a": 1.0})  # already too old
    for t in range(991, 1001):
        buffer.append(float(t), {"a": float(t)})
    assert buffer.retained("a") == 10
    assert buffer.info().dropped == 1
    clock.now = 1005.0
    buffer.append(1005.0, {"a": 1005.0})  # an append trims the head
    assert buffer.retained("a") == 7
    clock.now = 1008.0  # a read trims and filters without any append
    ts, values = buffer.snapshot("a")
    assert ts.tolist() == [998.0, 999.0, 1000.0, 1005.0]
    assert values.tolist() == ts.tolist()
    assert buffer.retained("a") == 4
    assert buffer.snapshot("a", since_ts=0.0)[0].tolist() == ts.tolist()


def test_memory_stays_flat_after_the_ring_is_full() -> None:
    """Ten times max_points appends after the rings fill change neither ring sizes nor traced memory."""
    buffer = ChannelBuffer("data:m", max_points=2000)
    for i in range(2000):
        buffer.append(float(i), {"a": 1.0, "b": 2.0})
    nbytes = buffer.nbytes
    assert nbytes == 2 * 2 * 2000 * 8
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for i in range(2000, 22_000):
            buffer.append(float(i), {"a": float(i), "b": -float(i)})
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert buffer.nbytes == nbytes
    # A kept Python float per point would be 20 000 x 24 bytes; a reallocated ring at least 16 000 bytes.
    assert after - before < 4096
    assert buffer.retained("a") == 2000
    assert buffer.info().points == 2 * 22_000


def test_concurrent_writer_and_reader_see_consistent_snapshots() -> None:
    """Writer (some points late) and reader threads overlap: no errors, every snapshot sorted and whole."""
    buffer = ChannelBuffer("data:c", max_points=1000)
    stop = threading.Event()
    errors: list[BaseException] = []
    written = [0]

    def write() -> None:
        try:
            i = 0
            while not stop.is_set():
                i += 1
                t = i * 0.001 - (0.05 if i % 97 == 0 else 0.0)  # every 97th point arrives late
                buffer.append(t, {"a": 2 * t, "b": -t}, received_at=time.time(), offset=i, epoch="e")
                written[0] = i
        except BaseException as error:
            errors.append(error)

    writer = threading.Thread(target=write)
    writer.start()
    snapshots = 0
    # Run until both sides did enough work to interleave many times; the deadline only guards a hang.
    deadline = time.monotonic() + 60
    try:
        while (snapshots < 200 or written[0] < 5000) and time.monotonic() < deadline:
            since = None if snapshots % 2 else max(0.0, written[0] * 0.001 - 0.5)
            ts, values = buffer.snapshot("a", since_ts=since)
            assert len(ts) == len(values) <= 1000
            assert np.all(np.diff(ts) >= 0)
            assert np.array_equal(values, 2 * ts)  # no torn read: each value belongs to its timestamp
            buffer.stats("b")
            buffer.info()
            snapshots += 1
    finally:
        stop.set()
        writer.join()
    assert not errors
    assert snapshots >= 200 and written[0] >= 5000


def test_stats_on_known_data() -> None:
    """Current, min and max follow the window; rate counts the points of the last rate_window seconds."""
    clock = FakeClock(999.95)
    buffer = ChannelBuffer("data:s", rate_window=5.0, clock=clock)
    values = [float((i * 37) % 101) for i in range(100)]  # 10 points/s over 990.0 .. 999.9
    for i, value in enumerate(values):
        buffer.append(990.0 + i / 10, {"v": value})
    stats = buffer.stats("v")
    assert (stats.count, stats.current, stats.current_ts) == (100, values[-1], 999.9)
    assert (stats.minimum, stats.maximum) == (min(values), max(values))
    assert stats.rate == pytest.approx(10.0)
    recent = buffer.stats("v", since_ts=998.0)
    assert recent.count == 20
    assert (recent.minimum, recent.maximum) == (min(values[80:]), max(values[80:]))
    clock.now = 1100.0
    assert buffer.stats("v").rate == 0.0
    empty = buffer.stats("unknown")
    assert (empty.count, empty.current, empty.minimum, empty.rate) == (0, None, None, 0.0)
    ts, vals = buffer.snapshot("v")
    assert series_stats(ts, vals, now=999.95, rate_window=5.0) == stats


def test_duplicate_offsets_gap_flag_and_latency() -> None:
    """Offsets not above the last of their epoch are dropped, a new epoch restarts; the gap flag toggles."""
    clock = FakeClock(1000.0)
    buffer = ChannelBuffer("data:g", clock=clock)
    assert buffer.info().position is None
    for offset in (1, 2, 3):
        assert buffer.append(990.0 + offset, {"a": 1.0}, offset=offset, epoch="e1")
    assert not buffer.append(999.0, {"a": 9.0}, offset=2, epoch="e1")
    assert buffer.append(994.0, {"a": 1.0}, offset=1, epoch="e2")  # the gateway restarted
    assert buffer.position == StreamPosition(offset=1, epoch="e2")
    assert buffer.retained("a") == 4
    buffer.append(995.0, {"a": 1.0}, received_at=1000.25, published_at=1000.0)
    info = buffer.info()
    assert (info.messages, info.duplicates, info.points) == (5, 1, 5)
    assert info.latency == pytest.approx(0.25) and info.last_received_at == 1000.25
    assert info.position == StreamPosition(offset=1, epoch="e2")
    assert not info.gap and info.gap_since is None
    buffer.mark_gap()
    clock.now = 1001.0
    buffer.mark_gap()  # a second recovered: false keeps when the gap began
    assert buffer.gap and buffer.info().gap_since == 1000.0
    buffer.clear_gap()
    assert not buffer.info().gap
    buffer.set_position(40, "e3")
    assert buffer.position == StreamPosition(offset=40, epoch="e3")


def test_series_beyond_max_series_are_refused_and_counted() -> None:
    """A channel keeps at most max_series rings; values of further series count as dropped."""
    buffer = ChannelBuffer("data:many", max_series=2)
    buffer.append(1.0, {"a": 1.0, "b": 2.0, "c": 3.0})
    buffer.extend("d", [2.0, 3.0], [1.0, 1.0])
    assert buffer.series_names() == ["a", "b"]
    assert buffer.info().dropped == 3


def test_extend_backfills_out_of_order_history() -> None:
    """A history page older than the live points merges into time order."""
    buffer = ChannelBuffer("data:b", max_points=6)
    for t in (10.0, 11.0, 12.0):
        buffer.append(t, {"a": t})
    buffer.extend("a", [7.0, 8.0, 9.0, 9.5], [7.0, 8.0, 9.0, 9.5])
    ts, values = buffer.snapshot("a")
    assert ts.tolist() == [8.0, 9.0, 9.5, 10.0, 11.0, 12.0]
    assert values.tolist() == ts.tolist()
    assert buffer.info().points == 6


def test_backfill_after_a_gap_bypasses_the_duplicate_check() -> None:
    """History below the live offset merges into time order and leaves the position the socket reached."""
    session = SessionBuffer(max_points=100)
    for offset in range(50, 60):
        session.append_point("data:h", float(offset), {"a": float(offset)}, offset=offset, epoch="e")
    session.channel("data:h").mark_gap()
    session.backfill("data:h", [(float(t), {"a": float(t), "b": -float(t)}) for t in range(40, 50)])
    ts, values = session.snapshot("data:h", "a")
    assert ts.tolist() == [float(t) for t in range(40, 60)] and values.tolist() == ts.tolist()
    assert session.snapshot("data:h", "b")[1].tolist() == [-float(t) for t in range(40, 50)]
    assert session.positions()["data:h"] == StreamPosition(offset=59, epoch="e")
    assert session.channel("data:h").info().points == 30


@pytest.mark.parametrize("kwargs", [{"max_points": 0}, {"max_age": 0.0}, {"rate_window": -1.0}])
def test_bad_bounds_are_refused_up_front(kwargs: dict[str, float]) -> None:
    """Invalid bounds raise ValueError when the session is made, not at the first point."""
    with pytest.raises(ValueError, match="must be"):
        SessionBuffer(**kwargs)  # type: ignore[arg-type]


# -- SessionBuffer ---------------------------------------------------------------------------------


def test_session_creates_channels_on_demand_and_reports_positions() -> None:
    """Data channels appear at their first point; positions cover data, chat and notify channels."""
    session = SessionBuffer(clock=FakeClock())
    assert session.snapshot("data:none", "a")[0].size == 0
    session.append_point("data:cpu", 999.0, {"user": 1.0}, received_at=1000.5, offset=7, epoch="d")
    session.set_position("chat:lobby", 3, "c")
    session.add_notification(NotificationEntry("notify:alerts", "info", "t", "", 999.0), offset=9, epoch="c")
    assert session.channels() == ["data:cpu"]
    assert session.snapshot("data:cpu", "user")[1].tolist() == [1.0]
    assert session.positions() == {
        "data:cpu": StreamPosition(offset=7, epoch="d"),
        "chat:lobby": StreamPosition(offset=3, epoch="c"),
        "notify:alerts": StreamPosition(offset=9, epoch="c"),
    }
    assert session.connection().last_message_at == 1000.5
    session.remove("data:cpu")
    assert session.channels() == []


def test_chat_log_is_bounded_deduplicated_and_tracks_presence() -> None:
    """A room keeps its newest chat_maxlen entries, drops replayed offsets; join and leave update presence."""
    session = SessionBuffer(chat_maxlen=5)
    for offset in range(1, 13):
        entry = ChatEntry(id=f"m{offset}", sender="alice", text=f"hi {offset}", ts=float(offset))
        assert session.add_chat("chat:lobby", entry, offset=offset, epoch="c")
    assert not session.add_chat("chat:lobby", ChatEntry("m12", "alice", "hi 12", 12.0), offset=12, epoch="c")
    assert [e.id for e in session.chat_log("chat:lobby")] == ["m8", "m9", "m10", "m11", "m12"]
    session.set_presence("chat:lobby", {"c1": "alice"})
    session.add_chat("chat:lobby", ChatEntry("c2", "bob", "", 13.0, ChatKind.JOIN))
    assert session.presence("chat:lobby") == {"c1": "alice", "c2": "bob"}
    session.add_chat("chat:lobby", ChatEntry("c1", "alice", "", 14.0, ChatKind.LEAVE))
    assert session.presence("chat:lobby") == {"c2": "bob"}
    assert session.chat_log("chat:lobby")[-1].kind is ChatKind.LEAVE
    assert session.chat_log("chat:other") == []


def test_notifications_are_bounded_and_each_is_taken_once() -> None:
    """The log keeps notify_maxlen; the toast queue is bounded too, drains once, and skips history."""
    session = SessionBuffer(notify_maxlen=3)
    session.add_notification(NotificationEntry("notify:a", "info", "old", "", 1.0), toast=False)
    for i in range(5):
        session.add_notification(NotificationEntry("notify:a", "warning", f"n{i}", "", float(i)))
    assert [n.title for n in session.notifications()] == ["n2", "n3", "n4"]
    assert [n.title for n in session.take_new_notifications()] == ["n2", "n3", "n4"]
    assert session.take_new_notifications() == []
    session.add_notification(NotificationEntry("notify:a", "error", "n5", "", 5.0))
    assert [n.title for n in session.take_new_notifications()] == ["n5"]


def test_connection_status() -> None:
    """The status says state, attempt and last error, when it changed, and when the last message came."""
    clock = FakeClock(50.0)
    session = SessionBuffer(clock=clock)
    status = session.connection()
    assert (status.state, status.attempt, status.last_message_at) == (ConnectionState.CONNECTING, 0, None)
    clock.now = 60.0
    session.set_connection(ConnectionState.RECONNECTING, attempt=2, error="connection refused")
    session.touch()
    status = session.connection()
    assert status.state is ConnectionState.RECONNECTING
    assert (status.attempt, status.last_error, status.changed_at, status.last_message_at) == (
        2,
        "connection refused",
        60.0,
        60.0,
    )


# -- downsampling ----------------------------------------------------------------------------------


def _trace(seed: int, count: int) -> tuple[FloatArray, FloatArray]:
    rng = np.random.default_rng(seed)
    ts = 1_700_000_000.0 + np.cumsum(rng.uniform(0.001, 0.2, size=count))
    values = np.cumsum(rng.standard_normal(count))
    return ts, values


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("count", [2001, 2002, 10_007, 100_000])
@pytest.mark.parametrize("max_points", [4, 5, 101, 2000])
def test_downsample_keeps_extremes_ends_and_order(seed: int, count: int, max_points: int) -> None:
    """At most max_points points, in time order, including the first, the last, the global min and max."""
    ts, values = _trace(seed, count)
    out_ts, out_values = downsample(ts, values, max_points)
    assert 3 <= len(out_ts) == len(out_values) <= max_points
    assert np.all(np.diff(out_ts) > 0)
    assert (out_ts[0], out_values[0], out_ts[-1], out_values[-1]) == (ts[0], values[0], ts[-1], values[-1])
    assert (out_values.min(), out_values.max()) == (values.min(), values.max())
    # Every output point is an input point, with its own timestamp.
    keep = np.searchsorted(ts, out_ts)
    assert np.array_equal(values[keep], out_values)


@pytest.mark.parametrize("seed", range(3))
def test_downsample_keeps_every_spike(seed: int) -> None:
    """Single-sample spikes up and down, far enough apart to fall in different buckets, all survive."""
    rng = np.random.default_rng(seed)
    ts, values = _trace(seed, 200_000)
    spikes = np.arange(500, 200_000, 5000) + rng.integers(0, 400, size=40)
    values[spikes[::2]] = 1e6
    values[spikes[1::2]] = -1e6
    out_ts, _ = downsample(ts, values, 2000)
    assert set(ts[spikes].tolist()) <= set(out_ts.tolist())


@pytest.mark.parametrize("count", [0, 1, 2, 3, 1999, 2000])
def test_downsample_passes_small_traces_through(count: int) -> None:
    """A trace of at most max_points points comes back as the very same arrays."""
    ts, values = _trace(0, count)
    out_ts, out_values = downsample(ts, values)
    assert out_ts is ts and out_values is values
    assert minmax_indices(values).tolist() == list(range(count))


def test_downsample_flat_trace_and_bad_arguments() -> None:
    """A constant trace keeps each bucket's point once; max_points below 4 or mismatched arrays raise."""
    ts = np.arange(10_000, dtype=np.float64)
    out_ts, out_values = downsample(ts, np.zeros(10_000), 100)
    assert len(out_ts) <= 100 and np.all(np.diff(out_ts) > 0) and not out_values.any()
    with pytest.raises(ValueError, match="at least 4"):
        downsample(ts, ts, 3)
    with pytest.raises(ValueError, match="1-D"):
        downsample(ts, ts[:-1])
