"""``python -m gateway``: serve the gateway with the transport settings from ``PULSE_*``.

Plain ``uvicorn gateway.app:app`` works too; this entry point also hands uvicorn the WebSocket frame
limit, keepalive and compression settings, and the request head and body deadlines and the caps on
request heads and open HTTP connections (``gateway.handshake``), which an ASGI app cannot set for itself.
"""

import uvicorn

from gateway.handshake import HandshakeGuardProtocol
from gateway.settings import get_settings


def main() -> None:
    settings = get_settings()
    uvicorn.run(
        "gateway.app:app",
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=settings.access_log,
        http=HandshakeGuardProtocol,
        ws="websockets-sansio",
        ws_max_size=settings.max_message_bytes,
        ws_per_message_deflate=settings.ws_per_message_deflate,
        ws_ping_interval=settings.ws_ping_interval,
        ws_ping_timeout=settings.ws_ping_timeout,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
