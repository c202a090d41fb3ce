"""The gateway's settings: one typed object read from ``PULSE_*`` environment variables."""

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from gateway.auth import DEFAULT_LEEWAY
from shared.channels import NotifyChannelList

KiB = 1024
MiB = 1024 * KiB
DAY = 24 * 3600.0


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PULSE_", env_file=".env", extra="ignore")

    host: str = "127.0.0.1"
    """Where ``python -m gateway`` listens (plain ``uvicorn`` takes ``--host``/``--port`` instead)."""
    port: int = 8000
    workers: Annotated[int, Field(ge=1, le=512)] = 1
    """Processes ``python -m gateway`` serves the port with (``--workers`` overrides it). More than one
    needs a shared broker (``redis://``) and a shared or no history store (``postgresql://``, ``none://``)."""
    worker_dir: Path | None = None
    """Where a gateway's workers share their metrics; ``python -m gateway --workers`` sets it. Set it to
    one empty directory per gateway when another supervisor (``uvicorn --workers``) starts the workers."""
    broker_url: str = "memory://"
    """Which broker backend: ``memory://`` (one process, chat kept in SQLite) is the embedded default;
    ``redis://`` one Redis, ``redis+cluster://host:port[,host:port...]/`` a Redis Cluster."""
    redis_max_connections: Annotated[int, Field(ge=1, le=10_000)] = 50
    """Redis commands one process runs at once (per node on a Cluster); more wait in line."""
    redis_pool_timeout: Annotated[float, Field(gt=0)] = 10.0
    """Seconds a Redis command may wait for a free connection before it fails (503)."""
    data_dir: Path = Path("data")
    """Where the SQLite file with chat and notification history lives (memory broker)."""
    sqlite_fsync: bool = False
    """fsync every chat commit (SQLite ``synchronous=FULL``): survives power loss, costs latency."""
    history_size: Annotated[int, Field(ge=1, le=1_000_000)] = 1000
    """Publications kept per channel for resume and history."""
    history_ttl: Annotated[float, Field(gt=0)] = 24 * 3600.0
    """Seconds a publication stays in a channel's history."""
    client_queue_bytes: Annotated[int, Field(ge=4 * KiB)] = 1 * MiB
    """Outbound bytes a connection may have pending before it is closed as a slow consumer (4001)."""
    gc_threshold: Annotated[int, Field(ge=0)] = 10_000
    """Allocations between the cyclic garbage collector's young-generation runs (Python's own is 700;
    0 keeps it). Ingest allocates several objects per point, and at 700 collection was a third of the
    gateway's time."""
    loop_lag_limit: Annotated[float, Field(gt=0)] = 10.0
    """Seconds the event loop may run late before ``/livez`` answers 503 (``gateway.liveness``)."""
    socket_send_buffer: Annotated[int, Field(ge=0)] = 256 * KiB
    """Kernel send buffer per WebSocket (SO_SNDBUF; 0 leaves the kernel's autotuning, up to 4 MiB on
    Linux). It bounds what a client that stops reading holds in the kernel, in front of its queue."""
    max_message_bytes: Annotated[int, Field(ge=256)] = 64 * KiB
    """Largest client frame; a bigger one closes the connection with 1009."""
    max_body_bytes: Annotated[int, Field(ge=1 * KiB)] = 4 * MiB
    """Largest HTTP publish body; a bigger one is answered with 413."""
    max_connections: Annotated[int, Field(ge=1)] = 10_000
    """WebSocket connections this process admits at once; further handshakes get HTTP 503."""
    max_connections_per_identity: Annotated[int, Field(ge=1)] = 1_000
    """Connections one identity (token ``sub`` or ``name``) may hold at once; further ones get HTTP 503."""
    max_subscriptions: Annotated[int, Field(ge=1)] = 128
    """Channels one connection may subscribe to at once."""
    max_channels: Annotated[int, Field(ge=1)] = 10_000
    """Live channels (every namespace: durable ``chat:``/``notify:`` ones count and stay); a publish that
    would create one more is refused (HTTP 413 / ``too_large``). Subscribing never creates a channel."""
    channel_idle_ttl: Annotated[float, Field(gt=0)] = 3600.0
    """Seconds a ``data:`` channel may go without a publish before it is dropped with its history (and
    frees its place under ``max_channels``); its next publish starts it again in a new epoch."""
    notify_channels: Annotated[NotifyChannelList, NoDecode] = ["notify:alerts"]
    """``notify:`` channels ``/ws/notifications`` (without ``?channel=``) always follows, before the most
    recently active others (comma-separated)."""
    secret: SecretStr | None = None
    """HS256 key for tokens. Unset: the gateway runs open (no auth) and logs a warning."""
    allowed_origins: Annotated[list[str], NoDecode] = []
    """Browser origins allowed to open WebSockets besides the gateway's own (comma-separated, or ``*``)."""
    handshake_timeout: Annotated[float, Field(gt=0)] = 10.0
    """Seconds a connection has to finish a request head (a WebSocket handshake too), from connecting or,
    for a later keep-alive request, from its first byte; then it is closed (408 if it had started one)."""
    max_header_bytes: Annotated[int, Field(ge=1 * KiB)] = 16 * KiB
    """Largest request head (request line and headers); a bigger one gets HTTP 431."""
    body_timeout: Annotated[float, Field(gt=0)] = 30.0
    """Seconds a request has from the end of its head to the last byte of its body; then it gets HTTP 408
    and the connection is closed."""
    max_http_connections: Annotated[int, Field(ge=1)] = 1_000
    """HTTP connections this process holds open at once (WebSocket handshakes until they are upgraded
    too); a further one is answered HTTP 503 and closed. Upgraded WebSockets count only toward
    ``max_connections``."""
    auth_timeout: Annotated[float, Field(gt=0)] = 10.0
    """Seconds a connection has to send its ``auth`` op when auth is on."""
    client_rate: Annotated[float, Field(gt=0)] = 100.0
    """Ops per second one connection may send (token bucket)."""
    client_burst: Annotated[int, Field(ge=1)] = 200
    """Ops one connection may send in a burst above ``client_rate``."""
    direct_rate: Annotated[float, Field(gt=0)] = 32 * KiB
    """Bytes per second of ``direct`` messages one identity may send from this process, all its
    connections together (token bucket; over it the op gets ``rate_limited``)."""
    direct_burst: Annotated[int, Field(ge=1 * KiB)] = 128 * KiB
    """Bytes of ``direct`` messages one identity may send in a burst above ``direct_rate``; a single
    direct message bigger than this (or than ``direct_queue_bytes``) gets ``too_large``."""
    direct_queue_bytes: Annotated[int, Field(ge=1 * KiB)] = 256 * KiB
    """Bytes of ``direct`` messages that may wait in one target connection's queue, from every sender
    together; over it a direct message is refused (``rate_limited``), never counted toward the target's
    ``client_queue_bytes``, so direct messages cannot close anyone as a slow consumer."""
    http_publish_rate: Annotated[float, Field(ge=0)] = 50_000.0
    """Points per second one identity (token ``sub``, else client address) may publish over HTTP; over it
    ``POST /api/publish`` answers 429 with ``Retry-After``. 0 turns the limit off."""
    http_publish_burst: Annotated[int, Field(ge=1)] = 100_000
    """Points one identity may publish over HTTP in a burst above ``http_publish_rate``. A request is let
    in while the identity has any points left and charged in full (a batch is never split)."""
    batch_frames: bool = True
    """Pack what is pending for a connection into one JSON-array frame (off: one frame per message)."""
    ws_ping_interval: Annotated[float, Field(gt=0)] = 20.0
    ws_ping_timeout: Annotated[float, Field(gt=0)] = 20.0
    ws_per_message_deflate: bool = False
    """permessage-deflate for ``python -m gateway``: costs CPU and ~33 KB per connection, so off."""
    history_url: str = "duckdb://"
    """Where ``data:`` samples are kept for range reads: ``duckdb://`` (a file under ``data_dir``),
    ``duckdb:///path.duckdb``, ``postgresql://...`` (shared by several gateways) or ``none://``."""
    history_flush_interval: Annotated[float, Field(gt=0, le=60)] = 1.0
    """Seconds between writes of the gathered samples; at most this much is lost on ``kill -9``."""
    history_writer_nice: Annotated[int, Field(ge=0, le=19)] = 19
    """Scheduling niceness of the store's writer thread (Linux): at 19 it takes only CPU time that fan-out
    leaves idle, so a busy gateway delays its history writes (held, then dropped past ``max_pending``)
    rather than its subscribers; 0 gives it the event loop's share."""
    history_max_pending: Annotated[int, Field(ge=1000)] = 2_000_000
    """Samples held for the store while it is slow or down (about 100 bytes each); the oldest beyond are
    dropped, counted and reported on ``/readyz`` as a hole."""
    history_raw_retention: Annotated[float, Field(gt=0)] = 2 * DAY
    """Seconds raw samples are kept (older samples are not stored at all)."""
    history_1s_retention: Annotated[float, Field(gt=0)] = 8 * DAY
    """Seconds per-second rollups (min, max, sum, count, last) are kept."""
    history_1m_retention: Annotated[float, Field(gt=0)] = 90 * DAY
    history_1h_retention: Annotated[float, Field(gt=0)] = 730 * DAY
    history_max_points: Annotated[int, Field(ge=10, le=100_000)] = 10_000
    """Most points per series one range read may ask for."""
    log_level: str = "info"
    access_log: bool = False
    """uvicorn's line per HTTP request (``python -m gateway``): off, since publishers post many per second."""
    log_format: Literal["text", "json"] = "text"
    """``json``: one JSON object per line (time, level, logger, message and the record's fields) for the
    gateway's logs and uvicorn's, for a log shipper; ``text``: lines for a person."""
    shutdown_grace: Annotated[int, Field(ge=0)] = 10
    """Seconds ``python -m gateway`` lets open requests and connections finish on SIGTERM before it
    closes them."""
    jwt_leeway: Annotated[float, Field(ge=0, le=600)] = DEFAULT_LEEWAY
    """Seconds a token's ``exp`` (and ``iat``/``nbf``) may be off, for clocks that disagree between the
    host that minted it and the gateway."""

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip().rstrip("/") for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("secret")
    @classmethod
    def _refuse_weak_secret(cls, value: SecretStr | None) -> SecretStr | None:
        # HS256 with a short key can be brute-forced offline from any token; RFC 7518 asks for >= 256 bits.
        if value is not None and value.get_secret_value() and len(value.get_secret_value().encode()) < 32:
            raise ValueError(
                "PULSE_SECRET must be at least 32 bytes; make one with: python -m gateway.tokens --new-secret"
            )
        return value

    @property
    def auth_enabled(self) -> bool:
        return self.secret is not None and bool(self.secret.get_secret_value())

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "pulseboard.db"


@lru_cache
def get_settings() -> Settings:
    return Settings()


def redacted(url: str) -> str:
    """``url`` with any password replaced by ``***``, for logs (a Redis URL may carry one)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
