"""``python -m gateway``: serve the gateway with the transport settings from ``PULSE_*``.

Plain ``uvicorn gateway.app:app`` works too; this entry point also hands uvicorn what an ASGI app
cannot set for itself: the WebSocket frame limit, keepalive and compression settings, the gateway's own
WebSocket protocol, and the deadlines and caps on request heads, bodies and open HTTP connections
(``gateway.transport``).
"""

import uvicorn

from gateway.settings import get_settings
from gateway.transport import server_protocols


def main() -> None:
    settings = get_settings()
    uvicorn.run(
        "gateway.app:app",
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=settings.access_log,
        **server_protocols(),
        ws_max_size=settings.max_message_bytes,
        ws_per_message_deflate=settings.ws_per_message_deflate,
        ws_ping_interval=settings.ws_ping_interval,
        ws_ping_timeout=settings.ws_ping_timeout,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
