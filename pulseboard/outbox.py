"""Payloads waiting to be published on one channel, and the batch on its way.

A batch keeps its idempotency key until the gateway answers: when a request fails after the gateway
stored it (the answer got lost), the retry with the same key publishes nothing twice. The queue is
bounded so an outage costs the oldest payloads, not all the memory.
"""

import uuid
from collections import deque
from collections.abc import Mapping

from pydantic import BaseModel

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
