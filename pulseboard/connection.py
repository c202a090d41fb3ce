"""The WebSocket protocol client, once: every Pulseboard program that follows channels runs on it (the
``Subscriber`` iterator, the blocking ``SyncSubscriber``, the Streamlit connection's feed and the
dashboard's per-session consumer).

A ``Connection`` keeps one socket to a gateway's ``/ws`` open for as long as it runs:

- it subscribes to every wanted channel on each connection: with ``since`` at the last publication it
  handed out (an exact resume), else with ``history`` publications of the past (a first load, or a
  channel that has published nothing to it yet: whatever came meanwhile, in any epoch, is news);
- publications go to the handler in offset order, never twice (a replay overlapping what came live is
  dropped);
- when the gateway can no longer replay (``recovered: false``: a new epoch, or more missed than it keeps)
  the handler gets a ``Gap`` first, then the channel goes on live from the gateway's position; the range
  API (``pulseboard.history``) fills a ``data:`` channel's gap;
- a lost connection, or a close whose code says to (``shared.codes.should_reconnect``), reconnects with
  jittered exponential backoff (``shared.backoff``); the backoff starts over only once a connection has
  stayed up ``stable_after`` seconds, so a gateway that accepts and closes at once gets no storm;
- a close that must not be retried (4401, a refused handshake, no token where one is required) ends
  ``run`` with ``ConnectionStoppedError``, whose ``code`` and ``reason`` say why;
- ``request`` sends an op and waits for its reply (``publish`` is one), over the same socket.

Everything the gateway says reaches the handler as one of ``Event``: a program picks what it needs with
``match``. The handler is awaited before the next frame is read, so what it does (filling a gap over
HTTP, say) happens in stream order.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypedDict
from urllib.parse import urlencode

from pydantic import ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from pulseboard.link import Link, NotConnectedError
from shared.backoff import Backoff
from shared.codes import CloseCode, should_reconnect
from shared.messages import (
    Ack,
    ClientOp,
    Error,
    Join,
    Leave,
    Presence,
    Pub,
    PublishOp,
    ServerMessage,
    StreamPosition,
    Subscribed,
    SubscribeOp,
    Welcome,
    parse_server_frame,
)

log = logging.getLogger(__name__)

OPEN_TIMEOUT = 10.0
CLOSE_TIMEOUT = 0.5
"""Seconds to wait for the gateway's close frame when stopping: a released client frees its socket fast."""
MAX_FRAME_BYTES = 16 * 1024 * 1024
STABLE_AFTER = 5.0


@dataclass(frozen=True, slots=True)
class Connected:
    """A connection is open and its subscriptions are on their way."""

    client_id: str
    name: str


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The connection ended (or could not open); the next attempt is in ``retry_in`` seconds."""

    reason: str
    failures: int
    """Attempts in a row that did not last (what a status line shows as the attempt)."""
    retry_in: float


@dataclass(frozen=True, slots=True)
class Gap:
    """Publications of ``channel`` after ``since`` are lost to this client; it goes on from ``position``."""

    channel: str
    since: StreamPosition
    position: StreamPosition
    last_ts: float | None
    """The server time of the last publication handed out before the gap (None: none was)."""


@dataclass(frozen=True, slots=True)
class Refused:
    """The gateway refused a subscription (a limit, the token's scope): the channel is no longer wanted."""

    channel: str
    code: str
    detail: str


Event = Connected | Disconnected | Pub | Subscribed | Gap | Refused | Join | Leave | Presence | Error
Handler = Callable[[Event], Awaitable[None] | None]


class ConnectionStoppedError(Exception):
    """The gateway said not to reconnect: ``code`` is the close code or HTTP status (None when the
    gateway's greeting was the reason) and ``reason`` says why."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"{code} {reason}".strip() if code is not None else reason)
        self.code = code
        self.reason = reason


HistoryFor = Callable[[str], int]


class ConnectionOptions(TypedDict, total=False):
    """The keyword arguments of ``Connection`` that the iterations built on it pass along."""

    token: str | None
    name: str | None
    history: int | HistoryFor
    backoff: Backoff | None
    stable_after: float
    open_timeout: float


class Connection:
    def __init__(
        self,
        url: str,
        handler: Handler,
        channels: Iterable[str] = (),
        *,
        token: str | None = None,
        name: str | None = None,
        history: int | HistoryFor = 0,
        backoff: Backoff | None = None,
        stable_after: float = STABLE_AFTER,
        open_timeout: float = OPEN_TIMEOUT,
    ) -> None:
        """``history``: publications loaded when a channel is first subscribed (a number, or one per
        channel). ``name``: the display name asked for when no token says who this is."""
        self._url = url if token or not name else f"{url}?{urlencode({'name': name})}"
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._handler = handler
        self._history = history if callable(history) else (lambda _channel, count=history: count)
        self._backoff = backoff or Backoff()
        self._stable_after = stable_after
        self._open_timeout = open_timeout
        self._wanted: dict[str, None] = dict.fromkeys(channels)
        """Channels subscribed on every connection, in order (a dict as an ordered set)."""
        self.positions: dict[str, StreamPosition] = {}
        """The last publication handed out per channel (where a resume starts)."""
        self._last_ts: dict[str, float] = {}
        self._subscribing: dict[int, SubscribeOp] = {}
        self._link: Link | None = None
        self._up = asyncio.Event()
        self._sending: set[asyncio.Task[None]] = set()
        self.connections = 0
        """Connections opened so far (1 + reconnects)."""

    @property
    def connected(self) -> bool:
        return self._link is not None

    @property
    def wanted(self) -> list[str]:
        return list(self._wanted)

    def subscribe(self, channel: str) -> None:
        """Follow ``channel`` from now on, on this and every later connection (on the loop's thread)."""
        if channel in self._wanted:
            return
        self._wanted[channel] = None
        link = self._link
        if link is not None:
            task = asyncio.get_running_loop().create_task(self._subscribe(link, channel))
            # The loop keeps only a weak reference to a task: one nobody holds may vanish mid-send.
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def request(self, op: ClientOp) -> ServerMessage:
        """Send ``op`` and wait for its reply: ``NotConnectedError`` while reconnecting (or when the
        connection ends first), ``RequestRejectedError`` when the gateway answers with an error."""
        link = self._link
        if link is None:
            raise NotConnectedError("not connected to the gateway (reconnecting)")
        return await link.request(op)

    async def send(self, op: ClientOp) -> None:
        """Send ``op`` without waiting for a reply (its answer reaches the handler)."""
        link = self._link
        if link is None:
            raise NotConnectedError("not connected to the gateway (reconnecting)")
        await link.send(op)

    async def publish(self, channel: str, data: dict[str, Any], *, wait: bool = False) -> int:
        """Publish over this connection; the publication's offset once the gateway acks it. While
        reconnecting: ``NotConnectedError`` at once, or (``wait``) once a connection is open."""
        if wait:
            await self._up.wait()
        reply = await self.request(PublishOp(op="publish", channel=channel, data=data))
        if not isinstance(reply, Ack) or reply.offset is None:
            raise NotConnectedError(f"unexpected reply to publish: {reply.type}")
        return reply.offset

    # --- the connection loop ------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, and reconnect, until cancelled or until the gateway says not to
        (``ConnectionStoppedError``)."""
        while True:
            opened_at = time.monotonic()
            try:
                async with connect(
                    self._url,
                    additional_headers=self._headers,
                    proxy=None,
                    open_timeout=self._open_timeout,
                    close_timeout=CLOSE_TIMEOUT,
                    max_size=MAX_FRAME_BYTES,
                    compression=None,
                ) as ws:
                    with contextlib.suppress(ConnectionClosed):
                        await self._serve(ws)
                    reason = self._check_close(ws)
            except InvalidStatus as refused:
                status = refused.response.status_code
                if status in (401, 403):
                    raise ConnectionStoppedError(status, "the gateway refused the token") from None
                reason = f"the gateway refused the WebSocket: HTTP {status}"
            except (OSError, TimeoutError, InvalidHandshake) as exc:
                reason = f"{type(exc).__name__}: {exc}".rstrip(": ")
            if time.monotonic() - opened_at >= self._stable_after:
                self._backoff.succeeded(time.monotonic())
            delay = self._backoff.failed(time.monotonic())
            log.info("gateway connection lost (%s); reconnecting in %.2f s", reason, delay)
            await self._emit(Disconnected(reason, self._backoff.failures, delay))
            await asyncio.sleep(delay)

    @staticmethod
    def _check_close(ws: ClientConnection) -> str:
        """Why the connection ended; ``ConnectionStoppedError`` when it must not be retried."""
        code, reason = ws.close_code, ws.close_reason or ""
        if code is not None and not should_reconnect(code):
            raise ConnectionStoppedError(code, reason)
        return f"closed: {code} {reason}".strip() if code is not None else "connection lost"

    async def _serve(self, ws: ClientConnection) -> None:
        welcome = self._welcome(await asyncio.wait_for(ws.recv(), self._open_timeout))
        link = Link(ws, welcome.client_id, welcome.name)
        self._subscribing.clear()
        self._link = link
        self._up.set()
        self.connections += 1
        try:
            await self._emit(Connected(welcome.client_id, welcome.name))
            for channel in list(self._wanted):
                await self._subscribe(link, channel)
            async for frame in ws:
                try:
                    messages = parse_server_frame(frame)
                except ValidationError as exc:
                    # A message type from a newer gateway, or a broken frame: the rest still counts.
                    log.warning("dropped a frame that does not follow the protocol: %s", exc.errors()[:1])
                    continue
                for message in messages:
                    await self._dispatch(link, message)
        finally:
            self._link = None
            self._up.clear()
            link.close("the connection to the gateway was lost before the reply")

    def _welcome(self, frame: str | bytes) -> Welcome:
        messages = parse_server_frame(frame)
        if len(messages) != 1 or not isinstance(messages[0], Welcome):
            raise ConnectionStoppedError(
                None, "the server did not greet with a Pulseboard welcome: is the URL right?"
            )
        if messages[0].auth_required:
            raise ConnectionStoppedError(CloseCode.UNAUTHORIZED, "the gateway requires a token")
        return messages[0]

    async def _subscribe(self, link: Link, channel: str) -> None:
        since = self.positions.get(channel)
        history = None if since is not None else self._history(channel) or None
        op = SubscribeOp(op="subscribe", channel=channel, since=since, history=history)
        with contextlib.suppress(NotConnectedError):  # the next connection subscribes again
            self._subscribing[await link.send(op)] = op

    async def _dispatch(self, link: Link, message: ServerMessage) -> None:
        if isinstance(message, Pub):
            seen = self.positions.get(message.channel)
            if seen is not None and seen.epoch == message.epoch and message.offset <= seen.offset:
                return  # already handed out (a replay overlapping what came live)
            self.positions[message.channel] = StreamPosition(offset=message.offset, epoch=message.epoch)
            self._last_ts[message.channel] = message.ts
            await self._emit(message)
        elif isinstance(message, Subscribed):
            await self._on_subscribed(message)
        elif isinstance(message, Join | Leave):
            await self._emit(message)
        elif link.resolve(message):
            if isinstance(message, Presence):
                await self._emit(message)  # an answer to a request, and news for everyone showing it
        elif isinstance(message, Error) and isinstance(message.ref, int) and message.ref in self._subscribing:
            channel = self._subscribing.pop(message.ref).channel
            self._wanted.pop(channel, None)
            await self._emit(Refused(channel, message.code, message.detail))
        elif isinstance(message, Error | Presence):
            if isinstance(message, Error):
                log.warning("gateway error %s: %s", message.code, message.detail)
            await self._emit(message)

    async def _on_subscribed(self, subscribed: Subscribed) -> None:
        op = self._subscribing.pop(subscribed.ref, None) if isinstance(subscribed.ref, int) else None
        channel = subscribed.channel
        now = StreamPosition(offset=subscribed.offset, epoch=subscribed.epoch)
        since = op.since if op is not None else None
        if since is not None and not subscribed.recovered:
            log.info("%s: not recovered from %s (now %s)", channel, since, now)
            await self._emit(Gap(channel, since, now, self._last_ts.get(channel)))
            self.positions[channel] = now
        await self._emit(subscribed)

    async def _emit(self, event: Event) -> None:
        outcome = self._handler(event)
        if outcome is not None:
            await outcome
