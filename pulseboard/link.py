"""One open WebSocket to the gateway: sends ops with fresh ids and matches replies to them by ``ref``.

Lives on the connection's event loop. A request's future is resolved by the reply with its ``ref`` (or
failed by an ``error`` with it); when the connection ends, every request still waiting fails with
``NotConnectedError``, so a caller never waits on a reply that cannot come.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from shared.codes import ErrorCode
from shared.messages import ClientOp, Error, ServerMessage


class NotConnectedError(Exception):
    """There is no connection to the gateway now (or it ended before the reply came)."""


class RequestRejectedError(Exception):
    """The gateway answered an op with an ``error``."""

    def __init__(self, code: ErrorCode, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


@dataclass
class Link:
    ws: ClientConnection
    client_id: str
    name: str
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _pending: dict[int, asyncio.Future[ServerMessage]] = field(default_factory=dict)
    closed: bool = False

    async def send(self, op: ClientOp) -> int:
        """Send ``op`` with a fresh id (any id it had is replaced); return the id."""
        op_id = next(self._ids)
        await self._write(op, op_id)
        return op_id

    async def request(self, op: ClientOp) -> ServerMessage:
        """Send ``op`` and wait for its reply; an ``error`` reply raises ``RequestRejectedError``."""
        op_id = next(self._ids)
        future: asyncio.Future[ServerMessage] = asyncio.get_running_loop().create_future()
        # Registered before sending: the reply cannot overtake it.
        self._pending[op_id] = future
        try:
            await self._write(op, op_id)
            return await future
        finally:
            self._pending.pop(op_id, None)

    async def _write(self, op: ClientOp, op_id: int) -> None:
        if self.closed:
            raise NotConnectedError("the connection to the gateway is closed")
        try:
            await self.ws.send(op.model_copy(update={"id": op_id}).model_dump_json(exclude_none=True))
        except ConnectionClosed:
            raise NotConnectedError("the connection to the gateway closed") from None

    def resolve(self, message: ServerMessage) -> bool:
        """Hand a reply to the request waiting for it; False when nobody waits for this ``ref``."""
        ref = getattr(message, "ref", None)
        future = self._pending.get(ref) if isinstance(ref, int) else None
        if future is None or future.done():
            return False
        if isinstance(message, Error):
            future.set_exception(RequestRejectedError(message.code, message.detail))
        else:
            future.set_result(message)
        return True

    def close(self, reason: str) -> None:
        """Fail every waiting request: the connection is gone."""
        self.closed = True
        for future in self._pending.values():
            if not future.done():
                future.set_exception(NotConnectedError(reason))
        self._pending.clear()
