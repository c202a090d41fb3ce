"""Writing frames to a client: straight to the transport where the server allows it, else through ASGI.

Server-to-client WebSocket frames are not masked, so a publication's frame is the same bytes for every
subscriber: it is encoded once and written with one ``transport.write`` per client per wake-up, however
many messages are pending. Going through ASGI instead costs a message dict, the websockets protocol's
frame serialisation and a write for every frame (about 10 µs each), which made the per-frame path the
fan-out's floor.

The direct path needs uvicorn's ``websockets-sansio`` protocol with no extension negotiated (a compressed
frame is per connection, not shareable). It keeps that protocol's rules: wait while the transport is paused
(its write buffer is over the high-water mark), write nothing once a close was sent or received. Any other
server, or a connection with permessage-deflate, uses the ASGI path, which behaves the same, only slower.
"""

import asyncio
import contextlib
import socket
import struct
from functools import lru_cache
from typing import Protocol

from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

RAW_SEND = "pulse.raw_send"
"""Scope key under which :class:`RawSendMiddleware` leaves the server's own ``send`` callable."""

CACHED_FRAME_CHARS = 4096
"""Frames up to this size are encoded once and reused (pub frames are shared by every subscriber)."""

LARGE_FRAMES_CACHED = 16
"""Larger frames (a tick's packed publications of a busy channel) are also shared by every subscriber,
but only the most recent few are kept: each can be a few hundred KiB."""


class FrameWriter(Protocol):
    """Writes a batch of JSON texts as text frames; raises ``ClientDisconnected`` once the socket is gone."""

    async def write(self, texts: list[str]) -> None: ...

    async def close(self, code: int, reason: str, grace: float) -> None:
        """Send a close frame and drop the connection if the client has not finished closing in time."""


def text_frame(text: str) -> bytes:
    """One unmasked, unfragmented text frame holding ``text``."""
    if len(text) <= CACHED_FRAME_CHARS:
        return _shared_frame(text)
    return _shared_large_frame(text)


# Keyed by the str: the hub hands every subscriber the same object, whose hash Python caches, and a
# dict lookup finds the same object without comparing its characters.
@lru_cache(maxsize=2048)
def _shared_frame(text: str) -> bytes:
    return _encode_frame(text)


@lru_cache(maxsize=LARGE_FRAMES_CACHED)
def _shared_large_frame(text: str) -> bytes:
    return _encode_frame(text)


def _encode_frame(text: str) -> bytes:
    payload = text.encode()
    size = len(payload)
    if size < 126:
        return struct.pack("!BB", 0x81, size) + payload
    if size < 1 << 16:
        return struct.pack("!BBH", 0x81, 126, size) + payload
    return struct.pack("!BBQ", 0x81, 127, size) + payload


class TransportWriter:
    """Frames written straight to uvicorn's transport, coalesced into one write per call."""

    __slots__ = ("_close_sent", "_high_water", "_protocol", "_transport")

    def __init__(self, protocol: WebSocketsSansIOProtocol, send_buffer: int) -> None:
        self._protocol = protocol
        # Kept here rather than reached through the protocol: the per-tick flush checks and writes every
        # connection in turn, and each object it touches per connection is a likely cache miss after
        # the previous connection's system call.
        self._transport = transport = protocol.transport
        self._high_water = transport.get_write_buffer_limits()[1]
        self._close_sent = False
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
        protocol = self._protocol
        if not protocol.writable.is_set():
            await protocol.writable.wait()
        if not self._open():
            raise ClientDisconnected
        self.write_now(texts)

    def _open(self) -> bool:
        # No data frame after a close frame. uvicorn closes the transport whenever the WebSocket leaves
        # the OPEN state on its own (the peer's close, a protocol error, a keepalive timeout, shutdown);
        # the application's close goes through :meth:`close`, which keeps the transport open for the
        # reply and remembers it here (the session never closes a directly written connection via ASGI).
        return not self._close_sent and not self._transport.is_closing()

    async def close(self, code: int, reason: str, grace: float) -> None:
        # Not through ASGI: uvicorn's send waits for the buffer to drain first, which never happens for a
        # client that stopped reading. The close frame goes after what is buffered; if the client has not
        # read up to it and answered within the grace period, the connection is aborted, buffer and all.
        protocol = self._protocol
        if not self._open():
            return
        protocol.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        protocol.conn.send_close(code, reason)
        protocol.transport.write(b"".join(protocol.conn.data_to_send()))
        protocol.close_sent = self._close_sent = True
        if protocol.read_paused:
            protocol.read_paused = False
            protocol.transport.resume_reading()
        transport = protocol.transport
        protocol.close_timer = protocol.loop.call_later(grace, transport.abort)


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
    protocol = getattr(websocket.scope.get(RAW_SEND), "__self__", None)
    if isinstance(protocol, WebSocketsSansIOProtocol) and not protocol.conn.extensions:
        return TransportWriter(protocol, send_buffer)
    return AsgiWriter(websocket)


class RawSendMiddleware:
    """Remembers the server's own ``send`` for WebSocket scopes, before any middleware wraps it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            scope[RAW_SEND] = send
        await self.app(scope, receive, send)
