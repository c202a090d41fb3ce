"""The clients' side: counting what they see (errors, traffic, every channel's offsets), the client
coroutines (steady subscribers, churners, chatters) and the checks on the dashboard consumer."""

import asyncio
import contextlib
import json
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from bench.soak.channels import SOAK_ROOM
from dashboard.session_buffer import ConnectionState, SessionBuffer

EXAMPLES = 20
"""Error details kept for the report (every error is counted)."""


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
