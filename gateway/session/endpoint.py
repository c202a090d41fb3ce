"""The WebSocket endpoints' entry to a session: admit the connection, then run its session."""

from typing import cast

from fastapi import WebSocket
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.admission import admit
from gateway.dialects import NATIVE, Dialect
from gateway.session.session import Session
from gateway.state import Gateway

NATIVE_PATH = "/ws"


async def serve(websocket: WebSocket, gateway: Gateway, *, name: str | None, dialect: Dialect) -> None:
    """Admit a WebSocket (``gateway.admission``) and run its session; used by every session endpoint."""
    async with admit(websocket, gateway, name=name, auth_op=dialect.auth_op) as admitted:
        if admitted is not None:
            admitted.close_code = await Session(
                websocket,
                gateway,
                client_id=admitted.client_id,
                name=admitted.name,
                grant=admitted.grant,
                seat=admitted.seat,
                dialect=dialect,
            ).run()


class NativeEndpoint:
    """ASGI middleware that serves ``/ws`` itself, ahead of FastAPI's routing.

    FastAPI's WebSocket routing keeps, for the whole life of each connection, its dependency exit
    stacks, the exception middleware's wrappers and the router's frames: 10 KB of the 41 KB an idle
    ``/ws`` connection held (tracemalloc; ``bench.fanout``'s idle scenario went from 41 to 31 KB).
    ``/ws`` is the endpoint meant to hold thousands of connections, and needs none of that: its one
    dependency is the gateway object. The classic endpoints stay ordinary FastAPI routes.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and _route_path(scope) == NATIVE_PATH:
            websocket = WebSocket(scope, receive, send)
            gateway = cast(Gateway, scope["app"].state.gateway)
            await serve(websocket, gateway, name=websocket.query_params.get("name"), dialect=NATIVE)
            return
        await self.app(scope, receive, send)


def _route_path(scope: Scope) -> str:
    """The path below the app's ``root_path`` (a proxy's prefix), as Starlette's router matches it."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root + "/"):
        return path[len(root) :]
    return path
