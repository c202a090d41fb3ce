"""The gateway's own WebSocket server protocol for uvicorn (``ws=``), built on websockets' sans-I/O
``ServerProtocol``.

uvicorn accepts any ``asyncio.Protocol`` class as its ``ws`` option and hands it an upgraded connection:
it builds the class with ``(config, server_state, app_state)``, calls ``connection_made`` and feeds it the
request head. Everything else here goes through public APIs: websockets turns bytes into events and
events into bytes, asyncio's transport moves the bytes, and the application sees plain ASGI. So the
gateway owns its wire without writing any other library's private state, and can offer what an ASGI
``send`` cannot: the :data:`TRANSPORT_EXTENSION` in the scope's ``extensions``, through which the gateway
writes already encoded frames straight to the socket (``gateway.transport.writers``).

How it treats ordinary hostile traffic (none of it logs above INFO, none of it a traceback):

- a request websockets cannot parse or accept gets websockets' own 4xx answer (counted as a bad
  upgrade), never a hang;
- a message over ``ws_max_size`` is failed with 1009 and invalid UTF-8 with 1007 (websockets' parser
  decides both); then the TCP connection is half-closed and the rest of what the client sends is read and
  discarded until it closes, so the client reads the close frame instead of a reset;
- a close that arrives together with (or right after) a message ends the application's ``receive`` with
  ``websocket.disconnect``, and a send after that raises :class:`ClientGoneError`, an ``OSError`` that
  Starlette turns into ``WebSocketDisconnect``;
- a client that never answers a close frame is dropped after the close grace period.
"""

import asyncio
import email.utils
import logging
import random
import struct
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, cast
from urllib.parse import unquote

from starlette.websockets import WebSocketDisconnect
from websockets.datastructures import Headers
from websockets.exceptions import InvalidState
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import SEND_EOF, State
from websockets.server import ServerProtocol

from gateway.transport.capabilities import unset_attributes
from gateway.transport.stats import stats

log = logging.getLogger("gateway.transport")

TRANSPORT_EXTENSION = "pulse.transport"
"""Key in a WebSocket scope's ``extensions`` under which this protocol offers itself to the gateway for
direct writes (``gateway.transport.writers``)."""

CLOSE_TIMEOUT = 10.0
"""Seconds a client has to answer the close frame of a close the application asked for through ASGI
(the gateway's own closes pass their grace period to :meth:`PulseWebSocketProtocol.close`)."""

LINGER_SECONDS = 1.0
"""How long a failed or refused connection is still read (and discarded) after its answer, so that a
client in the middle of sending reads the answer instead of a reset."""

ASGIMessage = dict[str, Any]

NEEDED: dict[str, tuple[str, ...]] = {
    "Config.__init__": (
        "root_path",
        "ws_max_size",
        "ws_per_message_deflate",
        "ws_ping_interval",
        "ws_ping_timeout",
    ),
    "Config.load": ("loaded", "loaded_app"),
    "ServerState.__init__": ("connections", "tasks", "default_headers"),
}
"""What uvicorn hands every protocol class that this one reads: the documented options as ``Config``
attributes, the loaded application, and the server's registries of connections and tasks (which its
shutdown walks)."""


def missing(config: type | None = None, server_state: type | None = None) -> list[str]:
    """The parts of :data:`NEEDED` this uvicorn (or the test doubles given) lacks; empty when the
    protocol can serve."""
    if config is None or server_state is None:
        from uvicorn.config import Config
        from uvicorn.server import ServerState

        config, server_state = config or Config, server_state or ServerState
    return (
        unset_attributes(config, "__init__", NEEDED["Config.__init__"])
        + unset_attributes(config, "load", NEEDED["Config.load"])
        + unset_attributes(server_state, "__init__", NEEDED["ServerState.__init__"])
    )


class ClientGoneError(OSError):
    """The connection is closed or closing: nothing more can be sent on it."""


class PulseWebSocketProtocol(asyncio.Protocol):
    """One upgraded connection: the opening handshake, the ASGI application's receive and send, and the
    closing handshake, with websockets' ``ServerProtocol`` doing the framing."""

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not config.loaded:
            config.load()
        self.app: Callable[..., Any] = config.loaded_app
        self.loop = _loop or asyncio.get_event_loop()
        self.root_path: str = config.root_path
        self.app_state = app_state
        self.connections: set[Any] = server_state.connections
        self.tasks: set[asyncio.Task[None]] = server_state.tasks
        self.default_headers: list[tuple[bytes, bytes]] = server_state.default_headers
        extensions = (
            [ServerPerMessageDeflateFactory(server_max_window_bits=12, client_max_window_bits=12)]
            if config.ws_per_message_deflate
            else []
        )
        self.conn = ServerProtocol(extensions=extensions, max_size=config.ws_max_size, logger=_WIRE_LOG)
        self.ping_interval: float | None = config.ws_ping_interval
        self.ping_timeout: float | None = config.ws_ping_timeout

        self.transport: asyncio.Transport | None = None
        self.scope: dict[str, Any] | None = None
        self.queue: asyncio.Queue[ASGIMessage] = asyncio.Queue()
        self.writable = asyncio.Event()
        """Set while the transport takes more writes (cleared over its high-water mark)."""
        self.writable.set()
        self.accepted = False
        """The 101 was sent: frames may follow."""
        self.closing = False
        """A close frame was sent, or the connection failed or is gone: no more data frames."""
        self._close_listeners: list[Callable[[], None]] = []
        self._answered = False
        """Something ended the handshake phase (a 101 or a refusal)."""
        self._failed = False
        """websockets failed the connection (and it was said once)."""
        self._denial: tuple[int, list[tuple[str, str]], bytearray] | None = None
        self._disconnect_sent = False
        self._read_paused = False
        self._frames: list[bytes] = []
        self._text = False
        self._response: Response | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._ping_timer: asyncio.TimerHandle | None = None
        self._pong_timer: asyncio.TimerHandle | None = None
        self._ping_payload: bytes | None = None

    # --- asyncio.Protocol ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only the same interface.
        self.transport = cast(asyncio.Transport, transport)
        self.connections.add(self)

    def data_received(self, data: bytes) -> None:
        self.conn.receive_data(data)
        self._handle_events()

    def eof_received(self) -> bool:
        self.conn.receive_eof()
        self._handle_events()
        # Keep the transport: a half-closed client may still read what is in flight; the protocol closes
        # it once websockets is done (or the timers fire).
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_keepalive()
        self._cancel(self._close_timer)
        self.connections.discard(self)
        self._start_closing()
        self._disconnected(1005 if self.accepted and self.conn.close_rcvd else 1006)
        # Unblock a writer waiting for the buffer to drain: asyncio never resumes a lost transport.
        self.writable.set()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def shutdown(self) -> None:
        """uvicorn's shutdown: close an open connection with 1012 (going away to restart)."""
        self._stop_keepalive()
        if self.accepted and not self.closing:
            self.close(1012, "server shutting down", LINGER_SECONDS)
        elif not self._answered:
            self._refuse(HTTPStatus.SERVICE_UNAVAILABLE, "server shutting down")
        else:
            self._transport().close()

    # --- what the gateway writes directly -----------------------------------------------------------

    def on_closing(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` once when this connection starts closing (no more data frames from then on).

        For writers that check, per connection per tick, whether they may still write: a flag of their
        own, set from here, spares them reaching into this object (a likely cache miss) every time."""
        self._close_listeners.append(listener)
        if self.closing:
            listener()

    def _start_closing(self) -> None:
        if not self.closing:
            self.closing = True
            for listener in self._close_listeners:
                listener()

    @property
    def frames_shareable(self) -> bool:
        """Whether one encoded frame can go to this connection as it goes to others: not when an
        extension (permessage-deflate) transforms every frame for its connection."""
        return not self.conn.extensions

    def close(self, code: int, reason: str, grace: float) -> None:
        """Send a close frame after what is buffered; drop the connection if the client has not answered
        within ``grace`` seconds (a client that stopped reading never drains the buffer before it)."""
        if self.closing or not self.accepted:
            return
        self._start_closing()
        self._disconnected(code, reason)
        try:
            self.conn.send_close(code, reason)
        except InvalidState:
            return
        self._flush()
        self._resume_reading()
        self._close_timer = self.loop.call_later(grace, self._abort)

    # --- incoming -----------------------------------------------------------------------------------

    def _handle_events(self) -> None:
        for event in self.conn.events_received():
            if isinstance(event, Request):
                self._connect(event)
            elif isinstance(event, Frame):
                self._frame(event)
        if self.conn.handshake_exc is not None and not self._answered:
            self._bad_upgrade()
            return
        self._flush()
        if self.conn.parser_exc is not None and self.accepted and not self._failed:
            self._fail_noted(str(self.conn.parser_exc))
        if self.conn.state is State.CLOSED:
            self._transport().close()

    def _frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            self._text = opcode is Opcode.TEXT
            self._frames = [bytes(frame.data)]
            if frame.fin:
                self._message()
        elif opcode is Opcode.CONT:
            self._frames.append(bytes(frame.data))
            if frame.fin:
                self._message()
        elif opcode is Opcode.PONG:
            self._pong(frame)
        elif opcode is Opcode.CLOSE:
            self._peer_closed()

    def _fail_noted(self, why: str) -> None:
        """websockets failed the connection (it queued the close frame and EOF): tell the application,
        keep reading (and discarding) until the client closes, and say so in one line, no traceback."""
        self._failed = True
        sent = self.conn.close_sent
        code = sent.code if sent else 1006
        # A frame over the size limit, invalid UTF-8, a protocol error: one INFO line. A client that
        # just went away (1006) is not worth one.
        log.log(logging.INFO if sent else logging.DEBUG, "%s closed with %s: %s", self._peer(), code, why)
        self._start_closing()
        self._disconnected(code, sent.reason if sent else "")
        self._flush()
        self._resume_reading()
        if self._close_timer is None:
            self._close_after_linger()

    def _connect(self, request: Request) -> None:
        response = self.conn.accept(request)
        self._response = response
        if response.status_code != 101:
            stats.bad_upgrades += 1
            self._answered = True
            self.conn.send_response(response)
            self._linger()
            return
        raw_path, _, query = request.path.partition("?")
        headers = [
            (key.lower().encode("ascii"), value.encode("latin-1"))
            for key, value in request.headers.raw_items()
        ]
        subprotocols = [
            token.strip()
            for header in request.headers.get_all("Sec-WebSocket-Protocol")
            for token in header.split(",")
        ]
        transport = self._transport()
        extensions: dict[str, Any] = {"websocket.http.response": {}, TRANSPORT_EXTENSION: self}
        self.scope = {
            "type": "websocket",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": "wss" if transport.get_extra_info("sslcontext") else "ws",
            "server": _address(transport.get_extra_info("sockname")),
            "client": _address(transport.get_extra_info("peername")),
            "root_path": self.root_path,
            "path": self.root_path + unquote(raw_path),
            "raw_path": (self.root_path + raw_path).encode("ascii"),
            "query_string": query.encode("ascii"),
            "headers": headers,
            "subprotocols": subprotocols,
            "state": self.app_state.copy(),
            "extensions": extensions,
        }
        self.queue.put_nowait({"type": "websocket.connect"})
        task = self.loop.create_task(self._run_asgi())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _message(self) -> None:
        data = self._frames[0] if len(self._frames) == 1 else b"".join(self._frames)
        self._frames = []
        if self.closing:
            return  # the application is past its close: only the peer's close reply matters now
        message: ASGIMessage
        if self._text:
            try:
                message = {"type": "websocket.receive", "text": data.decode()}
            except UnicodeDecodeError as exc:
                self.conn.fail(CloseCode.INVALID_DATA, "invalid UTF-8")
                self._fail_noted(f"invalid UTF-8 at byte {exc.start}")
                return
        else:
            message = {"type": "websocket.receive", "bytes": data}
        self.queue.put_nowait(message)
        if not self._read_paused:
            # One message at a time: the next is read once the application has taken this one.
            self._read_paused = True
            self._transport().pause_reading()

    def _peer_closed(self) -> None:
        if self.closing:
            # The answer to our close frame: the closing handshake is done (websockets queued the EOF).
            self._cancel(self._close_timer)
            return
        self._start_closing()
        received = self.conn.close_rcvd
        self._disconnected(received.code if received else 1005, received.reason if received else "")
        # websockets echoed the close and half-closed; a client that never closes its side is dropped.
        self._close_after_linger()

    def _bad_upgrade(self) -> None:
        """websockets could not parse the request (over 128 headers, a line over 8 KiB, not HTTP): it may
        have queued an answer; otherwise the answer is a plain 400."""
        stats.bad_upgrades += 1
        self._answered = True
        pending = self.conn.data_to_send()
        if any(pending):
            self._write(pending)
            self._linger()
        else:
            self._refuse(HTTPStatus.BAD_REQUEST, "invalid WebSocket handshake request")

    # --- the ASGI application -------------------------------------------------------------------------

    async def _run_asgi(self) -> None:
        try:
            await self.app(self.scope, self.receive, self.send)
        except (ClientGoneError, WebSocketDisconnect):
            # The client left while the application was still sending: ordinary, not an error.
            log.debug("%s left while the application was sending", self._peer())
        except Exception:
            log.exception("exception in the WebSocket application")
            if not self._answered:
                self._refuse(HTTPStatus.INTERNAL_SERVER_ERROR, "Internal Server Error")
        else:
            if not self._answered:
                log.error("the WebSocket application returned without accepting or refusing")
                self._refuse(HTTPStatus.INTERNAL_SERVER_ERROR, "Internal Server Error")
        if self.accepted and not self.closing:
            self.close(1000, "", CLOSE_TIMEOUT)

    async def receive(self) -> ASGIMessage:
        message = await self.queue.get()
        if self._read_paused and self.queue.empty():
            self._resume_reading()
        return message

    async def send(self, message: ASGIMessage) -> None:
        kind = message["type"]
        if not self._answered:
            self._answer(message)
            return
        if self._denial is not None:
            self._deny_body(message)
            return
        if kind == "websocket.send":
            if not self.writable.is_set():
                await self.writable.wait()
            if self.closing or self._transport().is_closing():
                raise ClientGoneError
            if message.get("bytes") is not None:
                self.conn.send_binary(message["bytes"])
            else:
                self.conn.send_text(message["text"].encode())
            self._flush()
        elif kind == "websocket.close":
            if self.closing:
                raise ClientGoneError
            self.close(message.get("code", 1000), message.get("reason") or "", CLOSE_TIMEOUT)
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} on an open WebSocket")

    def _answer(self, message: ASGIMessage) -> None:
        kind = message["type"]
        if self._transport().is_closing():
            raise ClientGoneError
        if kind == "websocket.accept":
            assert self._response is not None
            response = self._response
            del response.headers["Date"]
            for name, value in [*self.default_headers, *message.get("headers", [])]:
                response.headers[name.decode("latin-1")] = value.decode("latin-1")
            if message.get("subprotocol"):
                response.headers["Sec-WebSocket-Protocol"] = message["subprotocol"]
            self._answered = self.accepted = True
            self.conn.send_response(response)
            self._flush()
            self._start_keepalive()
        elif kind == "websocket.close":
            self._answered = True
            self._disconnected(1006)
            self._refuse(HTTPStatus.FORBIDDEN, "")
        elif kind == "websocket.http.response.start":
            status = int(message["status"])
            headers = [
                (name.decode("latin-1"), value.decode("latin-1"))
                for name, value in message.get("headers", [])
            ]
            self._answered = True
            self._denial = (status, headers, bytearray())
        else:
            raise RuntimeError(
                f"expected websocket.accept, websocket.close or a denial response, got {kind!r}"
            )

    def _deny_body(self, message: ASGIMessage) -> None:
        assert self._denial is not None
        status, headers, body = self._denial
        if message["type"] != "websocket.http.response.body":
            raise RuntimeError(f"expected websocket.http.response.body, got {message['type']!r}")
        body += message.get("body", b"")
        if message.get("more_body", False):
            return
        self._disconnected(1006)
        response_headers = Headers(headers)
        response_headers.setdefault("Date", email.utils.formatdate(usegmt=True))
        response_headers.setdefault("Connection", "close")
        response_headers.setdefault("Content-Length", str(len(body)))
        response_headers.setdefault("Content-Type", "text/plain; charset=utf-8")
        self.conn.send_response(Response(status, _phrase(status), response_headers, bytes(body)))
        self._linger()

    # --- keepalive ------------------------------------------------------------------------------------

    def _start_keepalive(self) -> None:
        if self.ping_interval:
            self._ping_timer = self.loop.call_later(self.ping_interval, self._ping)

    def _stop_keepalive(self) -> None:
        self._cancel(self._ping_timer)
        self._cancel(self._pong_timer)
        self._ping_timer = self._pong_timer = None

    def _ping(self) -> None:
        if self.closing:
            return
        self._ping_payload = struct.pack("!I", random.getrandbits(32))
        self.conn.send_ping(self._ping_payload)
        self._flush()
        if self.ping_timeout:
            self._pong_timer = self.loop.call_later(self.ping_timeout, self._pong_missed)
        else:
            self._start_keepalive()

    def _pong(self, frame: Frame) -> None:
        if self._ping_payload is None or bytes(frame.data) != self._ping_payload:
            return
        self._ping_payload = None
        self._cancel(self._pong_timer)
        self._pong_timer = None
        self._start_keepalive()

    def _pong_missed(self) -> None:
        if self.closing:
            return
        log.info("%s did not answer a ping within %g s", self._peer(), self.ping_timeout)
        self._start_closing()
        self._disconnected(1011, "keepalive ping timeout")
        self.conn.fail(1011, "keepalive ping timeout")
        self._flush()
        self._transport().close()

    # --- writing and closing --------------------------------------------------------------------------

    def _flush(self) -> None:
        """Write what websockets queued; its EOF marker half-closes the connection."""
        self._write(self.conn.data_to_send())

    def _write(self, pending: list[bytes]) -> None:
        transport = self._transport()
        for data in pending:
            if data is SEND_EOF or not data:
                if transport.can_write_eof() and not transport.is_closing():
                    transport.write_eof()
            elif not transport.is_closing():
                transport.write(data)

    def _refuse(self, status: HTTPStatus, reason: str) -> None:
        """Answer the handshake with ``status`` and end the connection without a reset."""
        self._answered = True
        self.conn.send_response(self.conn.reject(status, reason))
        self._linger()

    def _linger(self) -> None:
        """Write the answer, half-close, discard what the client still sends, close after a while."""
        self._start_closing()
        self._flush()
        self._resume_reading()
        self._cancel(self._close_timer)
        self._close_after_linger()

    def _close_after_linger(self) -> None:
        """Close the transport once a client still sending has had ``LINGER_SECONDS`` to stop."""
        self._close_timer = self.loop.call_later(LINGER_SECONDS, self._transport().close)

    def _abort(self) -> None:
        self._transport().abort()

    def _disconnected(self, code: int, reason: str = "") -> None:
        """Tell the application once that the connection is over."""
        if not self._disconnect_sent:
            self._disconnect_sent = True
            self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})

    def _resume_reading(self) -> None:
        if self._read_paused:
            self._read_paused = False
            transport = self._transport()
            if not transport.is_closing():
                transport.resume_reading()

    def _transport(self) -> asyncio.Transport:
        assert self.transport is not None, "used before connection_made"
        return self.transport

    def _peer(self) -> str:
        client = _address(self._transport().get_extra_info("peername"))
        return f"{client[0]}:{client[1]}" if client else "client"

    @staticmethod
    def _cancel(timer: asyncio.TimerHandle | None) -> None:
        if timer is not None:
            timer.cancel()


_WIRE_LOG = logging.getLogger("gateway.transport.frames")
"""websockets' own per-connection lines ("connection closed" for every close): DEBUG noise unless asked."""
_WIRE_LOG.setLevel(logging.WARNING)


def _address(value: Any) -> tuple[str, int] | None:
    if isinstance(value, tuple) and len(value) >= 2:
        return str(value[0]), int(value[1])
    return None


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""
