"""``python -m gateway [--workers N]``: serve the gateway with the transport settings from ``PULSE_*``.

Plain ``uvicorn gateway.app:app`` (or ``uvicorn --factory gateway.app:create_app``) works too; this entry
point also hands uvicorn what an ASGI app cannot set for itself: the WebSocket frame limit, keepalive and
compression settings, the gateway's own WebSocket protocol, the deadlines and caps on request heads,
bodies and open HTTP connections (``gateway.transport``), the shutdown grace period and one log format
for uvicorn's lines and the gateway's (``gateway.logs``); and it runs several workers as one gateway
(``gateway.workers``).
"""

import argparse
import sys

import uvicorn

from gateway.logs import uvicorn_log_config
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
    parser.add_argument(
        "--log-config",
        metavar="FILE",
        help="a logging configuration in uvicorn's forms (.json or .yaml dictConfig, else .ini fileConfig) "
        "for uvicorn's and the gateway's loggers, in place of PULSE_LOG_FORMAT and PULSE_LOG_LEVEL",
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
    # The operator's file governs levels too: uvicorn would set its loggers to ``log_level`` after it.
    log_config = args.log_config or uvicorn_log_config(settings.log_format, settings.log_level)
    log_level = None if args.log_config else settings.log_level
    with worker_dir(settings, workers):
        uvicorn.run(
            "gateway.app:create_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=workers,
            log_config=log_config,
            log_level=log_level,
            access_log=settings.access_log,
            **server_protocols(),
            ws_max_size=settings.max_message_bytes,
            ws_per_message_deflate=settings.ws_per_message_deflate,
            ws_ping_interval=settings.ws_ping_interval,
            ws_ping_timeout=settings.ws_ping_timeout,
            timeout_graceful_shutdown=settings.shutdown_grace,
        )


if __name__ == "__main__":
    main()
