"""``GET /api/channels/{channel}/range``: a ``data:`` channel's stored samples over any time range, in at
most ``points`` buckets per series, read from the coarsest tier that still gives that many."""

import math
import time
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from gateway.api_http import FORBIDDEN, UNAUTHORIZED, ChannelPath, grant_for, parse_channel
from gateway.deps import AuthorizationDep, GatewayDep
from gateway.history import StoreError
from gateway.history.base import RangeResult
from gateway.history.tiers import MICROS
from shared.api import ErrorBody, HistoryRange, ParameterErrors, RangeResolution, SeriesRange
from shared.channels import Namespace

router = APIRouter()

DEFAULT_SPAN = 3600.0
DEFAULT_POINTS = 2000
MAX_SERIES = 64
"""Series one range read may name (the gateway accepts up to 256 per point)."""

_RANGE_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {
        "model": ErrorBody,
        "description": "Not a data: channel, start not before end, or a span over the limit",
    },
    401: UNAUTHORIZED,
    403: FORBIDDEN,
    404: {
        "model": ErrorBody,
        "description": "History is off (PULSE_HISTORY_URL=none://), or an unknown series",
    },
    422: {
        "model": ParameterErrors,
        "description": "A parameter FastAPI refused (`points` out of range, say)",
    },
    503: {"model": ErrorBody, "description": "The history store is down; retrying later may work"},
}


def _finite(value: float | None, name: str) -> None:
    if value is not None and not math.isfinite(value):
        raise HTTPException(400, f"`{name}` must be a finite number of seconds")


@router.get("/api/channels/{channel:anytext}/range", response_model=HistoryRange, responses=_RANGE_ERRORS)
async def channel_range(
    channel: ChannelPath,
    gateway: GatewayDep,
    authorization: AuthorizationDep,
    start: Annotated[float | None, Query(description="Unix seconds; default `end` less one hour")] = None,
    end: Annotated[float | None, Query(description="Unix seconds, exclusive; default now")] = None,
    series: Annotated[
        list[str] | None, Query(description="Series to read (repeat the parameter); default all of them")
    ] = None,
    points: Annotated[
        int | None,
        Query(
            ge=1,
            le=100_000,
            description="Most points per series (default 2000, at most PULSE_HISTORY_MAX_POINTS)",
        ),
    ] = None,
) -> HistoryRange:
    """Stored samples of a `data:` channel over `[start, end)`: per series, one entry per bucket with the
    min/max envelope, mean, last and count (or the raw samples, when they are few enough), the resolution
    read, and the newest stored publication's position to subscribe from with `since`."""
    target = parse_channel(channel)
    if not grant_for(gateway, authorization).may_subscribe(channel):
        raise HTTPException(403, f"your token does not allow reading {channel}")
    if target.namespace is not Namespace.DATA:
        raise HTTPException(400, f"only data: channels have a time range; {channel} is not one")
    recorder = gateway.recorder
    if recorder is None:
        raise HTTPException(404, "history is off on this gateway (PULSE_HISTORY_URL=none://)")
    settings = gateway.settings
    if points is None:
        points = min(DEFAULT_POINTS, settings.history_max_points)
    if points > settings.history_max_points:
        raise HTTPException(400, f"`points` over the limit of {settings.history_max_points}")
    _finite(start, "start")
    _finite(end, "end")
    end = time.time() if end is None else end
    start = end - DEFAULT_SPAN if start is None else start
    if start >= end:
        raise HTTPException(400, "`start` must be before `end`")
    longest = max(tier.retention for tier in recorder.store.tiers) / MICROS
    if end - start > longest:
        raise HTTPException(
            400, f"a span over {longest:g} seconds (the longest retention) holds nothing more"
        )
    if series is not None and len(series) > MAX_SERIES:
        raise HTTPException(400, f"at most {MAX_SERIES} series per read")
    try:
        known, result = await recorder.query(str(target), series, start, end, points)
    except StoreError as exc:
        raise HTTPException(503, f"the history store is unavailable: {exc}") from None
    unknown = sorted(set(series or ()) - set(known))
    if unknown:
        raise HTTPException(
            404, f"unknown series {', '.join(unknown)} in {channel}; it has: {', '.join(known)}"
        )
    return _body(str(target), start, end, result)


def _body(channel: str, start: float, end: float, result: RangeResult) -> HistoryRange:
    return HistoryRange(
        channel=channel,
        start=start,
        end=end,
        resolution=RangeResolution(tier=result.tier.name, bucket=result.width / MICROS),
        position=result.position,
        series={
            name: SeriesRange(
                t=(buckets.time / MICROS).tolist(),
                min=buckets.min.tolist(),
                max=buckets.max.tolist(),
                mean=buckets.mean.tolist(),
                last=buckets.last.tolist(),
                count=buckets.count.tolist(),
            )
            for name, buckets in result.series.items()
        },
    )
