"""uvicorn's HTTP protocol with deadlines on request heads and bodies, a head size cap and a cap on
open HTTP connections (WebSocket handshakes go through it too).

uvicorn 0.54's httptools protocol arms a timer only after a response, as keep-alive: a connection that
sends nothing, or sends its request head or body one byte at a time (slowloris), is held open for ever,
and httptools buffers a header of any size (a 10 MB one is answered 200). This subclass closes a
connection whose head is not complete within ``PULSE_HANDSHAKE_TIMEOUT`` seconds (408 if it had started
one), answers 431 once a head passes ``PULSE_MAX_HEADER_BYTES``, and answers 408 to a request whose body
has not ended ``PULSE_BODY_TIMEOUT`` seconds after its head. A connection past
``PULSE_MAX_HTTP_CONNECTIONS`` open HTTP connections is answered 503 before anything of it is parsed; a
connection upgraded to WebSocket stops counting (``PULSE_MAX_CONNECTIONS`` bounds those).
``python -m gateway`` uses it; with the uvicorn command line pass
``--http gateway.transport.http_guard:HandshakeGuardProtocol``.

It is a subclass of uvicorn's ``HttpToolsProtocol`` (uvicorn has no public hook for these deadlines) and
relies on the parts of it listed in :data:`NEEDED`, which :func:`missing` checks at startup:
``python -m gateway`` serves with uvicorn's plain ``httptools`` protocol instead, with a WARNING and
``pulse_transport_missing_capabilities_total``, if any is gone.
"""

import asyncio
import logging
import sys
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http import httptools_impl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from gateway.settings import get_settings
from gateway.transport.capabilities import missing_members, unset_attributes
from gateway.transport.stats import stats
from gateway.transport.websocket import LINGER_SECONDS

log = logging.getLogger("gateway.transport")

NEEDED: dict[str, tuple[str, ...]] = {
    "module": ("STATUS_LINE", "RequestResponseCycle"),
    "methods": (
        "connection_made", "connection_lost", "data_received", "on_message_begin", "on_headers_complete",
        "on_message_complete", "handle_websocket_upgrade",
    ),
    "HttpToolsProtocol.__init__": ("cycle", "server_state", "loop"),
    "RequestResponseCycle.__init__": (
        "response_started", "response_complete", "disconnected", "message_event", "keep_alive",
    ),
}  # fmt: skip
"""What this guard uses of uvicorn's httptools protocol beyond the asyncio ``Protocol`` interface: names
in its module, methods it overrides, and attributes it reads that the two ``__init__`` set."""


def missing(base: type = HttpToolsProtocol) -> list[str]:
    """The parts of :data:`NEEDED` that ``base`` (uvicorn's ``HttpToolsProtocol``, or a test double)
    and its module lack; empty when the guard can run."""
    module = sys.modules[base.__module__]
    gaps = missing_members(module, NEEDED["module"]) + missing_members(base, NEEDED["methods"])
    gaps += unset_attributes(base, "__init__", NEEDED["HttpToolsProtocol.__init__"])
    cycle = getattr(module, "RequestResponseCycle", None)
    return gaps + unset_attributes(cycle, "__init__", NEEDED["RequestResponseCycle.__init__"])


class HandshakeGuardProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` plus request-head and body deadlines, a head size cap and a connection cap
    (settings read per process)."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        settings = get_settings()
        self._head_timeout = settings.handshake_timeout
        self._max_head_bytes = settings.max_header_bytes
        self._body_timeout = settings.body_timeout
        self._max_connections = settings.max_http_connections
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._linger_timer: asyncio.TimerHandle | None = None
        self._awaiting_head = True
        self._head_started = False
        self._head_bytes = 0
        self._reading_body = False
        self._counted = False
        self._over_capacity = False
        self._refused = False

    # --- connection ------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if stats.http_connections >= self._max_connections:
            # Answered as soon as it sends something (clients read an answer only after sending their
            # request), just closed if it sends nothing within LINGER_SECONDS; never counted.
            self._over_capacity = True
            self._linger_timer = self.loop.call_later(LINGER_SECONDS, self.transport.close)
            return
        stats.http_connections += 1
        self._counted = True
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._release()
        if self._linger_timer is not None:
            self._linger_timer.cancel()
            self._linger_timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._over_capacity:
            self._over_capacity = False
            self._refuse(503, f"over {self._max_connections} open HTTP connections, try again later")
            return
        self._feed(data)
        # Armed here rather than per head, so a request that arrives whole needs no timer at all.
        waiting = self._reading_body and self._body_timer is None and not self._refused
        if waiting and not self.transport.is_closing() and self.transport.get_protocol() is self:
            self._body_timer = self.loop.call_later(self._body_timeout, self._body_timed_out)

    def _feed(self, data: bytes) -> None:
        while data and not self._refused:
            if not self._awaiting_head:
                super().data_received(data)
                return
            # Feed no more than the cap while a head is open, so httptools (which buffers a header
            # until it ends) never holds more than that; what follows a complete head is fed next.
            room = self._max_head_bytes - self._head_bytes
            chunk, data = data[:room], data[room:]
            self._head_bytes += len(chunk)
            super().data_received(chunk)
            if self.transport.is_closing() or self.transport.get_protocol() is not self:
                return  # answered, or upgraded to WebSocket (uvicorn drops bytes sent before the 101)
            if self._awaiting_head and self._head_bytes >= self._max_head_bytes:
                stats.oversized += 1
                self._refuse(431, f"request head over {self._max_head_bytes} bytes")

    # --- httptools callbacks ---------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_started = True
        self._arm_head_timer()

    def on_headers_complete(self) -> None:
        self._awaiting_head = False
        self._head_started = False
        self._head_bytes = 0
        self._reading_body = True
        self._cancel_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        # Anything after this request is the next head (keep-alive or pipelining): meter it too.
        self._awaiting_head = True
        self._reading_body = False
        self._cancel_body_timer()

    def handle_websocket_upgrade(self) -> None:
        super().handle_websocket_upgrade()
        if self.transport.get_protocol() is not self:
            self._release()  # a WebSocket now: PULSE_MAX_CONNECTIONS counts it, and its own close ends it

    # --- refusing --------------------------------------------------------------------------------

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self._head_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _cancel_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _release(self) -> None:
        """Stop this connection's timers and give back its place under the cap (once)."""
        self._cancel_head_timer()
        self._cancel_body_timer()
        if self._counted:
            self._counted = False
            stats.http_connections -= 1

    def _body_timed_out(self) -> None:
        self._body_timer = None
        if self.transport.is_closing():
            return
        answered = self.cycle.response_started
        # The application's receive() now returns http.disconnect, and whatever it sends is dropped.
        self.cycle.disconnected = True
        self.cycle.message_event.set()
        if answered:
            self.transport.close()
        else:
            self._answer(408, f"request body not complete within {self._body_timeout:g} s")

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        stats.timeouts += 1
        if self._head_started:
            self._refuse(408, f"request head not complete within {self._head_timeout:g} s")
        else:
            self.transport.close()

    def _refuse(self, status: int, reason: str) -> None:
        """Answer ``status`` and close, or close after the response in flight if a request is running."""
        self._refused = True
        self._cancel_head_timer()
        log.debug("refusing %s: %s", self.transport.get_extra_info("peername"), reason)
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined head went wrong while the previous response is still being written: an
            # answer now would land inside it, so close once it is done instead.
            self.cycle.keep_alive = False
            return
        self._answer(status, reason)

    def _answer(self, status: int, reason: str) -> None:
        """Write ``status`` with ``reason`` as its body, and close without resetting the connection."""
        self._refused = True
        self._release()
        body = reason.encode()
        head = [httptools_impl.STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head.extend((name, b": ", value, b"\r\n"))
        head.append(
            b"content-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
            % len(body)
        )
        self.transport.write(b"".join(head) + body)
        if self.transport.can_write_eof():
            # Closing with unread input makes the kernel send a reset, which can destroy the answer
            # before the client reads it; so half-close, discard input briefly, then close.
            self.transport.write_eof()
            if self._linger_timer is not None:
                self._linger_timer.cancel()
            self._linger_timer = self.loop.call_later(LINGER_SECONDS, self.transport.close)
        else:
            self.transport.close()
