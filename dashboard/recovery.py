"""Filling a gap over HTTP after a resume answered ``recovered: false`` (docs/protocol.md §11, step 5).

Nothing was replayed on the socket; everything above the ``subscribed`` offset arrives live. What came before
it is read from ``GET /api/channels/{channel}/history``:

- same epoch (the gap was over the replay budget): page forward from our offset, so nothing is lost;
- another epoch (the gateway restarted and kept no ``data:`` history), or the gap is no longer retained:
  reload the newest ``limit`` publications of the new epoch; the points in between are gone for good.
"""

import logging

import httpx
from pydantic import ValidationError

from dashboard.ingest import apply_history
from dashboard.session_buffer import SessionBuffer
from shared.api import HistoryPage
from shared.messages import StreamPosition

log = logging.getLogger(__name__)

MAX_PAGES = 100
"""A bound on paging, so a channel published faster than we can read never keeps us here."""


class HistoryUnavailableError(Exception):
    """The history endpoint did not answer with a page."""


async def fetch_history(
    http: httpx.AsyncClient, channel: str, *, limit: int, since: StreamPosition | None = None
) -> HistoryPage:
    params: dict[str, str | int] = {"limit": limit}
    if since is not None:
        params.update(since=since.offset, epoch=since.epoch)
    try:
        response = await http.get(f"/api/channels/{channel}/history", params=params)
    except httpx.HTTPError as exc:
        raise HistoryUnavailableError(f"{type(exc).__name__}: {exc}") from None
    if response.status_code != 200:
        raise HistoryUnavailableError(f"HTTP {response.status_code}: {response.text[:200]}")
    try:
        return HistoryPage.model_validate_json(response.content)
    except ValidationError as exc:
        raise HistoryUnavailableError(f"not a history page: {exc.error_count()} errors") from None


async def fill_gap(
    http: httpx.AsyncClient,
    buffer: SessionBuffer,
    channel: str,
    ours: StreamPosition,
    now: StreamPosition,
    *,
    limit: int,
    received_at: float,
) -> bool:
    """Load what the socket did not replay; True when the gap was filled completely.

    ``now`` is where the gateway's ``subscribed`` put the channel: only publications up to it are kept,
    the later ones come over the socket. Afterwards the channel's position is ``now``, so live
    publications follow on.
    """
    upto, epoch = now.offset, now.epoch

    async def page_forward() -> bool:
        since = ours
        for _ in range(MAX_PAGES):
            if since.offset >= upto:
                return True
            page = await fetch_history(http, channel, limit=limit, since=since)
            if not page.recovered or page.epoch != epoch:
                return False
            kept = [pub for pub in page.publications if pub.offset <= upto]
            if not kept:
                return False
            apply_history(buffer, channel, kept, received_at)
            since = StreamPosition(offset=kept[-1].offset, epoch=epoch)
        return False

    complete = False
    try:
        complete = ours.epoch == epoch and await page_forward()
        if not complete:
            page = await fetch_history(http, channel, limit=limit)
            kept = [pub for pub in page.publications if pub.epoch == epoch and pub.offset <= upto]
            apply_history(buffer, channel, kept, received_at)
    except HistoryUnavailableError as exc:
        log.warning("could not reload the history of %s: %s", channel, exc)
        complete = False
    buffer.set_position(channel, upto, epoch)
    return complete
