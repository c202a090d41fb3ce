"""The shared history store: PostgreSQL, written and read by several gateway processes at once.

Each process records the publications it accepted (``Broker.on_accepted``), so every process writes
different publications of the same channels, concurrently. What keeps that exact:

- ``tier_raw`` has the primary key ``(series_id, ts, stream_id, pub)``: a sample is one series of one
  publication (channel and epoch are ``stream_id``, the offset is ``pub``; ``ts`` is fixed per publication
  and must be in the key because the table is partitioned on it). Rows arrive by ``COPY`` into a
  temporary table and move on with ``INSERT ... ON CONFLICT DO NOTHING``: a retried write adds nothing.
- Rollup buckets are recomputed under a transaction-scoped advisory lock per series, taken in id order:
  two processes touching the same buckets take turns, and the second, in READ COMMITTED, recomputes
  from the first one's committed samples as well as its own.
- A range read runs in REPEATABLE READ: the position it reports and the samples it returns are one
  snapshot. The position is the newest offset any process has stored; what another process still holds
  in its write buffer (at most ``PULSE_HISTORY_FLUSH_INTERVAL``) is missing from that read.

``tier_raw`` is partitioned by day on ``ts``, so retention drops whole days of samples (a partition goes
once its whole day is past the raw retention) instead of deleting rows. Partitions are created before the
write that needs them, and a day ahead by ``maintain``; that DDL runs under an advisory lock of its own so
processes creating or dropping the same partition take turns.
"""

import struct
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from gateway.history.base import RangeResult, SampleBatch, StoreError
from gateway.history.sqlstore import SqlHistoryStore
from gateway.history.tiers import MICROS, Tier

DAY = 86_400 * MICROS
"""Width of one raw partition, in microseconds."""
PARTITION_PREFIX = "tier_raw_"
DDL_LOCK = 0x70756C73_68697374
"""Advisory lock (one bigint key) held while creating or dropping partitions."""
SERIES_LOCK = 0x7075_6C73
"""First key of the advisory locks (two int keys) that serialise rollups of one series."""
CONNECTION_DEFAULTS: dict[str, str | int] = {
    "application_name": "pulseboard-history",
    "connect_timeout": 5,
    # A server that vanishes without closing its sockets fails the statement in about 25 s, instead of
    # holding the writer thread (and so the pending samples) for the kernel's two hours.
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}
"""libpq parameters the URL may set otherwise."""

_COPY_ROW = np.dtype(
    [
        ("fields", ">i2"),
        ("series_id_len", ">i4"), ("series_id", ">i4"),
        ("ts_len", ">i4"), ("ts", ">i8"),
        ("value_len", ">i4"), ("value", ">f8"),
        ("stream_id_len", ">i4"), ("stream_id", ">i4"),
        ("pub_len", ">i4"), ("pub", ">i8"),
    ]
)  # fmt: skip
"""One row of PostgreSQL's binary COPY format for ``tier_raw``'s columns (big-endian, each field's length
first): the whole batch becomes one buffer without a Python loop."""
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_COPY_TRAILER = struct.pack("!h", -1)


def _copy_buffer(rows: dict[str, np.ndarray[Any, Any]]) -> bytes:
    table = np.empty(len(rows["ts"]), dtype=_COPY_ROW)
    table["fields"] = 5
    for name in ("series_id", "ts", "value", "stream_id", "pub"):
        table[f"{name}_len"] = _COPY_ROW[name].itemsize
        table[name] = rows[name]
    return _COPY_HEADER + table.tobytes() + _COPY_TRAILER


def partition_name(day: int) -> str:
    """``tier_raw_YYYYMMDD`` for the day ``day`` (days since the Unix epoch)."""
    return PARTITION_PREFIX + datetime.fromtimestamp(day * 86_400, UTC).strftime("%Y%m%d")


def partition_day(name: str) -> int | None:
    """The day a partition's name stands for; None for a name that is not one of ours."""
    try:
        moment = datetime.strptime(name.removeprefix(PARTITION_PREFIX), "%Y%m%d").replace(tzinfo=UTC)
    except ValueError:
        return None
    return int(moment.timestamp()) // 86_400


class _Connection:
    """A psycopg connection in autocommit mode (the store sends BEGIN and COMMIT itself) that takes the
    base class's ``?`` placeholders.

    A connection held by a thread outlives a server restart only as a dead socket: at the ``BEGIN`` that
    starts a transaction (nothing done yet, so safe to repeat) a reused connection that fails is replaced
    by a new one once, so the first read after the store comes back does not fail for that alone."""

    def __init__(self, url: str, closed: Callable[["_Connection"], None]) -> None:
        self._url = url
        self._closed = closed
        self._pg = self._open()
        self._used = False

    def _open(self) -> psycopg.Connection[Any]:
        params = {**CONNECTION_DEFAULTS, **conninfo_to_dict(self._url)}
        connection = psycopg.connect(make_conninfo("", **params), autocommit=True)
        # CREATE ... IF NOT EXISTS says NOTICE for each thing that exists; that is the normal case.
        connection.execute("SET client_min_messages = warning")
        return connection

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> psycopg.Cursor[Any]:
        if sql == "BEGIN" and self._used:
            try:
                return self._pg.execute(sql)
            except psycopg.OperationalError:
                self._pg.close()
                self._pg = self._open()
        self._used = True
        if params is None:
            return self._pg.execute(sql)
        return self._pg.execute(sql.replace("%", "%%").replace("?", "%s"), params)

    def copy_in(self, sql: str, data: bytes) -> None:
        with self._pg.cursor() as cursor, cursor.copy(sql) as copy:
            copy.write(data)

    def close(self) -> None:
        self._pg.close()
        self._closed(self)


class PostgresStore(SqlHistoryStore):
    backend = "postgresql"

    def __init__(self, url: str, tiers: tuple[Tier, ...]) -> None:
        super().__init__(tiers)
        self.url = url
        self._connections: set[_Connection] = set()
        """Every open connection, whichever thread it belongs to: ``close`` closes them all (a thread's
        own would otherwise be closed only by the garbage collector, after the thread ends)."""
        self._connections_lock = threading.Lock()
        self._partitions: set[int] = set()
        """Days whose raw partition this process has seen exist (writer thread only)."""

    def _connect(self) -> _Connection:
        connection = _Connection(self.url, self._closed)
        with self._connections_lock:
            self._connections.add(connection)
        return connection

    def _closed(self, connection: _Connection) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def close(self) -> None:
        self._forget_connection()
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            connection.close()

    def _errors(self) -> tuple[type[BaseException], ...]:
        return (psycopg.Error,)

    # --- schema and partitions --------------------------------------------------------------------

    def _create_schema(self, connection: Any) -> None:
        with self._transaction() as connection:  # the same thread's connection, inside a transaction
            # Several gateways may start at once: CREATE ... IF NOT EXISTS is not safe against itself.
            connection.execute(f"SELECT pg_advisory_xact_lock({DDL_LOCK})")
            connection.execute(
                "CREATE TABLE IF NOT EXISTS series (id integer GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
                " channel text NOT NULL, name text NOT NULL, UNIQUE (channel, name))"
            )
            connection.execute(
                "CREATE TABLE IF NOT EXISTS streams (id integer GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
                " channel text NOT NULL, epoch text NOT NULL, top bigint NOT NULL DEFAULT 0,"
                " UNIQUE (channel, epoch))"
            )
            connection.execute(
                "CREATE TABLE IF NOT EXISTS tier_raw (series_id integer NOT NULL, ts bigint NOT NULL,"
                " value double precision NOT NULL, stream_id integer NOT NULL, pub bigint NOT NULL,"
                " PRIMARY KEY (series_id, ts, stream_id, pub)) PARTITION BY RANGE (ts)"
            )
            for tier in self.tiers[1:]:
                connection.execute(
                    f"CREATE TABLE IF NOT EXISTS {tier.table} (series_id integer NOT NULL,"
                    " bucket bigint NOT NULL, min double precision NOT NULL, max double precision NOT NULL,"
                    " sum double precision NOT NULL, count bigint NOT NULL, last_ts bigint NOT NULL,"
                    " last double precision NOT NULL, PRIMARY KEY (series_id, bucket))"
                )

    def _ensure_partitions(self, days: Iterable[int]) -> None:
        missing = sorted(set(days) - self._partitions)
        if not missing:
            return
        with self._transaction() as connection:
            connection.execute(f"SELECT pg_advisory_xact_lock({DDL_LOCK})")
            for day in missing:
                connection.execute(
                    f"CREATE TABLE IF NOT EXISTS {partition_name(day)} PARTITION OF tier_raw "
                    f"FOR VALUES FROM ({day * DAY}) TO ({(day + 1) * DAY})"
                )
        self._partitions.update(missing)

    def raw_partitions(self) -> list[str]:
        """The raw tier's partitions, oldest first."""
        with self._transaction() as connection:
            return sorted(name for name, _ in self._listed_partitions(connection))

    @staticmethod
    def _listed_partitions(connection: Any) -> list[tuple[str, int]]:
        rows = connection.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'tier_raw'::regclass"
        ).fetchall()
        named = ((str(row[0]), partition_day(str(row[0]))) for row in rows)
        return [(name, day) for name, day in named if day is not None]

    # --- writing ----------------------------------------------------------------------------------

    def write(self, batch: SampleBatch) -> int:
        try:
            # Before the write's transaction: a partition's DDL locks tier_raw until its commit.
            days = np.unique(batch.times() // DAY)
            self._ensure_partitions(days.tolist())
            return super().write(batch)
        except StoreError:
            # Another process's retention may have dropped a partition this one remembers.
            self._partitions.clear()
            raise

    def _insert_raw(self, connection: Any, rows: dict[str, np.ndarray[Any, Any]]) -> int:
        # Lock the batch's streams rows in id order before the base class updates their tops in its own
        # order: two processes writing the same channels then never wait on each other in a cycle.
        streams = sorted(set(rows["stream_id"].tolist()))
        connection.execute(
            "SELECT id FROM streams WHERE id = ANY(?) ORDER BY id FOR UPDATE", [streams]
        ).fetchall()
        connection.execute("CREATE TEMP TABLE IF NOT EXISTS raw_in (LIKE tier_raw) ON COMMIT DELETE ROWS")
        connection.copy_in(
            "COPY raw_in (series_id, ts, value, stream_id, pub) FROM STDIN (FORMAT BINARY)",
            _copy_buffer(rows),
        )
        inserted = connection.execute(
            "INSERT INTO tier_raw SELECT series_id, ts, value, stream_id, pub FROM raw_in "
            "ON CONFLICT DO NOTHING"
        )
        return int(inserted.rowcount)

    def _last_of(self, value: str, order: tuple[str, ...]) -> str:
        descending = ", ".join(f"{column} DESC" for column in order)
        return f"(array_agg({value} ORDER BY {descending}))[1]"

    def _lock_series(self, connection: Any, ids: Sequence[int]) -> None:
        connection.execute(
            f"SELECT pg_advisory_xact_lock({SERIES_LOCK}, id) "
            "FROM (SELECT unnest(?::integer[]) AS id ORDER BY id) AS ids",
            [sorted(int(sid) for sid in ids)],
        ).fetchall()

    def maintain(self, now: int) -> None:
        raw = self.tiers[0]
        today = now // DAY
        self._ensure_partitions([today, today + 1])
        with self._transaction() as connection:
            connection.execute(f"SELECT pg_advisory_xact_lock({DDL_LOCK})")
            for name, day in self._listed_partitions(connection):
                if (day + 1) * DAY <= raw.horizon(now):
                    connection.execute(f"DROP TABLE IF EXISTS {name}")
                    self._partitions.discard(day)
        with self._transaction() as connection:
            for tier in self.tiers[1:]:
                connection.execute(f"DELETE FROM {tier.table} WHERE bucket < ?", [tier.horizon(now)])

    def _bytes_on_disk(self, connection: Any) -> int | None:
        row = connection.execute(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r' "
            "AND (c.relname LIKE 'tier\\_%' OR c.relname IN ('series', 'streams'))"
        ).fetchone()
        return int(row[0])

    # --- reading ----------------------------------------------------------------------------------

    def _query(
        self, connection: Any, channel: str, series: list[str], start: int, end: int, points: int, now: int
    ) -> RangeResult:
        # One snapshot for the position and the samples (READ COMMITTED would take one per statement).
        connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        return super()._query(connection, channel, series, start, end, points, now)
