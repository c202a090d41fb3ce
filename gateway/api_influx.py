"""InfluxDB's write endpoints, so Telegraf and InfluxDB client libraries publish without code:
``POST /api/v2/write`` (InfluxDB 2) and ``POST /write`` (InfluxDB 1), line protocol in the body, gzip
allowed. How lines map to channels and series is in ``gateway.line_protocol``.

``org``, ``bucket`` and ``db`` are accepted and ignored: the channel comes from each line. The token goes
where InfluxDB clients put it: ``Authorization: Token <token>`` (or ``Bearer``), or for v1 the ``p``
parameter or the password of ``Authorization: Basic``. Answers follow InfluxDB's: 204 when written, and
errors as ``{"code": ..., "message": ..., "line": ...}``.
"""

import base64
import binascii
import time
import zlib
from collections.abc import Collection, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse

from gateway.api_http import grant_for, publish_bucket, read_body
from gateway.broker import PublishError
from gateway.broker.base import ChannelLimitError
from gateway.deps import GatewayDep, InfluxAuthorizationDep, InfluxPasswordDep
from gateway.line_protocol import PRECISIONS, LineError, parse
from shared.api import MAX_BATCH, InfluxErrorBody
from shared.channels import Channel

router = APIRouter(tags=["InfluxDB compatibility"])

V2_PRECISIONS = ("ns", "us", "ms", "s")


CODES = {
    400: "invalid",
    401: "unauthorized",
    403: "forbidden",
    413: "request too large",
    429: "too many requests",
    503: "unavailable",
}


def _error(
    status: int, message: str, *, line: int | None = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    body = InfluxErrorBody(code=CODES.get(status, "invalid"), message=message, line=line)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, headers=headers)


def influx_token(authorization: str | None, password: str | None) -> str | None:
    """The token wherever an InfluxDB client sends it (see the module docstring)."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        scheme = scheme.lower()
        if scheme in ("token", "bearer") and value.strip():
            return value.strip()
        if scheme == "basic":
            try:
                _, _, secret = base64.b64decode(value.strip(), validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None
            return secret or None
    return password or None


def _decompress(body: bytes, limit: int) -> bytes | None:
    """A gzip body inflated, or None when it inflates past ``limit`` (a compression bomb stops there)."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    inflated = inflater.decompress(body, limit + 1)
    if len(inflated) > limit or inflater.unconsumed_tail:
        return None
    return inflated


async def _write(
    request: Request,
    gateway: GatewayDep,
    precision: tuple[str, Collection[str]],
    authorization: str | None,
    password: str | None,
) -> Response:
    """Write the body's lines; ``precision`` is the one asked for and those this endpoint takes."""
    unit, allowed = precision
    if unit not in allowed:
        return _error(400, f"precision {unit[:20]!r}; use one of {', '.join(allowed)}")
    try:
        return await _write_lines(request, gateway, unit, authorization, password)
    except HTTPException as exc:
        # The shared checks (token, body size, publish rate) answer in FastAPI's shape; InfluxDB clients
        # read InfluxDB's.
        return _error(exc.status_code, str(exc.detail), headers=exc.headers)


async def _write_lines(
    request: Request, gateway: GatewayDep, precision: str, authorization: str | None, password: str | None
) -> Response:
    started = time.perf_counter()
    token = influx_token(authorization, password)
    grant = grant_for(gateway, None if token is None else f"Bearer {token}")
    limit = gateway.settings.max_body_bytes
    body = await read_body(request, limit)
    if request.headers.get("content-encoding", "").lower() == "gzip":
        try:
            inflated = _decompress(body, limit)
        except zlib.error as exc:
            return _error(400, f"the body is not valid gzip: {exc}")
        if inflated is None:
            return _error(413, f"the body inflates past {limit} bytes")
        body = inflated
    try:
        batch = parse(body, precision, time.time())
    except LineError as exc:
        return _error(400, str(exc), line=exc.line)
    for name in batch.points:
        if not grant.may_publish(name):
            return _error(403, f"your token does not allow publishing to {name}")
    bucket = publish_bucket(gateway, request, grant)
    if bucket is not None:
        bucket.spend(batch.count - 1)
    published = 0
    counted = gateway.metrics.messages_in
    try:
        for name, points in batch.points.items():
            channel = Channel.parse(name)
            for first in range(0, len(points), MAX_BATCH):
                accepted = len(await gateway.broker.publish(channel, points[first : first + MAX_BATCH]))
                # Counted as they go: the points before a failure were published all the same.
                counted[channel.namespace] += accepted
                published += accepted
    except ChannelLimitError as exc:
        return _error(413, f"{exc} ({published} points before it were published)")
    except PublishError as exc:
        return _error(503, f"not written: {exc} ({published} points before it were published)")
    gateway.metrics.publish_latency.observe(time.perf_counter() - started)
    return Response(status_code=204)


_RESPONSES: dict[int | str, dict[str, Any]] = {
    204: {"description": "Written"},
    400: {
        "model": InfluxErrorBody,
        "description": "A line that is not line protocol (`line` names it), a bad "
        "precision or gzip: nothing was published",
    },
    401: {"model": InfluxErrorBody, "description": "Auth is on and the token is missing or invalid"},
    403: {
        "model": InfluxErrorBody,
        "description": "The token may not publish to a line's channel: nothing was published",
    },
    413: {
        "model": InfluxErrorBody,
        "description": "The body (inflated) is over PULSE_MAX_BODY_BYTES, or too many channels",
    },
    429: {
        "model": InfluxErrorBody,
        "description": "The identity's points per second are used up",
        "headers": {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "string"}}},
    },
    503: {"model": InfluxErrorBody, "description": "The broker is down"},
}
_LINES = {
    "requestBody": {
        "required": True,
        "content": {
            "text/plain": {
                "schema": {"type": "string"},
                "example": "cpu,host=web1 user=12.5,system=3.1 1700000000000000000",
            }
        },
    }
}


@router.post("/api/v2/write", status_code=204, responses=_RESPONSES, openapi_extra=_LINES)
async def write_v2(
    request: Request,
    gateway: GatewayDep,
    authorization: InfluxAuthorizationDep,
    precision: Annotated[
        str, Query(description="Unit of the timestamps", json_schema_extra={"enum": list(V2_PRECISIONS)})
    ] = "ns",
    org: Annotated[str | None, Query(description="Accepted and ignored")] = None,
    bucket: Annotated[
        str | None, Query(description="Accepted and ignored: channels come from the lines")
    ] = None,
) -> Response:
    """Line protocol, InfluxDB 2 style (`Authorization: Token <token>`)."""
    return await _write(request, gateway, (precision, V2_PRECISIONS), authorization, None)


@router.post("/write", status_code=204, responses=_RESPONSES, openapi_extra=_LINES)
async def write_v1(
    request: Request,
    gateway: GatewayDep,
    authorization: InfluxAuthorizationDep,
    p: InfluxPasswordDep,
    precision: Annotated[
        str, Query(description="Unit of the timestamps", json_schema_extra={"enum": list(PRECISIONS)})
    ] = "ns",
    db: Annotated[str | None, Query(description="Accepted and ignored: channels come from the lines")] = None,
    u: Annotated[str | None, Query(description="Accepted and ignored")] = None,
) -> Response:
    """Line protocol, InfluxDB 1 style (`?p=<token>` or `Authorization: Token <token>`)."""
    return await _write(request, gateway, (precision, PRECISIONS), authorization, p)
