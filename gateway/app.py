"""Assembles the gateway: settings, broker, hub, routes. ``uvicorn gateway.app:app`` serves it."""

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from gateway import api_http, classic, web, ws_session
from gateway.broker import PublishError, make_broker
from gateway.hub import Hub
from gateway.logs import configure_logging
from gateway.metrics import Metrics
from gateway.settings import Settings, get_settings, redacted
from gateway.state import Gateway
from gateway.wire import RawSendMiddleware

log = logging.getLogger("gateway")


def tune_garbage_collector(threshold: int) -> None:
    """Collect the young generation every ``threshold`` allocations instead of every 700, and leave what
    exists at startup (modules, the app) out of full collections for good."""
    if threshold:
        _, older, oldest = gc.get_threshold()
        gc.set_threshold(threshold, older, oldest)
    gc.freeze()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tune_garbage_collector(settings.gc_threshold)
        broker = make_broker(settings)
        metrics = Metrics()
        hub = Hub(
            broker,
            metrics,
            max_subscriptions=settings.max_subscriptions,
            direct_queue_bytes=settings.direct_queue_bytes,
        )
        await broker.start(hub)
        app.state.gateway = Gateway(settings=settings, broker=broker, hub=hub, metrics=metrics)
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
            await broker.close()
            log.info("gateway stopped")

    app = FastAPI(
        title="Pulseboard gateway",
        version="1.0",
        summary="Live data, chat and notifications over WebSockets",
        lifespan=lifespan,
    )
    app.include_router(api_http.router)
    app.add_exception_handler(PublishError, api_http.broker_unavailable)
    app.include_router(classic.router)
    web.mount(app)
    # The later one added wraps the earlier: RawSendMiddleware, outermost, keeps the server's own send
    # for the native endpoint's direct writer.
    app.add_middleware(ws_session.NativeEndpoint)
    app.add_middleware(RawSendMiddleware)
    return app


app = create_app()
