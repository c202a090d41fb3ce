"""The MQTT bridge's settings: one typed object from ``PULSE_*`` environment variables (and ``.env``)."""

from functools import lru_cache

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class BridgeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PULSE_", env_file=".env", extra="ignore")

    mqtt_url: str = "mqtt://127.0.0.1:1883"
    """The MQTT broker: ``mqtt://[user:password@]host[:port]`` (``mqtts://`` for TLS)."""
    mqtt_routes: str = ""
    """``TOPIC_FILTER=data:CHANNEL`` routes separated by ``;`` (see ``bridge.routes``)."""
    mqtt_client_id: str = ""
    """The MQTT client id; empty: a random one."""
    gateway_url: str = "http://127.0.0.1:8000"
    token: SecretStr | None = None
    """A token allowed to publish to the routes' channels, for a gateway with auth on."""
    mqtt_flush_interval: float = 0.1
    """Seconds a point may wait for others to share its request: what arrives meanwhile goes as one batch
    per channel (the publisher's ``linger``)."""
    mqtt_backlog: int = 100_000
    """Points a channel may hold while the gateway is unreachable; the oldest beyond are dropped."""


@lru_cache
def get_settings() -> BridgeSettings:
    return BridgeSettings()
