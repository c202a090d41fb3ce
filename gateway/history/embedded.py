"""The embedded history store: one DuckDB file under ``PULSE_DATA_DIR``, no service to run.

DuckDB was chosen by measuring it against SQLite (``bench/history.py``, docs/benchmarks.md): its
compressed columns hold a sample in a few bytes where SQLite's rows take about 29, and it folds millions
of rows into buckets in tens of milliseconds where SQLite takes a second.

One process owns the file (DuckDB locks it). This store is written by one writer thread, so a stream's
samples arrive in offset order and a publication is already stored exactly when its offset is not above
its stream's ``top``: that check replaces a unique index, which would cost more than the samples.
"""

from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from gateway.history.sqlstore import SqlHistoryStore
from gateway.history.tiers import Tier

MEMORY_LIMIT = "256MB"
"""DuckDB's buffer pool: by default it may take most of the machine's memory."""


class EmbeddedStore(SqlHistoryStore):
    backend = "duckdb"

    def __init__(self, path: Path, tiers: tuple[Tier, ...], *, threads: int = 1) -> None:
        super().__init__(tiers)
        self.path = path
        self._threads = threads
        self._database: duckdb.DuckDBPyConnection | None = None

    def _connect(self) -> Any:
        if self._database is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._database = duckdb.connect(
                str(self.path), config={"memory_limit": MEMORY_LIMIT, "threads": self._threads}
            )
        # A cursor is a connection of its own to the same database: one per thread.
        return self._database.cursor()

    def close(self) -> None:
        self._forget_connection()
        if self._database is not None:
            self._database.execute("CHECKPOINT")
            self._database.close()
            self._database = None

    def _create_schema(self, connection: Any) -> None:
        connection.execute("CREATE SEQUENCE IF NOT EXISTS series_ids")
        connection.execute("CREATE SEQUENCE IF NOT EXISTS stream_ids")
        connection.execute(
            "CREATE TABLE IF NOT EXISTS series (id INTEGER PRIMARY KEY DEFAULT nextval('series_ids'), "
            "channel VARCHAR NOT NULL, name VARCHAR NOT NULL, UNIQUE (channel, name))"
        )
        connection.execute(
            "CREATE TABLE IF NOT EXISTS streams (id INTEGER PRIMARY KEY DEFAULT nextval('stream_ids'), "
            "channel VARCHAR NOT NULL, epoch VARCHAR NOT NULL, top BIGINT NOT NULL DEFAULT 0, "
            "UNIQUE (channel, epoch))"
        )
        connection.execute(
            "CREATE TABLE IF NOT EXISTS tier_raw (series_id INTEGER NOT NULL, ts BIGINT NOT NULL, "
            "value DOUBLE NOT NULL, stream_id INTEGER NOT NULL, pub BIGINT NOT NULL)"
        )
        for tier in self.tiers[1:]:
            connection.execute(
                f"CREATE TABLE IF NOT EXISTS {tier.table} (series_id INTEGER NOT NULL, "
                "bucket BIGINT NOT NULL, min DOUBLE, max DOUBLE, sum DOUBLE, count BIGINT, "
                "last_ts BIGINT, last DOUBLE)"
            )

    def _insert_raw(self, connection: Any, rows: dict[str, np.ndarray[Any, Any]]) -> int:
        fresh = np.ones(len(rows["pub"]), dtype=bool)
        for stream in np.unique(rows["stream_id"]).tolist():
            found = connection.execute("SELECT top FROM streams WHERE id = ?", [stream]).fetchone()
            mine = rows["stream_id"] == stream
            fresh[mine] = rows["pub"][mine] > (found[0] if found else 0)
        # A dict of numpy arrays is a table to DuckDB's replacement scan: no DataFrame (nor pandas) needed.
        frame = {name: column[fresh] for name, column in rows.items()}  # noqa: F841 (read by SQL)
        connection.execute("INSERT INTO tier_raw SELECT series_id, ts, value, stream_id, pub FROM frame")
        return int(fresh.sum())

    def _columns(self, connection: Any, sql: str, params: list[Any]) -> list[np.ndarray[Any, Any]]:
        columns = connection.execute(sql, params).fetchnumpy()
        return [np.asarray(column) for column in columns.values()]

    def _last_of(self, value: str, order: tuple[str, ...]) -> str:
        return f"last({value} ORDER BY {', '.join(order)})"

    def _lock_series(self, connection: Any, ids: Any) -> None:
        """One writer thread: nothing to serialise with."""

    def _errors(self) -> tuple[type[BaseException], ...]:
        return (duckdb.Error,)

    def _bytes_on_disk(self, connection: Any) -> int | None:
        connection.execute("CHECKPOINT")
        wal = self.path.with_name(self.path.name + ".wal")
        return self.path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
