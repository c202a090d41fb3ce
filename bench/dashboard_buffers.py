"""Speed of the dashboard's data layer. Speed targets live here, never in timed unit tests.

Run from the repository root::

    python -m bench.dashboard_buffers           # full sizes, about 15 s
    python -m bench.dashboard_buffers --quick   # small sizes, under 3 s: checks the harness, not the speed

What it measures:

- **Append throughput, consumer side.** ``SessionBuffer.append_point`` as the consumer thread calls it
  for each data ``pub`` (offset and epoch, receipt time, age bound on), with 1, 3 and 8 series per
  message, into rings already full (every append overwrites the oldest point); alone, then with a reader
  thread doing what the script does 10 times a second: snapshot, downsample and stats of every series.
- **Downsampling.** ``downsample`` of a random walk of 100k, 1M and 10M points to 2000.

It prints a markdown table with the machine and the exact command. Targets: appends keep up with
20 000 points/s; 1M points downsample in under 100 ms. Shared machines are noisy, so a missed target is
reported in the table, never turned into a failing exit status.
"""

import argparse
import shlex
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from bench.report import Row, machine, random_walk, table
from dashboard.downsample import downsample
from dashboard.session_buffer import SessionBuffer
from dashboard.stats import series_stats

CHANNEL = "data:bench"
SERIES_PER_MESSAGE = (1, 3, 8)
READS_PER_SECOND = 10.0
MAX_AGE = 3600.0
"""Age bound on, as a dashboard would run; every benchmark point is well inside it."""
STEP = 1e-4
"""Seconds between consecutive benchmark points."""
DOWNSAMPLE_TO = 2000
APPEND_TARGET = 20_000.0
"""Points per second the consumer must store to keep up with the stream."""
DOWNSAMPLE_TARGET = (1_000_000, 0.1)
"""Points, seconds: one million points reduce to 2000 in under a tenth of a second."""
BATCH = 200
"""Messages between two clock reads in the append loop."""


@dataclass(frozen=True)
class Config:
    ring: int
    """Points per series, prefilled so that every measured append overwrites."""
    slices: int
    slice_seconds: float
    """Each append case runs ``slices`` slices of this long; the table gives their median and best."""
    downsample_sizes: tuple[int, ...]
    downsample_budget: int
    """Points downsampled per size, all runs together: decides the number of runs (3 to 50)."""


FULL = Config(
    ring=100_000,
    slices=10,
    slice_seconds=0.2,
    downsample_sizes=(100_000, 1_000_000, 10_000_000),
    downsample_budget=50_000_000,
)
QUICK = Config(
    ring=10_000,
    slices=3,
    slice_seconds=0.04,
    downsample_sizes=(10_000, 100_000, 1_000_000),
    downsample_budget=2_000_000,
)


def append_case(config: Config, series: int, reader: bool) -> Row:
    """Append throughput into full rings, optionally with a concurrent reader thread."""
    session = SessionBuffer(max_points=config.ring, max_age=MAX_AGE)
    names = [f"s{i}" for i in range(series)]
    base = time.time() - 60.0
    prefill_ts = base + np.arange(config.ring) * STEP
    for name in names:
        session.channel(CHANNEL).extend(name, prefill_ts, np.zeros(config.ring))
    values = {name: float(i) for i, name in enumerate(names)}
    received_at = time.time()

    stop = threading.Event()
    reads: list[float] = []
    errors: list[BaseException] = []

    def read() -> None:
        # Snapshot, downsample and stats of every series, READS_PER_SECOND times a second.
        period = 1.0 / READS_PER_SECOND
        next_at = time.perf_counter()
        try:
            while True:
                began = time.perf_counter()
                for name in names:
                    ts, vals = session.snapshot(CHANNEL, name)
                    downsample(ts, vals, DOWNSAMPLE_TO)
                    series_stats(ts, vals, now=time.time())
                reads.append(time.perf_counter() - began)
                next_at += period
                if stop.wait(max(0.0, next_at - time.perf_counter())):
                    return
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=read, name="bench-reader") if reader else None
    if thread is not None:
        thread.start()
    rates: list[float] = []
    offset = 0
    try:
        for _ in range(config.slices):
            messages = 0
            began = time.perf_counter()
            deadline = began + config.slice_seconds
            while time.perf_counter() < deadline:
                for _ in range(BATCH):
                    offset += 1
                    session.append_point(
                        CHANNEL,
                        base + (config.ring + offset) * STEP,
                        values,
                        received_at=received_at,
                        offset=offset,
                        epoch="e",
                    )
                messages += BATCH
            rates.append(messages * series / (time.perf_counter() - began))
    finally:
        stop.set()
        if thread is not None:
            thread.join()
    if errors:
        raise errors[0]

    # The harness measured what it claims: every point stored, rings full, nothing refused.
    info = session.channel(CHANNEL).info()
    if info.dropped or info.duplicates or info.points != (config.ring + offset) * series:
        raise RuntimeError(f"appends were not all stored: {info}")
    if any(session.channel(CHANNEL).retained(name) != config.ring for name in names):
        raise RuntimeError("rings are not full")
    if reader and not reads:
        raise RuntimeError("the reader thread never read")

    median, best = statistics.median(rates), max(rates)
    notes = f"{len(rates)} slices of {config.slice_seconds:g} s"
    if reader:
        notes += f"; {len(reads)} reads, {statistics.mean(reads) * 1000:.1f} ms each"
    return Row(
        case=f"append, {series} series/msg" + (f" + reader {READS_PER_SECOND:g}/s" if reader else ""),
        size=f"{series} x {config.ring:,}-point ring, full",
        median=f"{median:,.0f} points/s",
        best=f"{best:,.0f} points/s",
        target=f">= {APPEND_TARGET:,.0f} points/s: {'met' if median >= APPEND_TARGET else 'MISSED'}",
        notes=notes,
    )


def downsample_case(config: Config, count: int) -> Row:
    """Time to reduce ``count`` points to DOWNSAMPLE_TO."""
    ts, values = random_walk(count)
    runs = min(50, max(3, config.downsample_budget // count))
    times: list[float] = []
    kept = 0
    for _ in range(runs):
        began = time.perf_counter()
        out_ts, _ = downsample(ts, values, DOWNSAMPLE_TO)
        times.append(time.perf_counter() - began)
        kept = len(out_ts)
        if not 4 <= len(out_ts) <= DOWNSAMPLE_TO:
            raise RuntimeError(f"downsample returned {len(out_ts)} points, asked for {DOWNSAMPLE_TO}")
    median, best = statistics.median(times), min(times)
    target = "-"
    target_count, target_seconds = DOWNSAMPLE_TARGET
    if count == target_count:
        met = "met" if median < target_seconds else "MISSED"
        target = f"< {target_seconds * 1000:g} ms: {met}"
    return Row(
        case=f"downsample {count:,} -> {DOWNSAMPLE_TO:,}",
        size=f"{count:,} points",
        median=f"{median * 1000:.2f} ms",
        best=f"{best * 1000:.2f} ms",
        target=target,
        notes=f"{runs} runs; {kept:,} points kept",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.dashboard_buffers", description="Speed of the dashboard's data layer."
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes and durations (under 3 s): checks the harness works"
    )
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(arguments)
    config = QUICK if args.quick else FULL
    command = shlex.join([sys.executable, "-m", "bench.dashboard_buffers", *arguments])

    cases: list[Callable[[], Row]] = []
    for reader in (False, True):
        for series in SERIES_PER_MESSAGE:
            cases.append(partial(append_case, config, series, reader))
    for count in config.downsample_sizes:
        cases.append(partial(downsample_case, config, count))
    began = time.perf_counter()
    rows = [case() for case in cases]

    print(
        "## Dashboard buffers benchmark"
        + (" (quick: checks the harness, not the speed)" if args.quick else "")
    )
    print()
    print(f"- Command: `{command}`")
    print(f"- Machine: {machine()}")
    print(
        f"- Appends: `SessionBuffer.append_point` with offset, epoch, received_at and max_age {MAX_AGE:g} s, "
        f"into rings prefilled to capacity; reader: snapshot + downsample to {DOWNSAMPLE_TO:,} + stats "
        f"of every series. Median and best over slices."
    )
    print(f"- Total time: {time.perf_counter() - began:.1f} s")
    print()
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
