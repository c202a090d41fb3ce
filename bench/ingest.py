"""HTTP ingest: ``POST /api/publish/{channel}`` throughput with batches of 1, 100 and 1000 points, and
the same points as InfluxDB line protocol through ``POST /api/v2/write``.

Run from the repository root (``redis-server`` is needed for the ``redis://`` rows)::

    python -m bench.ingest               # 5 s per case, 5 line-protocol/JSON pairs per size
    python -m bench.ingest --repeats 9   # more pairs, for a noisy machine
    python -m bench.ingest --quick       # 0.5 s per case, 1 pair: checks the harness, not the speed

The gateway (``python -m gateway``) runs pinned to CPU 0 when ``taskset`` exists and the load generator
(4 threads, request bodies encoded once up front) on CPU 1: the figure is what one gateway core ingests.
Each case runs on ``memory://`` and on ``redis://`` (a private redis-server) in the same run.

Line protocol is compared with the JSON batch in pairs on a fresh gateway per size, the two runs of a
pair back to back and their order alternating (JSON first, then line protocol first, ...): the gateway
slows as its history store grows, so a side always measured second would lose for that alone. Each
pair gives a ratio; the row shows their median and every one of them.
"""

import argparse
import json
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import httpx

from bench.fanout import process_cpu_seconds
from bench.report import Row, print_report, table
from tests.redis_server import RedisServer
from tests.servers import GatewayProcess

CHANNEL = "data:ingest"
THREADS = 4
BATCHES = (1, 100, 1000)
LINE_BATCHES = (100, 1000)
"""Batch sizes also sent as InfluxDB line protocol (the connect issue: at least the JSON batch's rate)."""
TARGET = (1000, 100_000.0)
"""Batch size, points/s: the performance issue's ingest target on one core."""


class Run(NamedTuple):
    rate: float
    """Points stored per second."""
    cpu: float
    """The gateway's CPU seconds (every thread) per point: what contention for the cores, which a
    shared machine adds to wall time, moves least."""


def publish_rate(
    gateway: GatewayProcess,
    batch: int,
    seconds: float,
    threads: int = THREADS,
    *,
    line_protocol: bool = False,
) -> float:
    """Points stored per second by ``threads`` threads posting ``batch`` points per request, as a JSON
    array to ``/api/publish`` or (``line_protocol``) as InfluxDB lines to ``/api/v2/write``."""
    return publish_run(gateway, batch, seconds, threads, line_protocol=line_protocol).rate


def publish_run(
    gateway: GatewayProcess,
    batch: int,
    seconds: float,
    threads: int = THREADS,
    *,
    line_protocol: bool = False,
) -> Run:
    """``publish_rate``, with the gateway's CPU time per point."""
    assert gateway.process is not None, "the gateway is started"
    path = f"/api/publish/{CHANNEL}"
    body = json.dumps([{"values": {"v": float(i), "w": 1.5}} for i in range(batch)]).encode()
    headers = {"Content-Type": "application/json"}
    if line_protocol:
        path = "/api/v2/write"
        measurement = CHANNEL.removeprefix("data:")
        body = "".join(f"{measurement} v={float(i)},w=1.5\n" for i in range(batch)).encode()
        headers = {"Content-Type": "text/plain; charset=utf-8"}
    counts = [0] * threads
    deadline = time.monotonic() + seconds

    def run(index: int) -> None:
        with httpx.Client(base_url=gateway.http_url, timeout=10) as client:
            while time.monotonic() < deadline:
                client.post(path, content=body, headers=headers).raise_for_status()
                counts[index] += batch

    began = time.monotonic()
    cpu_began = process_cpu_seconds(gateway.process.pid)
    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    points = sum(counts)
    cpu = process_cpu_seconds(gateway.process.pid) - cpu_began
    return Run(points / (time.monotonic() - began), cpu / max(points, 1))


def pinned_gateway(workdir: Path, broker_url: str) -> GatewayProcess:
    # Capacity, not policy: the per-identity HTTP publish limit (every thread here is one address) is off.
    env = {"PULSE_BROKER_URL": broker_url, "PULSE_LOG_LEVEL": "warning", "PULSE_HTTP_PUBLISH_RATE": "0"}
    gateway = GatewayProcess(workdir, env=env)
    if shutil.which("taskset"):
        gateway.command_prefix = ["taskset", "-c", "0"]
    return gateway.start()


def paired_runs(gateway: GatewayProcess, batch: int, seconds: float, repeats: int) -> list[tuple[Run, Run]]:
    """``repeats`` pairs of (JSON run, line-protocol run), the two runs of a pair back to back and
    line protocol first in every other pair."""
    pairs = []
    for repeat in range(repeats):
        first = repeat % 2 == 1
        runs = {}
        for line_protocol in (first, not first):
            settle(gateway)
            runs[line_protocol] = publish_run(gateway, batch, seconds, line_protocol=line_protocol)
        pairs.append((runs[False], runs[True]))
    return pairs


def settle(gateway: GatewayProcess, most: float = 10.0) -> None:
    """Wait until the gateway is idle (under 5 % of a core for 0.5 s, ``most`` seconds at most): its
    history recorder works off a run's points after the run, which would be charged to the next."""
    assert gateway.process is not None, "the gateway is started"
    deadline = time.monotonic() + most
    before = process_cpu_seconds(gateway.process.pid)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = process_cpu_seconds(gateway.process.pid)
        if now - before < 0.025:
            return
        before = now


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description="HTTP publish throughput.")
    parser.add_argument("--quick", action="store_true", help="short runs: checks the harness works")
    parser.add_argument(
        "--repeats", type=int, default=None, help="line-protocol/JSON pairs per size (5; 1 with --quick)"
    )
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(arguments)
    seconds = 0.5 if args.quick else 5.0
    repeats = args.repeats or (1 if args.quick else 5)
    command = shlex.join([sys.executable, "-m", "bench.ingest", *arguments])
    if shutil.which("taskset"):
        os.sched_setaffinity(0, {1})
    began = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        redis_server = RedisServer(root / "redis-server").start()
        try:
            results: dict[tuple[str, int], float] = {}
            lines: dict[int, list[tuple[Run, Run]]] = {}
            for name, url in (("memory", "memory://"), ("redis", redis_server.url)):
                (root / name).mkdir()
                gateway = pinned_gateway(root / name, url)
                try:
                    for batch in BATCHES:
                        results[name, batch] = publish_rate(gateway, batch, seconds)
                finally:
                    gateway.stop()
            for batch in LINE_BATCHES:
                (root / f"lines-{batch}").mkdir()
                gateway = pinned_gateway(root / f"lines-{batch}", "memory://")
                try:
                    lines[batch] = paired_runs(gateway, batch, seconds, repeats)
                finally:
                    gateway.stop()
        finally:
            redis_server.stop()
    for batch in BATCHES:
        for name in ("memory", "redis"):
            rate = results[name, batch]
            target = "-"
            if batch == TARGET[0] and name == "memory":
                target = f">= {TARGET[1]:,.0f} points/s: {'met' if rate >= TARGET[1] else 'MISSED'}"
            ratio = "baseline" if name == "memory" else f"{rate / results['memory', batch]:.2f}x memory"
            size = f"batches of {batch:,}, {THREADS} threads, {seconds:g} s"
            rows.append(Row(f"ingest, {name}://", size, f"{rate:,.0f} points/s", "-", target, ratio))
    for batch, pairs in lines.items():
        size = f"{batch:,} lines per request, {THREADS} threads, {seconds:g} s, {len(pairs)} pairs"
        rates = [lined.rate / batched.rate for batched, lined in pairs]
        cpus = [batched.cpu / lined.cpu for batched, lined in pairs]
        json_median = statistics.median(batched.rate for batched, _ in pairs)
        remark = (
            f"median {statistics.median(rates):.2f}x the JSON batch's points/s (per pair: {_listed(rates)}); "
            f"points per gateway CPU second: median {statistics.median(cpus):.2f}x (per pair: "
            f"{_listed(cpus)}); JSON median {json_median:,.0f} points/s"
        )
        target = f">= 1.00x JSON: {'met' if statistics.median(rates) >= 1 else 'MISSED'}"
        median = f"{statistics.median(lined.rate for _, lined in pairs):,.0f} points/s"
        best = f"{max(lined.rate for _, lined in pairs):,.0f} points/s"
        rows.append(Row("ingest, line protocol, memory://", size, median, best, target, remark))
    pinned = "gateway on CPU 0, load on CPU 1" if shutil.which("taskset") else "not pinned"
    notes = [
        f"One gateway process; {pinned}; request bodies encoded once",
        "Line protocol: a fresh gateway per size, pairs with line protocol and JSON back to back, "
        "alternating which goes first",
    ]
    print_report(
        "HTTP ingest benchmark", quick=args.quick, command=command, notes=notes, began=began, body=table(rows)
    )
    return 0


def _listed(ratios: list[float]) -> str:
    return ", ".join(f"{ratio:.2f}" for ratio in ratios)


if __name__ == "__main__":
    sys.exit(main())
