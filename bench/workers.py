"""Issue 17, target 1: one gateway of 2 worker processes against one of 1, on the same Redis, at a fixed
load that saturates one core.

Run from the repository root::

    python -m bench.workers                          # N=2000 subscribers x 150 msg/s, 3 runs of each
    python -m bench.workers --subscribers 2000 --rate 200 --repeats 5
    python -m bench.workers --quick                  # small and short: checks the harness, not the speed

Both gateways run side by side on one private ``redis-server`` (``PULSE_BROKER_URL=redis://``, range
history off), neither pinned to a CPU: the 2-worker one needs both cores. The load is bench.fanout's (one
publisher process at a fixed rate over a WebSocket, all subscribers on picows in this process), run on
each gateway in turn (``interleaved``), so both see the same stretches of a shared machine's noise.
Reported per gateway: delivered messages/s, % delivered, p50/p99 publish-to-receive latency, its CPU
(the supervisor and every worker) per delivered message and as a share of one core, deliveries per
second per core busy, and the ratios to the 1-worker gateway; then the RSS per idle connection of a
fresh gateway (bench.fanout's idle scenario). These are the README capacity guide's inputs.
"""

import argparse
import asyncio
import os
import shlex
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvloop

from bench.fanout import Result, Server, interleaved, process_cpu_seconds, ratio_table, run_idle, start_server
from bench.report import markdown_table, print_report
from tests.process_sockets import children, command_line
from tests.redis_server import RedisServer
from tests.servers import stop_process


@dataclass
class WorkersServer(Server):
    """A ``python -m gateway --workers N``: its CPU is the supervisor's and every worker's."""

    def cpu_seconds(self) -> float:
        return sum(process_cpu_seconds(pid) for pid in [self.process.pid, *children(self.process.pid)])


def start_workers(workers: int, workdir: Path, redis_url: str) -> WorkersServer:
    settings = {
        "PULSE_BROKER_URL": redis_url,
        "PULSE_WORKERS": str(workers),
        "PULSE_HISTORY_URL": "none://",
        # The gateway's default, not bench.fanout's 256 KiB (made to close a stuck client within a run):
        # a backlog here should show as latency, not as subscribers closed with 4001.
        "PULSE_CLIENT_QUEUE_BYTES": str(1024 * 1024),
    }
    label = f"{workers} worker{'s' if workers > 1 else ''}"
    server = start_server("pulseboard", workdir, settings=settings, label=label, pinned=False)
    return WorkersServer(label, server.port, server.process, server.pulse)


def cores_used(result: Result) -> float | None:
    return None if result.cpu_us is None else result.cpu_us * result.delivered_per_s / 1e6


def per_core_table(results: list[Result], idle: Result) -> str:
    """The capacity guide's inputs: CPU used, deliveries per second per core busy, memory per connection."""
    rows = []
    for result in results:
        used = cores_used(result)
        rows.append(
            [
                result.server,
                "-" if used is None else f"{100 * used:.0f} %",
                "-" if not used else f"{result.delivered_per_s / used:,.0f}",
            ]
        )
    header = ["Gateway", "CPU (share of one core)", "Deliveries/s per core busy"]
    table = markdown_table(header, rows, [False, True, True])
    return f"{table}\n\nMemory per idle connection (one worker, {idle.scenario[4:]}): {idle.note}."


async def all_workers_up(server: Server, workers: int) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(300):
            metrics = (await http.get(f"http://127.0.0.1:{server.port}/metrics", timeout=5)).text
            if workers == 1 or f"pulse_workers {float(workers)}" in metrics:
                return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{server.name}: not every worker started")


async def compare(
    workdir: Path, subscribers: int, rate: int, seconds: float, repeats: int, idle: int
) -> tuple[list[Result], Result, str]:
    """The two gateways' runs, the RSS per idle connection of a fresh 1-process gateway, and the CPU
    census of the runs (``CpuCensus``)."""
    redis = RedisServer(workdir / "redis").start()
    servers: dict[str, Server] = {}
    try:
        for workers in (1, 2):
            server = start_workers(workers, workdir, redis.url)
            servers[server.name] = server
            await all_workers_up(server, workers)
        scenario = (f"N={subscribers} x {rate} msg/s", subscribers, rate)
        assert redis.process is not None
        census = CpuCensus(servers, redis.process.pid)
        census.start()
        try:
            results = await interleaved(servers, [scenario], seconds, 10.0, repeats)
        finally:
            census.stop()
    finally:
        for started in servers.values():
            stop_process(started.process, 15, 15)
        redis.stop()
    return results, await run_idle("pulseboard", workdir, idle), census.table()


class CpuCensus(threading.Thread):
    """Where the machine's CPU goes while each gateway is measured: every half second, the CPU time of
    each gateway (supervisor and workers), this process (the subscribers), the publisher processes and
    redis-server. A gateway is "being measured" in the intervals where it used over a fifth of a core
    (the runs are interleaved: one gateway at a time carries the load)."""

    INTERVAL = 0.5
    BUSY = 0.2

    def __init__(self, servers: dict[str, Server], redis_pid: int) -> None:
        super().__init__(daemon=True)
        self._servers = servers
        self._redis_pid = redis_pid
        self._stopping = threading.Event()
        self.samples: list[dict[str, float]] = []

    def _totals(self) -> dict[str, float]:
        me = os.getpid()
        publishers = [pid for pid in children(me) if b"spawn_main" in command_line(pid)]
        totals = {name: server.cpu_seconds() for name, server in self._servers.items()}
        totals["load generator (subscribers)"] = time.process_time()
        totals["publisher"] = sum(process_cpu_seconds(pid) for pid in publishers)
        totals["redis-server"] = process_cpu_seconds(self._redis_pid)
        return totals

    def run(self) -> None:
        before, at = self._totals(), time.monotonic()
        while not self._stopping.wait(self.INTERVAL):
            now_totals, now = self._totals(), time.monotonic()
            span = now - at
            self.samples.append(
                {
                    name: max(0.0, now_totals[name] - before.get(name, now_totals[name])) / span
                    for name in now_totals
                }
            )
            before, at = now_totals, now

    def stop(self) -> None:
        self._stopping.set()
        self.join()

    def table(self) -> str:
        names = [*self._servers, "load generator (subscribers)", "publisher", "redis-server"]
        rows = []
        for measured in self._servers:
            busy = [sample for sample in self.samples if sample.get(measured, 0.0) > self.BUSY]
            if not busy:
                continue
            mean = {name: sum(sample.get(name, 0.0) for sample in busy) / len(busy) for name in names}
            rows.append(
                [measured, f"{len(busy) * self.INTERVAL:.1f} s"]
                + [f"{100 * mean[name]:.0f} %" for name in names]
                + [f"{100 * sum(mean.values()):.0f} % of {100 * (os.cpu_count() or 1)} %"]
            )
        header = ["While measuring", "Time", *names, "All"]
        return markdown_table(header, rows, [False, True] + [True] * (len(names) + 1))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.workers", description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--rate", type=int, default=150, help="publications per second")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of one run")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each gateway, interleaved and pooled")
    parser.add_argument("--idle", type=int, default=5000, help="idle connections for the memory figure")
    parser.add_argument("--quick", action="store_true", help="N=50 x 50 msg/s, one short run, 100 idle")
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(arguments)
    if args.quick:
        args.subscribers, args.rate, args.seconds, args.repeats, args.idle = 50, 50, 0.5, 1, 100
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as temp:
        results, idle, census = uvloop.run(
            compare(Path(temp), args.subscribers, args.rate, args.seconds, args.repeats, args.idle)
        )
    print_report(
        "Workers: 2 against 1 on one Redis (issue 17, target 1)",
        quick=args.quick,
        command=shlex.join([sys.executable, "-m", "bench.workers", *arguments]),
        notes=[f"{args.repeats} runs of {args.seconds:g} s each, interleaved; ratios against 1 worker"],
        began=began,
        body=f"{ratio_table(results, 2)}\n\n"
        + "".join(f"- {result.server}: {result.note}\n" for result in results if result.note)
        + f"\n{per_core_table(results, idle)}\n\n"
        f"Where the CPU went (each process's share of one core, averaged over the half-second intervals "
        f"in which that gateway carried the load):\n\n{census}",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
