"""Bodies of the HTTP API (``/api/...``, ``/healthz``), shared by the gateway and its HTTP clients."""

from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict

from shared.messages import Pub, StreamPosition

MAX_BATCH = 1000
"""Most payloads one ``POST /api/publish/{channel}`` may carry."""


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class PublishResult(_Body):
    offsets: list[int]
    """One offset per published payload, in the order they were sent."""


class ChannelInfo(_Body):
    name: str
    offset: int
    epoch: str
    subscribers: int
    """Subscribers connected to this gateway process."""
    rate: float
    """Messages published per second, smoothed over the last few seconds."""
    last_published: float = 0.0
    """Unix time of the latest publish (0 when unknown): how recently the channel was active."""


MAX_CHANNEL_PAGE = 1000
"""Most channels one ``GET /api/channels`` returns (``limit``); the default is ``CHANNEL_PAGE``."""
CHANNEL_PAGE = 100
CHANNEL_PREFIX_PATTERN = r"^[A-Za-z0-9_.:-]{0,80}$"
"""What ``prefix=`` may be: the start of a channel name."""


class ChannelList(_Body):
    channels: list[ChannelInfo]
    next: str | None = None
    """Pass as ``cursor`` (same ``prefix`` and ``order``) for the next page; absent on the last one."""


class HistoryPage(_Body):
    channel: str
    offset: int
    """The channel's latest offset."""
    epoch: str
    recovered: bool
    """With ``since``: whether every publication after it is in this page's reach (same epoch, retained)."""
    publications: list[Pub]


class BrokerHealth(_Body):
    ok: bool
    backend: str
    detail: str = ""


class Health(_Body):
    status: Literal["ok", "degraded"]
    broker: BrokerHealth
    connections: int
    auth: bool
    details: dict[str, Any] = {}


class HistoryHole(_Body):
    """Samples of a channel dropped before they could be stored (the store was down too long)."""

    channel: str
    first: float
    last: float
    """Sample times of the oldest and newest dropped, Unix seconds."""
    samples: int


class HistoryHealth(_Body):
    ok: bool
    backend: str
    detail: str = ""
    pending: int
    """Samples waiting to be written."""
    stored: int
    dropped: int
    too_old: int
    """Samples older than the raw retention, never stored."""
    holes: list[HistoryHole]


class Liveness(_Body):
    """``/livez``: whether the gateway process's event loop runs on time (nothing else is asked)."""

    status: Literal["ok", "stalled"]
    loop_lag: float
    """Seconds the loop's timers run late now (or ran late at the latest check)."""
    detail: str = ""


class Readiness(_Body):
    status: Literal["ok", "degraded"]
    broker: BrokerHealth
    history: HistoryHealth | None = None
    """None when history is off."""


class ErrorBody(_Body):
    detail: str


class InfluxErrorBody(_Body):
    """An error of the InfluxDB-compatible write endpoints, shaped as InfluxDB's own."""

    code: str
    """``invalid``, ``unauthorized``, ``forbidden``, ``request too large``, ``too many requests`` or
    ``unavailable``."""
    message: str
    line: int | None = None
    """The number of the line that is not valid (``invalid`` only)."""


class ParameterError(_Body):
    loc: list[str | int]
    """Where the bad value was, such as ``["query", "limit"]``."""
    msg: str
    type: str


class ParameterErrors(_Body):
    """FastAPI's own validation of query parameters and headers (a 422): ``detail`` is a list."""

    detail: list[ParameterError]


class SeriesRange(_Body):
    """One series over a range, one entry per point: a bucket (its start time and aggregates), or with
    ``resolution.bucket == 0`` a raw sample (then min, max, mean and last are its value, count 1)."""

    t: list[float]
    """Bucket start (or sample time), Unix seconds."""
    min: list[float]
    max: list[float]
    """Draw ``min`` to ``max`` as an envelope: every spike in the bucket is inside it."""
    mean: list[float]
    last: list[float]
    """The value of the bucket's latest sample."""
    count: list[int]
    """Samples in the bucket."""


class RangeResolution(_Body):
    tier: Literal["raw", "1s", "1m", "1h"]
    """The finest tier read; parts of the range older than its retention come from coarser ones."""
    bucket: float
    """Seconds per point; 0 when the points are the raw samples themselves."""


class HistoryRange(_Body):
    channel: str
    start: float
    end: float
    """The range read, ``[start, end)``, Unix seconds."""
    resolution: RangeResolution
    position: StreamPosition | None = None
    """The channel's newest stored publication when the range was read (None: nothing stored yet).
    Subscribe with ``since`` set to it to get what came after, with no gap and no duplicate."""
    series: dict[str, SeriesRange]


def websocket_url(gateway_url: str) -> str:
    """The gateway's ``/ws`` for its HTTP URL: ``ws`` for ``http``, ``wss`` for ``https``."""
    parts = urlsplit(gateway_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + "/ws", "", ""))
