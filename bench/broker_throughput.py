"""Publish throughput and fan-out rate of the gateway on ``memory://`` and ``redis://``, side by side.

Run from the repository root (needs ``redis-server``; the benchmark starts a private one)::

    python -m bench.broker_throughput           # about a minute
    python -m bench.broker_throughput --quick   # a few seconds: checks the harness, not the speed

For each broker it starts a real gateway (``python -m gateway``) and measures:

- **Publish, HTTP batches.** ``POST /api/publish/data:bench`` with batches of 100 points from 4 threads:
  points stored per second (the whole path: HTTP, validation, offsets, history, fan-out to nobody).
- **Publish, one per request.** The same with single points: requests per second.
- **Fan-out.** 50 WebSocket subscribers on one channel and one HTTP publisher sending batches of 100:
  messages delivered per second, all subscribers together, until each got every message.

The machines are shared and noisy: read the ratio column (redis / memory, measured in the same run).
"""

import argparse
import json
import shlex
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from websockets.sync.client import connect

from bench.ingest import publish_rate
from bench.report import Row, print_report, table
from tests.redis_server import RedisServer
from tests.servers import GatewayProcess

CHANNEL = "data:bench"
THREADS = 4


@dataclass(frozen=True)
class Config:
    seconds: float
    subscribers: int
    fanout_messages: int


FULL = Config(seconds=5.0, subscribers=50, fanout_messages=5_000)
QUICK = Config(seconds=0.5, subscribers=5, fanout_messages=200)


def fanout_rate(gateway: GatewayProcess, config: Config) -> float:
    """Messages delivered per second to ``config.subscribers`` WebSocket clients of one channel."""
    channel = "data:fanout"
    total = config.fanout_messages
    received = [0] * config.subscribers
    ready = threading.Barrier(config.subscribers + 1)
    done = threading.Event()

    def subscriber(index: int) -> None:
        with connect(gateway.ws_url, proxy=None, max_size=None) as ws:
            ws.recv(timeout=10)  # welcome
            ws.send(json.dumps({"op": "subscribe", "channel": channel}))
            while '"subscribed"' not in str(ws.recv(timeout=10)):
                pass
            ready.wait()
            while received[index] < total:
                frame = ws.recv(timeout=30)
                received[index] += str(frame).count('"type":"pub"')

    threads = [threading.Thread(target=subscriber, args=(i,), daemon=True) for i in range(config.subscribers)]
    for thread in threads:
        thread.start()
    ready.wait()
    began = time.monotonic()
    with httpx.Client(base_url=gateway.http_url, timeout=10) as client:
        body = [{"values": {"v": 1.0}}] * 100
        for _ in range(total // 100):
            client.post(f"/api/publish/{channel}", json=body).raise_for_status()
    for thread in threads:
        thread.join(timeout=60)
    done.set()
    if sum(received) != total * config.subscribers:
        raise RuntimeError(f"fan-out lost messages: {sum(received)} of {total * config.subscribers}")
    return sum(received) / (time.monotonic() - began)


def measure(broker_url: str, config: Config, workdir: Path) -> dict[str, float]:
    gateway = GatewayProcess(
        # The per-identity HTTP publish limit is off: this measures the broker, not the policy.
        workdir,
        env={"PULSE_BROKER_URL": broker_url, "PULSE_HISTORY_SIZE": "1000", "PULSE_HTTP_PUBLISH_RATE": "0"},
    ).start()
    try:
        return {
            "batch": publish_rate(gateway, 100, config.seconds),
            "single": publish_rate(gateway, 1, config.seconds),
            "fanout": fanout_rate(gateway, config),
        }
    finally:
        gateway.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.broker_throughput", description="memory:// and redis:// side by side."
    )
    parser.add_argument("--quick", action="store_true", help="short runs: checks the harness works")
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(arguments)
    config = QUICK if args.quick else FULL
    command = shlex.join([sys.executable, "-m", "bench.broker_throughput", *arguments])

    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        redis_server = RedisServer(root / "redis-server").start()
        try:
            results: dict[str, dict[str, float]] = {}
            for name, url in (("memory", "memory://"), ("redis", redis_server.url)):
                (root / name).mkdir()
                results[name] = measure(url, config, root / name)
        finally:
            redis_server.stop()

    cases: list[tuple[str, str, str, Callable[[float], str]]] = [
        (
            "batch",
            "publish, HTTP batches of 100",
            f"{THREADS} threads, {config.seconds:g} s",
            "{:,.0f} points/s".format,
        ),
        (
            "single",
            "publish, 1 point per request",
            f"{THREADS} threads, {config.seconds:g} s",
            "{:,.0f} req/s".format,
        ),
        (
            "fanout",
            f"fan-out to {config.subscribers} WebSocket subscribers",
            f"{config.fanout_messages:,} messages",
            "{:,.0f} msgs/s delivered".format,
        ),
    ]
    rows = []
    for key, case, size, fmt in cases:
        memory, redis_ = results["memory"][key], results["redis"][key]
        rows.append(Row(f"{case}, memory://", size, fmt(memory), "-", "-", "baseline"))
        rows.append(Row(f"{case}, redis://", size, fmt(redis_), "-", "-", f"{redis_ / memory:.2f}x memory"))
    notes = [
        "One gateway process per broker; a private redis-server (no persistence); load from this process."
    ]
    print_report(
        "Broker throughput benchmark",
        quick=args.quick,
        command=command,
        notes=notes,
        began=began,
        body=table(rows),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
