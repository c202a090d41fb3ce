"""FastAPI dependencies, as ``Annotated`` aliases so route signatures read like prose."""

from typing import Annotated, cast

from fastapi import Depends
from starlette.requests import HTTPConnection

from gateway.state import Gateway


async def get_gateway(connection: HTTPConnection) -> Gateway:
    # async although it never awaits: FastAPI runs a plain def dependency in its thread pool, a thread
    # hand-off on every request and every WebSocket handshake.
    return cast(Gateway, connection.app.state.gateway)


GatewayDep = Annotated[Gateway, Depends(get_gateway)]
