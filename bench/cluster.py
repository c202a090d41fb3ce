"""Publish throughput through a 3-master Redis Cluster next to one Redis, at 1 and at 2 gateways.

Run from the repository root (needs ``redis-server`` and ``redis-cli``; it starts a private Redis and a
private 6-node cluster)::

    python -m bench.cluster            # 3 interleaved repeats of 10 s per configuration
    python -m bench.cluster --quick    # a few seconds: checks the harness, not the speed

Each configuration starts its gateways (``python -m gateway``, separate processes) on the broker,
connects the same clients (``SUBSCRIBERS`` WebSocket subscribers over ``CHANNELS`` channels, spread over
the gateways) and has ``PUBLISHERS`` HTTP publishers post batches of ``BATCH`` points as fast as the
gateways take them, round-robin over gateways and channels. Reported: deliveries per second (all
subscribers together) and publish-to-receive latency p50/p99 (each point carries its send time), pooled
over the repeats, which run interleaved so every configuration sees the same stretches of a shared
machine's noise; the ratio columns compare each configuration with one Redis at the same gateway count.
The issue's target: the cluster at >= 1.0x with one gateway, and rising with gateways.
"""

import argparse
import asyncio
import contextlib
import json
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from websockets.asyncio.client import connect

from bench.fanout import Result, ratio_table
from bench.report import machine
from tests.redis_cluster import RedisCluster
from tests.redis_server import RedisServer
from tests.servers import GatewayProcess

CHANNELS = 12
SUBSCRIBERS = 48
PUBLISHERS = 6
BATCH = 20
DRAIN = 3.0
"""Seconds subscribers keep reading after the window, for what was published in it."""


@dataclass
class Run:
    delivered: int = 0
    expected: int = 0
    """Deliveries owed: points accepted within the window, times the subscribers of their channel."""
    window: float = 0.0
    latencies: list[float] = field(default_factory=list)


async def subscriber(url: str, channel: str, run: Run, until: list[float]) -> None:
    async with connect(url, open_timeout=30, proxy=None, max_size=None) as ws:
        await ws.recv()  # welcome
        await ws.send(json.dumps({"op": "subscribe", "id": 1, "channel": channel}))
        while time.time() < until[1] + DRAIN:
            with contextlib.suppress(TimeoutError):
                frame = json.loads(await asyncio.wait_for(ws.recv(), 0.5))
                now = time.time()
                for message in frame if isinstance(frame, list) else [frame]:
                    if message.get("type") != "pub":
                        continue
                    sent = message["data"]["values"]["t"]
                    if until[0] <= sent <= until[1]:  # published within the window: counted
                        run.delivered += 1
                        run.latencies.append(now - sent)


async def publisher(urls: Sequence[str], index: int, until: list[float], run: Run) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        turn = index
        while time.time() < until[1]:
            url = urls[turn % len(urls)]
            channel = f"data:c{turn % CHANNELS}"
            sent = time.time()
            points = [{"values": {"t": sent}} for _ in range(BATCH)]
            with contextlib.suppress(httpx.HTTPError):
                response = await http.post(f"{url}/api/publish/{channel}", json=points)
                if response.status_code == 200 and until[0] <= sent <= until[1]:
                    run.expected += BATCH * SUBSCRIBERS // CHANNELS
            turn += 1


async def measure(gateways: Sequence[GatewayProcess], seconds: float, warmup: float) -> Run:
    run = Run()
    start = time.time() + 2 + warmup  # subscribers connect first
    until = [start, start + seconds]
    subscribers = [
        asyncio.create_task(
            subscriber(gateways[i % len(gateways)].ws_url, f"data:c{i % CHANNELS}", run, until)
        )
        for i in range(SUBSCRIBERS)
    ]
    await asyncio.sleep(2)
    urls = [gateway.http_url for gateway in gateways]
    await asyncio.gather(*(publisher(urls, index, until, run) for index in range(PUBLISHERS)))
    await asyncio.gather(*subscribers, return_exceptions=True)
    run.window = seconds
    return run


def pooled(name: str, scenario: str, runs: Sequence[Run]) -> Result:
    delivered = sum(run.delivered for run in runs)
    latencies = sorted(lat for run in runs for lat in run.latencies)
    p50 = 1000 * latencies[len(latencies) // 2] if latencies else None
    p99 = 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else None
    expected = sum(run.expected for run in runs)
    delivered_pct = 100.0 * delivered / expected if expected else 0.0
    return Result(name, scenario, delivered / sum(run.window for run in runs), delivered_pct, p50, p99, None)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs: checks the harness")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args(argv)
    seconds, repeats, warmup = (2.0, 1, 0.5) if options.quick else (options.seconds, options.repeats, 2.0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        redis_server = RedisServer(root / "redis").start()
        cluster = RedisCluster(root / "cluster").start()
        try:
            brokers = {"redis": redis_server.url, "cluster": cluster.url}
            results: list[Result] = []
            for count in (1, 2):
                runs: dict[str, list[Run]] = {name: [] for name in brokers}
                for _ in range(repeats):
                    for name, url in brokers.items():
                        redis_server.flush()
                        cluster.flush()
                        runs[name].append(asyncio.run(run_gateways(root, url, count, seconds, warmup)))
                scenario = f"{count} gateway{'s' if count > 1 else ''}"
                results += [pooled(name, scenario, runs[name]) for name in brokers]
        finally:
            cluster.stop()
            redis_server.stop()
    print(f"# Redis Cluster (3 masters) vs one Redis, {machine()}\n")
    print(f"{SUBSCRIBERS} subscribers on {CHANNELS} channels, {PUBLISHERS} HTTP publishers x {BATCH} points,")
    print(f"{seconds:g} s x {repeats} interleaved repeats per configuration\n")
    print(ratio_table(results, per_scenario=len(brokers)))


async def run_gateways(root: Path, url: str, count: int, seconds: float, warmup: float) -> Run:
    # Range history off: the comparison is of the brokers.
    env = {"PULSE_BROKER_URL": url, "PULSE_HISTORY_URL": "none://"}
    gateways = [GatewayProcess(root / f"gateway{i}", env=env) for i in range(count)]
    try:
        for gateway in gateways:
            gateway.workdir.mkdir(parents=True, exist_ok=True)
            gateway.start()
        return await measure(gateways, seconds, warmup)
    finally:
        for gateway in gateways:
            gateway.stop()


if __name__ == "__main__":
    main()
