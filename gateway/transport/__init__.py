"""Everything that touches the server underneath the gateway: the one seam between Pulseboard and uvicorn.

- ``websocket``: the gateway's own WebSocket protocol class for uvicorn's ``ws=`` option, on websockets'
  public sans-I/O ``ServerProtocol``; it offers itself to the gateway in the scope's ``extensions``;
- ``writers``: what a session writes frames with, straight to the socket through that protocol, or
  through ASGI ``send`` under any other server;
- ``frames``: text frames encoded once and shared by every subscriber;
- ``http_guard``: deadlines and caps on request heads, bodies and open HTTP connections, the one part
  still built on a uvicorn class (``HttpToolsProtocol``), checked at startup by :func:`server_protocols`;
- ``stats``: what the transport refused or fell back on, for ``/metrics``.

The session sees only :class:`~gateway.transport.writers.FrameWriter` (write frames, close with a code)
and, for the per-tick flush, the direct writer's ``writable``/``write_now``.
"""

import logging
from typing import Any

from gateway.transport.stats import stats
from gateway.transport.websocket import PulseWebSocketProtocol
from gateway.transport.websocket import missing as protocol_missing

log = logging.getLogger("gateway.transport")

PORTABLE_HTTP = "httptools"
"""uvicorn's own HTTP protocol, served when the guard cannot run on this uvicorn."""
PORTABLE_WS = "websockets-sansio"
"""uvicorn's own WebSocket protocol, served when the gateway's cannot run on this uvicorn."""


def server_protocols() -> dict[str, Any]:
    """uvicorn's ``http`` and ``ws`` options for ``python -m gateway``: the guard and the gateway's own
    WebSocket protocol; for either whose needs this uvicorn lacks, uvicorn's own protocol instead, with a
    WARNING and a counted missing capability."""
    try:
        from gateway.transport.http_guard import HandshakeGuardProtocol
        from gateway.transport.http_guard import missing as guard_missing

        guard_gaps = guard_missing()
    except ImportError as exc:  # httptools, or the module's layout, gone
        guard_gaps = [str(exc)]
    http: Any = HandshakeGuardProtocol if not guard_gaps else PORTABLE_HTTP
    if guard_gaps:
        _portable(
            guard_gaps,
            "serving without the request head and body deadlines and the HTTP connection cap "
            "(PULSE_HANDSHAKE_TIMEOUT, PULSE_BODY_TIMEOUT, PULSE_MAX_HEADER_BYTES, "
            "PULSE_MAX_HTTP_CONNECTIONS)",
        )
    ws_gaps = protocol_missing()
    ws: Any = PulseWebSocketProtocol if not ws_gaps else PORTABLE_WS
    if ws_gaps:
        _portable(ws_gaps, "serving WebSockets with uvicorn's own protocol: frames go through ASGI, slower")
    return {"http": http, "ws": ws}


def _portable(gaps: list[str], consequence: str) -> None:
    stats.missing_capabilities += 1
    log.warning("uvicorn lacks %s: %s", ", ".join(gaps), consequence)
