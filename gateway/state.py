"""The running gateway's parts, assembled once at startup and shared by every route."""

import time
from collections import Counter
from dataclasses import dataclass, field

from gateway.broker import Broker
from gateway.history import Recorder
from gateway.hub import Hub
from gateway.liveness import LoopWatchdog
from gateway.metrics import Metrics
from gateway.ratelimit import KeyedBuckets
from gateway.session.membership import MembershipHook
from gateway.session.subscriptions import Subscriptions
from gateway.settings import Settings
from gateway.worker_board import WorkerBoard
from shared.channels import Namespace


@dataclass
class Gateway:
    settings: Settings
    broker: Broker
    hub: Hub
    metrics: Metrics
    recorder: Recorder | None = None
    """Keeps ``data:`` samples in the history store; None when history is off."""
    membership: dict[Namespace, MembershipHook] = field(default_factory=dict)
    """Hooks told of joins and leaves in a namespace's channels (chat announces them)."""
    board: WorkerBoard | None = None
    """Where this gateway's workers share their metrics; None for a gateway of one process."""
    started: float = field(default_factory=time.time)
    admitted: int = 0
    """WebSockets admitted and not yet closed, counted from before the accept (the connection cap)."""
    identities: Counter[str] = field(default_factory=Counter)
    """Admitted WebSockets per identity (the per-identity cap)."""
    subscriptions: Subscriptions = field(init=False)
    direct_senders: KeyedBuckets = field(init=False)
    """Characters of direct messages per sending identity, all its connections here together."""
    http_publishers: KeyedBuckets = field(init=False)
    """Points published over HTTP per identity (token ``sub``, else client address)."""
    watchdog: LoopWatchdog = field(init=False)
    """Measures the event loop's lag, for ``/livez``; started with the app."""

    def __post_init__(self) -> None:
        settings = self.settings
        self.subscriptions = Subscriptions(
            self.hub, self.broker, max_per_connection=settings.max_subscriptions, membership=self.membership
        )
        self.direct_senders = KeyedBuckets(settings.direct_rate, settings.direct_burst)
        self.http_publishers = KeyedBuckets(settings.http_publish_rate, settings.http_publish_burst)
        self.watchdog = LoopWatchdog(settings.loop_lag_limit)
