"""History: the embedded engine chosen by measurement, the store's targets, and fan-out with it on and off.

Run from the repository root::

    python -m bench.history           # full: a day of 10 Hz data, 30 days through the tiers (a few minutes)
    python -m bench.history --quick   # an hour of data, short fan-out runs: checks the harness

Parts, each on data shaped like the simulator's (its own ``data:cpu`` series, one decimal):

1. Engines side by side on the raw samples of 24 h of 3 series at 10 Hz (2.6M samples): SQLite (a row
   per sample, WAL, a ``WITHOUT ROWID`` primary key) and DuckDB (compressed columns, Pulseboard's raw
   table), each written in batches of 30 000 samples. Ingest samples/s, bytes per sample on disk, and a
   24 h read folded into 2 000 min/max buckets per series.
2. Pulseboard's embedded store (``gateway.history.EmbeddedStore``): ingest with the rollups, the 24 h
   read through the tiers (target 2: <= 50 ms, stretch 20), a 30-day read (30 days at one point per 10 s:
   a 30-day read is served from the 1 min tier, which is the same size whatever the raw rate), and bytes
   per sample for each tier (each table copied into a file of its own).
3. Fan-out with the store on and off (``bench.fanout``'s load generator, the gateway's default 1 MiB
   queue): full speed N=100 and N=1000 x 100 msg/s, the two servers interleaved, 5 runs each pooled
   (target 1: within 10 %).
"""

import argparse
import os
import random
import shlex
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import uvloop

from bench.fanout import LOAD_CPU, Scenario, interleaved, ratio_table, start_server
from bench.report import markdown_table, print_report
from gateway.history.base import SampleBatch
from gateway.history.embedded import EmbeddedStore
from gateway.history.tiers import MICROS, build_tiers
from gateway.settings import Settings
from simulator.sources import _cpu
from tests.servers import stop_process

DAY = 24 * 3600
BATCH = 30_000
POINTS = 2000
NOW = 1_800_000_000 * MICROS
DEFAULT_QUEUE_BYTES = Settings.model_fields["client_queue_bytes"].default


def simulator_day(seconds: int, rate: float) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Times (µs) and a (series, time) array of values from the simulator's own ``data:cpu`` signals."""
    series = _cpu(lambda name: random.Random(name))
    count = int(seconds * rate)
    step = 1.0 / rate
    values = np.empty((len(series), count))
    for index in range(count):
        for row, one in enumerate(series):
            values[row, index] = one.sample(step)
    times = NOW - (np.arange(count, 0, -1, dtype=np.int64) * round(step * MICROS))
    return times, values, [one.name for one in series]


def timed(action: Callable[[], Any], repeat: int = 5) -> tuple[float, float]:
    """Median and best seconds of ``repeat`` runs of ``action``."""
    took = []
    for _ in range(repeat):
        began = time.perf_counter()
        action()
        took.append(time.perf_counter() - began)
    return float(np.median(took)), min(took)


# --- 1. engines -------------------------------------------------------------------------------------


def _sqlite(path: Path, times: np.ndarray, values: np.ndarray) -> tuple[float, int, Callable[[], Any]]:
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(
        "CREATE TABLE raw (series INTEGER, ts INTEGER, value REAL, pub INTEGER, "
        "PRIMARY KEY (series, ts, pub)) WITHOUT ROWID"
    )
    per_batch = BATCH // len(values)
    began = time.perf_counter()
    for first in range(0, len(times), per_batch):
        chunk = slice(first, first + per_batch)
        stamp, offset = times[chunk].tolist(), list(range(first + 1, first + 1 + len(times[chunk])))
        rows = [
            (series, stamp[i], float(values[series, first + i]), offset[i])
            for series in range(len(values))
            for i in range(len(stamp))
        ]
        with connection:
            connection.executemany("INSERT INTO raw VALUES (?, ?, ?, ?)", rows)
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    took = time.perf_counter() - began
    width = (int(times[-1]) + 1 - int(times[0])) // POINTS + 1

    def read() -> Any:
        return connection.execute(
            "SELECT series, ts / ? AS b, min(value), max(value) FROM raw WHERE series IN (0, 1, 2) "
            "AND ts >= ? AND ts < ? GROUP BY series, b",
            [width, int(times[0]), int(times[-1]) + 1],
        ).fetchall()

    return took, path.stat().st_size, read


def _duckdb(path: Path, times: np.ndarray, values: np.ndarray) -> tuple[float, int, Callable[[], Any]]:
    connection = duckdb.connect(str(path), config={"threads": 1})
    connection.execute(
        "CREATE TABLE raw (series_id INTEGER, ts BIGINT, value DOUBLE, stream_id INTEGER, pub BIGINT)"
    )
    per_batch = BATCH // len(values)
    began = time.perf_counter()
    for first in range(0, len(times), per_batch):
        chunk = slice(first, first + per_batch)
        size = len(times[chunk])
        columns = {  # noqa: F841 (read by the SQL below)
            "series_id": np.repeat(np.arange(len(values), dtype=np.int32), size),
            "ts": np.tile(times[chunk], len(values)),
            "value": values[:, chunk].ravel(),
            "stream_id": np.ones(size * len(values), dtype=np.int32),
            "pub": np.tile(np.arange(first + 1, first + 1 + size, dtype=np.int64), len(values)),
        }
        connection.execute("INSERT INTO raw SELECT * FROM columns")  # a dict of arrays is a table to DuckDB
    connection.execute("CHECKPOINT")
    took = time.perf_counter() - began
    width = (int(times[-1]) + 1 - int(times[0])) // POINTS + 1

    def read() -> Any:
        return connection.execute(
            "SELECT series_id, ts // ? AS b, min(value), max(value) FROM raw WHERE series_id IN (0, 1, 2) "
            "AND ts >= ? AND ts < ? GROUP BY series_id, b",
            [width, int(times[0]), int(times[-1]) + 1],
        ).fetchnumpy()

    return took, path.stat().st_size, read


def engines(workdir: Path, times: np.ndarray, values: np.ndarray) -> str:
    samples = values.size
    rows = []
    for name, run in (("SQLite (row per sample)", _sqlite), ("DuckDB (columns)", _duckdb)):
        took, size, read = run(workdir / f"engine-{name.split()[0].lower()}.db", times, values)
        median, best = timed(read)
        rows.append(
            [
                name,
                f"{samples / took:,.0f}",
                f"{size / samples:.2f}",
                f"{1000 * median:.1f}",
                f"{1000 * best:.1f}",
            ]
        )
    header = ["Engine", "Ingest samples/s", "Bytes/sample", "24 h read, median ms", "best ms"]
    return markdown_table(header, rows, [False, True, True, True, True])


# --- 2. the embedded store -----------------------------------------------------------------------------


def _write(store: EmbeddedStore, times: np.ndarray, values: np.ndarray, names: list[str]) -> float:
    per_batch = BATCH // len(names)
    began = time.perf_counter()
    for first in range(0, len(times), per_batch):
        batch = SampleBatch()
        for index in range(first, min(len(times), first + per_batch)):
            point = {name: float(values[row, index]) for row, name in enumerate(names)}
            batch.add("data:cpu", "bench", index + 1, int(times[index]), point)
        store.write(batch)
    return time.perf_counter() - began


def _tier_bytes(store: EmbeddedStore, workdir: Path) -> dict[str, tuple[int, float]]:
    """Rows and bytes per row of each tier: the table copied alone into a fresh file, less the size of
    the same file with the table empty."""
    found: dict[str, tuple[int, float]] = {}
    source = store._connection()
    for tier in store.tiers:
        sizes = []
        for kind, limit in (("empty", " LIMIT 0"), ("full", "")):
            target = workdir / f"tier-{tier.name}-{kind}.duckdb"
            source.execute(f"ATTACH '{target}' AS alone")
            source.execute(f"CREATE TABLE alone.t AS SELECT * FROM {tier.table} ORDER BY series_id{limit}")
            source.execute("DETACH alone")
            sizes.append(target.stat().st_size)
        rows = int(source.execute(f"SELECT count(*) FROM {tier.table}").fetchone()[0])
        found[tier.name] = (rows, (sizes[1] - sizes[0]) / rows if rows else 0.0)
    return found


def store_figures(workdir: Path, day: tuple[np.ndarray, np.ndarray, list[str]], month_seconds: int) -> str:
    times, values, names = day
    tiers = build_tiers(raw=2 * DAY, second=8 * DAY, minute=90 * DAY, hour=730 * DAY)
    store = EmbeddedStore(workdir / "day.duckdb", tiers)
    store.open()
    took = _write(store, times, values, names)
    span = (int(times[0]), int(times[-1]) + 1)
    day_median, day_best = timed(lambda: store.query("data:cpu", names, *span, POINTS, NOW))
    raw_median, raw_best = timed(
        lambda: store.query("data:cpu", names, *span, (span[1] - span[0]) // MICROS * 10, NOW), repeat=3
    )
    per_tier = _tier_bytes(store, workdir)
    store.close()
    month = EmbeddedStore(workdir / "month.duckdb", tiers)
    month.open()
    month_times, month_values, _ = simulator_day(month_seconds, 0.1)
    _write(month, month_times, month_values, names)
    month_span = (int(month_times[0]), int(month_times[-1]) + 1)
    month_median, month_best = timed(lambda: month.query("data:cpu", names, *month_span, POINTS, NOW))
    month.close()
    samples = values.size
    rows = [
        ["ingest with rollups (1 s, 1 min, 1 h)", f"{samples:,} samples", f"{samples / took:,.0f}/s", "",
         ">= 200 000 samples/s"],
        ["24 h read, 2 000 points x 3 series", "1 s tier", _ms(day_median), _ms(day_best),
         "<= 50 ms (stretch 20)"],
        ["24 h read at full resolution", "raw tier", _ms(raw_median), _ms(raw_best), ""],
        [f"{month_seconds // DAY}-day read, 2 000 points x 3 series", "1 min tier", _ms(month_median),
         _ms(month_best), "<= 50 ms"],
    ]  # fmt: skip
    table = markdown_table(
        ["Case", "Input", "Median", "Best", "Target"], rows, [False, False, True, True, False]
    )
    tier_rows = [[name, f"{count:,}", f"{per_row:.2f}"] for name, (count, per_row) in per_tier.items()]
    sizes = markdown_table(["Tier", "Rows", "Bytes/row on disk"], tier_rows, [False, True, True])
    caption = "On disk, per tier (the day above; target 3: raw <= 8 bytes/sample, stretch 4):"
    return f"{table}\n\n{caption}\n\n{sizes}"


# --- 3. fan-out with the store on and off ------------------------------------------------------------------


async def fanout_pair(
    workdir: Path, seconds: float, repeats: int, full_n: int, fixed: tuple[int, int]
) -> str:
    # The gateway's default queue. bench.fanout's 256 KiB is just filled by its full-speed window (2 000
    # frames of ~130 bytes), so any pause of some tens of ms there closes every subscriber with 4001 and
    # the run's throughput says which server had the storm, not what the store costs.
    queue = {"PULSE_CLIENT_QUEUE_BYTES": str(DEFAULT_QUEUE_BYTES)}
    servers = {  # the store off first: the ratios are against it
        "off": start_server(
            "pulseboard", workdir, settings=queue | {"PULSE_HISTORY_URL": "none://"}, label="history off"
        ),
        "on": start_server("pulseboard", workdir, settings=queue, label="history on"),
    }
    scenarios: list[Scenario] = [
        (f"(a) full speed, N={full_n}", full_n, None),
        (f"(b) N={fixed[0]} x {fixed[1]} msg/s", fixed[0], fixed[1]),
    ]
    try:
        results = await interleaved(servers, scenarios, seconds, 5.0, repeats)
    finally:
        for server in servers.values():
            stop_process(server.process, 15, 10)
    return ratio_table(results, 2)


def _ms(seconds: float) -> str:
    return f"{1000 * seconds:.1f} ms"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.history", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="an hour of data and short runs: checks the harness"
    )
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(arguments)
    command = shlex.join([sys.executable, "-m", "bench.history", *arguments])
    began = time.perf_counter()
    seconds = 3600 if args.quick else DAY
    day = simulator_day(seconds, 10.0)
    with tempfile.TemporaryDirectory() as temp:
        workdir = Path(temp)
        part1 = engines(workdir, day[0], day[1])
        part2 = store_figures(workdir, day, 2 * DAY if args.quick else 30 * DAY)
        if shutil.which("taskset"):
            os.sched_setaffinity(0, {LOAD_CPU})
        fanout = (0.3, 1, 10, (50, 100)) if args.quick else (3.0, 5, 100, (1000, 100))
        part3 = uvloop.run(fanout_pair(workdir, *fanout))
    body = (
        f"### 1. Engines, raw samples of {day[1].size:,} samples\n\n{part1}\n\n"
        f"### 2. The embedded store (DuckDB)\n\n{part2}\n\n"
        f"### 3. Fan-out with the history store on and off\n\n{part3}"
    )
    notes = ["Single-threaded DuckDB (threads=1); SQLite through the standard library's sqlite3"]
    print_report("History benchmark", quick=args.quick, command=command, notes=notes, began=began, body=body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
