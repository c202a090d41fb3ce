"""The running gateway's parts, assembled once at startup and shared by every route."""

import time
from collections import Counter
from dataclasses import dataclass, field

from gateway.broker import Broker
from gateway.history import Recorder
from gateway.hub import Hub
from gateway.metrics import Metrics
from gateway.settings import Settings


@dataclass
class Gateway:
    settings: Settings
    broker: Broker
    hub: Hub
    metrics: Metrics
    recorder: Recorder | None = None
    """Keeps ``data:`` samples in the history store; None when history is off."""
    started: float = field(default_factory=time.time)
    admitted: int = 0
    """WebSockets admitted and not yet closed, counted from before the accept (the connection cap)."""
    identities: Counter[str] = field(default_factory=Counter)
    """Admitted WebSockets per identity (the per-identity cap)."""
