"""The session's answer to each client op: one handler per op type, found in a table.

An op's handler replies with frames on the connection's outbox, or raises ``ProtocolError`` (answered
with an ``error`` frame, the connection stays open). Until the connection is authenticated
(``ConnectionState.CONNECTING``) only ``auth`` and ``ping`` are answered; any other op is ``forbidden``.
"""

import time
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.admission import Seat
from gateway.auth import AuthError, Grant, verify_token
from gateway.broker import Direct, PublishError
from gateway.broker.base import ChannelLimitError
from gateway.disconnect import Disconnect
from gateway.hub import Connection
from gateway.publishing import PayloadError, enrich, parse_one
from gateway.session.close import ClosePolicy
from gateway.session.state import ConnectionState
from gateway.state import Gateway
from shared.channels import Channel
from shared.codes import ErrorCode
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
    encode,
    unknown_op,
)

Handler = Callable[["Ops", Any], Awaitable[None]]
"""Takes the op of the type it is registered for (``Any``: a table holds handlers of every op type)."""

HANDLERS: dict[type[ClientOp], Handler] = {}
"""The op table: the handler for each op type. An op type without one is answered ``unknown_op``."""

BEFORE_AUTH: frozenset[type[ClientOp]] = frozenset({AuthOp, PingOp})
"""Ops answered before the connection is authenticated."""


def handles(op_type: type[ClientOp]) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        HANDLERS[op_type] = handler
        return handler

    return register


class UnauthorizedError(Exception):
    """The token is not valid: close with 4401, the client must not reconnect without a new one."""


class Ops:
    def __init__(
        self,
        gateway: Gateway,
        connection: Connection,
        policy: ClosePolicy,
        *,
        seat: Seat,
        grant: Grant | None,
    ) -> None:
        self._gateway = gateway
        self._settings = gateway.settings
        self._connection = connection
        self._outbox = connection.outbox
        self._policy = policy
        self._seat = seat
        self._grant = grant
        """What the token allows; None until the connection is authenticated."""

    async def apply(self, op: ClientOp) -> None:
        """Run ``op`` (from the client, or a dialect on its behalf); errors reach the client as frames."""
        try:
            handler = HANDLERS.get(type(op))
            if handler is None:
                raise unknown_op(op.op, op.id)
            if self._policy.state is ConnectionState.CONNECTING and type(op) not in BEFORE_AUTH:
                raise ProtocolError(
                    ErrorCode.FORBIDDEN, 'authenticate first: send {"op": "auth", "token": ...}', op.id
                )
            await handler(self, op)
        except ProtocolError as exc:
            self.error(exc.ref, exc.code, exc.detail)
        except PublishError as exc:
            self.error(op.id, ErrorCode.UNAVAILABLE, f"the broker is unavailable: {exc}")
        except UnauthorizedError as exc:
            self._policy.end(Disconnect.unauthorized(str(exc)))

    def error(self, ref: RequestId | None, code: ErrorCode, detail: str) -> None:
        self._gateway.metrics.client_errors[code] += 1
        self._outbox.put(encode(Error(ref=ref, code=code, detail=detail)))

    @property
    def grant(self) -> Grant:
        grant = self._grant
        assert grant is not None, "only auth and ping are run before the connection is authenticated"
        return grant

    # --- the handlers --------------------------------------------------------------------------

    @handles(PingOp)
    async def ping(self, op: PingOp) -> None:
        self._outbox.put(encode(Pong(ref=op.id)))

    @handles(AuthOp)
    async def auth(self, op: AuthOp) -> None:
        settings = self._settings
        connection = self._connection
        secret = settings.secret
        if secret is None or not settings.auth_enabled:
            self._outbox.put(encode(Authenticated(ref=op.id, name=connection.name)))
            return
        try:
            grant = verify_token(op.token, secret.get_secret_value(), leeway=settings.jwt_leeway)
        except AuthError as exc:
            raise UnauthorizedError(str(exc)) from None
        if self._grant is not None and grant.subject != self._grant.subject:
            raise ProtocolError(ErrorCode.FORBIDDEN, "a token refresh must keep the same sub", op.id)
        over_cap = self._seat.move_to(grant.subject) if grant.subject else None
        if over_cap is not None:
            self._policy.end(Disconnect.try_again_later(over_cap))
            return
        self._grant = grant
        connection.name = grant.subject or connection.name
        self._policy.authenticated(grant.expires)
        self._outbox.put(encode(Authenticated(ref=op.id, name=connection.name, expires=grant.expires)))

    @handles(SubscribeOp)
    async def subscribe(self, op: SubscribeOp) -> None:
        channel = _allowed(op.channel, self.grant.may_subscribe, "subscribe to", op.id)
        await self._gateway.subscriptions.subscribe(
            self._connection, channel, since=op.since, history=op.history, ref=op.id
        )

    @handles(UnsubscribeOp)
    async def unsubscribe(self, op: UnsubscribeOp) -> None:
        await self._gateway.subscriptions.unsubscribe(self._connection, Channel.parse(op.channel), ref=op.id)

    @handles(PresenceOp)
    async def presence(self, op: PresenceOp) -> None:
        channel = _allowed(op.channel, self.grant.may_subscribe, "see presence of", op.id)
        clients = await self._gateway.broker.presence(channel)
        self._outbox.put(encode(Presence(ref=op.id, channel=op.channel, clients=clients)))

    @handles(PublishOp)
    async def publish(self, op: PublishOp) -> None:
        started = time.perf_counter()
        channel = _allowed(op.channel, self.grant.may_publish, "publish to", op.id)
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
        metrics = self._gateway.metrics
        metrics.messages_in[channel.namespace] += 1
        metrics.publish_latency.observe(time.perf_counter() - started)
        self._outbox.put(encode(Ack(ref=op.id, offset=offsets[0])))

    @handles(DirectOp)
    async def direct(self, op: DirectOp) -> None:
        connection = self._connection
        try:
            frame = encode(DirectMessage(sender=connection.client_id, name=connection.name, data=op.data))
        except ValueError as exc:  # PydanticSerializationError: data that cannot be written back as JSON
            raise ProtocolError(ErrorCode.BAD_REQUEST, f"data cannot be sent: {exc}", op.id) from None
        # Bounded twice, outside every slow-consumer limit: per sending identity here (a rate), and per
        # target where the target lives (what may wait in its queue; see Hub.on_direct).
        settings = self._settings
        largest = min(settings.direct_burst, settings.direct_queue_bytes)
        if len(frame) > largest:
            raise ProtocolError(ErrorCode.TOO_LARGE, f"a direct message is at most {largest} bytes", op.id)
        bucket = self._gateway.direct_senders[connection.name]
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
        self._outbox.put(encode(Ack(ref=op.id)))


def _allowed(name: str, check: Callable[[str], bool], verb: str, ref: RequestId | None) -> Channel:
    if not check(name):
        raise ProtocolError(ErrorCode.FORBIDDEN, f"your token does not allow you to {verb} {name}", ref)
    return Channel.parse(name)
