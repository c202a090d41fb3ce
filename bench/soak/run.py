"""The run: its options, the sample taken every interval and its table row, and ``Soak``, which connects
the clients, samples the gateway every interval and checks that everything arrived and the gateway
went idle."""

import asyncio
import contextlib
import logging
import math
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

from bench.soak.channels import ALERTS, HISTORY, LOBBY, SEED, SOAK_ROOM
from bench.soak.clients import (
    Activity,
    ConsumerLog,
    ConsumerWatch,
    Errors,
    Subscriber,
    Traffic,
    chatter,
    churner,
    nap,
)
from bench.soak.gateway import gauges, simulator_failures
from dashboard.consumer import Consumer, ConsumerConfig
from dashboard.session_buffer import ConnectionState, SessionBuffer
from simulator.sources import build_sources
from tests.servers import AppProcess, GatewayProcess

MIB = 1024 * 1024
SETTLE_SECONDS = 20.0


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


def options_channels(options: Options) -> list[str]:
    return [*(str(s.channel) for s in build_sources(options.channels, SEED)), LOBBY, SOAK_ROOM, ALERTS]


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
            connections=values.get("pulse_connections_open", nan),
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
                    values["pulse_connections_open"] == 0
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
