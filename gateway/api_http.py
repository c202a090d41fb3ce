"""The HTTP API: publish, channel list, history, health and metrics."""

import logging
import math
import time
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Path, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.convertors import Convertor, register_url_convertor

from gateway.auth import EVERYTHING, OPEN, AuthError, Grant, bearer_token, verify_token
from gateway.broker import PublishError
from gateway.broker.base import ChannelLimitError, ChannelOrder, ChannelQuery, CursorError
from gateway.deps import AuthorizationDep, GatewayDep
from gateway.publishing import PayloadError, enrich, parse_body
from gateway.ratelimit import TokenBucket
from gateway.scrape import metrics_text, subscriber_counts
from gateway.state import Gateway
from shared.api import (
    CHANNEL_PAGE,
    CHANNEL_PREFIX_PATTERN,
    MAX_BATCH,
    MAX_CHANNEL_PAGE,
    ChannelInfo,
    ChannelList,
    ErrorBody,
    Health,
    HistoryHealth,
    HistoryHole,
    HistoryPage,
    Liveness,
    ParameterErrors,
    PublishResult,
    Readiness,
)
from shared.channels import NAME_PATTERN, Channel, ChannelError, Namespace, is_valid_name
from shared.codes import ErrorCode
from shared.messages import MAX_HISTORY_REQUEST, StreamPosition
from shared.payloads import INPUT_MODELS

log = logging.getLogger("gateway.http")
router = APIRouter()

CHANNEL_PATTERN = f"^({'|'.join(Namespace)}):{NAME_PATTERN}$"

UNAUTHORIZED: dict[str, Any] = {
    "model": ErrorBody,
    "description": "Auth is on and the bearer token is missing, invalid or expired",
    "headers": {
        "WWW-Authenticate": {"description": "`Bearer`", "required": True, "schema": {"type": "string"}}
    },
}
FORBIDDEN: dict[str, Any] = {"model": ErrorBody, "description": "The token does not allow this channel"}
_BROKER_DOWN: dict[str, Any] = {
    "model": ErrorBody,
    "description": "The broker could not serve the read (Redis down); retrying later may work",
}
_PARAMETER_ERRORS: dict[str, Any] = {
    "model": ParameterErrors,
    "description": "A query parameter or header FastAPI refused (`detail` is a list)",
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Bad channel name, body that is not JSON, or bad `name`"},
    401: UNAUTHORIZED,
    403: FORBIDDEN,
    413: {
        "model": ErrorBody,
        "description": "Body over PULSE_MAX_BODY_BYTES, over 1000 payloads, a text or series count over "
        "its limit, or a new channel past PULSE_MAX_CHANNELS (nothing published)",
    },
    429: {
        "model": ErrorBody,
        "description": "This identity (token sub, else client address) used up its points per second "
        "(PULSE_HTTP_PUBLISH_RATE); nothing was read or published",
        "headers": {
            "Retry-After": {
                "description": "Seconds until a publish is let in again",
                "required": True,
                "schema": {"type": "integer"},
            }
        },
    },
    422: {
        "model": ErrorBody | ParameterErrors,
        "description": "A payload of the wrong shape or an empty batch (`detail` is a string), or a "
        "parameter or header FastAPI refused (`detail` is a list)",
    },
    503: {
        "model": ErrorBody,
        "description": "The broker could not store the publication; nothing was published",
    },
}
_READ_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Bad channel name, or `since` without its `epoch`"},
    401: UNAUTHORIZED,
    403: FORBIDDEN,
    422: _PARAMETER_ERRORS,
    503: _BROKER_DOWN,
}

_PAYLOADS = [model.model_json_schema() for model in INPUT_MODELS.values()]
_PUBLISH_BODY: dict[str, Any] = {
    "description": "One payload for the channel's namespace (DataPoint for data:, ChatPost for chat:, "
    f"Notification for notify:), or an array of 1 to {MAX_BATCH} of them",
    "anyOf": [
        *_PAYLOADS,
        {"type": "array", "minItems": 1, "maxItems": MAX_BATCH, "items": {"anyOf": _PAYLOADS}},
    ],
}

ChannelPath = Annotated[
    str,
    Path(
        description="A channel such as data:cpu, chat:lobby or notify:alerts; any other name gets 400",
        # Documented but not enforced by FastAPI, which would answer 422: a bad channel is the contract's 400.
        json_schema_extra={"pattern": CHANNEL_PATTERN},
        openapi_examples={"chat": {"value": "chat:lobby"}},
    ),
]


def parse_channel(name: str) -> Channel:
    try:
        return Channel.parse(name)
    except ChannelError as exc:
        raise HTTPException(400, f"{ErrorCode.BAD_CHANNEL}: {exc}") from None


def grant_for(gateway: Gateway, authorization: str | None) -> Grant:
    settings = gateway.settings
    if not settings.auth_enabled or settings.secret is None:
        return OPEN
    token = bearer_token(authorization)
    if token is None:
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    try:
        return verify_token(token, settings.secret.get_secret_value(), leeway=settings.jwt_leeway)
    except AuthError as exc:
        raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from None


def publish_bucket(gateway: Gateway, request: Request, grant: Grant) -> TokenBucket | None:
    """The points-per-second bucket of whoever publishes (the token's ``sub`` when auth is on, else the
    client's address), charged one point for the request; None when the limit is off. Raises 429 while
    that bucket is empty."""
    settings = gateway.settings
    if not settings.http_publish_rate:
        return None
    client = request.client
    identity = grant.subject if settings.auth_enabled else client.host if client is not None else ""
    bucket = gateway.http_publishers[identity or "?"]
    wait = bucket.wait()
    if wait > 0:
        gateway.metrics.http_publish_limited += 1
        raise HTTPException(
            429,
            f"{ErrorCode.RATE_LIMITED}: more than {settings.http_publish_rate:g} points/s",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )
    bucket.spend(1)  # a request that fails validation costs a point too
    return bucket


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"body over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class AnyTextConvertor(Convertor[str]):
    """Any path text, newlines and ``/`` included (``:path`` stops at a newline), so every malformed
    channel reaches ``_channel`` and gets the documented 400 instead of the router's 404."""

    regex = r"[\s\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("anytext", AnyTextConvertor())


@router.post(
    "/api/publish/{channel:anytext}",
    response_model=PublishResult,
    responses=_ERRORS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": _PUBLISH_BODY,
                    "examples": {"chat": {"value": {"text": "hello"}}},
                }
            },
        }
    },
)
async def publish(
    channel: ChannelPath,
    request: Request,
    gateway: GatewayDep,
    authorization: AuthorizationDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    name: Annotated[
        str | None,
        Query(
            description="Chat sender when auth is off; an invalid one gets 400",
            json_schema_extra={"pattern": f"^{NAME_PATTERN}$"},
        ),
    ] = None,
) -> PublishResult:
    """Publish one payload or a batch; answer with their offsets."""
    started = time.perf_counter()
    target = parse_channel(channel)
    grant = grant_for(gateway, authorization)
    if not grant.may_publish(channel):
        raise HTTPException(403, f"your token does not allow publishing to {channel}")
    if name is not None and not is_valid_name(name):
        raise HTTPException(400, "name must match [A-Za-z0-9_.-]{1,64}")
    # Refused before the body is read, so a flood costs little; a batch let in is charged in full.
    bucket = publish_bucket(gateway, request, grant)
    body = await read_body(request, gateway.settings.max_body_bytes)
    try:
        payloads = parse_body(target, body)
    except PayloadError as exc:
        status = {ErrorCode.TOO_LARGE: 413, ErrorCode.BAD_REQUEST: 422}.get(exc.code, 400)
        raise HTTPException(status, f"{exc.code}: {exc.detail}") from None
    if bucket is not None:
        bucket.spend(len(payloads) - 1)
    sender = grant.subject or name or "http"
    try:
        # Keys are the caller's own: two publishers who happen to pick the same key do not collide.
        scoped_key = None if idempotency_key is None else f"{grant.subject or ''}\x00{idempotency_key}"
        offsets = await gateway.broker.publish(
            target, enrich(payloads, sender=sender), idempotency_key=scoped_key
        )
    except ChannelLimitError as exc:
        raise HTTPException(413, f"{ErrorCode.TOO_LARGE}: {exc}") from None
    except PublishError as exc:
        raise HTTPException(503, f"not published: {exc}") from None
    gateway.metrics.messages_in[target.namespace] += len(offsets)
    gateway.metrics.publish_latency.observe(time.perf_counter() - started)
    return PublishResult(offsets=offsets)


@router.get(
    "/api/channels",
    response_model=ChannelList,
    response_model_exclude_none=True,
    responses={
        400: {"model": ErrorBody, "description": "A `cursor` this `order` did not hand out"},
        401: UNAUTHORIZED,
        422: _PARAMETER_ERRORS,
        503: _BROKER_DOWN,
    },
)
async def list_channels(
    gateway: GatewayDep,
    authorization: AuthorizationDep,
    prefix: Annotated[
        str, Query(pattern=CHANNEL_PREFIX_PATTERN, description="Only channels whose name starts with this")
    ] = "",
    order: Annotated[
        ChannelOrder, Query(description="`name` (ascending) or `recent` (latest publish first)")
    ] = ChannelOrder.NAME,
    limit: Annotated[
        int, Query(ge=1, le=MAX_CHANNEL_PAGE, description="Most channels returned")
    ] = CHANNEL_PAGE,
    cursor: Annotated[
        str | None,
        Query(max_length=200, description="The `next` of the previous page (same prefix and order)"),
    ] = None,
) -> ChannelList:
    """One page of the live channels, with position, subscribers (on every worker), rate and last publish time
    (only those the token may read)."""
    grant = grant_for(gateway, authorization)
    allowed = None if grant.subscribe == EVERYTHING else grant.may_subscribe
    query = ChannelQuery(prefix=prefix, order=order, limit=limit, cursor=cursor, allowed=allowed)
    try:
        page = await gateway.broker.channels(query)
    except CursorError as exc:
        raise HTTPException(400, f"{ErrorCode.BAD_REQUEST}: {exc}") from None
    subscribers = subscriber_counts(gateway)
    return ChannelList(
        channels=[
            ChannelInfo(
                name=item.name,
                offset=item.position.offset,
                epoch=item.position.epoch,
                subscribers=subscribers.get(item.name, 0),
                rate=item.rate,
                last_published=item.last_published,
            )
            for item in page.channels
        ],
        next=page.next,
    )


@router.get("/api/channels/{channel:anytext}/history", response_model=HistoryPage, responses=_READ_ERRORS)
async def channel_history(
    channel: ChannelPath,
    gateway: GatewayDep,
    authorization: AuthorizationDep,
    since: Annotated[int | None, Query(ge=0, description="Return publications after this offset")] = None,
    epoch: Annotated[
        str | None, Query(max_length=64, description="The epoch of `since` (required with it)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_HISTORY_REQUEST)] = 100,
) -> HistoryPage:
    """Retained publications: the last `limit`, or (with `since`) up to `limit` after that offset."""
    target = parse_channel(channel)
    if not grant_for(gateway, authorization).may_subscribe(channel):
        raise HTTPException(403, f"your token does not allow reading {channel}")
    if since is None:
        result = await gateway.broker.history(target, limit=limit)
    else:
        if epoch is None:
            # Without the epoch an offset is ambiguous across a restart: refuse rather than guess.
            raise HTTPException(400, "`since` needs the `epoch` it was read in")
        position = StreamPosition(offset=since, epoch=epoch)
        result = await gateway.broker.history(target, since=position, limit=limit)
    return HistoryPage(
        channel=channel,
        offset=result.position.offset,
        epoch=result.position.epoch,
        recovered=result.recovered,
        publications=[publication.message() for publication in result.publications],
    )


async def broker_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """A read the broker could not serve (Redis down): 503, the client may retry."""
    return JSONResponse({"detail": f"the broker is unavailable: {exc}"}, status_code=503)


@router.get("/livez", response_model=Liveness, responses={503: {"model": Liveness}})
async def livez(gateway: GatewayDep) -> Response:
    """Liveness, for a probe that restarts the process: 200 while its event loop runs on time, 503 when
    it has fallen behind by more than PULSE_LOOP_LAG_LIMIT seconds. Broker and stores are not asked: a
    Redis outage is no reason to restart a gateway (see `/readyz`). A loop blocked outright answers
    nothing, so the probe's timeout is what catches that (`gateway.liveness`)."""
    verdict = gateway.watchdog.verdict()
    body = Liveness(
        status="ok" if verdict.alive else "stalled", loop_lag=round(verdict.lag, 4), detail=verdict.detail
    )
    return JSONResponse(body.model_dump(), status_code=200 if verdict.alive else 503)


@router.get("/healthz", response_model=Health, responses={503: {"model": Health}})
async def healthz(gateway: GatewayDep) -> Response:
    """Kept for existing monitors and the dashboard: 200 when the broker works, 503 (degraded) when its
    last operation failed (Redis unreachable or failing, or the SQLite chat store failing). Readiness-like:
    point a Kubernetes liveness probe at `/livez`, not here, or a Redis outage restarts healthy pods."""
    broker = gateway.broker.health()
    health = Health(
        status="ok" if broker.ok else "degraded",
        broker=broker,
        connections=gateway.metrics.connections_open,
        auth=gateway.settings.auth_enabled,
        details={"uptime": round(time.time() - gateway.started, 1)},
    )
    return JSONResponse(health.model_dump(), status_code=200 if broker.ok else 503)


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(gateway: GatewayDep) -> Response:
    """200 when every part works (broker, history store), 503 with what does not: for a load balancer
    that should send traffic elsewhere meanwhile. Publishing goes on either way."""
    broker = gateway.broker.health()
    recorder = gateway.recorder
    history = None
    if recorder is not None:
        stats = recorder.stats
        history = HistoryHealth(
            ok=recorder.ok,
            backend=recorder.store.backend,
            detail=stats.error if stats.error else ("" if recorder.ok else "opening"),
            pending=recorder.pending,
            stored=stats.stored,
            dropped=stats.dropped,
            too_old=stats.too_old,
            holes=[
                HistoryHole(channel=hole.channel, first=hole.first, last=hole.last, samples=hole.samples)
                for hole in stats.holes.values()
            ],
        )
    ready = broker.ok and (history is None or history.ok)
    body = Readiness(status="ok" if ready else "degraded", broker=broker, history=history)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(gateway: GatewayDep) -> PlainTextResponse:
    """Prometheus text format; with several workers, the whole gateway's (see ``gateway.worker_board``)."""
    return PlainTextResponse(metrics_text(gateway), media_type="text/plain; version=0.0.4; charset=utf-8")


async def client_gone(request: Request, exc: Exception) -> Response:
    """Handler for ``ClientDisconnect``: a client that left, or was cut off by a deadline, in the middle
    of its body is nobody's error; this answer goes nowhere (uvicorn drops it), and no traceback is logged."""
    log.debug("%s left before the end of its request body", request.client)
    return Response(status_code=400)
