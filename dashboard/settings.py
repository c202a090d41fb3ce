"""The dashboard's settings: one typed object read from ``PULSE_*`` environment variables."""

from functools import lru_cache
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from dashboard.channel_buffer import DEFAULT_MAX_POINTS
from dashboard.ranges import DEFAULT_POINTS as DEFAULT_RANGE_POINTS
from dashboard.ranges import DEFAULT_REFRESH as DEFAULT_RANGE_REFRESH
from shared.api import websocket_url
from shared.channels import NAME_PATTERN, ChatChannelList, WatchedChannelList
from shared.messages import MAX_HISTORY_REQUEST


class DashboardSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PULSE_", env_file=".env", extra="ignore")

    gateway_url: str = "http://127.0.0.1:8000"
    """The gateway's HTTP address; the WebSocket is ``/ws`` on the same host (``ws://`` or ``wss://``)."""
    token: SecretStr | None = None
    """Bearer token for a gateway with auth on (``python -m gateway.tokens``); sent as a header only."""
    dashboard_name: Annotated[str, Field(pattern=f"^{NAME_PATTERN}$")] = "dashboard"
    """Chat identity when there is no token (with a token, the gateway uses its ``sub``)."""
    dashboard_rooms: Annotated[ChatChannelList, NoDecode] = ["chat:lobby"]
    """Chat rooms every session joins (comma-separated ``chat:`` channels); users can join more."""
    dashboard_channels: Annotated[WatchedChannelList, NoDecode] = [
        "data:cpu",
        "data:network",
        "data:sensors",
        "notify:alerts",
    ]
    """``data:`` and ``notify:`` channels every session subscribes to first (comma-separated); then the
    most recently active others, up to ``MAX_AUTO_CHANNELS``; users can pick any other one."""
    dashboard_max_points: Annotated[int, Field(ge=100, le=10_000_000)] = DEFAULT_MAX_POINTS
    """Points kept per series in each session's buffer (16 bytes each)."""
    dashboard_max_age: Annotated[float, Field(gt=0)] = 6 * 3600.0
    """Seconds a point stays in a session's buffer."""
    dashboard_refresh: Annotated[float, Field(ge=0.2, le=60)] = 1.0
    """Seconds between redraws of the live parts of a page (charts, chat log, status)."""
    dashboard_history: Annotated[int, Field(ge=0, le=MAX_HISTORY_REQUEST)] = 1000
    """Publications of each ``data:`` channel loaded when a session first subscribes to it: the recent
    part the live points join on to (the charts' history comes from the range API)."""
    dashboard_range_points: Annotated[int, Field(ge=100, le=10_000)] = DEFAULT_RANGE_POINTS
    """Points per series a chart asks the range API for (about a wide chart's width in pixels; at most
    the gateway's ``PULSE_HISTORY_MAX_POINTS``)."""
    dashboard_range_refresh: Annotated[float, Field(ge=1, le=3600)] = DEFAULT_RANGE_REFRESH
    """Seconds a session uses a chart's range read before reading it again (sooner after a gap or a
    gateway restart); live points are added on every redraw in between."""
    dashboard_chat_history: Annotated[int, Field(ge=0, le=MAX_HISTORY_REQUEST)] = 100
    """Messages of a chat room (and notifications) loaded when a session joins it."""
    dashboard_discover_interval: Annotated[float, Field(ge=0.5)] = 5.0
    """Seconds between looks at ``/api/channels`` for new ``data:`` and ``notify:`` channels."""
    dashboard_send_timeout: Annotated[float, Field(gt=0, le=60)] = 5.0
    """Seconds a chat send waits for the gateway's ack before it is reported as failed."""
    dashboard_address: str = "127.0.0.1"
    """Where ``pulse-dashboard`` listens: loopback only unless set (``0.0.0.0`` for every interface)."""
    dashboard_port: Annotated[int, Field(ge=0, le=65535)] = 8501
    """``pulse-dashboard``'s port."""
    dashboard_file: str = ""
    """Path of the dashboard file (YAML, ``dashboard.board``): the Live page's rows of panels. Empty: no
    file, one chart per channel. Read on every redraw, so an edit shows without a restart."""

    dashboard_chat: Literal["auto", "on", "off"] = "auto"
    """Whether viewers may post chat. Every post goes out under the dashboard's identity (``PULSE_TOKEN``'s
    ``sub``), whoever reaches the page, so ``auto`` shows the prompt only without a token (auth off, where
    anyone may chat anyway); with a token the Chat page is read-only. ``on``: viewers post as the token's
    identity (behind a login you trust); ``off``: read-only always."""

    @field_validator("gateway_url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"expected http(s)://host[:port], got {url!r}")
        return url.rstrip("/")

    @field_validator("dashboard_file")
    @classmethod
    def _strip_path(cls, path: str) -> str:
        return path.strip()

    @property
    def ws_url(self) -> str:
        """``/ws`` on the gateway, with ``ws`` for ``http`` and ``wss`` for ``https``."""
        return websocket_url(self.gateway_url)

    @property
    def token_value(self) -> str | None:
        return self.token.get_secret_value() if self.token else None

    @property
    def chat_enabled(self) -> bool:
        """Whether the Chat page takes posts (``dashboard_chat``; ``auto``: only without a token)."""
        if self.dashboard_chat == "auto":
            return self.token_value is None
        return self.dashboard_chat == "on"


@lru_cache
def get_settings() -> DashboardSettings:
    return DashboardSettings()
