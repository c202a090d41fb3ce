"""FastAPI dependencies, as ``Annotated`` aliases so route signatures read like prose."""

from typing import Annotated, cast

from fastapi import Depends
from starlette.requests import HTTPConnection

from gateway.state import Gateway


def get_gateway(connection: HTTPConnection) -> Gateway:
    return cast(Gateway, connection.app.state.gateway)


GatewayDep = Annotated[Gateway, Depends(get_gateway)]
