"""Admission: the one gate every WebSocket endpoint passes before it may talk to a client.

In order: the browser ``Origin``, the ``name`` query parameter, the header token, the connection caps
(global and per identity), then the accept. An admitted connection counts toward the caps and the
connection metrics until it ends, whatever the endpoint does with it. ``/ws``, the classic chat and
notification endpoints and ``/ws/echo`` all come through here, so none of them can skip a check.

Refusals before accept are HTTP statuses (403 origin, 400 name, 503 over a connection cap). A bad token is
accepted and closed with 4401, because browsers and most clients cannot read a handshake status.

Every connection gets its client id here (the one its ``welcome`` carries), and its refusal, open and
close are logged on ``gateway.connections`` at DEBUG with ``conn_id`` and ``client`` (address:port) as
fields: one line per event, none per message, and at DEBUG because a reconnect storm of thousands of
clients is not news at INFO.

A token can also come as the first message, where the endpoint has an ``auth`` op (``/ws``): the session
then moves the connection's seat to the token's ``sub`` (``Seat.move_to``), under the same per-identity
cap, so an identity is capped however its token arrived. Over it, the connection closes with 1013.
"""

import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import WebSocket
from starlette.responses import PlainTextResponse

from gateway.auth import AuthError, Grant, bearer_token, origin_allowed, verify_token
from gateway.disconnect import Disconnect
from gateway.state import Gateway
from shared.channels import is_valid_name

HEADER_TOKEN_ONLY = "send the token in an Authorization: Bearer header"
CODE_UNKNOWN = 1006
"""The close code logged when the connection ended without a close frame either way (RFC 6455 1006)."""

log = logging.getLogger("gateway.connections")


class Seat:
    """An admitted connection's place in the connection caps, from before the accept until it ends.

    Counted from before the accept: handshakes in flight count too, so a burst cannot pass the caps.
    """

    __slots__ = ("_gateway", "identity")

    def __init__(self, gateway: Gateway, identity: str | None) -> None:
        self._gateway = gateway
        self.identity: str | None = None
        """The identity the connection is counted under (None: under no identity, only the total)."""
        gateway.admitted += 1
        self._count(identity)

    def move_to(self, identity: str) -> str | None:
        """Count the connection under ``identity`` from now on (it authenticated as that after the
        accept), so a token's ``sub`` is capped however its token arrived. Returns why not, and moves
        nothing, when ``identity`` already holds its cap."""
        if identity == self.identity:
            return None
        refusal = identity_refusal(self._gateway, identity)
        if refusal is None:
            self._uncount()
            self._count(identity)
        return refusal

    def release(self) -> None:
        self._gateway.admitted -= 1
        self._uncount()

    def _count(self, identity: str | None) -> None:
        self.identity = identity
        if identity is not None:
            self._gateway.identities[identity] += 1

    def _uncount(self) -> None:
        identities, identity = self._gateway.identities, self.identity
        if identity is not None:
            identities[identity] -= 1
            if identities[identity] <= 0:
                del identities[identity]
        self.identity = None


def identity_refusal(gateway: Gateway, identity: str | None) -> str | None:
    """Why one more connection for ``identity`` is refused, or None when it fits under its cap."""
    if identity is not None and gateway.identities[identity] >= gateway.settings.max_connections_per_identity:
        return f"too many connections for {identity}"
    return None


@dataclass(slots=True)
class Admitted:
    """A connection that passed admission and was accepted."""

    client_id: str
    """The connection's id: in its ``welcome`` and in every log line about it (``conn_id``)."""
    name: str | None
    """The ``name`` query parameter, validated (None if not given)."""
    grant: Grant | None
    """The header token's grant; None when auth is off or the client will send an ``auth`` op."""
    seat: Seat
    """Its place in the connection caps; the session moves it when an ``auth`` op names the client."""
    close_code: int = CODE_UNKNOWN
    """How it ended, set by the endpoint when it knows (the close it sent, or the client's): logged."""


def peer(websocket: WebSocket) -> str:
    """``host:port`` of the client (as uvicorn reports it, so a trusted proxy's forwarded address)."""
    client = websocket.client
    return f"{client.host}:{client.port}" if client is not None else "unknown"


async def deny(websocket: WebSocket, status: int, text: str, fields: dict[str, Any] | None = None) -> None:
    """Refuse the handshake with an HTTP ``status``; logged with ``fields`` (the connection's, if known)."""
    if log.isEnabledFor(logging.DEBUG):
        fields = fields or {"client": peer(websocket), "path": websocket.scope["path"]}
        log.debug("connection refused: %d %s", status, text, extra={**fields, "status": status})
    await websocket.send_denial_response(PlainTextResponse(text, status_code=status))


@asynccontextmanager
async def admit(
    websocket: WebSocket, gateway: Gateway, *, name: str | None, auth_op: bool
) -> AsyncIterator[Admitted | None]:
    """Admit ``websocket``: yields the accepted connection, or None when it was refused (and answered).

    ``auth_op`` says whether the endpoint lets a client authenticate after the accept with an ``auth``
    op; an endpoint without one needs the header token when auth is on, or is closed with 4401.
    """
    settings = gateway.settings
    client_id = secrets.token_hex(8)
    fields: dict[str, Any] = {
        "conn_id": client_id,
        "client": peer(websocket),
        "path": websocket.scope["path"],
    }
    if not origin_allowed(
        websocket.headers.get("origin"), websocket.headers.get("host"), settings.allowed_origins
    ):
        await deny(websocket, 403, "origin not allowed", fields)
        yield None
        return
    if name is not None and not is_valid_name(name):
        await deny(websocket, 400, "name must match [A-Za-z0-9_.-]{1,64}", fields)
        yield None
        return
    grant: Grant | None = None
    rejected = ""
    token = bearer_token(websocket.headers.get("authorization"))
    if settings.auth_enabled and token is not None and settings.secret is not None:
        try:
            grant = verify_token(token, settings.secret.get_secret_value(), leeway=settings.jwt_leeway)
        except AuthError as exc:
            rejected = str(exc)
    elif settings.auth_enabled and not auth_op:
        rejected = HEADER_TOKEN_ONLY
    identity = grant.subject if grant is not None and grant.subject else name
    if gateway.admitted >= settings.max_connections:
        await deny(websocket, 503, "too many connections", fields)
        yield None
        return
    over_cap = identity_refusal(gateway, identity)
    if over_cap is not None:
        await deny(websocket, 503, over_cap, fields)
        yield None
        return
    seat = Seat(gateway, identity)
    metrics = gateway.metrics
    try:
        await websocket.accept()
        if rejected:
            refused = Disconnect.unauthorized(rejected)
            log.debug(
                "connection refused: %d %s", refused.code, rejected, extra={**fields, "code": refused.code}
            )
            metrics.disconnects[refused.code] += 1
            await websocket.close(refused.code, refused.reason)
            yield None
            return
        metrics.connections_total += 1
        metrics.connections_open += 1
        admitted = Admitted(client_id=client_id, name=name, grant=grant, seat=seat)
        log.debug("connection open", extra={**fields, "identity": identity})
        try:
            yield admitted
        finally:
            metrics.connections_open -= 1
            log.debug(
                "connection closed: %d", admitted.close_code, extra={**fields, "code": admitted.close_code}
            )
    finally:
        seat.release()
