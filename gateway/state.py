"""The running gateway's parts, assembled once at startup and shared by every route."""

import time
from dataclasses import dataclass, field

from gateway.broker import Broker
from gateway.hub import Hub
from gateway.metrics import Metrics
from gateway.settings import Settings


@dataclass
class Gateway:
    settings: Settings
    broker: Broker
    hub: Hub
    metrics: Metrics
    started: float = field(default_factory=time.time)
