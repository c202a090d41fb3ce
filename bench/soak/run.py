"""Soak: the whole stack under steady load for a long time; fails if anything grows without bound.

Run from the repository root::

    python -m bench.soak --minutes 60 --subscribers 100               # one row a minute
    python -m bench.soak --minutes 2 --subscribers 50 --interval 10   # the soak `make test` runs
    python -m bench.soak --minutes 60 --broker redis                  # on a private redis-server

Everything is real: a gateway (``python -m gateway``), the simulator (``python -m simulator``) posting
over HTTP at a steady rate, and, in this process, N subscribers (every simulator channel, ``chat:lobby``,
``chat:soak``, ``notify:alerts``), churners that connect, subscribe (resuming with ``since``) and
disconnect every few seconds, chatters publishing to ``chat:soak`` over the WebSocket, and one dashboard
``Consumer`` thread with its ``SessionBuffer``.

Every interval it prints a row: elapsed time, the gateway's RSS, open connections, asyncio tasks and
registered clients (``/metrics``), the p99 publish-to-receive latency over the interval (from each
``pub``'s server ``ts``), messages delivered to the subscribers and stored by the consumer, and errors.
Errors are: an offset missed, repeated or out of order on any subscriber or churner, a resume that did not
recover, an unexpected close, an error frame, a failed HTTP request (``/metrics``, the simulator's
publishes), a chat publish not acknowledged, the consumer reconnecting, stalling or logging a warning.

It passes when there were no errors and nothing grows without bound (see ``detect_growth`` and
``band_violations``): after a warm-up, the gateway's RSS and the p99 latency show no sustained rise, and
connections, registered clients and tasks stay in the band the clients explain. At the end every
subscriber must have received every offset exactly once, and the gateway must return to its idle
connection and task counts once the clients are gone. Exit code 0 on a pass, 1 otherwise.
"""

import argparse
import asyncio
import contextlib
import json
import logging
import math
import random
import re
import shlex
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvloop
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from bench.report import markdown_table, print_report
from dashboard.consumer import Consumer, ConsumerConfig
from dashboard.session_buffer import ConnectionState, SessionBuffer
from shared.api import MAX_BATCH
from simulator.chatbot import CHAT_CHANNEL
from simulator.run import ALERT_CHANNEL
from simulator.sources import build_sources
from tests.redis_server import RedisServer
from tests.servers import AppProcess, GatewayProcess

MIB = 1024 * 1024
HISTORY = 1000
"""``PULSE_HISTORY_SIZE`` of the soak's gateway; every channel is filled to it before the clock starts."""
SOAK_ROOM = "chat:soak"
LOBBY = str(CHAT_CHANNEL)
ALERTS = str(ALERT_CHANNEL)
SEED = 7

MIN_SAMPLES = 6
"""Post-warm-up samples a trend needs; with fewer the soak fails rather than pass on too little data."""
RSS_ALLOWANCE_MIB = 8.0
RSS_ALLOWANCE_RELATIVE = 0.05
LATENCY_ALLOWANCE_S = 0.25
LATENCY_ALLOWANCE_RELATIVE = 1.0
TASK_SLACK = 8
"""Tasks that come and go besides the WebSocket connections' own: in-flight HTTP requests (the
simulator's publishes, the consumer's discovery, this ``/metrics`` read) and closes being finished."""
EXAMPLES = 20
"""Error details kept for the report (every error is counted)."""
SETTLE_SECONDS = 20.0


# --- the growth detector: pure functions, unit-tested on synthetic series ----------------------------


@dataclass(frozen=True, slots=True)
class Allowance:
    """How much a resource may rise across the post-warm-up window: ``absolute + relative * level``."""

    absolute: float
    relative: float = 0.0

    def at(self, level: float) -> float:
        return self.absolute + self.relative * abs(level)


@dataclass(frozen=True, slots=True)
class Growth:
    grows: bool
    """True when the series rises without bound, or when there were too few samples to tell."""
    samples: int
    level: float
    """Median of the post-warm-up samples."""
    peak: float
    rise: float
    """Robust (Theil-Sen) slope times the post-warm-up time span: how much the trend rose."""
    late_rise: float
    """Median of the last third minus median of the middle third: is it still rising at the end?"""
    allowed: float
    reason: str


def theil_sen_slope(times: Sequence[float], values: Sequence[float]) -> float:
    """The median of the slopes between every pair of points: a straight-line fit that one or two
    outliers (a GC pause, a noisy neighbour on a shared machine) cannot drag, unlike least squares."""
    slopes = [
        (values[j] - values[i]) / (times[j] - times[i])
        for i in range(len(times))
        for j in range(i + 1, len(times))
        if times[j] > times[i]
    ]
    return statistics.median(slopes) if slopes else 0.0


def detect_growth(
    times: Sequence[float],
    values: Sequence[float],
    allowance: Allowance,
    *,
    warmup: float,
    min_samples: int = MIN_SAMPLES,
) -> Growth:
    """Does ``values`` (sampled at ``times``, seconds) grow without bound after ``warmup`` seconds?

    A bounded resource can still rise for a while after the warm-up (a cache filling, the allocator
    settling), and a noisy one wanders. It "grows" only if both hold:

    1. the robust trend over the post-warm-up samples rose by more than the allowance, and
    2. the last third of the samples sits above the middle third by more than a third of the allowance
       (for a steady leak that difference is a third of the whole rise): the rise is still going on at
       the end, so it is not a ramp that levelled off, and not a spike in the last sample.

    NaN samples (a failed read, already counted as an error) are left out. With fewer than
    ``min_samples`` post-warm-up samples the answer is "grows", so a run too short cannot pass.
    """
    kept = [(t, v) for t, v in zip(times, values, strict=True) if t >= warmup and not math.isnan(v)]
    if len(kept) < min_samples:
        nan = math.nan
        reason = (
            f"only {len(kept)} samples after the {warmup:g} s warm-up, {min_samples} needed: "
            "run longer or sample more often (--interval)"
        )
        return Growth(True, len(kept), nan, nan, nan, nan, nan, reason)
    ts = [t for t, _ in kept]
    vs = [v for _, v in kept]
    level = statistics.median(vs)
    allowed = allowance.at(level)
    rise = theil_sen_slope(ts, vs) * (ts[-1] - ts[0])
    third = len(vs) // 3
    late_rise = statistics.median(vs[len(vs) - third :]) - statistics.median(vs[third : len(vs) - third])
    grows = rise > allowed and late_rise > allowed / 3
    if grows:
        reason = f"rose by {rise:g} over the window (allowed {allowed:g}) and is still rising ({late_rise:g})"
    elif rise > allowed:
        reason = f"rose by {rise:g} (allowed {allowed:g}) but levelled off (late rise {late_rise:g})"
    else:
        reason = f"rise {rise:g} within {allowed:g}"
    return Growth(grows, len(vs), level, max(vs), rise, late_rise, allowed, reason)


def band_violations(
    times: Sequence[float], values: Sequence[float], low: float, high: float, *, warmup: float
) -> list[tuple[float, float]]:
    """The post-warm-up samples ``(time, value)`` outside ``[low, high]`` (NaN counts as outside)."""
    return [
        (t, v)
        for t, v in zip(times, values, strict=True)
        if t >= warmup and (math.isnan(v) or not low <= v <= high)
    ]


def default_warmup(seconds: float, interval: float) -> float:
    """Long enough for the gateway's 5-minute idempotency window to fill on an hour's run (it is
    bounded, but it grows for its first 5 minutes), at least two intervals, at most ten minutes."""
    return min(600.0, max(2 * interval, 0.2 * seconds))


# --- counting what the clients see ---------------------------------------------------------------


class Errors:
    """Every error, counted by kind, with the first few details; safe from the consumer thread too."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.examples: list[str] = []

    def add(self, kind: str, detail: str, count: int = 1) -> None:
        with self._lock:
            self.counts[kind] += count
            if len(self.examples) < EXAMPLES:
                self.examples.append(f"{kind}: {detail}")

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.counts.values())


@dataclass
class Traffic:
    """What the steady subscribers received since the last sample."""

    delivered: int = 0
    latencies: list[float] = field(default_factory=list)

    def take(self) -> tuple[int, list[float]]:
        delivered, latencies = self.delivered, self.latencies
        self.delivered, self.latencies = 0, []
        return delivered, latencies


@dataclass
class Position:
    offset: int
    epoch: str


def messages(frame: str | bytes) -> list[dict[str, Any]]:
    """The messages of a server frame: one object, or an array of them when the gateway packed it."""
    parsed = json.loads(frame)
    return parsed if isinstance(parsed, list) else [parsed]


def check_pub(positions: dict[str, Position], pub: dict[str, Any], errors: Errors, who: str) -> bool:
    """Is ``pub`` the next offset of its channel? Records a gap, a repeat or an epoch change if not."""
    channel, offset, epoch = pub["channel"], pub["offset"], pub["epoch"]
    last = positions.get(channel)
    if last is None:
        errors.add("order", f"{who}: pub {channel}#{offset} before its subscribed")
    elif epoch != last.epoch:
        errors.add("epoch", f"{who}: {channel} epoch {last.epoch} -> {epoch}")
    elif offset <= last.offset:
        errors.add("duplicate", f"{who}: {channel}#{offset} after #{last.offset}")
        return False
    elif offset > last.offset + 1:
        errors.add("gap", f"{who}: {channel}#{last.offset + 1}..{offset - 1} missing")
    positions[channel] = Position(offset, epoch)
    return True


def close_text(ws: ClientConnection) -> str:
    return f"close {ws.close_code} {ws.close_reason or ''}".strip()


async def open_ws(url: str, name: str) -> ClientConnection:
    ws = await connect(f"{url}?name={name}", proxy=None, open_timeout=30, compression=None, max_size=None)
    await asyncio.wait_for(ws.recv(), 30)  # welcome
    return ws


async def nap(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


class Subscriber:
    """A connection that stays for the whole soak, subscribed to every channel, checking every offset."""

    def __init__(self, name: str, channels: Sequence[str], traffic: Traffic, errors: Errors) -> None:
        self.name = name
        self.channels = channels
        self.traffic = traffic
        self.errors = errors
        self.positions: dict[str, Position] = {}
        self.closing = False
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None

    async def open(self, url: str) -> None:
        self._ws = await open_ws(url, self.name)
        for index, channel in enumerate(self.channels):
            await self._ws.send(json.dumps({"op": "subscribe", "id": index, "channel": channel}))
        self._reader = asyncio.get_running_loop().create_task(self._read(self._ws))

    async def _read(self, ws: ClientConnection) -> None:
        traffic, errors, positions = self.traffic, self.errors, self.positions
        try:
            async for frame in ws:
                now = time.time()
                for message in messages(frame):
                    kind = message.get("type")
                    if kind == "pub":
                        if check_pub(positions, message, errors, self.name):
                            traffic.delivered += 1
                            traffic.latencies.append(now - message["ts"])
                    elif kind == "subscribed":
                        positions[message["channel"]] = Position(message["offset"], message["epoch"])
                    elif kind == "error":
                        errors.add(
                            "error frame", f"{self.name}: {message.get('code')} {message.get('detail')}"
                        )
        except ConnectionClosed:
            pass
        except (KeyError, TypeError, ValueError) as exc:
            # A frame that breaks the contract: count it, and stop reading (the end check reports the rest).
            errors.add("bad frame", f"{self.name}: {type(exc).__name__}: {exc}")
            return
        if not self.closing:
            errors.add("unexpected close", f"{self.name}: {close_text(ws)}")

    async def close(self) -> None:
        self.closing = True
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            await self._reader


@dataclass
class Activity:
    churn_cycles: int = 0
    chats: int = 0


async def churner(
    url: str, name: str, channels: Sequence[str], errors: Errors, activity: Activity, stop: asyncio.Event
) -> None:
    """Connect, subscribe to one channel (resuming where this churner last left it), read for a few
    seconds, disconnect, pause, next channel: what reconnecting browsers and flaky networks do."""
    rng = random.Random(name)
    positions: dict[str, Position] = {}
    cycle = 0
    while not stop.is_set():
        channel = channels[cycle % len(channels)]
        cycle += 1
        try:
            await churn_once(url, name, channel, positions, errors, stop, rng)
        except (OSError, TimeoutError, WebSocketException, KeyError, TypeError, ValueError) as exc:
            errors.add("churn", f"{name} on {channel}: {type(exc).__name__}: {exc}")
        activity.churn_cycles += 1
        await nap(stop, rng.uniform(0.2, 1.0))


async def churn_once(
    url: str,
    name: str,
    channel: str,
    positions: dict[str, Position],
    errors: Errors,
    stop: asyncio.Event,
    rng: random.Random,
) -> None:
    loop = asyncio.get_running_loop()
    async with await open_ws(url, name) as ws:
        since = positions.get(channel)
        op: dict[str, Any] = {"op": "subscribe", "id": 1, "channel": channel}
        if since is not None:
            op["since"] = {"offset": since.offset, "epoch": since.epoch}
        await ws.send(json.dumps(op))
        mine: dict[str, Position] = {}
        deadline = loop.time() + rng.uniform(1.0, 4.0)
        while (remaining := deadline - loop.time()) > 0 and not stop.is_set():
            try:
                frame = await asyncio.wait_for(ws.recv(), remaining)
            except TimeoutError:
                break
            except ConnectionClosed:
                errors.add("unexpected close", f"{name}: {close_text(ws)}")
                break
            for message in messages(frame):
                kind = message.get("type")
                if kind == "subscribed":
                    if since is not None and not message["recovered"]:
                        errors.add("resume", f"{name}: {channel} from #{since.offset} not recovered")
                        since = None
                    mine[channel] = since or Position(message["offset"], message["epoch"])
                elif kind == "pub" and message["channel"] == channel:
                    check_pub(mine, message, errors, name)
                elif kind == "error":
                    errors.add("error frame", f"{name}: {message.get('code')} {message.get('detail')}")
        if channel in mine:
            positions[channel] = mine[channel]


async def chatter(url: str, name: str, errors: Errors, activity: Activity, stop: asyncio.Event) -> None:
    """Publish to ``chat:soak`` about once a second over the WebSocket; every publish must be acked."""
    rng = random.Random(name)
    seq = 0
    while not stop.is_set():
        try:
            async with await open_ws(url, name) as ws:
                while not stop.is_set():
                    seq += 1
                    data = {"text": f"{name} says #{seq}"}
                    await ws.send(
                        json.dumps({"op": "publish", "id": seq, "channel": SOAK_ROOM, "data": data})
                    )
                    await asyncio.wait_for(wait_ack(ws, seq, name, errors), 10)
                    activity.chats += 1
                    await nap(stop, rng.uniform(0.5, 1.5))
        except ConnectionClosed as exc:
            errors.add("unexpected close", f"{name}: {exc}")
        except (OSError, TimeoutError, WebSocketException, ValueError) as exc:
            errors.add("chat", f"{name}: publish #{seq}: {type(exc).__name__}: {exc}")
        await nap(stop, 1.0)


async def wait_ack(ws: ClientConnection, seq: int, name: str, errors: Errors) -> None:
    while True:
        for message in messages(await ws.recv()):
            if message.get("ref") != seq:
                continue
            if message.get("type") == "error":
                errors.add("chat", f"{name}: publish #{seq}: {message.get('code')} {message.get('detail')}")
            return


class ConsumerWatch:
    """Checks the dashboard consumer each interval: connected all along, storing every data channel."""

    def __init__(self, buffer: SessionBuffer, data_channels: Sequence[str], errors: Errors) -> None:
        self.buffer = buffer
        self.data_channels = data_channels
        self.errors = errors
        self._connected_at: float | None = None
        self._messages: dict[str, int] = {}
        self._duplicates: dict[str, int] = {}

    def check(self, *, count: bool = True) -> int:
        """Data messages stored since the last check (``count=False``: take the baseline only)."""
        status = self.buffer.connection()
        if status.state is not ConnectionState.CONNECTED:
            self.errors.add("consumer", f"not connected: {status.state} {status.last_error}")
        elif self._connected_at is None:
            self._connected_at = status.changed_at
        elif status.changed_at != self._connected_at:
            self.errors.add("consumer", f"reconnected ({status.last_error})")
            self._connected_at = status.changed_at
        stored = 0
        for channel in self.data_channels:
            info = self.buffer.channel(channel).info()
            new = info.messages - self._messages.get(channel, 0)
            if count and new <= 0:
                self.errors.add("consumer", f"{channel}: nothing stored in the interval")
            if count and info.duplicates > self._duplicates.get(channel, 0):
                self.errors.add("consumer", f"{channel}: {info.duplicates} duplicates")
            if info.gap:
                self.errors.add("consumer", f"{channel}: marked as a gap")
            self._messages[channel] = info.messages
            self._duplicates[channel] = info.duplicates
            stored += new
        return stored


class ConsumerLog(logging.Handler):
    """The consumer logs a warning for a frame or publication it had to drop: each one is an error."""

    def __init__(self, errors: Errors) -> None:
        super().__init__(logging.WARNING)
        self.errors = errors

    def emit(self, record: logging.LogRecord) -> None:
        self.errors.add("consumer", f"logged {record.levelname}: {record.getMessage()}")


# --- the gateway's side --------------------------------------------------------------------------

GAUGE_RE = re.compile(r"^(\w+) ([-\d.e+]+|NaN)$", re.MULTILINE)
SIMULATOR_RE = re.compile(r"errors (\d+)\s+dropped (\d+)")


async def gauges(http: httpx.AsyncClient) -> dict[str, float]:
    response = await http.get("/metrics")
    response.raise_for_status()
    return {name: float(value) for name, value in GAUGE_RE.findall(response.text)}


def simulator_failures(log: Path) -> int:
    """Publish requests that failed or payloads dropped, from the simulator's last progress line."""
    try:
        with log.open("rb") as handle:
            handle.seek(max(0, log.stat().st_size - 8192))
            tail = handle.read().decode(errors="replace")
    except OSError:
        return 0
    found = SIMULATOR_RE.findall(tail)
    return int(found[-1][0]) + int(found[-1][1]) if found else 0


def prefill(http_url: str, channels: int) -> None:
    """Fill every channel's history to ``HISTORY`` before the clock starts: otherwise the history filling
    up in the first minutes (legitimate, bounded growth) looks like a leak in a short soak."""
    sources = build_sources(channels, SEED)
    now = time.time()
    with httpx.Client(base_url=http_url, timeout=60) as http:

        def post(channel: str, body: list[dict[str, Any]], params: dict[str, str] | None = None) -> None:
            for start in range(0, len(body), MAX_BATCH):
                chunk = body[start : start + MAX_BATCH]
                http.post(f"/api/publish/{channel}", json=chunk, params=params).raise_for_status()

        for source in sources:
            points = [source.sample(now - (HISTORY - i) * 0.1, 0.1) for i in range(HISTORY)]
            post(str(source.channel), [p.model_dump(exclude_none=True) for p in points])
        for room in (LOBBY, SOAK_ROOM):
            post(room, [{"text": f"prefill #{i}"} for i in range(HISTORY)], {"name": "prefill"})
        post(ALERTS, [{"level": "info", "title": f"prefill #{i}"} for i in range(HISTORY)])


# --- the run ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    minutes: float
    subscribers: int
    interval: float
    warmup: float
    churners: int
    chatters: int
    rate: float
    channels: int
    broker: str

    @property
    def seconds(self) -> float:
        return self.minutes * 60


@dataclass(frozen=True, slots=True)
class Sample:
    elapsed: float
    rss: float
    connections: float
    tasks: float
    registered: float
    p99: float
    """Seconds; NaN when nothing was delivered in the interval."""
    delivered: int
    stored: int
    """Data messages the dashboard consumer stored in the interval."""
    errors: int
    """Errors recorded in the interval."""


@dataclass
class Outcome:
    samples: list[Sample] = field(default_factory=list)
    errors: Errors = field(default_factory=Errors)
    activity: Activity = field(default_factory=Activity)
    idle_tasks: float = math.nan
    loaded_tasks: float = math.nan
    stable: int = 0
    tasks_per_connection: float = math.nan
    settled: str = ""
    """What the gateway looked like after the clients left; empty if it did not return to idle."""
    final_offsets: dict[str, int] = field(default_factory=dict)
    interrupted_at: float | None = None
    began: float = field(default_factory=time.perf_counter)


ROW_HEADER = (
    "elapsed",
    "gateway RSS",
    "connections",
    "tasks",
    "clients registered",
    "p99 latency",
    "delivered",
    "consumer stored",
    "errors",
)
ROW_NUMERIC = (False, True, True, True, True, True, True, True, True)


def clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def number(value: float, fmt: str = ",.0f") -> str:
    return "-" if math.isnan(value) else format(value, fmt)


def row_cells(s: Sample) -> list[str]:
    return [
        clock(s.elapsed),
        f"{number(s.rss / MIB, '.1f')} MiB",
        number(s.connections),
        number(s.tasks),
        number(s.registered),
        "-" if math.isnan(s.p99) else f"{s.p99 * 1000:.1f} ms",
        f"{s.delivered:,}",
        f"{s.stored:,}",
        f"{s.errors:,}",
    ]


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return math.nan
    values.sort()
    return values[min(len(values) - 1, int(len(values) * fraction))]


class Soak:
    def __init__(self, options: Options, gateway: GatewayProcess, simulator: AppProcess) -> None:
        self.options = options
        self.gateway = gateway
        self.simulator = simulator
        self.channels = options_channels(options)
        self.data_channels = self.channels[: options.channels]
        self.outcome = Outcome()
        self.errors = self.outcome.errors
        self.traffic = Traffic()
        self.stop_requested = asyncio.Event()
        self._simulator_failures = 0
        self._simulator_exited = False
        self._gateway_exited = False

    async def run(self) -> Outcome:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop_requested.set)
        options, outcome, errors = self.options, self.outcome, self.errors
        async with httpx.AsyncClient(base_url=self.gateway.http_url, timeout=10, trust_env=False) as http:
            outcome.idle_tasks = (await gauges(http))["pulse_tasks"]
            subscribers = [
                Subscriber(f"sub{i}", self.channels, self.traffic, errors) for i in range(options.subscribers)
            ]
            for start in range(0, len(subscribers), 50):
                await asyncio.gather(*(s.open(self.gateway.ws_url) for s in subscribers[start : start + 50]))
            stop_clients = asyncio.Event()
            chat = [
                chatter(self.gateway.ws_url, f"chatter{i}", errors, outcome.activity, stop_clients)
                for i in range(options.chatters)
            ]
            clients = [loop.create_task(c) for c in chat]
            buffer = SessionBuffer()
            consumer = Consumer(buffer, self.consumer_config()).start()
            handler = ConsumerLog(errors)
            logging.getLogger("dashboard").addHandler(handler)
            try:
                self.simulator.start()
                watch = ConsumerWatch(buffer, self.data_channels, errors)
                await self.wait_for_consumer(buffer)
                began = time.monotonic()
                await asyncio.sleep(1.0)
                outcome.stable = options.subscribers + options.chatters + 1
                first = await self.sample(http, watch, began, baseline=True)
                outcome.loaded_tasks = first.tasks
                outcome.tasks_per_connection = (first.tasks - outcome.idle_tasks) / outcome.stable
                churn_channels = [*self.data_channels, SOAK_ROOM]
                clients += [
                    loop.create_task(
                        churner(
                            self.gateway.ws_url,
                            f"churn{i}",
                            churn_channels,
                            errors,
                            outcome.activity,
                            stop_clients,
                        )
                    )
                    for i in range(options.churners)
                ]
                count = max(1, math.ceil(options.seconds / options.interval - 1e-9))
                for k in range(1, count + 1):
                    await nap(self.stop_requested, began + k * options.interval - time.monotonic())
                    if self.stop_requested.is_set():
                        outcome.interrupted_at = time.monotonic() - began
                        print(f"interrupted at {clock(outcome.interrupted_at)}", file=sys.stderr, flush=True)
                        break
                    await self.sample(http, watch, began)
                stop_clients.set()
                await asyncio.gather(*clients)
                try:
                    await self.finish(http, subscribers, buffer)
                except httpx.HTTPError as exc:
                    errors.add("http", f"GET /api/channels at the end: {type(exc).__name__}: {exc}")
            finally:
                stop_clients.set()
                for task in clients:
                    task.cancel()
                consumer.stop()
                consumer.join(10)
                logging.getLogger("dashboard").removeHandler(handler)
                self.simulator.stop()
            for subscriber in subscribers:
                await subscriber.close()
            outcome.settled = await self.settle(http)
        return outcome

    def consumer_config(self) -> ConsumerConfig:
        return ConsumerConfig(
            ws_url=self.gateway.ws_url,
            http_url=self.gateway.http_url,
            name="soak-dashboard",
            rooms=(LOBBY, SOAK_ROOM),
        )

    async def wait_for_consumer(self, buffer: SessionBuffer) -> None:
        """Until the consumer has discovered and is storing every data channel (discovery runs every 5 s)."""
        deadline = time.monotonic() + 30
        while True:
            connected = buffer.connection().state is ConnectionState.CONNECTED
            if connected and all(buffer.channel(c).info().messages > HISTORY for c in self.data_channels):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the dashboard consumer did not start receiving: {buffer.connection()}")
            await asyncio.sleep(0.1)

    async def sample(
        self, http: httpx.AsyncClient, watch: ConsumerWatch, began: float, *, baseline: bool = False
    ) -> Sample:
        errors = self.errors
        try:
            values = await gauges(http)
        except httpx.HTTPError as exc:
            errors.add("http", f"GET /metrics: {type(exc).__name__}: {exc}")
            values = {}
        if (
            not self._gateway_exited
            and self.gateway.process is not None
            and self.gateway.process.poll() is not None
        ):
            self._gateway_exited = True
            errors.add("gateway", f"exited with {self.gateway.process.returncode}")
        process = self.simulator.process
        if not self._simulator_exited and process is not None and process.poll() is not None:
            self._simulator_exited = True
            errors.add("simulator", f"exited with {process.returncode}")
        failures = simulator_failures(self.simulator.log_path)
        if failures > self._simulator_failures:
            errors.add(
                "http",
                f"the simulator counts {failures} failed or dropped publishes",
                failures - self._simulator_failures,
            )
            self._simulator_failures = failures
        stored = watch.check(count=not baseline)
        delivered, latencies = self.traffic.take()
        if not baseline and delivered == 0:
            errors.add("stalled", "nothing delivered to the subscribers in the interval")
        total = errors.total
        previous = sum(s.errors for s in self.outcome.samples)
        nan = math.nan
        sample = Sample(
            elapsed=time.monotonic() - began,
            rss=values.get("process_resident_memory_bytes", nan),
            connections=values.get("pulse_connections", nan),
            tasks=values.get("pulse_tasks", nan),
            registered=values.get("pulse_clients_registered", nan),
            p99=percentile(latencies, 0.99),
            delivered=delivered,
            stored=0 if baseline else stored,
            errors=total - previous,
        )
        self.outcome.samples.append(sample)
        print("| " + " | ".join(row_cells(sample)) + " |", flush=True)
        return sample

    async def finish(
        self, http: httpx.AsyncClient, subscribers: list[Subscriber], buffer: SessionBuffer
    ) -> None:
        """Stop publishing, then check that every subscriber and the consumer got every offset once."""
        code = self.simulator.stop(timeout=30)
        if code != 0 and not self._simulator_exited:
            self.errors.add("simulator", f"exited with {code} (1: payloads not published)")
        response = await http.get("/api/channels")
        response.raise_for_status()
        finals = {
            c["name"]: int(c["offset"]) for c in response.json()["channels"] if c["name"] in self.channels
        }
        self.outcome.final_offsets = finals

        def short() -> dict[str, int]:
            missing: Counter[str] = Counter()
            for subscriber in subscribers:
                for channel in self.channels:
                    got = subscriber.positions.get(channel)
                    missing[channel] += finals[channel] - (got.offset if got else 0)
            positions = buffer.positions()
            for channel in self.channels:
                got_position = positions.get(channel)
                missing[f"{channel} (consumer)"] += finals[channel] - (
                    got_position.offset if got_position else 0
                )
            return {channel: n for channel, n in missing.items() if n}

        deadline = time.monotonic() + 30
        while True:
            left = short()
            if not left or time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.2)
        for channel, n in left.items():
            self.errors.add("lost", f"{n} publications of {channel} never arrived", n)
        final = self.errors.total - sum(s.errors for s in self.outcome.samples)
        if final:
            print(f"| end | | | | | | | | {final:,} |", flush=True)

    async def settle(self, http: httpx.AsyncClient) -> str:
        """Once every client is gone the gateway must be back to idle: no connection left registered, and
        no more tasks than before the first client connected."""
        deadline = time.monotonic() + SETTLE_SECONDS
        values: dict[str, float] = {}
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                values = await gauges(http)
                if (
                    values["pulse_connections"] == 0
                    and values["pulse_clients_registered"] == 0
                    and values["pulse_tasks"] <= self.outcome.idle_tasks
                ):
                    return (
                        f"connections 0, clients registered 0, tasks {values['pulse_tasks']:.0f} "
                        f"(idle before: {self.outcome.idle_tasks:.0f})"
                    )
            await asyncio.sleep(0.25)
        self.errors.add("leftover", f"after {SETTLE_SECONDS:g} s without clients: {values}")
        return ""


# --- the verdict and the report ---------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    name: str
    samples: str
    median: str
    peak: str
    allowed: str
    result: str
    ok: bool


def trend_check(name: str, growth: Growth, unit: Callable[[float], str]) -> Check:
    if math.isnan(growth.level):
        return Check(name, str(growth.samples), "-", "-", "-", growth.reason, False)
    verdict = "GROWS" if growth.grows else "ok"
    result = f"{verdict}: trend rise {unit(growth.rise)}, late rise {unit(growth.late_rise)}"
    allowed = f"rise <= {unit(growth.allowed)}"
    return Check(
        name, str(growth.samples), unit(growth.level), unit(growth.peak), allowed, result, not growth.grows
    )


def band_check(
    name: str, outcome: Outcome, values: list[float], low: float, high: float, warmup: float
) -> Check:
    times = [s.elapsed for s in outcome.samples]
    kept = [v for t, v in zip(times, values, strict=True) if t >= warmup and not math.isnan(v)]
    outside = band_violations(times, values, low, high, warmup=warmup)
    enough = len(kept) >= MIN_SAMPLES
    if not enough:
        result = f"only {len(kept)} samples after the warm-up, {MIN_SAMPLES} needed"
    elif outside:
        result = "OUTSIDE at " + ", ".join(f"{clock(t)} ({number(v)})" for t, v in outside[:5])
    else:
        result = "ok"
    return Check(
        name,
        str(len(kept)),
        number(statistics.median(kept)) if kept else "-",
        number(max(kept)) if kept else "-",
        f"{low:,.0f} .. {high:,.0f}",
        result,
        enough and not outside,
    )


def checks(options: Options, outcome: Outcome) -> list[Check]:
    samples = outcome.samples
    times = [s.elapsed for s in samples]
    warmup = options.warmup
    rss = detect_growth(
        times,
        [s.rss for s in samples],
        Allowance(RSS_ALLOWANCE_MIB * MIB, RSS_ALLOWANCE_RELATIVE),
        warmup=warmup,
    )
    latency = detect_growth(
        times,
        [s.p99 for s in samples],
        Allowance(LATENCY_ALLOWANCE_S, LATENCY_ALLOWANCE_RELATIVE),
        warmup=warmup,
    )
    stable, churners = outcome.stable, options.churners
    per_connection = 0.0 if math.isnan(outcome.tasks_per_connection) else outcome.tasks_per_connection
    task_low = outcome.loaded_tasks - TASK_SLACK
    task_high = outcome.loaded_tasks + math.ceil(per_connection * churners) + TASK_SLACK
    result = [
        trend_check("gateway RSS", rss, lambda v: f"{v / MIB:.1f} MiB"),
        trend_check("p99 latency", latency, lambda v: f"{v * 1000:.1f} ms"),
        band_check(
            "connections", outcome, [s.connections for s in samples], stable, stable + churners, warmup
        ),
        band_check(
            "clients registered", outcome, [s.registered for s in samples], stable, stable + churners, warmup
        ),
        band_check("tasks", outcome, [s.tasks for s in samples], task_low, task_high, warmup),
    ]
    total = outcome.errors.total
    breakdown = ", ".join(f"{kind} {n:,}" for kind, n in sorted(outcome.errors.counts.items()))
    result.append(Check("errors", "whole run", "-", f"{total:,}", "0", f"{breakdown or 'none'}", total == 0))
    result.append(
        Check(
            "idle again after the run",
            "end",
            "-",
            "-",
            f"connections 0, tasks <= {number(outcome.idle_tasks)}",
            outcome.settled or "NOT back to idle",
            bool(outcome.settled),
        )
    )
    if outcome.interrupted_at is not None:
        result.append(
            Check(
                "complete",
                "-",
                "-",
                "-",
                clock(options.seconds),
                f"interrupted at {clock(outcome.interrupted_at)}",
                False,
            )
        )
    return result


def report(options: Options, outcome: Outcome, command: str) -> bool:
    results = checks(options, outcome)
    passed = all(c.ok for c in results)
    activity = outcome.activity
    published = ", ".join(f"{name} {offset:,}" for name, offset in sorted(outcome.final_offsets.items()))
    notes = [
        f"Load: simulator {options.channels} data channels at {options.rate:g} points/s each (+ chat bot, "
        f"alerts); {options.subscribers} subscribers x {len(options_channels(options))} channels; "
        f"{options.churners} churners ({activity.churn_cycles:,} connect/subscribe/disconnect cycles, "
        f"resuming with since); {options.chatters} chatters ({activity.chats:,} chat publishes over the "
        f"WebSocket); 1 dashboard consumer thread; broker {options.broker}://",
        f"History prefilled to {HISTORY} per channel; final offsets: {published or '-'}",
        f"Every {options.interval:g} s; trends and bands judged after a {options.warmup:g} s warm-up; "
        f"RSS may rise {RSS_ALLOWANCE_MIB:g} MiB + {RSS_ALLOWANCE_RELATIVE:.0%}, p99 latency "
        f"{LATENCY_ALLOWANCE_S * 1000:g} ms + {LATENCY_ALLOWANCE_RELATIVE:.0%}; tasks: "
        f"{number(outcome.tasks_per_connection, '.2f')} per connection, band from the first sample "
        f"+/- {TASK_SLACK}",
    ]
    rows = markdown_table(ROW_HEADER, [row_cells(s) for s in outcome.samples], ROW_NUMERIC)
    summary = markdown_table(
        ("check", "samples", "median", "max", "allowed", "result"),
        [[c.name, c.samples, c.median, c.peak, c.allowed, c.result] for c in results],
        (False, True, True, True, False, False),
    )
    verdict = "PASS" if passed else "FAIL: " + "; ".join(f"{c.name}: {c.result}" for c in results if not c.ok)
    body = f"{rows}\n\n{summary}\n\nVerdict: {verdict}"
    if outcome.errors.examples:
        body += "\n\nFirst errors:\n" + "\n".join(f"- {e}" for e in outcome.errors.examples)
    print()
    print_report(
        f"Soak, {clock(options.seconds)}",
        quick=False,
        command=command,
        notes=notes,
        began=outcome.began,
        body=body,
    )
    if not passed:
        print(f"soak FAILED: {verdict.removeprefix('FAIL: ')}", file=sys.stderr)
    return passed


def options_channels(options: Options) -> list[str]:
    return [*(str(s.channel) for s in build_sources(options.channels, SEED)), LOBBY, SOAK_ROOM, ALERTS]


# --- entry point -----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak",
        description="Gateway + simulator + subscribers + dashboard consumer for a while; fails if anything "
        "grows without bound.",
    )
    parser.add_argument("--minutes", type=float, default=60.0, help="how long to run (60)")
    parser.add_argument("--subscribers", type=int, default=100, help="steady WebSocket subscribers (100)")
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between rows (60)")
    parser.add_argument(
        "--warmup",
        type=float,
        default=None,
        help="seconds before trends are judged (20%% of the run, at least 2 intervals, at most 600)",
    )
    parser.add_argument("--churners", type=int, default=10, help="clients that keep reconnecting (10)")
    parser.add_argument("--chatters", type=int, default=2, help="clients publishing chat (2)")
    parser.add_argument("--rate", type=float, default=10.0, help="simulator points/s per channel (10)")
    parser.add_argument("--channels", type=int, default=3, help="simulator data channels (3)")
    parser.add_argument("--broker", choices=("memory", "redis"), default="memory", help="gateway broker")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.interval <= 0 or args.subscribers < 1:
        parser.error("--minutes and --interval must be positive, --subscribers at least 1")
    seconds = args.minutes * 60
    warmup = default_warmup(seconds, args.interval) if args.warmup is None else args.warmup
    return Options(
        args.minutes,
        args.subscribers,
        args.interval,
        warmup,
        args.churners,
        args.chatters,
        args.rate,
        args.channels,
        args.broker,
    )


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    options = parse_args(arguments)
    command = shlex.join([sys.executable, "-m", "bench.soak", *arguments])
    print(f"soak: {clock(options.seconds)}, a row every {options.interval:g} s", flush=True)
    print("| " + " | ".join(ROW_HEADER) + " |", flush=True)
    print("|" + "|".join("--:" if n else "---" for n in ROW_NUMERIC) + "|", flush=True)
    with tempfile.TemporaryDirectory(prefix="pulse-soak-") as temp:
        root = Path(temp)
        redis_server = RedisServer(root / "redis").start() if options.broker == "redis" else None
        gateway: GatewayProcess | None = None
        simulator: AppProcess | None = None
        try:
            env = {
                "PULSE_BROKER_URL": redis_server.url if redis_server else "memory://",
                "PULSE_HISTORY_SIZE": str(HISTORY),
            }
            gateway = GatewayProcess(root, env=env).start()
            prefill(gateway.http_url, options.channels)
            simulator_args = [
                "-m",
                "simulator",
                "--gateway",
                gateway.http_url,
                "--rate",
                f"{options.rate:g}",
                "--channels",
                str(options.channels),
                "--seed",
                str(SEED),
                "--wait",
                "10",
            ]
            simulator = AppProcess(simulator_args, root, name="simulator")
            soak = Soak(options, gateway, simulator)
            outcome = uvloop.run(soak.run())
            passed = report(options, outcome, command)
            if not passed:
                for name, text in (("gateway", gateway.log()), ("simulator", simulator.log())):
                    tail = "\n".join(text.splitlines()[-30:])
                    print(f"--- the last lines of the {name}'s log:\n{tail}", file=sys.stderr)
            return 0 if passed else 1
        finally:
            if simulator is not None:
                simulator.stop()
            if gateway is not None:
                gateway.stop()
            if redis_server is not None:
                redis_server.stop()


if __name__ == "__main__":
    sys.exit(main())
