"""The run loop: sample the data sources on schedule, queue chat posts and alerts, publish, repeat.

Points are sampled on a fixed schedule (point ``i`` at ``start + i / rate``) and carry that time as
``ts``, so their timestamps are evenly spaced whether they are sent one by one or in batches, and a run of
``--duration d`` produces exactly ``ceil(d * rate)`` points per channel. One thread does everything: all
requests go to one gateway, so when it is slow or down, more concurrency would only pile up more
failures. While the gateway is down the loop keeps sampling (so the data stays current when it comes
back), retries with backoff and drops the oldest points beyond ``BACKLOG_SECONDS``.
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from pulseboard.gateway_api import Failed, GatewayAPI, Rejected
from pulseboard.outbox import Outbox, send
from shared.api import MAX_BATCH
from shared.backoff import Backoff
from shared.channels import Channel, Namespace
from simulator.alerts import AlertWatcher
from simulator.chatbot import BOT_NAME, CHAT_CHANNEL, ChatBot
from simulator.progress import Progress, Stats
from simulator.sources import DataSource, build_sources, rng_factory

ALERT_CHANNEL = Channel(Namespace.NOTIFY, "alerts")
BACKLOG_SECONDS = 10.0
"""Seconds of data kept per channel while the gateway cannot take it."""
MAX_NAP = 0.05
"""Longest sleep, so a stop request or a due chat post never waits long."""
RARE_PAYLOAD_BACKLOG = 100
"""Chat posts and alerts kept while the gateway is down."""


@dataclass(frozen=True, slots=True)
class RunConfig:
    rate: float
    """Data points per second per channel."""
    channels: int
    duration: float
    """Seconds; 0 runs until stopped."""
    batch: int
    chat: bool = True
    seed: int | None = None
    chat_interval: float = 5.0


class AuthRefusedError(Exception):
    """The gateway answered 401: the token is missing, invalid or expired; retrying cannot help."""


class Simulation:
    def __init__(
        self, config: RunConfig, api: GatewayAPI, progress: Progress, should_stop: Callable[[], bool]
    ) -> None:
        self._config = config
        self._api = api
        self._progress = progress
        self._should_stop = should_stop
        self.stats = Stats()
        self._sources = build_sources(config.channels, config.seed)
        backlog = max(4 * config.batch, math.ceil(config.rate * BACKLOG_SECONDS))
        self._data_outboxes = [
            Outbox(source.channel, batch_size=config.batch, limit=backlog, wait_for_full_batch=True)
            for source in self._sources
        ]
        self._chat_outbox = Outbox(
            CHAT_CHANNEL,
            batch_size=MAX_BATCH,
            limit=RARE_PAYLOAD_BACKLOG,
            wait_for_full_batch=False,
            params={"name": BOT_NAME},
        )
        self._alert_outbox = Outbox(
            ALERT_CHANNEL, batch_size=MAX_BATCH, limit=RARE_PAYLOAD_BACKLOG, wait_for_full_batch=False
        )
        self._outboxes = [*self._data_outboxes, self._chat_outbox, self._alert_outbox]
        self._backlog_points = backlog
        self._watcher = AlertWatcher()
        self._chatbot = (
            ChatBot(
                self._sources,
                rng_factory(config.seed)("chat"),
                rate=config.rate,
                interval=config.chat_interval,
            )
            if config.chat
            else None
        )
        self._backoff = Backoff()
        self._reported_rejections: set[tuple[int, str]] = set()

    # --- producing ------------------------------------------------------------------------------

    def _sample(self, first: int, due: int, wall_start: float, now: float) -> int:
        """Sample points ``first`` to ``due - 1`` into the outboxes; return the next index to sample."""
        if due - first > self._backlog_points:
            # Blocked for longer than the backlog holds (a hung request): those points could not be
            # kept anyway, so skip them rather than compute them only to drop them.
            skipped = due - first - self._backlog_points
            self.stats.dropped += skipped * len(self._sources)
            first += skipped
        dt = 1.0 / self._config.rate
        for index in range(first, due):
            ts = wall_start + index * dt
            for source, outbox in zip(self._sources, self._data_outboxes, strict=True):
                self.stats.dropped += outbox.add(source.sample(ts, dt))
                self._watch(str(source.channel), source, now)
        return max(first, due)

    def _watch(self, channel: str, source: DataSource, now: float) -> None:
        for series in source.series:
            if series.thresholds is None:
                continue
            alert = self._watcher.observe(
                channel, series.name, source.latest[series.name], series.thresholds, now, series.unit
            )
            if alert is not None:
                self.stats.dropped += self._alert_outbox.add(alert)

    # --- sending --------------------------------------------------------------------------------

    def _count_published(self, outbox: Outbox, count: int) -> None:
        self.stats.published += count
        if outbox is self._chat_outbox:
            self.stats.chats += count
        elif outbox is self._alert_outbox:
            self.stats.alerts += count
        else:
            self.stats.points += count

    def _report_rejection(self, outbox: Outbox, count: int, status: int, detail: str) -> None:
        if (status, detail) in self._reported_rejections:
            return
        self._reported_rejections.add((status, detail))
        hint = " (the token must allow publishing there)" if status == 403 else ""
        self._progress.message(
            f"gateway rejected {count} payload(s) for {outbox.channel} with {status}: {detail}{hint}; "
            "repeats are counted, not shown"
        )

    def _send(self, outbox: Outbox) -> bool:
        """Send the outbox's batch; False when the gateway could not be reached (it stays for a retry)."""
        sent = send(self._api, outbox, self._backoff)
        self.stats.requests += 1
        if sent.news is not None:
            self._progress.message(sent.news)
        outcome = sent.outcome
        if isinstance(outcome, Failed):
            self.stats.errors += 1
            return False
        if isinstance(outcome, Rejected):
            if outcome.status == 401:
                raise AuthRefusedError(outcome.detail)
            self.stats.errors += 1
            self.stats.dropped += len(sent.batch)
            self._report_rejection(outbox, len(sent.batch), outcome.status, outcome.detail)
        else:
            self._count_published(outbox, len(outcome.offsets))
        return True

    def _send_round(self, now: float) -> bool:
        """Send at most one batch per outbox; True when anything was sent."""
        if not self._backoff.ready(now):
            return False
        sent = False
        for outbox in self._outboxes:
            if outbox.next_batch() is None:
                continue
            sent = True
            if not self._send(outbox):
                break
        return sent

    def _flush(self) -> None:
        """Send what is left, once; with the gateway down it stays unsent (the user asked to stop)."""
        if not self._backoff.in_outage:
            self._send_everything()
        self.stats.dropped += sum(outbox.unsent for outbox in self._outboxes)

    def _send_everything(self) -> None:
        for outbox in self._outboxes:
            while outbox.next_batch(flush=True) is not None:
                if not self._send(outbox):
                    return

    def _status(self, now: float) -> str:
        if self._backoff.in_outage:
            return f"gateway unreachable, next try in {max(0.0, self._backoff.until - now):.1f}s"
        return ""

    # --- the loop -------------------------------------------------------------------------------

    def run(self) -> Stats:
        """Run until the duration is over or ``should_stop`` says so; return what happened."""
        config = self._config
        start = time.monotonic()
        wall_start = time.time()
        self.stats.started = start
        # The epsilon keeps 0.1 s * 30/s at 3 points, not 4 (float products land a hair above).
        total = math.ceil(config.duration * config.rate - 1e-9) if config.duration > 0 else None
        next_index = 0
        while True:
            now = time.monotonic()
            ending = self._should_stop() or (config.duration > 0 and now - start >= config.duration)
            due = math.floor((now - start) * config.rate) + 1
            if total is not None:
                due = min(due, total)
            next_index = self._sample(next_index, due, wall_start, now)
            if ending:
                break
            if self._chatbot is not None and (post := self._chatbot.due(now)) is not None:
                self.stats.dropped += self._chat_outbox.add(post)
            sent = self._send_round(now)
            self._progress.tick(self.stats, time.monotonic(), self._status(now))
            if not sent:
                next_sample = start + next_index / config.rate
                time.sleep(min(MAX_NAP, max(0.0, next_sample - time.monotonic())))
        self._flush()
        return self.stats
