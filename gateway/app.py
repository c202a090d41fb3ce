"""Assembles the gateway: settings, broker, hub, routes.

``create_app()`` builds it (``uvicorn --factory gateway.app:create_app``, what ``python -m gateway`` runs);
``gateway.app:app`` is the same app, built on first use rather than when the module is imported, so
``uvicorn gateway.app:app`` keeps working and importing this module reads no settings.
"""

import asyncio
import gc
import logging
import resource
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.requests import ClientDisconnect

from gateway import api_history, api_http, api_influx, classic, web
from gateway.broker import PublishError, make_broker
from gateway.chat import ChatAnnouncements
from gateway.history import make_recorder
from gateway.hub import Hub
from gateway.logs import configure_logging
from gateway.metrics import Metrics
from gateway.scrape import share_snapshots
from gateway.session.endpoint import NativeEndpoint
from gateway.settings import Settings, get_settings, redacted
from gateway.state import Gateway
from gateway.worker_board import WorkerBoard
from shared.channels import Namespace
from shared.version import VERSION

log = logging.getLogger("gateway")

SPARE_FILES = 64
"""File descriptors the gateway needs besides its connections: the listening socket, SQLite, Redis, logs."""


def tune_garbage_collector(threshold: int) -> None:
    """Collect the young generation every ``threshold`` allocations instead of every 700, and leave what
    exists at startup (modules, the app) out of full collections for good."""
    if threshold:
        _, older, oldest = gc.get_threshold()
        gc.set_threshold(threshold, older, oldest)
    gc.freeze()


def raise_open_file_limit(settings: Settings) -> None:
    """Raise the soft limit on open files to the hard limit: every connection is a descriptor, and the
    usual soft limit (1024) is far below ``PULSE_MAX_CONNECTIONS``. Warn when even the hard limit is."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:  # an unlimited hard limit (macOS) cannot be the soft one
            log.warning("open files: soft limit %d kept, raising it to %d failed: %s", soft, hard, exc)
        else:
            log.info("open files: soft limit raised from %d to the hard limit %d", soft, hard)
            soft = hard
    wanted = settings.max_connections + settings.max_http_connections + SPARE_FILES
    if soft < wanted:
        log.warning(
            "open files limit %d is below the %d that PULSE_MAX_CONNECTIONS + PULSE_MAX_HTTP_CONNECTIONS "
            "need: raise the hard limit (ulimit -Hn, systemd LimitNOFILE=) or lower those settings",
            soft,
            wanted,
        )


def create_app(settings: Settings | None = None) -> FastAPI:
    """The gateway app for ``settings`` (default: the ``PULSE_*`` environment and ``.env``)."""
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_format)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        raise_open_file_limit(settings)
        broker = make_broker(settings)
        metrics = Metrics()
        hub = Hub(
            broker,
            metrics,
            direct_queue_bytes=settings.direct_queue_bytes,
        )
        recorder = make_recorder(settings)
        # After the backends are built: the modules they import lazily (DuckDB, redis) are frozen with
        # the rest, instead of being scanned by every full collection for the process's life.
        tune_garbage_collector(settings.gc_threshold)
        if recorder is not None:
            broker.on_accepted = recorder.record
            await recorder.start()
        await broker.start(hub)
        gateway = app.state.gateway = Gateway(
            settings=settings,
            broker=broker,
            hub=hub,
            metrics=metrics,
            recorder=recorder,
            membership={Namespace.CHAT: ChatAnnouncements(broker)},
            board=None if settings.worker_dir is None else WorkerBoard(settings.worker_dir),
        )
        gateway.watchdog.start()
        sharing = None if gateway.board is None else asyncio.create_task(share_snapshots(gateway))
        if not settings.auth_enabled:
            log.warning(
                "PULSE_SECRET is not set: the gateway is OPEN. Anyone who can reach it may subscribe and "
                "publish to every channel. Set PULSE_SECRET to require tokens."
            )
        log.info("gateway ready: broker %s", redacted(settings.broker_url))
        try:
            yield
        finally:
            # uvicorn has already closed every WebSocket with 1012 by now.
            gateway.watchdog.stop()
            if sharing is not None:
                sharing.cancel()
            await broker.close()
            if recorder is not None:
                await recorder.close()
            log.info("gateway stopped")

    app = FastAPI(
        title="Pulseboard gateway",
        version=VERSION,
        summary="Live data, chat and notifications over WebSockets",
        lifespan=lifespan,
    )
    app.include_router(api_http.router)
    app.include_router(api_history.router)
    app.include_router(api_influx.router)
    app.add_exception_handler(PublishError, api_http.broker_unavailable)
    app.add_exception_handler(ClientDisconnect, api_http.client_gone)
    app.include_router(classic.router)
    web.mount(app)
    app.add_middleware(NativeEndpoint)
    return app


app: FastAPI
"""``uvicorn gateway.app:app``: built by ``__getattr__`` below when first asked for."""


def __getattr__(name: str) -> FastAPI:
    # PEP 562: a module attribute computed on first access, so ``gateway.app:app`` still names an app
    # while importing the module (tests, ``python -m gateway``) builds none from whatever env is set.
    if name == "app":
        global app
        app = create_app()
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
