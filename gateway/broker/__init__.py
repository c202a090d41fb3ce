"""Broker backends behind one seam, chosen by URL scheme (``memory://``, ``redis://``, ``redis+cluster://``)."""

from urllib.parse import urlsplit

from gateway.broker.base import Broker, BrokerHandler, Direct, HistoryResult, Publication, PublishError
from gateway.settings import Settings

__all__ = ["Broker", "BrokerHandler", "Direct", "HistoryResult", "Publication", "PublishError", "make_broker"]


def make_broker(settings: Settings) -> Broker:
    scheme = urlsplit(settings.broker_url).scheme
    if scheme == "memory":
        # Imported lazily so a backend's dependencies load only when it is chosen.
        from gateway.broker.memory import MemoryBroker
        from gateway.store import DurableStore

        return MemoryBroker(
            history_size=settings.history_size,
            history_ttl=settings.history_ttl,
            store=DurableStore(settings.sqlite_path, keep=settings.history_size, fsync=settings.sqlite_fsync),
            max_channels=settings.max_channels,
            idle_ttl=settings.channel_idle_ttl,
        )
    if scheme in ("redis", "rediss", "redis+cluster", "rediss+cluster"):
        from gateway.broker.redis import RedisBroker

        return RedisBroker(
            settings.broker_url,
            history_size=settings.history_size,
            history_ttl=settings.history_ttl,
            max_channels=settings.max_channels,
            idle_ttl=settings.channel_idle_ttl,
            max_connections=settings.redis_max_connections,
            pool_timeout=settings.redis_pool_timeout,
        )
    raise ValueError(
        f"PULSE_BROKER_URL={settings.broker_url!r}: unsupported scheme {scheme!r}; use memory://, "
        "redis:// (rediss://) or redis+cluster:// (rediss+cluster://)"
    )
