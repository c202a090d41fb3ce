"""``GET /ws``: one session per connection, from handshake to close.

A session runs two tasks: the reader (parses client ops and answers them in order) and the outbox's
sender (writes whatever the hub and the reader queued). Whichever decides the connection is over (the
client leaves, a limit is hit, the token expires, the outbox overflows) sets one close request; the
session then closes with that code, always removing the connection from the hub.
"""

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any, cast

from fastapi import WebSocket, WebSocketDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.admission import Seat, admit, close_reason
from gateway.auth import OPEN, AuthError, Grant, verify_token
from gateway.broker import Direct, PublishError
from gateway.broker.base import ChannelLimitError
from gateway.dialects import NATIVE, Dialect
from gateway.frame_limits import FrameLimitError, FrameLimits
from gateway.hub import Connection
from gateway.outbox import Outbox
from gateway.publishing import PayloadError, enrich, parse_one
from gateway.state import Gateway
from gateway.transport.websocket import ClientGoneError
from gateway.transport.writers import DirectWriter, writer_for
from shared import PROTOCOL_VERSION
from shared.channels import Channel
from shared.codes import CloseCode, ErrorCode
from shared.messages import (
    Ack,
    Authenticated,
    AuthOp,
    ClientOp,
    DirectMessage,
    DirectOp,
    Error,
    PingOp,
    Pong,
    Presence,
    PresenceOp,
    ProtocolError,
    PublishOp,
    RequestId,
    SubscribeOp,
    UnsubscribeOp,
    Welcome,
    encode,
)

log = logging.getLogger(__name__)
DRAIN_SECONDS = 2.0
"""How long queued frames (say, the error that explains a close) may take to go out before the close."""
CLOSE_SECONDS = 10.0
"""How long a client has to read up to the close frame and answer it before the connection is dropped."""

CloseRequest = tuple[int, str]


class UnauthorizedError(Exception):
    """Close with 4401: the client must not reconnect without a new token."""


class Session:
    def __init__(
        self,
        websocket: WebSocket,
        gateway: Gateway,
        *,
        name: str | None,
        grant: Grant | None,
        seat: Seat,
        dialect: Dialect = NATIVE,
    ) -> None:
        self._ws = websocket
        self._writer = writer_for(websocket, send_buffer=gateway.settings.socket_send_buffer)
        self._gateway = gateway
        self._seat = seat
        self._dialect = dialect
        self._settings = gateway.settings
        self._metrics = gateway.metrics
        self.client_id = secrets.token_hex(8)
        auth_on = self._settings.auth_enabled
        self._grant: Grant | None = grant if auth_on else OPEN
        identity = grant.subject if grant is not None and grant.subject else name or self.client_id
        writer = self._writer
        outbox = Outbox(
            self._settings.client_queue_bytes,
            batch=self._settings.batch_frames and dialect.native,
            on_overflow=self._overflowed,
            direct=writer if isinstance(writer, DirectWriter) and dialect.native else None,
        )
        self._connection = Connection(self.client_id, identity, outbox)
        self._limits = FrameLimits(self._settings)
        self._close_request: asyncio.Future[CloseRequest] = asyncio.get_running_loop().create_future()
        self._timers: list[asyncio.TimerHandle] = []

    @property
    def outbox(self) -> Outbox:
        return self._connection.outbox

    # --- lifecycle -----------------------------------------------------------------------------

    async def run(self) -> None:
        hub = self._gateway.hub
        self._connection.kick = self.request_close
        await hub.add(self._connection)
        self._metrics.direct_writes_total += isinstance(self._writer, DirectWriter)
        if self._dialect.native:
            self.outbox.put(
                encode(
                    Welcome(
                        client_id=self.client_id,
                        protocol=PROTOCOL_VERSION,
                        name=self._connection.name,
                        auth_required=self._grant is None,
                    )
                )
            )
        if self._grant is None:
            self._later(self._settings.auth_timeout, CloseCode.UNAUTHORIZED, "authentication timeout")
        else:
            self._expire_with(self._grant)
        sender = asyncio.create_task(self.outbox.run(self._send), name=f"send-{self.client_id}")
        tasks: list[asyncio.Task[Any]] = [sender]
        try:
            await self._dialect.join(self._gateway, self.apply)
            reader = asyncio.create_task(self._read(), name=f"read-{self.client_id}")
            follower = asyncio.create_task(
                self._dialect.follow(self._gateway, self.apply), name=f"follow-{self.client_id}"
            )
            tasks += [reader, follower]
            waiting: set[asyncio.Future[Any]] = {sender, reader, self._close_request}
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            request = self._decide(sender, reader)
            reader.cancel()
            if request is not None:
                await self._close(sender, request)
        finally:
            for task in reversed(tasks):
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
            for timer in self._timers:
                timer.cancel()
            await hub.remove(self._connection)

    def _decide(
        self, sender: asyncio.Task[None], reader: asyncio.Task[CloseRequest | None]
    ) -> CloseRequest | None:
        """The close to send, or None when the client is already gone."""
        if self._close_request.done():
            return self._close_request.result()
        if reader.done():
            if reader.cancelled():
                return None
            error = reader.exception()
            if error is None:
                return reader.result()
            if isinstance(error, WebSocketDisconnect | ClientGoneError):
                return None
            log.error("client %s: op failed unexpectedly", self.client_id, exc_info=error)
            return CloseCode.INTERNAL_ERROR, "internal error"
        # The sender ended on its own: the socket failed under it.
        return None

    async def _close(self, sender: asyncio.Task[None], request: CloseRequest) -> None:
        code, reason = request[0], close_reason(request[1])
        # Leave the hub first: the close handshake can wait on a client that does not read, and until
        # then it must not count as a subscriber, be listed in presence, or take direct messages.
        await self._gateway.hub.remove(self._connection)
        if code == CloseCode.SLOW_CONSUMER:
            sender.cancel()  # it is stuck on a client that does not read; what it held is dropped
        else:
            self.outbox.close()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(sender, DRAIN_SECONDS)
        with contextlib.suppress(Exception):
            await self._writer.close(code, reason, CLOSE_SECONDS)

    async def _send(self, frames: list[str]) -> None:
        if self._dialect.native:
            await self._writer.write(frames)
            return
        rendered = [text for text in map(self._dialect.render, frames) if text is not None]
        if rendered:
            await self._writer.write(rendered)

    def request_close(self, code: int, reason: str) -> None:
        if not self._close_request.done():
            self._close_request.set_result((code, close_reason(reason)))

    def _later(self, delay: float, code: int, reason: str) -> None:
        loop = asyncio.get_running_loop()
        self._timers.append(loop.call_later(delay, self.request_close, code, reason))

    def _expire_with(self, grant: Grant) -> None:
        if grant.expires is not None:
            self._later(max(0.0, grant.expires - time.time()), CloseCode.UNAUTHORIZED, "token expired")

    def _overflowed(self) -> None:
        self._metrics.slow_disconnects += 1
        self._metrics.messages_dropped += self.outbox.dropped
        log.info("client %s is a slow consumer: closing with 4001", self.client_id)
        self.request_close(CloseCode.SLOW_CONSUMER, "slow consumer")

    # --- reading -------------------------------------------------------------------------------

    async def _read(self) -> CloseRequest | None:
        limits = self._limits
        while True:
            message = await self._ws.receive()
            if message["type"] == "websocket.disconnect":
                return None
            text = message.get("text")
            try:
                if not limits.admit(text, message.get("bytes")):
                    self._error(None, ErrorCode.RATE_LIMITED, limits.rate_detail)
                    continue
            except FrameLimitError as refused:
                return refused.code, refused.reason
            if text is None:
                self._error(
                    None, ErrorCode.BAD_REQUEST, "binary frames are not part of the protocol; send JSON"
                )
                continue
            try:
                op = self._dialect.parse(text)
            except ProtocolError as exc:
                self._error(exc.ref, exc.code, exc.detail)
                continue
            await self.apply(op)
            if self._close_request.done():
                return self._close_request.result()

    async def apply(self, op: ClientOp) -> None:
        """Run ``op`` (from the client, or a dialect on its behalf); errors reach the client as frames."""
        try:
            await self._dispatch(op)
        except ProtocolError as exc:
            self._error(exc.ref, exc.code, exc.detail)
        except PublishError as exc:
            self._error(op.id, ErrorCode.UNAVAILABLE, f"the broker is unavailable: {exc}")
        except UnauthorizedError as exc:
            self.request_close(CloseCode.UNAUTHORIZED, str(exc))

    def _error(self, ref: RequestId | None, code: ErrorCode, detail: str) -> None:
        self._metrics.client_errors += 1
        self.outbox.put(encode(Error(ref=ref, code=code, detail=detail)))

    # --- ops -----------------------------------------------------------------------------------

    async def _dispatch(self, op: ClientOp) -> None:
        if isinstance(op, AuthOp):
            return self._authenticate(op)
        if isinstance(op, PingOp):
            self.outbox.put(encode(Pong(ref=op.id)))
            return None
        grant = self._grant
        if grant is None:
            raise ProtocolError(
                ErrorCode.FORBIDDEN, 'authenticate first: send {"op": "auth", "token": ...}', op.id
            )
        if isinstance(op, SubscribeOp):
            channel = self._allowed(op.channel, grant.may_subscribe, "subscribe to", op.id)
            await self._gateway.hub.subscribe(
                self._connection, channel, since=op.since, history=op.history, ref=op.id
            )
        elif isinstance(op, UnsubscribeOp):
            await self._gateway.hub.unsubscribe(self._connection, Channel.parse(op.channel), ref=op.id)
        elif isinstance(op, PublishOp):
            await self._publish(op, grant)
        elif isinstance(op, DirectOp):
            await self._direct(op)
        elif isinstance(op, PresenceOp):
            channel = self._allowed(op.channel, grant.may_subscribe, "see presence of", op.id)
            clients = await self._gateway.broker.presence(channel)
            self.outbox.put(encode(Presence(ref=op.id, channel=op.channel, clients=clients)))
        return None

    @staticmethod
    def _allowed(name: str, check: Callable[[str], bool], verb: str, ref: RequestId | None) -> Channel:
        if not check(name):
            raise ProtocolError(ErrorCode.FORBIDDEN, f"your token does not allow you to {verb} {name}", ref)
        return Channel.parse(name)

    def _authenticate(self, op: AuthOp) -> None:
        secret = self._settings.secret
        if secret is None or not self._settings.auth_enabled:
            self.outbox.put(encode(Authenticated(ref=op.id, name=self._connection.name)))
            return
        try:
            grant = verify_token(op.token, secret.get_secret_value())
        except AuthError as exc:
            raise UnauthorizedError(str(exc)) from None
        if self._grant is not None and grant.subject != self._grant.subject:
            raise ProtocolError(ErrorCode.FORBIDDEN, "a token refresh must keep the same sub", op.id)
        over_cap = self._seat.move_to(grant.subject) if grant.subject else None
        if over_cap is not None:
            self.request_close(CloseCode.TRY_AGAIN_LATER, over_cap)
            return
        self._grant = grant
        self._connection.name = grant.subject or self._connection.name
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        self._expire_with(grant)
        self.outbox.put(encode(Authenticated(ref=op.id, name=self._connection.name, expires=grant.expires)))

    async def _publish(self, op: PublishOp, grant: Grant) -> None:
        started = time.perf_counter()
        channel = self._allowed(op.channel, grant.may_publish, "publish to", op.id)
        try:
            payload = parse_one(channel, op.data)
        except PayloadError as exc:
            raise ProtocolError(exc.code, exc.detail, op.id) from None
        try:
            offsets = await self._gateway.broker.publish(
                channel, enrich([payload], sender=self._connection.name)
            )
        except ChannelLimitError as exc:
            raise ProtocolError(ErrorCode.TOO_LARGE, str(exc), op.id) from None
        except PublishError as exc:
            raise ProtocolError(ErrorCode.UNAVAILABLE, f"not published: {exc}", op.id) from None
        self._metrics.messages_in += 1
        self._metrics.publish_latency.observe(time.perf_counter() - started)
        self.outbox.put(encode(Ack(ref=op.id, offset=offsets[0])))

    async def _direct(self, op: DirectOp) -> None:
        try:
            frame = encode(DirectMessage(sender=self.client_id, name=self._connection.name, data=op.data))
        except ValueError as exc:  # PydanticSerializationError: data that cannot be written back as JSON
            raise ProtocolError(ErrorCode.BAD_REQUEST, f"data cannot be sent: {exc}", op.id) from None
        # Bounded twice, outside every slow-consumer limit: per sending identity here (a rate), and per
        # target where the target lives (what may wait in its queue; see Hub.on_direct).
        settings = self._settings
        largest = min(settings.direct_burst, settings.direct_queue_bytes)
        if len(frame) > largest:
            raise ProtocolError(ErrorCode.TOO_LARGE, f"a direct message is at most {largest} bytes", op.id)
        bucket = self._gateway.direct_senders[self._connection.name]
        if not bucket.take(len(frame)):
            raise ProtocolError(
                ErrorCode.RATE_LIMITED,
                f"direct messages are limited to {settings.direct_rate:g} bytes/s per identity; "
                f"retry in {bucket.wait(len(frame)):.1f} s",
                op.id,
            )
        outcome = await self._gateway.broker.send_direct(op.to, frame)
        if outcome is Direct.NOT_FOUND:
            raise ProtocolError(ErrorCode.NOT_FOUND, f"no connected client {op.to!r}", op.id)
        if outcome is Direct.FULL:
            raise ProtocolError(
                ErrorCode.RATE_LIMITED, f"too many direct messages are waiting for {op.to!r}", op.id
            )
        self.outbox.put(encode(Ack(ref=op.id)))


async def serve(websocket: WebSocket, gateway: Gateway, *, name: str | None, dialect: Dialect) -> None:
    """Admit a WebSocket (``gateway.admission``) and run its session; used by every session endpoint."""
    async with admit(websocket, gateway, name=name, auth_op=dialect.auth_op) as admitted:
        if admitted is not None:
            await Session(
                websocket,
                gateway,
                name=admitted.name,
                grant=admitted.grant,
                seat=admitted.seat,
                dialect=dialect,
            ).run()


NATIVE_PATH = "/ws"


class NativeEndpoint:
    """ASGI middleware that serves ``/ws`` itself, ahead of FastAPI's routing.

    FastAPI's WebSocket routing keeps, for the whole life of each connection, its dependency exit
    stacks, the exception middleware's wrappers and the router's frames: 10 KB of the 41 KB an idle
    ``/ws`` connection held (tracemalloc; ``bench.fanout``'s idle scenario went from 41 to 31 KB).
    ``/ws`` is the endpoint meant to hold thousands of connections, and needs none of that: its one
    dependency is the gateway object. The classic endpoints stay ordinary FastAPI routes.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and _route_path(scope) == NATIVE_PATH:
            websocket = WebSocket(scope, receive, send)
            gateway = cast(Gateway, scope["app"].state.gateway)
            await serve(websocket, gateway, name=websocket.query_params.get("name"), dialect=NATIVE)
            return
        await self.app(scope, receive, send)


def _route_path(scope: Scope) -> str:
    """The path below the app's ``root_path`` (a proxy's prefix), as Starlette's router matches it."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root + "/"):
        return path[len(root) :]
    return path
