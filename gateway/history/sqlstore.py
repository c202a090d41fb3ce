"""What the SQL backends share: the schema's shape, rollups recomputed from the tier below, range reads.

Tables (``Tier.table`` names them):
- ``series (id, channel, name)`` and ``streams (id, channel, epoch, top)``: small lookup tables; ``top`` is
  the newest stored offset of that epoch, the position a range read reports.
- ``tier_raw (series_id, ts, value, stream_id, pub)``: one row per sample, ``pub`` the publication's offset.
- ``tier_1s``, ``tier_1m``, ``tier_1h`` ``(series_id, bucket, min, max, sum, count, last_ts, last)``.

A write inserts the samples and then recomputes, tier by tier, every bucket they touch from the tier below
(delete and insert, in the same transaction): a recomputed bucket is exact however late or often its
samples arrive, and a retried write changes nothing. Backends differ in how rows get in (bulk paths), in
how duplicates are kept out, and in a few spellings; those are the hooks below.
"""

import threading
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from gateway.history.base import (
    Buckets,
    HistoryStore,
    Layout,
    RangeResult,
    SampleBatch,
    StoreError,
    StoreStats,
)
from gateway.history.tiers import Tier, bucket_width, floor_to, pick, segments
from shared.messages import StreamPosition

Row = tuple[Any, ...]


class SqlHistoryStore(HistoryStore):
    def __init__(self, tiers: tuple[Tier, ...]) -> None:
        self.tiers = tiers
        self._series_ids: dict[tuple[str, str], int] = {}
        self._stream_ids: dict[tuple[str, str], int] = {}
        self._local = threading.local()

    # --- spellings and bulk paths of one engine -------------------------------------------------

    @abstractmethod
    def _connect(self) -> Any:
        """A new DB-API connection (one per thread)."""

    @abstractmethod
    def _create_schema(self, connection: Any) -> None: ...

    @abstractmethod
    def _insert_raw(self, connection: Any, rows: dict[str, np.ndarray[Any, Any]]) -> int:
        """Insert raw samples (columns ``series_id, ts, value, stream_id, pub``), skipping stored ones;
        returns how many were new."""

    @abstractmethod
    def _last_of(self, value: str, order: tuple[str, ...]) -> str:
        """SQL for the aggregate: ``value`` of the row that sorts last by the ``order`` columns."""

    @abstractmethod
    def _lock_series(self, connection: Any, ids: Sequence[int]) -> None:
        """Serialise rollup recomputation of these series with other writers (other processes)."""

    @abstractmethod
    def _bytes_on_disk(self, connection: Any) -> int | None: ...

    @abstractmethod
    def _errors(self) -> tuple[type[BaseException], ...]:
        """The driver's exceptions that mean the database failed (wrapped into ``StoreError``)."""

    # --- connections ----------------------------------------------------------------------------

    def _connection(self) -> Any:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._connect()
            self._local.connection = connection
        return connection

    def _forget_connection(self) -> None:
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            try:
                connection.close()
            except self._errors():
                pass

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        try:
            connection = self._connection()
            connection.execute("BEGIN")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        except self._errors() as exc:
            self._forget_connection()
            raise StoreError(f"{self.backend}: {exc}") from exc

    def open(self) -> None:
        try:
            self._create_schema(self._connection())
        except self._errors() as exc:
            self._forget_connection()
            raise StoreError(f"{self.backend}: {exc}") from exc

    # --- ids --------------------------------------------------------------------------------------

    def _ids(
        self,
        connection: Any,
        table: str,
        columns: tuple[str, str],
        keys: set[tuple[str, str]],
        cache: dict[tuple[str, str], int],
    ) -> None:
        missing = sorted(keys - cache.keys())
        if not missing:
            return
        first, second = columns
        for key in missing:
            connection.execute(
                f"INSERT INTO {table} ({first}, {second}) VALUES (?, ?) ON CONFLICT DO NOTHING", list(key)
            )
            row = connection.execute(
                f"SELECT id FROM {table} WHERE {first} = ? AND {second} = ?", list(key)
            ).fetchone()
            cache[key] = int(row[0])

    # --- writing ----------------------------------------------------------------------------------

    def write(self, batch: SampleBatch) -> int:
        if not len(batch):
            return 0
        try:
            with self._transaction() as connection:
                return self._write(connection, batch)
        except StoreError:
            # Ids cached from a rolled-back transaction may not exist: look them up again next time.
            self._series_ids.clear()
            self._stream_ids.clear()
            raise

    def _write(self, connection: Any, batch: SampleBatch) -> int:
        layouts = list(batch.layouts.values())
        wanted = {(layout.channel, name) for layout in layouts for name in layout.names}
        streams = {(layout.channel, layout.epoch) for layout in layouts}
        self._ids(connection, "series", ("channel", "name"), wanted, self._series_ids)
        self._ids(connection, "streams", ("channel", "epoch"), streams, self._stream_ids)
        parts = [self._layout_columns(layout) for layout in layouts]
        columns = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
        added = self._insert_raw(connection, columns)
        tops: dict[int, int] = {}
        for layout in layouts:
            stream = self._stream_ids[layout.channel, layout.epoch]
            tops[stream] = max(tops.get(stream, 0), max(layout.offset))
        for stream, top in sorted(tops.items()):
            connection.execute("UPDATE streams SET top = greatest(top, ?) WHERE id = ?", [top, stream])
        self._roll_up(connection, columns["series_id"], columns["ts"])
        return added

    def _layout_columns(self, layout: Layout) -> dict[str, np.ndarray[Any, Any]]:
        """The raw rows of one layout: its series ids repeat publication by publication."""
        width, publications = len(layout.names), len(layout.time)
        ids = np.array([self._series_ids[layout.channel, name] for name in layout.names], np.int64)
        return {
            "series_id": np.tile(ids, publications),
            "ts": np.repeat(np.array(layout.time, np.int64), width),
            "value": np.array(layout.values, np.float64),
            "stream_id": np.full(width * publications, self._stream_ids[layout.channel, layout.epoch]),
            "pub": np.repeat(np.array(layout.offset, np.int64), width),
        }

    def _roll_up(self, connection: Any, series_id: np.ndarray[Any, Any], times: np.ndarray[Any, Any]) -> None:
        """Recompute every rollup bucket the samples touch, tier by tier, from the tier below: one delete
        and one insert per tier, for all the series the batch touched."""
        order = np.argsort(series_id, kind="stable")
        ids, starts = np.unique(series_id[order], return_index=True)
        chunks = np.split(times[order], starts[1:])
        spans = [
            (int(sid), int(chunk.min()), int(chunk.max())) for sid, chunk in zip(ids, chunks, strict=True)
        ]
        self._lock_series(connection, [sid for sid, _, _ in spans])
        below = self.tiers[0]
        for tier in self.tiers[1:]:
            width = tier.width
            dirty = [(sid, floor_to(low, width), floor_to(high, width) + width) for sid, low, high in spans]
            values = ", ".join(["(?, ?, ?)"] * len(dirty))
            params = [value for span in dirty for value in span]
            # The overall bounds as constants too: they let the engine skip blocks of other times.
            bounds = [min(span[1] for span in dirty), max(span[2] for span in dirty)]
            ranges = f"(VALUES {values}) AS d(sid, lower_, upper_)"
            connection.execute(
                f"DELETE FROM {tier.table} USING {ranges} WHERE {tier.table}.series_id = d.sid "
                f"AND bucket >= d.lower_ AND bucket < d.upper_ AND bucket >= ? AND bucket < ?",
                [*params, *bounds],
            )
            at, aggregates = self._aggregates(below)
            connection.execute(
                f"INSERT INTO {tier.table} (series_id, bucket, min, max, sum, count, last_ts, last) "
                f"SELECT series_id, {at} - ({at} % {width}) AS b, {aggregates} FROM {below.table} "
                f"JOIN {ranges} ON series_id = d.sid AND {at} >= d.lower_ AND {at} < d.upper_ "
                f"WHERE {at} >= ? AND {at} < ? GROUP BY series_id, b",
                [*params, *bounds],
            )
            below = tier

    def maintain(self, now: int) -> None:
        with self._transaction() as connection:
            for tier in self.tiers:
                column = "bucket" if tier.width else "ts"
                connection.execute(f"DELETE FROM {tier.table} WHERE {column} < ?", [tier.horizon(now)])

    def stats(self) -> StoreStats:
        with self._transaction() as connection:
            rows = {
                tier.name: int(connection.execute(f"SELECT count(*) FROM {tier.table}").fetchone()[0])
                for tier in self.tiers
            }
            return StoreStats(samples=rows, bytes_on_disk=self._bytes_on_disk(connection))

    # --- reading ----------------------------------------------------------------------------------

    def series_names(self, channel: str) -> list[str]:
        with self._transaction() as connection:
            rows = connection.execute(
                "SELECT name FROM series WHERE channel = ? ORDER BY name", [channel]
            ).fetchall()
        return [str(row[0]) for row in rows]

    def query(
        self, channel: str, series: list[str], start: int, end: int, points: int, now: int
    ) -> RangeResult:
        with self._transaction() as connection:
            return self._query(connection, channel, series, start, end, points, now)

    def _query(
        self, connection: Any, channel: str, series: list[str], start: int, end: int, points: int, now: int
    ) -> RangeResult:
        position = connection.execute(
            "SELECT epoch, top FROM streams WHERE channel = ? ORDER BY id DESC LIMIT 1", [channel]
        ).fetchone()
        known: dict[str, int] = {}
        if series:
            named = ", ".join("?" * len(series))
            query = f"SELECT name, id FROM series WHERE channel = ? AND name IN ({named})"
            known = dict(connection.execute(query, [channel, *series]).fetchall())
        stream = StreamPosition(offset=int(position[1]), epoch=str(position[0])) if position else None
        ids = [int(known[name]) for name in series if name in known]
        names = {int(known[name]): name for name in series if name in known}
        chosen = pick(self.tiers, start, end, points)
        width = bucket_width(start, end, points, chosen)
        parts: list[list[np.ndarray[Any, Any]]] = []
        if ids:
            marks = ", ".join("?" * len(ids))
            raw_rows = None
            if chosen.width == 0:
                raw_rows = self._raw_if_few(
                    connection, ids, marks, start, end, points * len(ids), chosen, now
                )
            if raw_rows is not None:
                return RangeResult(self._as_samples(raw_rows, names, series), chosen, 0, stream)
            for tier, lower, upper in segments(self.tiers, chosen, start, end, now):
                parts.append(self._read(connection, tier, ids, marks, lower, upper, width))
        return RangeResult(self._merge(parts, names, series), chosen, width, stream)

    def _raw_if_few(
        self,
        connection: Any,
        ids: list[int],
        marks: str,
        start: int,
        end: int,
        most: int,
        raw: Tier,
        now: int,
    ) -> list[Row] | None:
        """The raw samples themselves when there are at most ``most`` and raw keeps the whole range."""
        if start < raw.horizon(now):
            return None
        query = f"FROM tier_raw WHERE series_id IN ({marks}) AND ts >= ? AND ts < ?"
        count = connection.execute(f"SELECT count(*) {query}", [*ids, start, end]).fetchone()[0]
        if count > most:
            return None
        rows: list[Row] = connection.execute(
            f"SELECT series_id, ts, value {query} ORDER BY series_id, ts, pub", [*ids, start, end]
        ).fetchall()
        return rows

    def _aggregates(self, tier: Tier) -> tuple[str, str]:
        """The time column of ``tier`` and the SQL that folds its rows into one bucket's aggregates
        (``min, max, sum, count, last_ts, last``)."""
        if tier.width:
            last = self._last_of("last", ("last_ts",))
            return "bucket", f"min(min), max(max), sum(sum), sum(count), max(last_ts), {last}"
        last = self._last_of("value", ("ts", "pub"))
        return "ts", f"min(value), max(value), sum(value), count(*), max(ts), {last}"

    def _read(
        self, connection: Any, tier: Tier, ids: list[int], marks: str, lower: int, upper: int, width: int
    ) -> list[np.ndarray[Any, Any]]:
        at, aggregates = self._aggregates(tier)
        if tier.width:
            # A coarser tier (an older part of the range) cannot be split finer than its own buckets, and
            # the bucket the range starts in counts whole.
            width = tier.width * -(-width // tier.width)
            lower = floor_to(lower, tier.width)
        # Output buckets are aligned to the epoch, so the same range read twice, or a later range, gives
        # the same buckets (the dashboard appends live points after the last one).
        return self._columns(
            connection,
            f"SELECT series_id, {at} - ({at} % {width}) AS b, {aggregates} FROM {tier.table} "
            f"WHERE series_id IN ({marks}) AND {at} >= ? AND {at} < ? GROUP BY series_id, b",
            [*ids, lower, upper],
        )

    def _columns(self, connection: Any, sql: str, params: list[Any]) -> list[np.ndarray[Any, Any]]:
        """A query's result as one array per column (engines with a columnar fetch override this)."""
        rows = connection.execute(sql, params).fetchall()
        return list(np.array(rows, dtype=np.float64).T) if rows else []

    @staticmethod
    def _empty() -> Buckets:
        ints, floats = np.zeros(0, np.int64), np.zeros(0, np.float64)
        return Buckets(ints, floats, floats, floats, ints, floats)

    @staticmethod
    def _as_samples(rows: list[Row], names: dict[int, str], series: list[str]) -> dict[str, Buckets]:
        result: dict[str, Buckets] = {}
        for name in series:
            mine = [row for row in rows if names.get(int(row[0])) == name]
            times = np.array([row[1] for row in mine], dtype=np.int64)
            values = np.array([row[2] for row in mine], dtype=np.float64)
            result[name] = Buckets(times, values, values, values, np.ones(len(mine), np.int64), values)
        return result

    @classmethod
    def _merge(
        cls, parts: list[list[np.ndarray[Any, Any]]], names: dict[int, str], series: list[str]
    ) -> dict[str, Buckets]:
        """Bucket rows of several segments as one bucket list per series (a bucket at a segment boundary
        gets rows from both sides: their aggregates combine exactly)."""
        parts = [part for part in parts if part and len(part[0])]
        if not parts:
            return {name: cls._empty() for name in series}
        sid, bucket, low, high, total, count, last_ts, last = (
            np.concatenate([np.asarray(part[index]) for part in parts]) for index in range(8)
        )
        sid, bucket, last_ts = sid.astype(np.int64), bucket.astype(np.int64), last_ts.astype(np.int64)
        # Sorted by series, bucket, then last_ts: the last row of each (series, bucket) run holds its last.
        order = np.lexsort((last_ts, bucket, sid))
        sid, bucket = sid[order], bucket[order]
        low, high, total, count, last = low[order], high[order], total[order], count[order], last[order]
        new = np.ones(len(sid), dtype=bool)
        new[1:] = (sid[1:] != sid[:-1]) | (bucket[1:] != bucket[:-1])
        starts = np.flatnonzero(new)
        ends = np.append(starts[1:], len(sid)) - 1
        run_sid = sid[starts]
        merged = {
            "time": bucket[starts],
            "min": np.minimum.reduceat(low, starts),
            "max": np.maximum.reduceat(high, starts),
            "sum": np.add.reduceat(total, starts),
            "count": np.add.reduceat(count, starts).astype(np.int64),
            "last": last[ends],
        }
        result: dict[str, Buckets] = {}
        wanted = {name: sid_ for sid_, name in names.items()}
        for name in series:
            if name not in wanted:
                result[name] = cls._empty()
                continue
            mask = run_sid == wanted[name]
            result[name] = Buckets(**{key: column[mask] for key, column in merged.items()})
        return result
