"""HTTP ingest: ``POST /api/publish/{channel}`` throughput with batches of 1, 100 and 1000 points, and
the same points as InfluxDB line protocol through ``POST /api/v2/write``.

Run from the repository root (``redis-server`` is needed for the ``redis://`` rows)::

    python -m bench.ingest           # 5 s per case
    python -m bench.ingest --quick   # 0.5 s per case: checks the harness, not the speed

The gateway (``python -m gateway``) runs pinned to CPU 0 when ``taskset`` exists and the load generator
(4 threads, request bodies encoded once up front) on CPU 1: the figure is what one gateway core ingests.
Each case runs on ``memory://`` and on ``redis://`` (a private redis-server) in the same run.
"""

import argparse
import json
import os
import shlex
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

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
    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(counts) / (time.monotonic() - began)


def pinned_gateway(workdir: Path, broker_url: str) -> GatewayProcess:
    # Capacity, not policy: the per-identity HTTP publish limit (every thread here is one address) is off.
    env = {"PULSE_BROKER_URL": broker_url, "PULSE_LOG_LEVEL": "warning", "PULSE_HTTP_PUBLISH_RATE": "0"}
    gateway = GatewayProcess(workdir, env=env)
    if shutil.which("taskset"):
        gateway.command_prefix = ["taskset", "-c", "0"]
    return gateway.start()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description="HTTP publish throughput.")
    parser.add_argument("--quick", action="store_true", help="short runs: checks the harness works")
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(arguments)
    seconds = 0.5 if args.quick else 5.0
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
            lines: dict[int, float] = {}
            for name, url in (("memory", "memory://"), ("redis", redis_server.url)):
                (root / name).mkdir()
                gateway = pinned_gateway(root / name, url)
                try:
                    for batch in BATCHES:
                        results[name, batch] = publish_rate(gateway, batch, seconds)
                        if name == "memory" and batch in LINE_BATCHES:
                            lines[batch] = publish_rate(gateway, batch, seconds, line_protocol=True)
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
    for batch, rate in lines.items():
        size = f"{batch:,} lines per request, {THREADS} threads, {seconds:g} s"
        ratio = f"{rate / results['memory', batch]:.2f}x the JSON batch"
        target = f">= 1.00x JSON: {'met' if rate >= results['memory', batch] else 'MISSED'}"
        rows.append(
            Row("ingest, line protocol, memory://", size, f"{rate:,.0f} points/s", "-", target, ratio)
        )
    pinned = "gateway on CPU 0, load on CPU 1" if shutil.which("taskset") else "not pinned"
    notes = [f"One gateway process; {pinned}; request bodies encoded once"]
    print_report(
        "HTTP ingest benchmark", quick=args.quick, command=command, notes=notes, began=began, body=table(rows)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
