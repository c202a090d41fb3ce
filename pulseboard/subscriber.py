"""Follow channels over a gateway's WebSocket (``/ws``): reconnect, resume exactly, say when it cannot.

    async with Subscriber("ws://127.0.0.1:8000/ws", ["data:cpu", "chat:lobby"]) as feed:
        async for event in feed:
            match event:
                case Pub(): ...          # a publication, in offset order, never twice
                case Gap(): ...          # publications were lost (recovered: false): read_range fills them

After a lost connection or a close whose code says to (``shared.codes.should_reconnect``), the subscriber
reconnects with jittered exponential backoff (``shared.backoff``) and subscribes again with ``since`` set
to the last publication it handed out: what was published meanwhile arrives, in order, with nothing
repeated. When the gateway can no longer replay it (a new epoch, or more missed than it keeps), the
subscriber hands out a ``Gap`` first, then goes on live from the channel's current position. A close
that must not be retried (4401: the token was refused) ends the iteration with ``SubscriberClosedError``.

``publish`` sends over the same connection and returns the publication's offset once the gateway acks it.
"""

import asyncio
import contextlib
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from pydantic import ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from shared.backoff import Backoff
from shared.codes import should_reconnect
from shared.messages import (
    Ack,
    Error,
    PublishOp,
    StreamPosition,
    Subscribed,
    SubscribeOp,
    Welcome,
    parse_server_frame,
)
from shared.messages import Pub as Pub  # re-exported: what the iteration hands out

OPEN_TIMEOUT = 10.0
ACK_TIMEOUT = 10.0


@dataclass(frozen=True)
class Gap:
    """Publications of ``channel`` after ``since`` are lost to this subscriber; it goes on from
    ``position``."""

    channel: str
    since: StreamPosition
    position: StreamPosition
    last_ts: float | None
    """The server time of the last publication handed out before the gap (None: none was)."""


Event = Pub | Gap


class SubscriberClosedError(Exception):
    """The gateway closed the connection with a code that says not to reconnect (the reason says why)."""


class NotConnectedError(Exception):
    """``publish`` while the subscriber has no connection (it is reconnecting)."""


class PublishRefusedError(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class Subscriber:
    def __init__(
        self,
        url: str,
        channels: Sequence[str],
        *,
        token: str | None = None,
        history: int = 0,
        backoff: Backoff | None = None,
    ) -> None:
        self._url = url
        self._channels = list(channels)
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._history = history
        self._backoff = backoff or Backoff()
        self.positions: dict[str, StreamPosition] = {}
        """The last publication handed out per channel (where a resume starts)."""
        self._last_ts: dict[str, float] = {}
        self._events: asyncio.Queue[Event | BaseException] = asyncio.Queue()
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Ack]] = {}
        self._subscribing: dict[int, SubscribeOp] = {}
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self.connections = 0
        """Connections opened so far (1 + reconnects)."""

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run(), name="pulseboard-subscriber")
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Event:
        item = await self._events.get()
        if isinstance(item, BaseException):
            raise item
        return item

    async def publish(self, channel: str, data: dict[str, Any]) -> int:
        """Publish over the subscriber's connection; the offset once acked (else ``PublishRefusedError``)."""
        ws = self._ws
        if ws is None:
            raise NotConnectedError("not connected to the gateway (reconnecting)")
        ref = next(self._ids)
        acked: asyncio.Future[Ack] = asyncio.get_running_loop().create_future()
        self._pending[ref] = acked
        try:
            await ws.send(
                PublishOp(op="publish", id=ref, channel=channel, data=data).model_dump_json(exclude_none=True)
            )
            ack = await asyncio.wait_for(acked, ACK_TIMEOUT)
        finally:
            self._pending.pop(ref, None)
        assert ack.offset is not None
        return ack.offset

    # --- the connection loop ------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            code: int | None = None
            reason = ""
            try:
                async with connect(
                    self._url, additional_headers=self._headers, open_timeout=OPEN_TIMEOUT, proxy=None
                ) as ws:
                    await self._session(ws)
            except ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd is not None else None
                reason = closed.rcvd.reason if closed.rcvd is not None else ""
            except InvalidStatus as refused:
                code = refused.response.status_code
                reason = f"HTTP {code}"
                if code in (401, 403):
                    self._events.put_nowait(
                        SubscriberClosedError(f"the gateway refused the handshake: {reason}")
                    )
                    return
            except (OSError, InvalidHandshake, TimeoutError):
                pass
            finally:
                self._ws = None
                for waiting in self._pending.values():
                    if not waiting.done():
                        waiting.set_exception(NotConnectedError("the connection closed before the ack"))
            if not should_reconnect(code):
                self._events.put_nowait(SubscriberClosedError(f"closed with {code}: {reason}"))
                return
            await asyncio.sleep(self._backoff.failed(time.monotonic()))

    async def _session(self, ws: ClientConnection) -> None:
        welcome = parse_server_frame(await asyncio.wait_for(ws.recv(), OPEN_TIMEOUT))
        if not welcome or not isinstance(welcome[0], Welcome):
            raise OSError("the gateway did not answer with welcome")
        self.connections += 1
        self._ws = ws
        for channel in self._channels:
            since = self.positions.get(channel)
            ref = next(self._ids)
            history = None if since is not None or not self._history else self._history
            op = SubscribeOp(op="subscribe", id=ref, channel=channel, since=since, history=history)
            self._subscribing[ref] = op
            await ws.send(op.model_dump_json(exclude_none=True))
        self._backoff.succeeded(time.monotonic())
        async for frame in ws:
            try:
                messages = parse_server_frame(frame)
            except ValidationError:
                continue  # a message type from a newer gateway
            for message in messages:
                self._handle(message)

    def _handle(self, message: object) -> None:
        if isinstance(message, Pub):
            seen = self.positions.get(message.channel)
            if seen is not None and seen.epoch == message.epoch and message.offset <= seen.offset:
                return  # already handed out (a replay overlapping what came live)
            self.positions[message.channel] = StreamPosition(offset=message.offset, epoch=message.epoch)
            self._last_ts[message.channel] = message.ts
            self._events.put_nowait(message)
        elif isinstance(message, Subscribed):
            op = self._subscribing.pop(message.ref, None) if isinstance(message.ref, int) else None
            now = StreamPosition(offset=message.offset, epoch=message.epoch)
            since = op.since if op is not None else None
            if since is not None and not message.recovered:
                self._events.put_nowait(Gap(message.channel, since, now, self._last_ts.get(message.channel)))
                self.positions[message.channel] = now
            elif since is None:
                # Before the history that follows (if any was asked for): those offsets are handed out.
                start = max(0, message.offset - (op.history or 0 if op is not None else 0))
                self.positions[message.channel] = StreamPosition(offset=start, epoch=message.epoch)
        elif isinstance(message, Ack | Error) and isinstance(message.ref, int):
            waiting = self._pending.get(message.ref)
            if waiting is not None and not waiting.done():
                if isinstance(message, Ack):
                    waiting.set_result(message)
                else:
                    waiting.set_exception(PublishRefusedError(message.code, message.detail))
            elif isinstance(message, Error) and message.ref in self._subscribing:
                op = self._subscribing.pop(message.ref)
                self._events.put_nowait(SubscriberClosedError(f"subscribe to {op.channel}: {message.detail}"))
