"""Writing frames to a client: straight to the socket where the gateway's own protocol offers it, else
through ASGI.

Server-to-client WebSocket frames are not masked, so a publication's frame is the same bytes for every
subscriber: it is encoded once (``gateway.transport.frames``) and written with one ``transport.write`` per
client per wake-up, however many messages are pending. Going through ASGI instead costs a message dict,
the protocol's frame serialisation and a write for every frame (about 10 µs each), which made the
per-frame path the fan-out's floor.

The direct path is offered by :class:`~gateway.transport.websocket.PulseWebSocketProtocol` (the
``pulse.transport`` ASGI extension) on connections with no extension negotiated (a compressed frame is per
connection, not shareable). It keeps the protocol's rules: wait while the transport is paused (its write
buffer is over the high-water mark), write nothing once a close was sent or received. Under another
server (plain ``uvicorn gateway.app:app`` without ``--ws``), every connection uses the ASGI path, which
behaves the same, only slower; the first such connection logs a WARNING and each is counted
(``pulse_transport_portable_connections_total``).
"""

import asyncio
import contextlib
import logging
import socket
from typing import Protocol

from starlette.websockets import WebSocket

from gateway.transport.frames import text_frame
from gateway.transport.stats import stats
from gateway.transport.websocket import TRANSPORT_EXTENSION, ClientGoneError, PulseWebSocketProtocol

log = logging.getLogger("gateway.transport")


class FrameWriter(Protocol):
    """Writes a batch of JSON texts as text frames; raises ``ClientGoneError`` once the socket is gone."""

    async def write(self, texts: list[str]) -> None: ...

    async def close(self, code: int, reason: str, grace: float) -> None:
        """Send a close frame and drop the connection if the client has not finished closing in time."""


class DirectWriter:
    """Frames written straight to the connection's transport, coalesced into one write per call."""

    __slots__ = ("_closing", "_high_water", "_protocol", "_transport")

    def __init__(self, protocol: PulseWebSocketProtocol, send_buffer: int) -> None:
        self._protocol = protocol
        # Kept here rather than reached through the protocol: the per-tick flush checks and writes every
        # connection in turn, and each object it touches per connection is a likely cache miss after
        # the previous connection's system call.
        assert protocol.transport is not None
        self._transport = transport = protocol.transport
        self._high_water = transport.get_write_buffer_limits()[1]
        self._closing = False
        protocol.on_closing(self._closed)
        sock = transport.get_extra_info("socket")
        if send_buffer and sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)

    def writable(self) -> bool:
        # The transport's own buffer size rather than the protocol's paused flag: the same condition
        # (the transport pauses the protocol when it passes the high-water mark) without two more objects.
        return self._open() and self._transport.get_write_buffer_size() <= self._high_water

    def write_one(self, text: str) -> None:
        """Write one frame; only when :meth:`writable` said so this tick."""
        self._transport.write(text_frame(text))

    def write_now(self, texts: list[str]) -> None:
        """Write ``texts`` as one ``transport.write``; only when :meth:`writable` said so this tick."""
        if len(texts) == 1:
            self.write_one(texts[0])
        else:
            self._transport.write(b"".join(map(text_frame, texts)))

    async def write(self, texts: list[str]) -> None:
        writable = self._protocol.writable
        if not writable.is_set():
            await writable.wait()
        if not self._open():
            raise ClientGoneError
        self.write_now(texts)

    def _open(self) -> bool:
        # No data frame after a close frame, the peer's or ours.
        return not self._closing and not self._transport.is_closing()

    def _closed(self) -> None:
        self._closing = True

    async def close(self, code: int, reason: str, grace: float) -> None:
        # Not through ASGI's close, which has the same effect: the close frame goes after what is
        # buffered, and a client that has not read up to it and answered within ``grace`` is aborted.
        self._protocol.close(code, reason, grace)


class AsgiWriter:
    """Frames through the ASGI ``send``: any server, any extension; one frame per text."""

    def __init__(self, websocket: WebSocket) -> None:
        self._websocket = websocket

    async def write(self, texts: list[str]) -> None:
        for text in texts:
            await self._websocket.send_text(text)

    async def close(self, code: int, reason: str, grace: float) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._websocket.close(code, reason), grace)


def writer_for(websocket: WebSocket, *, send_buffer: int) -> FrameWriter:
    """The fastest writer this connection allows; ``send_buffer`` sets the socket's SO_SNDBUF (0: the
    kernel's own), where the writer can reach the socket."""
    protocol = websocket.scope.get("extensions", {}).get(TRANSPORT_EXTENSION)
    if not isinstance(protocol, PulseWebSocketProtocol):
        if not _portable_warned:
            _warn_portable()
        stats.portable_connections += 1
        return AsgiWriter(websocket)
    if protocol.frames_shareable:
        return DirectWriter(protocol, send_buffer)
    return AsgiWriter(websocket)  # permessage-deflate: every frame is compressed for its connection


_portable_warned = False


def _warn_portable() -> None:
    global _portable_warned
    _portable_warned = True
    stats.missing_capabilities += 1
    log.warning(
        "the server offers no direct frame writes (%s): frames go through ASGI, several times slower; "
        "serve with `python -m gateway` or `uvicorn ... --ws %s`",
        TRANSPORT_EXTENSION,
        f"{PulseWebSocketProtocol.__module__}:{PulseWebSocketProtocol.__name__}",
    )
