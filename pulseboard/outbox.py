"""Payloads waiting to be published on one channel, the batch on its way, and the step that sends it.

A batch keeps its idempotency key until the gateway answers: when a request fails after the gateway
stored it (the answer got lost), the retry with the same key publishes nothing twice. The queue is
bounded so an outage costs the oldest payloads, not all the memory.

``send`` (and ``send_async``) is the one place that turns a publish attempt into what happens next: a
failure keeps the batch and its key and starts or extends the backoff; an answer, stored or refused,
ends the batch and any outage. The simulator and ``pulseboard.publisher`` both send through it and only
decide how to report what it returns.
"""

import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import BaseModel

from pulseboard.gateway_api import AsyncGatewayAPI, Failed, GatewayAPI, Outcome
from shared.backoff import Backoff
from shared.channels import Channel


class Outbox:
    def __init__(
        self,
        channel: Channel,
        *,
        batch_size: int,
        limit: int,
        wait_for_full_batch: bool,
        params: Mapping[str, str] | None = None,
    ) -> None:
        self.channel = channel
        self.params = params
        self.batch_size = batch_size
        self._wait_for_full_batch = wait_for_full_batch
        self._queue: deque[BaseModel] = deque()
        self._limit = max(limit, batch_size)
        self.batch: list[BaseModel] = []
        """The batch being sent; empty when none is."""
        self.key = ""
        """The idempotency key of ``batch``."""

    def add(self, payload: BaseModel) -> int:
        """Queue ``payload``; return how many old payloads were dropped to make room."""
        self._queue.append(payload)
        dropped = 0
        while len(self._queue) > self._limit:
            self._queue.popleft()
            dropped += 1
        return dropped

    def next_batch(self, *, flush: bool = False) -> list[BaseModel] | None:
        """The batch to send now (the unanswered one first), or None; ``flush`` sends a partial batch."""
        if self.batch:
            return self.batch
        if not self._queue:
            return None
        if self._wait_for_full_batch and not flush and len(self._queue) < self.batch_size:
            return None
        count = min(self.batch_size, len(self._queue))
        self.batch = [self._queue.popleft() for _ in range(count)]
        self.key = uuid.uuid4().hex
        return self.batch

    def answered(self) -> None:
        """The gateway answered the current batch (stored or rejected it): it is done either way."""
        self.batch = []
        self.key = ""

    @property
    def unsent(self) -> int:
        return len(self.batch) + len(self._queue)

    @property
    def waiting(self) -> int:
        """Payloads queued behind the batch."""
        return len(self._queue)


@dataclass(frozen=True, slots=True)
class Sent:
    """What one attempt to publish an outbox's batch came to."""

    outcome: Outcome
    batch: list[BaseModel]
    """The payloads of the attempt (a ``Failed`` one stays the outbox's batch, for the retry)."""
    outage_began: bool = False
    """This failure is the first since the gateway last answered."""
    outage_ended: float | None = None
    """Seconds the gateway was unreachable, when this answer ends an outage."""

    @property
    def news(self) -> str | None:
        """A line for the user when the gateway is lost or back; None for every attempt in between."""
        if self.outage_began and isinstance(self.outcome, Failed):
            return f"cannot publish to the gateway ({self.outcome.reason}); retrying with backoff"
        if self.outage_ended is not None:
            return f"the gateway answers again after {self.outage_ended:.1f} s"
        return None


def _settle(outbox: Outbox, backoff: Backoff, outcome: Outcome) -> Sent:
    batch = outbox.batch
    now = time.monotonic()
    if isinstance(outcome, Failed):
        began = not backoff.in_outage
        backoff.failed(now)
        return Sent(outcome, batch, outage_began=began)
    ended = backoff.succeeded(now)
    outbox.answered()
    return Sent(outcome, batch, outage_ended=ended)


def send(api: GatewayAPI, outbox: Outbox, backoff: Backoff) -> Sent:
    """Publish the outbox's batch (from ``next_batch``) once; ``backoff`` says when to try again."""
    outcome = api.publish(outbox.channel, outbox.batch, idempotency_key=outbox.key, params=outbox.params)
    return _settle(outbox, backoff, outcome)


async def send_async(api: AsyncGatewayAPI, outbox: Outbox, backoff: Backoff) -> Sent:
    """``send`` for asyncio."""
    outcome = await api.publish(
        outbox.channel, outbox.batch, idempotency_key=outbox.key, params=outbox.params
    )
    return _settle(outbox, backoff, outcome)
