"""Read a ``data:`` channel's stored history over any time range (``GET /api/channels/{channel}/range``):
what fills a ``Gap`` a subscriber reported, or opens a chart."""

from collections.abc import Sequence

import httpx

from pulseboard.gateway_api import error_detail
from shared.api import HistoryRange


class RangeError(Exception):
    """The gateway did not answer the range read (the status and its detail say why)."""


async def read_range(
    http: httpx.AsyncClient,
    channel: str,
    start: float,
    end: float,
    *,
    points: int | None = None,
    series: Sequence[str] = (),
) -> HistoryRange:
    """``channel`` over ``[start, end)`` (Unix seconds) in at most ``points`` buckets per series, through
    ``http`` (its ``base_url`` the gateway's, its headers the token's)."""
    params: dict[str, str | float | int | list[str]] = {"start": start, "end": end}
    if points is not None:
        params["points"] = points
    if series:
        params["series"] = list(series)
    response = await http.get(f"/api/channels/{channel}/range", params=params)
    if response.status_code != 200:
        raise RangeError(f"range of {channel}: HTTP {response.status_code}: {error_detail(response)}")
    return HistoryRange.model_validate_json(response.content)
