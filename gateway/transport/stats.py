"""What the transport refused or fell back on in this process, read by ``/metrics``."""

from dataclasses import dataclass


@dataclass
class TransportStats:
    timeouts: int = 0
    """Connections closed because their request head was not complete in time."""
    oversized: int = 0
    """Request heads refused with 431 for passing ``PULSE_MAX_HEADER_BYTES``."""
    bad_upgrades: int = 0
    """WebSocket upgrade requests websockets could not parse or accept, answered instead of left hanging."""
    http_connections: int = 0
    """HTTP connections open now, against ``PULSE_MAX_HTTP_CONNECTIONS`` (upgraded ones not counted)."""
    portable_connections: int = 0
    """WebSocket connections served through ASGI ``send`` because the server offered no direct writes."""
    missing_capabilities: int = 0
    """Capabilities of the server underneath found missing (at startup or first use): each switched a
    feature to its portable path, with a WARNING."""


stats = TransportStats()
