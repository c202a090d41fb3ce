"""Durable log of ``chat:`` and ``notify:`` publications in SQLite (WAL), for the memory broker.

Why writes happen on the event loop, synchronously: a WAL commit with ``synchronous=NORMAL`` is one
``write()`` to the log, tens of microseconds, and it makes ``publish`` trivially ordered and atomic with
the offset it assigns (reserve, commit, deliver; a failed commit reserves nothing). It survives a
``kill -9`` of the gateway (the data is in the OS), not a power cut; set ``PULSE_SQLITE_FSYNC=true``
for that (``synchronous=FULL``). What can be slow (checkpoints that fsync, trimming old rows) runs off
the loop in ``maintain`` on its own connection, and automatic checkpoints on the writer are off.

Epochs: durable channels share the database's epoch, made once when the file is created, so an epoch
changes only when the file (the history) is lost, never because the gateway restarted.

Idempotency keys of durable channels are committed in the same transaction as the publications they
name, so a retry after a crash finds the key exactly when it finds the messages; ``maintain`` prunes
the expired ones.
"""

import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.broker.base import Publication

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS publications (
    channel TEXT NOT NULL,
    offset INTEGER NOT NULL,
    ts REAL NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (channel, offset)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS idempotency (
    channel TEXT NOT NULL,
    key TEXT NOT NULL,
    first_offset INTEGER NOT NULL,
    last_offset INTEGER NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (channel, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idempotency_expiry ON idempotency (expires);
"""

PRUNE_BATCH = 1000
"""Expired idempotency keys deleted per transaction, so the writer never waits long for the lock."""


class StoreError(Exception):
    """A write to the durable log failed; the publication was not stored."""


@dataclass(frozen=True, slots=True)
class StoredPublication:
    channel: str
    offset: int
    ts: float
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StoredKey:
    """An idempotency key of a durable channel and the offsets its publish got."""

    channel: str
    key: str
    offsets: range
    expires: float
    """Wall-clock time (``time.time()``) after which a repeat of the key publishes again."""


class DurableStore:
    def __init__(self, path: Path, *, keep: int, fsync: bool = False) -> None:
        self.path = path
        self.keep = keep
        """Rows kept per channel; older ones are trimmed by ``maintain`` (history holds no more)."""
        self._fsync = fsync
        self._writer: sqlite3.Connection | None = None
        self._maintenance_lock = threading.Lock()
        self._written: dict[str, int] = {}
        """Channels appended to since the last trim, with their newest offset (guarded by the lock)."""
        self.epoch = ""

    def _connect(self) -> sqlite3.Connection:
        # A short busy timeout: the writer runs on the event loop, and waiting on a lock blocks every
        # client. Our own maintenance holds the lock for milliseconds; anything longer is a failure to
        # report (publish answers "unavailable"/503, health says degraded), not to wait out.
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=0.25)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={'FULL' if self._fsync else 'NORMAL'}")
        return conn

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._connect()
        conn.execute("PRAGMA wal_autocheckpoint=0")
        conn.executescript(_SCHEMA)
        row = conn.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()
        if row is None:
            epoch = secrets.token_hex(4)
            conn.execute("INSERT INTO meta (key, value) VALUES ('epoch', ?)", (epoch,))
        else:
            epoch = row[0]
        self.epoch = epoch
        self._writer = conn

    def load(self) -> dict[str, list[StoredPublication]]:
        """The last ``keep`` publications of every stored channel, oldest first."""
        conn = self._require_writer()
        rows = conn.execute(
            """
            SELECT p.channel, p.offset, p.ts, p.data
            FROM publications AS p
            JOIN (SELECT channel, MAX(offset) AS top FROM publications GROUP BY channel) AS t
              ON p.channel = t.channel
            WHERE p.offset > t.top - ?
            ORDER BY p.channel, p.offset
            """,
            (self.keep,),
        ).fetchall()
        streams: dict[str, list[StoredPublication]] = {}
        for channel, offset, ts, data in rows:
            streams.setdefault(channel, []).append(StoredPublication(channel, offset, ts, json.loads(data)))
        return streams

    def load_keys(self, now: float, limit: int) -> list[StoredKey]:
        """The newest ``limit`` idempotency keys valid at wall-clock ``now``, soonest to expire first."""
        rows = (
            self._require_writer()
            .execute(
                """
                SELECT channel, key, first_offset, last_offset, expires FROM idempotency
                WHERE expires > ? ORDER BY expires DESC LIMIT ?
                """,
                (now, limit),
            )
            .fetchall()
        )
        return [
            StoredKey(channel, key, range(first, last + 1), expires)
            for channel, key, first, last, expires in reversed(rows)
        ]

    def append(self, publications: Sequence[Publication], key: StoredKey | None = None) -> None:
        """Commit publications and ``key`` (if any) in one transaction; raise ``StoreError`` if that fails."""
        conn = self._require_writer()
        rows = [(p.channel, p.offset, p.ts, json.dumps(p.data, separators=(",", ":"))) for p in publications]
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(
                    "INSERT INTO publications (channel, offset, ts, data) VALUES (?, ?, ?, ?)", rows
                )
                if key is not None:
                    # REPLACE: an expired key may still be stored until the next prune.
                    conn.execute(
                        """
                        INSERT OR REPLACE INTO idempotency (channel, key, first_offset, last_offset, expires)
                        VALUES (?, ?, ?, ?, ?)
                        """,
                        (key.channel, key.key, key.offsets.start, key.offsets.stop - 1, key.expires),
                    )
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"durable write failed: {exc}") from exc
        with self._maintenance_lock:
            for publication in publications:
                self._written[publication.channel] = publication.offset

    def maintain(self, now: float | None = None) -> None:
        """Trim rows past ``keep`` in channels written since the last call, delete idempotency keys expired
        at wall-clock ``now`` (default: the current time), then checkpoint the WAL.

        Blocking: run it in a thread. One short transaction per channel, by primary key, and per
        ``PRUNE_BATCH`` keys, so the writer on the event loop never waits long for the lock.
        """
        with self._maintenance_lock:
            written, self._written = self._written, {}
        conn = self._connect()
        try:
            for channel, top in written.items():
                conn.execute(
                    "DELETE FROM publications WHERE channel = ? AND offset <= ?", (channel, top - self.keep)
                )
            expired_at = time.time() if now is None else now
            while True:
                pruned = conn.execute(
                    """
                    DELETE FROM idempotency WHERE (channel, key) IN
                    (SELECT channel, key FROM idempotency WHERE expires <= ? LIMIT ?)
                    """,
                    (expired_at, PRUNE_BATCH),
                ).rowcount
                if pruned < PRUNE_BATCH:
                    break
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            conn.close()

    def close(self) -> None:
        if self._writer is None:
            return
        self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._writer.close()
        self._writer = None

    def _require_writer(self) -> sqlite3.Connection:
        if self._writer is None:
            raise StoreError("the durable store is not open")
        return self._writer
