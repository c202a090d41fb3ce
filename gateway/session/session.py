"""A session's lifecycle: from the accept to the close, two tasks and one close decision.

A session runs two tasks: the reader (parses client ops and answers them in order, ``ops``) and the
outbox's sender (writes whatever the hub and the reader queued). Whichever decides the connection is over
(the client leaves, a limit is hit, the token expires, the outbox overflows) tells the close policy
(``close``); the session then closes with its ``Disconnect``, always removing the connection from the hub.
"""

import asyncio
import contextlib
import logging
from typing import Any

from fastapi import WebSocket

from gateway.admission import CODE_UNKNOWN, Seat
from gateway.auth import OPEN, Grant
from gateway.dialects import NATIVE, Dialect
from gateway.disconnect import Disconnect
from gateway.frame_limits import FrameLimitError, FrameLimits
from gateway.hub import Connection
from gateway.outbox import Outbox
from gateway.session.close import ClosePolicy, send_close
from gateway.session.ops import Ops
from gateway.state import Gateway
from gateway.transport.writers import DirectWriter, writer_for
from shared import PROTOCOL_VERSION
from shared.codes import ErrorCode
from shared.messages import ProtocolError, Welcome

log = logging.getLogger(__name__)
BINARY_REFUSED = "binary frames are not part of the protocol; send JSON"


class Session:
    def __init__(
        self,
        websocket: WebSocket,
        gateway: Gateway,
        *,
        client_id: str,
        name: str | None,
        grant: Grant | None,
        seat: Seat,
        dialect: Dialect = NATIVE,
    ) -> None:
        self._ws = websocket
        self._gateway = gateway
        self._dialect = dialect
        settings = gateway.settings
        self.client_id = client_id
        self._peer_code = CODE_UNKNOWN
        """The client's close code once it closed; until then (or if it just vanished) 1006."""
        self._grant: Grant | None = grant if settings.auth_enabled else OPEN
        identity = grant.subject if grant is not None and grant.subject else name or self.client_id
        self._writer = writer = writer_for(websocket, send_buffer=settings.socket_send_buffer)
        self._policy = ClosePolicy(self.client_id)
        outbox = Outbox(
            settings.client_queue_bytes,
            batch=settings.batch_frames and dialect.batch,
            on_overflow=self._overflowed,
            direct=dialect.direct_sink(writer),
        )
        self._connection = Connection(self.client_id, identity, outbox, kick=self._policy.end)
        self._limits = FrameLimits(settings)
        self._ops = Ops(gateway, self._connection, self._policy, seat=seat, grant=self._grant)

    async def run(self) -> int:
        """Serve the connection until it ends; returns the close code (the gateway's, else the client's)."""
        gateway, connection, policy = self._gateway, self._connection, self._policy
        outbox = connection.outbox
        await gateway.hub.add(connection)
        gateway.metrics.direct_writes_total += isinstance(self._writer, DirectWriter)
        welcome = Welcome(
            client_id=self.client_id,
            protocol=PROTOCOL_VERSION,
            name=connection.name,
            auth_required=self._grant is None,
        )
        greeting = self._dialect.greeting(welcome)
        if greeting is not None:
            outbox.put(greeting)
        if self._grant is None:
            policy.wait_for_auth(gateway.settings.auth_timeout)
        else:
            policy.authenticated(self._grant.expires)
        sender = asyncio.create_task(
            outbox.run(self._dialect.sender(self._writer)), name=f"send-{self.client_id}"
        )
        tasks: list[asyncio.Task[Any]] = [sender]
        disconnect: Disconnect | None = None
        try:
            await self._dialect.join(gateway, self._ops.apply)
            reader = asyncio.create_task(self._read(), name=f"read-{self.client_id}")
            follower = asyncio.create_task(
                self._dialect.follow(gateway, self._ops.apply), name=f"follow-{self.client_id}"
            )
            tasks += [reader, follower]
            waiting: set[asyncio.Future[Any]] = {sender, reader, policy.decided}
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            disconnect = policy.outcome(reader)
            reader.cancel()
            if disconnect is not None:
                # Leave the hub first: the close handshake can wait on a client that does not read, and
                # until then it must not count as a subscriber, be listed in presence, or take direct
                # messages.
                await gateway.subscriptions.remove(connection)
                gateway.metrics.disconnects[disconnect.code] += 1
                await send_close(disconnect, outbox, sender, self._writer)
        finally:
            for task in reversed(tasks):
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
            policy.finished()
            await gateway.subscriptions.remove(connection)
        return disconnect.code if disconnect is not None else self._peer_code

    def _overflowed(self) -> None:
        metrics = self._gateway.metrics
        metrics.slow_disconnects += 1
        metrics.messages_dropped += self._connection.outbox.dropped
        log.info("client %s is a slow consumer: closing with 4001", self.client_id)
        self._policy.end(Disconnect.SLOW_CONSUMER)

    async def _read(self) -> None:
        """Answer the client's frames in order until it leaves or a close is decided."""
        limits, ops, decided = self._limits, self._ops, self._policy.decided
        while True:
            message = await self._ws.receive()
            if message["type"] == "websocket.disconnect":
                self._peer_code = message.get("code", CODE_UNKNOWN)
                return
            text = message.get("text")
            try:
                if not limits.admit(text, message.get("bytes")):
                    ops.error(None, ErrorCode.RATE_LIMITED, limits.rate_detail)
                    continue
            except FrameLimitError as refused:
                self._policy.end(refused.disconnect)
                return
            if text is None:
                ops.error(None, ErrorCode.BAD_REQUEST, BINARY_REFUSED)
                continue
            try:
                op = self._dialect.parse(text)
            except ProtocolError as exc:
                ops.error(exc.ref, exc.code, exc.detail)
                continue
            await ops.apply(op)
            if decided.done():
                return
