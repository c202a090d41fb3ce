"""The simulator's settings: one typed object read from ``PULSE_*`` environment variables and ``.env``.

Each is the default of a command-line flag (``simulator.cli``); a flag given overrides it. The gateway's
address and token are the same variables the dashboard and the bridge read, so one ``.env`` serves all.
"""

from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.api import MAX_BATCH

DEFAULT_GATEWAY = "http://127.0.0.1:8000"


class SimulatorSettings(BaseSettings):
    # Empty variables count as unset, as ``os.environ.get(...) or default`` did before: an exported but
    # empty PULSE_TOKEN means no token, not an empty one.
    model_config = SettingsConfigDict(
        env_prefix="PULSE_", env_file=".env", extra="ignore", env_ignore_empty=True
    )

    gateway_url: str = DEFAULT_GATEWAY
    """The gateway's base URL (``--gateway``)."""
    token: SecretStr | None = None
    """Bearer token for a gateway with auth on (``--token``)."""
    simulator_rate: Annotated[float, Field(ge=0.01)] = 10.0
    """Data points per second per channel (``--rate``)."""
    simulator_channels: Annotated[int, Field(ge=1, le=1000)] = 3
    """Data channels to fill (``--channels``)."""
    simulator_duration: Annotated[float, Field(ge=0)] = 0.0
    """Seconds to run; 0 runs until Ctrl-C (``--duration``)."""
    simulator_batch: Annotated[int, Field(ge=1, le=MAX_BATCH)] = 1
    """Data points per request per channel (``--batch``)."""
    simulator_chat: bool = True
    """Let a bot post to ``chat:lobby`` every few seconds (``--chat``/``--no-chat``)."""
    simulator_seed: int | None = None
    """Seed for reproducible data (``--seed``)."""
    simulator_wait: Annotated[float, Field(ge=0)] = 0.0
    """Seconds to keep trying ``GET /healthz`` at start (``--wait``)."""

    @field_validator("gateway_url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"must be an http:// or https:// URL, got {url!r}")
        return url.rstrip("/")

    @property
    def token_value(self) -> str | None:
        return self.token.get_secret_value() if self.token else None
