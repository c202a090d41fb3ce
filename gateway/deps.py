"""FastAPI dependencies, as ``Annotated`` aliases so route signatures read like prose."""

from typing import Annotated, cast

from fastapi import Depends
from fastapi.security import APIKeyHeader, APIKeyQuery, HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection, Request

from gateway.state import Gateway


async def get_gateway(connection: HTTPConnection) -> Gateway:
    # async although it never awaits: FastAPI runs a plain def dependency in its thread pool, a thread
    # hand-off on every request and every WebSocket handshake.
    return cast(Gateway, connection.app.state.gateway)


GatewayDep = Annotated[Gateway, Depends(get_gateway)]


BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    bearerFormat="JWT",
    description="A token signed with the gateway's PULSE_SECRET (docs/protocol.md, Tokens). Needed when "
    "the gateway has PULSE_SECRET set; a missing, invalid or expired one gets 401, one that does not "
    "allow the channel 403. With PULSE_SECRET unset the gateway is open and ignores it.",
)
INFLUX_TOKEN = APIKeyHeader(
    name="Authorization",
    auto_error=False,
    scheme_name="influxToken",
    description="The line protocol endpoints also read the token where InfluxDB clients put it: "
    "`Authorization: Token <token>`, or `Basic` with the token as the password.",
)
INFLUX_PASSWORD = APIKeyQuery(
    name="p",
    auto_error=False,
    scheme_name="influxPassword",
    description="`POST /write` (InfluxDB 1) also reads the token from `?p=<token>`.",
)


async def authorization_header(
    request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]
) -> str | None:
    # The header as sent, parsed by gateway.auth as before, so who gets 401 or 403 and with what body
    # is unchanged; BEARER (which never refuses: auto_error=False) is there so the OpenAPI document
    # declares the scheme and /docs shows the lock and sends the token.
    return request.headers.get("authorization")


async def influx_authorization(
    authorization: Annotated[str | None, Depends(authorization_header)],
    _: Annotated[str | None, Depends(INFLUX_TOKEN)],
) -> str | None:
    return authorization


AuthorizationDep = Annotated[str | None, Depends(authorization_header)]
"""The ``Authorization`` header (or None), declared as the bearer security scheme."""
InfluxAuthorizationDep = Annotated[str | None, Depends(influx_authorization)]
"""The same header, declared as the bearer or the InfluxDB ``Token`` scheme."""
InfluxPasswordDep = Annotated[str | None, Depends(INFLUX_PASSWORD)]
"""InfluxDB 1's ``?p=`` (None when absent or empty), declared as a query security scheme."""
