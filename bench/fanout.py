"""Fan-out of Pulseboard next to the naive ``ConnectionManager``, a ``websockets`` ``broadcast()`` server
and the floor (a bare loop of one ``transport.write`` per client per message).

Run from the repository root::

    python -m bench.fanout           # full: N = 10/100/1000, 5 000 idle connections (about 15 minutes)
    python -m bench.fanout --quick   # small N and short runs: checks the harness, not the speed

One invocation measures every server with the same load generator (uvloop + picows, a Cython
WebSocket client, all subscribers in this process) and the same payload (a ~100-byte JSON object with a
sequence number and the send time). The server runs pinned to CPU 0 and the load generator to CPU 1
when ``taskset`` exists.
A publisher connection sends the messages over the WebSocket; the server fans each one out to N
subscribers. Pulseboard gets them as ``publish`` ops on ``data:bench`` (validated, given offsets, kept in
history), the baselines as plain text they broadcast.

Scenarios: (a) the publisher at full speed (at most ``WINDOW`` messages ahead of the slowest
subscriber), N = 10/100/1000 (Pulseboard also with array packing off); (b) fixed rates, N=1000 x 100 msg/s
and N=1000 x 1000 msg/s; (c) N=50 x 500 msg/s, without and with one subscriber that never reads,
interleaved; (d) idle connections. The latency scenarios (b) and (c) are run ``repeats`` times and pooled.
Reported: delivered messages/s, % delivered, publish-to-receive latency p50/p99 (same clock, sampled on
10 subscribers), server CPU microseconds per delivered message, RSS per idle connection, and each
figure's ratio to the baselines.
"""

import argparse
import asyncio
import contextlib
import gc
import json
import multiprocessing
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path

import httpx
import uvloop
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect
from websockets.asyncio.client import ClientConnection, connect

from bench.checkout import baseline_checkout, describe_checkout
from bench.report import markdown_table, print_report
from tests.servers import ROOT, free_port, stop_process

SERVER_CPU, LOAD_CPU = 0, 1
SPAWN = multiprocessing.get_context("spawn")
TIME_RE = re.compile(rb'"t": ?([0-9.]+)')
MARKER = b'"seq"'
SAMPLED = 10
"""Subscribers whose every message is parsed for latency (the others only count, to keep the load
generator fast)."""
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Config:
    full_speed_n: tuple[int, ...]
    seconds: float
    fixed: tuple[tuple[int, int], ...]
    stuck: tuple[int, int]
    idle: int
    drain_seconds: float
    repeats: int
    """Runs pooled for each latency scenario, (b) and (c): one run's p99 is mostly this machine's noise."""


FULL = Config((10, 100, 1000), 3.0, ((1000, 100), (1000, 1000)), (50, 500), 5000, 10.0, 3)
QUICK = Config((10,), 0.3, ((50, 100),), (10, 200), 100, 0.5, 1)
STUCK_SECONDS = 15.0
"""The stuck-subscriber runs last longer: the stuck client's backlog must fill the kernel's send buffer
(``PULSE_SOCKET_SEND_BUFFER``, 256 KiB, which Linux doubles) and then pass the queue limit."""
QUEUE_BYTES = 256 * 1024
"""``PULSE_CLIENT_QUEUE_BYTES`` for the benchmark (the default is 1 MiB): reached within the run."""


# --- servers ---------------------------------------------------------------------------------------


def process_cpu_seconds(pid: int) -> float:
    """User and system CPU seconds ``pid`` has used (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    pulse: bool
    slow_disconnects: int = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.process.pid)

    def rss(self) -> int:
        return int(Path(f"/proc/{self.process.pid}/statm").read_text().split()[1]) * PAGE


def start_server(
    kind: str,
    workdir: Path,
    *,
    batch: bool = True,
    settings: dict[str, str] | None = None,
    label: str = "",
    checkout: Path = ROOT,
    pinned: bool = True,
) -> Server:
    """Start one server; ``settings`` adds ``PULSE_*`` variables (Pulseboard), ``label`` names the variant,
    ``checkout`` is the source tree it runs from (a baseline commit's worktree), ``pinned`` keeps it on
    ``SERVER_CPU`` (off: the scheduler places it, for several worker processes)."""
    port = free_port()
    pin = ["taskset", "-c", str(SERVER_CPU)] if pinned and shutil.which("taskset") else []
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSE_")}
    if kind == "pulseboard":
        args = [sys.executable, "-m", "gateway"]
        env |= {
            "PULSE_PORT": str(port),
            "PULSE_DATA_DIR": str(workdir / f"data-{port}"),
            "PULSE_LOG_LEVEL": "warning",
            "PULSE_CLIENT_RATE": "100000000",
            "PULSE_CLIENT_BURST": "100000000",
            "PULSE_BATCH_FRAMES": "true" if batch else "false",
            "PULSE_CLIENT_QUEUE_BYTES": str(QUEUE_BYTES),
        }
        env |= settings or {}
    elif kind == "naive":
        args = [
            sys.executable, "-m", "uvicorn", "bench.baselines.naive_manager:app", "--port", str(port),
            "--ws", "websockets-sansio", "--log-level", "warning", "--no-access-log",
        ]  # fmt: skip
    elif kind == "floor":
        args = [sys.executable, "-m", "bench.baselines.floor_server", "--port", str(port)]
    else:
        args = [sys.executable, "-m", "bench.baselines.broadcast_server", "--port", str(port)]
    log = (workdir / f"{kind}-{port}.log").open("ab")
    process = subprocess.Popen([*pin, *args], cwd=checkout, env=env, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    deadline = time.monotonic() + 20
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            break
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{kind} did not start: {(workdir / f'{kind}-{port}.log').read_text()}")
        time.sleep(0.05)
    name = kind if batch else f"{kind} (packing off)"
    return Server(f"{name} ({label})" if label else name, port, process, kind == "pulseboard")


# --- the publisher (its own process, so it neither starves nor is starved by the subscribers) --------


def publish_message(pulse: bool, seq: int) -> str:
    now = time.time()
    if pulse:
        return json.dumps(
            {"op": "publish", "channel": "data:bench", "data": {"values": {"seq": seq, "t": now}}}
        )
    return json.dumps({"seq": seq, "t": now, "pad": "x" * 52})


WINDOW = 2000
"""Full speed: messages the publisher may be ahead of the slowest subscriber. Without a window the
publisher only measures how fast it can fill the server's buffers (and a server that takes messages in
faster than the load generator reads them cuts its subscribers as slow consumers); with one, it goes
exactly as fast as every subscriber receives."""


async def _publish(
    url: str, pulse: bool, rate: int | None, seconds: float, slowest: "Synchronized[int]"
) -> int:
    publisher = await connect(url, proxy=None, max_size=None, compression=None, ping_interval=None)

    async def drain_answers() -> None:
        # Its acks (or a baseline's copy of its own messages) are read and dropped, so they never
        # back up into the server.
        with contextlib.suppress(Exception):
            while True:
                await publisher.recv(decode=False)

    reader = asyncio.get_running_loop().create_task(drain_answers())
    began = time.monotonic()
    sent = 0
    if rate is None:
        while time.monotonic() - began < seconds:
            ahead = sent - slowest.value
            if ahead >= WINDOW:
                await asyncio.sleep(0.001)
                continue
            for _ in range(min(100, WINDOW - ahead)):
                await publisher.send(publish_message(pulse, sent))
                sent += 1
    else:
        tick = 0.005
        while (elapsed := time.monotonic() - began) < seconds:
            # Catch up to the schedule (one tick ahead), then wait a tick: a steady `rate` per second.
            for _ in range(int((elapsed + tick) * rate) - sent):
                await publisher.send(publish_message(pulse, sent))
                sent += 1
            await asyncio.sleep(tick)
    await asyncio.sleep(0.5)
    reader.cancel()
    await publisher.close()
    return sent


def publisher_process(
    url: str,
    pulse: bool,
    rate: int | None,
    seconds: float,
    sent: "Synchronized[int]",
    slowest: "Synchronized[int]",
) -> None:
    if shutil.which("taskset"):
        os.sched_setaffinity(0, {LOAD_CPU})
    sent.value = uvloop.run(_publish(url, pulse, rate, seconds, slowest))


# --- the subscribers -------------------------------------------------------------------------------


@dataclass
class Tally:
    received: list[int]
    latencies: list[float] = field(default_factory=list)


class Counter(WSListener):
    """One subscriber on picows: counts messages per frame (bytes.count), parses times if sampled."""

    def __init__(self, server: Server, index: int, tally: Tally) -> None:
        super().__init__()
        self._pulse = server.pulse
        self._index = index
        self._tally = tally
        self._sampled = index < SAMPLED
        self.ready = asyncio.get_running_loop().create_future()

    def on_ws_connected(self, transport: WSTransport) -> None:
        if not self._pulse:
            self.ready.set_result(None)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is not WSMsgType.TEXT:
            return
        payload = frame.get_payload_as_bytes()
        if not self.ready.done():
            if b'"welcome"' in payload:
                transport.send(WSMsgType.TEXT, b'{"op":"subscribe","channel":"data:bench"}')
            elif b'"subscribed"' in payload:
                self.ready.set_result(None)
            return
        self._tally.received[self._index] += payload.count(MARKER)
        if self._sampled:
            now = time.time()
            self._tally.latencies.extend(now - float(m.group(1)) for m in TIME_RE.finditer(payload))


async def subscriber(server: Server, index: int, tally: Tally) -> WSTransport:
    transport, counter = await ws_connect(
        lambda: Counter(server, index, tally), server.url, websocket_handshake_timeout=30
    )
    assert isinstance(counter, Counter)
    await counter.ready
    return transport


async def stuck_subscriber(server: Server) -> ClientConnection:
    # A client that never reads, with a small receive buffer so the kernel does not absorb megabytes of
    # its backlog first: what piles up is in the server, where the limits apply.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    ws = await connect(
        server.url, sock=sock, proxy=None, compression=None, max_queue=1, open_timeout=30, ping_interval=None
    )
    if server.pulse:
        await ws.recv()  # welcome
        await ws.send('{"op":"subscribe","channel":"data:bench"}')
        while b'"subscribed"' not in await ws.recv(decode=False):
            pass
    return ws


async def open_all(server: Server, n: int, tally: Tally) -> list[WSTransport]:
    transports = []
    for start in range(0, n, 100):
        batch = [subscriber(server, i, tally) for i in range(start, min(n, start + 100))]
        transports += await asyncio.gather(*batch)
    return transports


@dataclass(frozen=True)
class Result:
    server: str
    scenario: str
    delivered_per_s: float
    delivered_pct: float
    p50_ms: float | None
    p99_ms: float | None
    cpu_us: float | None
    note: str = ""


@dataclass(frozen=True)
class Run:
    """One measured run of a fan-out scenario, before runs are pooled into a :class:`Result`."""

    sent: int
    delivered: int
    expected: int
    window: float
    cpu: float
    latencies: list[float]
    slow_closed: int


async def measure(
    server: Server, n: int, rate: int | None, seconds: float, drain: float, *, stuck: bool = False
) -> Run:
    tally = Tally([0] * n)
    subscribers = await open_all(server, n, tally)
    stuck_ws = await stuck_subscriber(server) if stuck else None
    await asyncio.sleep(0.2)
    sent_value = SPAWN.Value("q", 0)
    slowest = SPAWN.Value("q", 0, lock=False)
    process = SPAWN.Process(
        target=publisher_process, args=(server.url, server.pulse, rate, seconds, sent_value, slowest)
    )

    async def report_slowest() -> None:
        received = tally.received
        while True:
            slowest.value = min(received)
            await asyncio.sleep(0.002)

    # The load generator's own cyclic GC paused while it measures: with 1000 connections' objects to
    # scan, its collections stalled the reading of every socket for tens of milliseconds at a time,
    # which showed up as the servers' latency (the floor server's p99 went from 83 ms to 6-12 ms).
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        cpu_before = server.cpu_seconds()
        began = time.monotonic()
        process.start()
        reporter = asyncio.get_running_loop().create_task(report_slowest())
        await asyncio.to_thread(process.join)
        reporter.cancel()
        sent = int(sent_value.value)
        expected = sent * n
        deadline = time.monotonic() + drain
        # Polled: the counters are plain ints bumped by 1000 readers, an Event per message would cost more.
        while sum(tally.received) < expected and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        window = time.monotonic() - began
        delivered = sum(tally.received)
        cpu = server.cpu_seconds() - cpu_before
    finally:
        gc.enable()
        gc.unfreeze()
    closed = 0
    if server.pulse:
        async with httpx.AsyncClient() as http:
            metrics = (await http.get(f"http://127.0.0.1:{server.port}/metrics", timeout=5)).text
        found = re.search(r"pulse_slow_disconnects_total ([\d.e+]+)", metrics)
        slow = int(float(found.group(1))) if found else 0
        closed = slow - server.slow_disconnects
        server.slow_disconnects = slow
    for transport in subscribers:
        transport.underlying_transport.abort()
    if stuck_ws is not None:
        stuck_ws.transport.abort()
    await asyncio.sleep(0.3)
    return Run(sent, delivered, expected, window, cpu, tally.latencies, closed)


def pooled(server: Server, scenario: str, runs: list[Run], *, stuck: bool = False) -> Result:
    """One row from several runs: deliveries and CPU summed, latency percentiles over all samples."""
    delivered = sum(run.delivered for run in runs)
    expected = sum(run.expected for run in runs)
    cpu = sum(run.cpu for run in runs)
    lat = sorted(x for run in runs for x in run.latencies)
    closed = [run.slow_closed for run in runs]
    notes = [f"{len(runs)} runs pooled"] if len(runs) > 1 else []
    if stuck and server.pulse:
        notes.append(f"stuck client closed with 4001: {'yes' if all(closed) else 'no'}")
        if len(runs) > 1:
            notes[-1] += f" ({sum(1 for c in closed if c)}/{len(runs)})"
    elif any(closed):
        notes.append(f"{sum(closed)} connections closed with 4001 (could not keep up)")
    return Result(
        server.name,
        scenario,
        delivered / sum(run.window for run in runs),
        100.0 * delivered / expected if expected else 0.0,
        1000 * lat[len(lat) // 2] if lat else None,
        1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else None,
        1e6 * cpu / delivered if delivered else None,
        "; ".join(notes),
    )


Scenario = tuple[str, int, int | None]
"""A name, the number of subscribers, and the publisher's rate (None: as fast as it can)."""


async def interleaved(
    servers: dict[str, Server], scenarios: Sequence[Scenario], seconds: float, drain: float, repeats: int
) -> list[Result]:
    """Each scenario run ``repeats`` times on every server in turn, so that every server sees the same
    stretches of a shared machine's noise, then pooled per server (in the order of ``servers``)."""
    results: list[Result] = []
    for scenario, n, rate in scenarios:
        runs: dict[str, list[Run]] = {key: [] for key in servers}
        for _ in range(repeats):
            for key, server in servers.items():
                runs[key].append(await measure(server, n, rate, seconds, drain))
        results += [pooled(servers[key], scenario, runs[key]) for key in servers]
    return results


def ratio_table(results: list[Result], per_scenario: int) -> str:
    """Pooled results, ``per_scenario`` servers per scenario, each with its throughput and p99 as a
    ratio of the scenario's first server."""
    rows = []
    for first in range(0, len(results), per_scenario):
        reference = results[first]
        for result in results[first : first + per_scenario]:
            rows.append(
                [
                    result.scenario,
                    result.server,
                    f"{result.delivered_per_s:,.0f}",
                    f"{result.delivered_pct:.1f}",
                    _ms_or_dash(result.p50_ms),
                    _ms_or_dash(result.p99_ms),
                    "-" if result.cpu_us is None else f"{result.cpu_us:.2f}",
                    _ratio(result.delivered_per_s, reference.delivered_per_s),
                    _ratio(result.p99_ms, reference.p99_ms),
                ]
            )
    header = ["Scenario", "Server", "Delivered msg/s", "% delivered", "p50", "p99", "CPU µs/msg",
              "msg/s ratio", "p99 ratio"]  # fmt: skip
    return markdown_table(header, rows, [False, False, True, True, True, True, True, True, True])


def _ratio(value: float | None, reference: float | None) -> str:
    return f"{value / reference:.2f}" if value is not None and reference else "-"


def _ms_or_dash(milliseconds: float | None) -> str:
    return "-" if milliseconds is None else f"{milliseconds:.1f} ms"


async def run_fanout(
    server: Server, scenario: str, n: int, rate: int | None, seconds: float, drain: float, *, repeats: int = 1
) -> Result:
    runs = [await measure(server, n, rate, seconds, drain) for _ in range(repeats)]
    return pooled(server, scenario, runs)


async def run_stuck_pair(
    server: Server, scenario: str, n: int, rate: int, seconds: float, drain: float, *, repeats: int
) -> list[Result]:
    """Without and with a subscriber that never reads, interleaved ``repeats`` times: the two rows'
    latencies are then compared across the same stretch of the machine's noise, not two moments of it."""
    calm: list[Run] = []
    stuck: list[Run] = []
    for _ in range(repeats):
        calm.append(await measure(server, n, rate, seconds, drain))
        stuck.append(await measure(server, n, rate, seconds, drain, stuck=True))
    return [pooled(server, scenario, calm), pooled(server, f"{scenario}, 1 stuck", stuck, stuck=True)]


async def run_idle(kind: str, workdir: Path, n: int) -> Result:
    """RSS per idle connection: the rise from ``n // 5`` open connections to ``n`` more, on a fresh server.

    Fresh, because memory a server freed in earlier scenarios is reused for new connections without
    raising its RSS (that flattered this figure by 40 % once); from a first batch, so one-time costs of
    the first connections (allocator arenas, caches) are not counted as per-connection."""
    server = start_server(kind, workdir)
    sockets: list[ClientConnection] = []

    async def open_more(count: int) -> None:
        for start in range(0, count, 200):
            opened = [
                connect(server.url, proxy=None, compression=None, ping_interval=None, open_timeout=60)
                for _ in range(min(200, count - start))
            ]
            sockets.extend(await asyncio.gather(*opened))
        await asyncio.sleep(1.0)

    try:
        await open_more(max(1, n // 5))
        before = server.rss()
        await open_more(n)
        per = (server.rss() - before) / n
        for ws in sockets:
            ws.transport.abort()
    finally:
        stop_process(server.process, 15, 10)
    note = f"{per / 1024:.1f} KB RSS each"
    return Result(server.name, f"(d) {n:,} idle connections", 0, 0, None, None, None, note)


# --- the report ------------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


BASELINES = ("naive", "broadcast", "floor")


def report(results: list[Result]) -> str:
    lines = [
        "| scenario | server | delivered msg/s | delivered | p50 ms | p99 ms | CPU µs/msg | vs naive "
        "| vs broadcast | vs floor | notes |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    by_key = {(r.scenario, r.server): r for r in results}
    for r in results:
        ratios = []
        for base in BASELINES:
            other = by_key.get((r.scenario, base))
            if other is None or r.server == base or r.scenario.startswith("(d)"):
                ratios.append("-")
            elif other.delivered_per_s:
                ratios.append(f"{r.delivered_per_s / other.delivered_per_s:.1f}x")
            else:
                ratios.append("∞")
        rate = "-" if r.scenario.startswith("(d)") else f"{r.delivered_per_s:,.0f}"
        pct = "-" if r.scenario.startswith("(d)") else f"{r.delivered_pct:.1f}%"
        cpu = "-" if r.cpu_us is None else f"{r.cpu_us:.2f}"
        lines.append(
            f"| {r.scenario} | {r.server} | {rate} | {pct} | {_ms(r.p50_ms)} | {_ms(r.p99_ms)} | {cpu} | "
            f"{' | '.join(ratios)} | {r.note} |"
        )
    return "\n".join(lines)


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _floor_p99(found: dict[tuple[str, str], Result], *scenarios: str) -> str:
    """The floor server's p99 in the same scenarios: what this machine allows with one write per frame."""
    figures = [found.get((scenario, "floor")) for scenario in scenarios]
    if not all(f is not None and f.p99_ms is not None for f in figures):
        return ""
    return " (floor server: " + " → ".join(f"{f.p99_ms:.1f}" for f in figures if f and f.p99_ms) + " ms)"


def targets(results: list[Result]) -> str:
    """The performance issue's fan-out targets (1-4), judged on this run's full-size scenarios."""
    found = {(r.scenario, r.server): r for r in results}
    rows: list[list[str]] = []
    full = found.get(("(a) full speed, N=1000", "pulseboard"))
    naive = found.get(("(a) full speed, N=1000", "naive"))
    if full and naive and full.cpu_us is not None:
        ratio = full.delivered_per_s / naive.delivered_per_s if naive.delivered_per_s else float("inf")
        rows.append(
            [
                "1",
                "full speed, N=1000: ≥ 5x naive, ≤ 2 µs CPU/delivery",
                f"{ratio:.1f}x naive, {full.cpu_us:.2f} µs",
                _verdict(ratio >= 5 and full.cpu_us <= 2),
            ]
        )
    for rate, bound in ((100, 20.0), (1000, 200.0)):
        fixed = found.get((f"(b) N=1000 x {rate} msg/s", "pulseboard"))
        if fixed and fixed.p99_ms is not None:
            rows.append(
                [
                    "2",
                    f"N=1000 x {rate} msg/s: 100 %, p99 ≤ {bound:g} ms",
                    f"{fixed.delivered_pct:.1f} %, p99 {fixed.p99_ms:.1f} ms"
                    + _floor_p99(found, f"(b) N=1000 x {rate} msg/s"),
                    _verdict(fixed.delivered_pct >= 100 and fixed.p99_ms <= bound),
                ]
            )
    calm = found.get(("(c) N=50 x 500 msg/s", "pulseboard"))
    stuck = found.get(("(c) N=50 x 500 msg/s, 1 stuck", "pulseboard"))
    if calm and stuck and calm.p99_ms is not None and stuck.p99_ms is not None:
        closed = "closed with 4001: yes" in stuck.note
        rows.append(
            [
                "3",
                "one stuck subscriber: others ≥ 99.9 %, p99 within +1 ms, stuck one gets 4001",
                f"{stuck.delivered_pct:.1f} %, p99 {calm.p99_ms:.1f} → {stuck.p99_ms:.1f} ms, "
                f"4001: {'yes' if closed else 'no'}"
                + _floor_p99(found, "(c) N=50 x 500 msg/s", "(c) N=50 x 500 msg/s, 1 stuck"),
                _verdict(stuck.delivered_pct >= 99.9 and stuck.p99_ms <= calm.p99_ms + 1 and closed),
            ]
        )
    idle = next((r for r in results if r.server == "pulseboard" and r.scenario.startswith("(d)")), None)
    if idle:
        per = float(idle.note.split()[0])
        rows.append(["4", "idle connection ≤ 35 KB RSS", f"{per:.1f} KB", _verdict(per <= 35)])
    if not rows:
        return (
            "Targets: not judged here; they need the full run's scenarios (`python -m bench.fanout`). "
            "The latest verdicts are in docs/benchmarks.md."
        )
    lines = ["| # | target | this run | verdict |", "|---|---|---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines.append("")
    lines.append("Targets 5 (ingest) and 6 (deflate off by default) are in `bench.ingest` and the README.")
    return "\n".join(lines)


async def run_all(config: Config, workdir: Path, only: list[str], quick: bool) -> list[Result]:
    results: list[Result] = []
    kinds = [
        ("pulseboard", True),
        ("pulseboard", False),
        ("floor", True),
        ("naive", True),
        ("broadcast", True),
    ]
    for kind, batch in kinds:
        if kind not in only:
            continue
        server = start_server(kind, workdir, batch=batch)
        try:
            for n in config.full_speed_n if batch else config.full_speed_n[-1:]:
                results.append(
                    await run_fanout(
                        server, f"(a) full speed, N={n}", n, None, config.seconds, config.drain_seconds
                    )
                )
            if not batch:
                continue
            for n, rate in config.fixed:
                results.append(
                    await run_fanout(
                        server,
                        f"(b) N={n} x {rate} msg/s",
                        n,
                        rate,
                        config.seconds,
                        config.drain_seconds,
                        repeats=config.repeats,
                    )
                )
            n, rate = config.stuck
            seconds = max(config.seconds, STUCK_SECONDS) if not quick else config.seconds
            scenario = f"(c) N={n} x {rate} msg/s"
            results += await run_stuck_pair(
                server, scenario, n, rate, seconds, config.drain_seconds, repeats=config.repeats
            )
        finally:
            stop_process(server.process, 15, 10)
        if batch:
            results.append(await run_idle(kind, workdir, config.idle))
    return results


async def against_baseline(config: Config, workdir: Path, baseline: Path, label: str) -> str:
    """Pulseboard now and as of an earlier commit, the throughput and latency scenarios interleaved."""
    current = describe_checkout(ROOT, "gateway", "shared")
    servers = {
        "current": start_server("pulseboard", workdir, label=f"current {current}"),
        "baseline": start_server("pulseboard", workdir, label=f"baseline {label}", checkout=baseline),
    }
    scenarios: list[Scenario] = [(f"(a) full speed, N={n}", n, None) for n in config.full_speed_n]
    scenarios += [(f"(b) N={n} x {rate} msg/s", n, rate) for n, rate in config.fixed]
    try:
        results = await interleaved(
            {"baseline": servers["baseline"], "current": servers["current"]},
            scenarios,
            config.seconds,
            config.drain_seconds,
            config.repeats,
        )
    finally:
        for server in servers.values():
            stop_process(server.process, 15, 10)
    return ratio_table(results, 2)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fanout", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small N, short runs: checks the harness works")
    parser.add_argument(
        "--servers", default="pulseboard,floor,naive,broadcast", help="comma-separated subset"
    )
    parser.add_argument(
        "--baseline",
        metavar="REF",
        help="instead: Pulseboard now against this commit (a temporary git worktree), runs interleaved",
    )
    parser.add_argument(
        "--repeats", type=int, help="with --baseline: interleaved runs of each scenario (default 3)"
    )
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(arguments)
    config = QUICK if args.quick else FULL
    if args.repeats:
        config = replace(config, repeats=args.repeats)
    command = shlex.join([sys.executable, "-m", "bench.fanout", *arguments])
    if shutil.which("taskset"):
        os.sched_setaffinity(0, {LOAD_CPU})
    began = time.perf_counter()
    if args.baseline:
        with tempfile.TemporaryDirectory() as temp, baseline_checkout(args.baseline) as path:
            body = uvloop.run(against_baseline(config, Path(temp), path, describe_checkout(path)))
        notes = [f"Runs interleaved, {config.repeats} of each pooled; ratios against the baseline"]
        print_report(
            "Fan-out: Pulseboard against an earlier commit",
            quick=args.quick,
            command=command,
            notes=notes,
            began=began,
            body=body,
        )
        return 0
    with tempfile.TemporaryDirectory() as temp:
        results = uvloop.run(run_all(config, Path(temp), args.servers.split(","), args.quick))
    pinned = (
        f"server on CPU {SERVER_CPU}, load on CPU {LOAD_CPU}" if shutil.which("taskset") else "not pinned"
    )
    notes = [f"Load generator: uvloop + picows, all subscribers in one process; {pinned}"]
    body = report(results) + "\n\n" + targets(results)
    print_report("Fan-out benchmark", quick=args.quick, command=command, notes=notes, began=began, body=body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
