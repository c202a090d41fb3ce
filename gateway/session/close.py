"""The close policy: when a session ends, with which ``Disconnect``, and how the close goes out.

- A client that must authenticate and has not within ``PULSE_AUTH_TIMEOUT``: 4401.
- Its token's ``exp`` passes: 4401 (a refreshed token moves the deadline).
- A bad token in an ``auth`` op: 4401; an identity already at its connection cap: 1013 (``ops``).
- Its outbox overflows: 4001, and what it held is dropped (the sender is stuck on a client that does
  not read).
- A frame over the size limit: 1009; too many rate-limited frames in a row: 1008 (``frame_limits``).
- The broker lost publications of a channel it follows: 1013 (``Hub.on_gap``).
- An op that failed unexpectedly: 1011.

A protocol error never closes: it is answered with an ``error`` frame (``ops``). The first disconnect
decided wins; the ones after it are ignored.
"""

import asyncio
import contextlib
import logging
import time

from fastapi import WebSocketDisconnect

from gateway.disconnect import Disconnect
from gateway.outbox import Outbox
from gateway.session.state import ConnectionState, advance
from gateway.transport.websocket import ClientGoneError
from gateway.transport.writers import FrameWriter
from shared.codes import CloseCode

log = logging.getLogger(__name__)

DRAIN_SECONDS = 2.0
"""How long queued frames (say, the error that explains a close) may take to go out before the close."""
CLOSE_SECONDS = 10.0
"""How long a client has to read up to the close frame and answer it before the connection is dropped."""


class ClosePolicy:
    """One session's state and its deadlines; ``decided`` resolves with the first disconnect."""

    __slots__ = ("_client_id", "_timers", "decided", "state")

    def __init__(self, client_id: str) -> None:
        self._client_id = client_id
        self.state = ConnectionState.CONNECTING
        self.decided: asyncio.Future[Disconnect] = asyncio.get_running_loop().create_future()
        self._timers: list[asyncio.TimerHandle] = []

    def wait_for_auth(self, timeout: float) -> None:
        self._later(timeout, Disconnect.AUTH_TIMEOUT)

    def authenticated(self, expires: float | None) -> None:
        """A token was verified (or a refresh): OPEN, and only the new token's expiry is a deadline."""
        if self.state is ConnectionState.CONNECTING:
            self.state = advance(self.state, ConnectionState.OPEN)
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        if expires is not None:
            self._later(max(0.0, expires - time.time()), Disconnect.TOKEN_EXPIRED)

    def end(self, disconnect: Disconnect) -> None:
        """Close with ``disconnect``, unless a close was already decided or the session is over."""
        if self.state is ConnectionState.CONNECTING or self.state is ConnectionState.OPEN:
            self.state = advance(self.state, ConnectionState.CLOSING)
            self.decided.set_result(disconnect)

    def outcome(self, reader: asyncio.Task[None]) -> Disconnect | None:
        """The close to send once the session stops (reader ended, sender ended, or a close was
        decided), or None when the client is already gone."""
        if not self.decided.done() and reader.done() and not reader.cancelled():
            error = reader.exception()
            if error is not None and not isinstance(error, WebSocketDisconnect | ClientGoneError):
                log.error("client %s: op failed unexpectedly", self._client_id, exc_info=error)
                self.end(Disconnect.INTERNAL_ERROR)
        return self.decided.result() if self.decided.done() else None

    def finished(self) -> None:
        if self.state is not ConnectionState.CLOSED:
            self.state = advance(self.state, ConnectionState.CLOSED)
        for timer in self._timers:
            timer.cancel()

    def _later(self, delay: float, disconnect: Disconnect) -> None:
        self._timers.append(asyncio.get_running_loop().call_later(delay, self.end, disconnect))


async def send_close(
    disconnect: Disconnect, outbox: Outbox, sender: asyncio.Task[None], writer: FrameWriter
) -> None:
    """Let the queued frames out (not a slow consumer's: nothing more reaches it), then the close."""
    if disconnect.code == CloseCode.SLOW_CONSUMER:
        sender.cancel()
    else:
        outbox.close()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(sender, DRAIN_SECONDS)
    with contextlib.suppress(Exception):
        await writer.close(disconnect.code, disconnect.reason, CLOSE_SECONDS)
