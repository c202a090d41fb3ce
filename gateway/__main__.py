"""``python -m gateway [--workers N]``: serve the gateway with the transport settings from ``PULSE_*``.

Plain ``uvicorn gateway.app:app`` works too; this entry point also hands uvicorn what an ASGI app
cannot set for itself: the WebSocket frame limit, keepalive and compression settings, the gateway's own
WebSocket protocol, and the deadlines and caps on request heads, bodies and open HTTP connections
(``gateway.transport``); and it runs several workers as one gateway (``gateway.workers``).
"""

import argparse
import sys

import uvicorn

from gateway.settings import get_settings
from gateway.transport import server_protocols
from gateway.workers import worker_dir, workers_problem


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gateway", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="worker processes serving the port (default: PULSE_WORKERS, 1); more than one needs redis://",
    )
    args = parser.parse_args(argv)
    settings = get_settings()
    workers = settings.workers if args.workers is None else args.workers
    if workers < 1:
        parser.error("--workers must be at least 1")
    problem = workers_problem(settings, workers)
    if problem is not None:
        print(f"python -m gateway: {problem}", file=sys.stderr)
        raise SystemExit(2)
    with worker_dir(settings, workers):
        uvicorn.run(
            "gateway.app:app",
            host=settings.host,
            port=settings.port,
            workers=workers,
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
