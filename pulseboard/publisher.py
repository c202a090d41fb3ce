"""Publish to a gateway over HTTP from your own program: ``Publisher`` (threads) and ``AsyncPublisher``.

    with Publisher("http://127.0.0.1:8000") as publisher:
        publisher.publish("data:cpu", {"values": {"user": 12.5}})

``publish`` only checks the payload and queues it, so a program that measures something is never held
up by the network. Payloads are batched per channel: a batch goes when it is full (``batch_size``) or
when its oldest payload has waited ``linger`` seconds, one request per batch. Each batch gets an
idempotency key that it keeps until the gateway answers, and a transport error, a 5xx or a 429 is
retried with that key after a jittered exponential backoff, so an answer lost on the way back (the
gateway stored the batch, the client never heard) costs a retry and never a duplicate. A channel's
payloads arrive in the order they were published: the next batch waits until the one before it is
answered.

What can go wrong, and how you hear of it:

- The payload does not fit its channel (``data:`` takes ``DataPoint``, ``chat:`` ``ChatPost``,
  ``notify:`` ``Notification``, given as the model or as a dict): ``publish`` raises
  ``pydantic.ValidationError`` at once, and nothing is queued.
- The gateway refuses a batch (a 4xx other than 429: too large, forbidden, bad token): retrying cannot
  help, so the batch is given up and the next one goes. It is reported as a ``Rejection`` to
  ``on_rejected`` when you pass one (long-running services: log it); without one, the next ``flush``
  or ``close`` raises ``PublishRejectedError`` carrying the rejections, so a script cannot lose data
  silently.
- The gateway is unreachable: payloads wait and are retried; each channel keeps at most ``max_queue``,
  dropping the oldest (counted in ``stats.dropped``). ``flush(timeout)`` raises ``TimeoutError`` when
  the gateway did not take everything in time; nothing is lost by that, the retries go on. ``close``
  gives up what is still unsent after its timeout (counted as dropped). A lost and found gateway is
  logged on the ``pulseboard.publisher`` logger.

Both publishers share ``_Batches``, the state without I/O (queues, batching, backoff, counters), and send
through ``pulseboard.outbox.send``, the step the simulator uses too; they differ only in how they wait.
"""

import asyncio
import contextlib
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel

from pulseboard.gateway_api import AsyncGatewayAPI, Failed, GatewayAPI, Rejected
from pulseboard.outbox import Outbox, Sent, send, send_async
from shared.api import MAX_BATCH
from shared.backoff import Backoff
from shared.channels import Channel, Namespace, is_valid_name
from shared.payloads import INPUT_MODELS

log = logging.getLogger("pulseboard.publisher")

DEFAULT_LINGER = 0.05
"""Seconds a payload may wait for others to share its request."""
DEFAULT_MAX_QUEUE = 100_000
"""Payloads kept per channel while the gateway cannot take them."""
CLOSE_TIMEOUT = 10.0
"""Seconds ``close`` gives what is queued to reach the gateway."""
KEPT_REJECTIONS = 100
"""Rejections kept for ``PublishRejectedError`` when there is no ``on_rejected``; older ones are only
counted (``stats.rejected``), so a publisher that is never flushed does not grow without end."""

Payload = BaseModel | Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Rejection:
    """A batch the gateway refused; retrying it would be refused the same way."""

    channel: Channel
    payloads: list[BaseModel]
    status: int
    detail: str

    def __str__(self) -> str:
        return f"{len(self.payloads)} payload(s) for {self.channel}: {self.status} {self.detail}"


class PublishRejectedError(Exception):
    """The gateway refused batches since the last ``flush``; ``rejections`` says which and why."""

    def __init__(self, rejections: list[Rejection]) -> None:
        more = f" (and {len(rejections) - 1} more)" if len(rejections) > 1 else ""
        super().__init__(f"the gateway rejected {rejections[0]}{more}")
        self.rejections = rejections


@dataclass
class PublisherStats:
    published: int = 0
    """Payloads the gateway stored."""
    rejected: int = 0
    """Payloads in batches the gateway refused."""
    dropped: int = 0
    """Payloads given up unsent: the oldest beyond ``max_queue``, or still queued when closed."""
    requests: int = 0
    """Publish requests made, retries included."""
    failures: int = 0
    """Requests that failed and were retried (transport errors, 5xx, 429)."""


class _Lane:
    """One channel's outbox and where its payloads are, by sequence number (1 for the first queued)."""

    __slots__ = ("added", "outbox", "sending", "since")

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.added = 0
        self.sending: int | None = None
        """The number of the first payload of the batch on its way; None when none is."""
        self.since: float | None = None
        """No later than when the oldest payload waiting behind the batch was queued: lingering counts
        from here, so none waits longer than ``linger`` (leftovers of a full batch may go sooner)."""

    def done_through(self, mark: int) -> bool:
        """Whether payloads 1 to ``mark`` are all answered or dropped."""
        if self.sending is not None and self.sending <= mark:
            return False
        # The queue holds the newest payloads: drops take the oldest, batches the oldest.
        return not self.outbox.waiting or self.added - self.outbox.waiting >= mark


class _Batches:
    """What both publishers keep, without I/O or locks: the caller holds its lock (``Publisher``) or
    runs on one event loop (``AsyncPublisher``)."""

    def __init__(
        self,
        *,
        batch_size: int,
        linger: float,
        max_queue: int,
        name: str | None,
        backoff: Backoff | None,
        on_rejected: Callable[[Rejection], object] | None,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be 1 to {MAX_BATCH}, got {batch_size}")
        if linger < 0:
            raise ValueError(f"linger must be 0 or more, got {linger}")
        if name is not None and not is_valid_name(name):
            raise ValueError("name must match [A-Za-z0-9_.-]{1,64}")
        self._batch_size = batch_size
        self._linger = linger
        self._max_queue = max_queue
        self._chat_params = None if name is None else {"name": name}
        self.backoff = backoff if backoff is not None else Backoff()
        self.on_rejected = on_rejected
        self.stats = PublisherStats()
        self.flushing = 0
        """Flushes waiting: while any is, partial batches go without lingering."""
        self.closed = False
        self._lanes: dict[Channel, _Lane] = {}
        self._unreported: deque[Rejection] = deque(maxlen=KEPT_REJECTIONS)

    @staticmethod
    def validate(channel: str | Channel, payloads: Iterable[Payload]) -> tuple[Channel, list[BaseModel]]:
        """The channel and its payloads as the channel's input model; raises before anything is queued."""
        target = channel if isinstance(channel, Channel) else Channel.parse(channel)
        model = INPUT_MODELS[target.namespace]
        checked: list[BaseModel] = []
        for payload in payloads:
            if isinstance(payload, model):
                checked.append(payload)
            elif isinstance(payload, BaseModel):
                raise TypeError(f"{target} takes {model.__name__}, not {type(payload).__name__}")
            else:
                checked.append(model.model_validate(payload))
        return target, checked

    def add(self, channel: Channel, payloads: list[BaseModel], now: float) -> None:
        if self.closed:
            raise RuntimeError("the publisher is closed")
        lane = self._lanes.get(channel)
        if lane is None:
            params = self._chat_params if channel.namespace is Namespace.CHAT else None
            outbox = Outbox(
                channel,
                batch_size=self._batch_size,
                limit=self._max_queue,
                wait_for_full_batch=True,
                params=params,
            )
            lane = self._lanes[channel] = _Lane(outbox)
        for payload in payloads:
            self.stats.dropped += lane.outbox.add(payload)
            lane.added += 1
        if lane.since is None and payloads:
            lane.since = now

    def marks(self) -> dict[Channel, int]:
        """Where each channel's queue ends now, for ``flushed``."""
        return {channel: lane.added for channel, lane in self._lanes.items()}

    def flushed(self, marks: dict[Channel, int]) -> bool:
        return all(self._lanes[channel].done_through(mark) for channel, mark in marks.items())

    def next_lane(self, now: float) -> _Lane | None:
        """The lane whose batch goes now (a retry first), or None; it moves to the back, so that a busy
        channel does not keep the others waiting."""
        if not self.backoff.ready(now):
            return None
        for channel, lane in self._lanes.items():
            outbox = lane.outbox
            lingered = lane.since is not None and now - lane.since >= self._linger
            batch = outbox.next_batch(flush=bool(self.flushing) or lingered)
            if batch is None:
                continue
            if lane.sending is None:
                lane.sending = lane.added - outbox.waiting - len(batch) + 1
                if not outbox.waiting:
                    lane.since = None
            del self._lanes[channel]
            self._lanes[channel] = lane
            return lane
        return None

    def wait(self, now: float) -> float | None:
        """Seconds until ``next_lane`` may have something (None: not before more is published)."""
        if self.backoff.in_outage:
            return max(0.0, self.backoff.until - now)
        starts = [lane.since for lane in self._lanes.values() if lane.since is not None]
        return None if not starts else max(0.0, min(starts) + self._linger - now)

    def settle(self, lane: _Lane, sent: Sent) -> Rejection | None:
        """Count what ``sent`` came to; a rejection for ``on_rejected`` to hear, else None."""
        self.stats.requests += 1
        if sent.news is not None:
            log.log(logging.WARNING if sent.outage_began else logging.INFO, "%s", sent.news)
        outcome = sent.outcome
        if isinstance(outcome, Failed):
            self.stats.failures += 1
            return None
        lane.sending = None
        if not isinstance(outcome, Rejected):
            self.stats.published += len(outcome.offsets)
            return None
        self.stats.rejected += len(sent.batch)
        rejection = Rejection(lane.outbox.channel, sent.batch, outcome.status, outcome.detail)
        if self.on_rejected is None:
            self._unreported.append(rejection)
            return None
        return rejection

    def report(self, rejection: Rejection) -> None:
        """Hand ``rejection`` to ``on_rejected``; called without the lock, so the callback may publish."""
        assert self.on_rejected is not None
        try:
            self.on_rejected(rejection)
        except Exception:
            # The callback is the user's; its bug must not stop the publishing of everything else.
            log.exception("on_rejected raised for %s", rejection)

    def raise_rejections(self) -> None:
        if self._unreported:
            rejections = list(self._unreported)
            self._unreported.clear()
            raise PublishRejectedError(rejections)

    def give_up(self) -> int:
        """Drop everything unsent (at close); return how many payloads that was."""
        unsent = 0
        for lane in self._lanes.values():
            unsent += lane.outbox.unsent
            lane.outbox.answered()
            while lane.outbox.next_batch(flush=True) is not None:
                lane.outbox.answered()
            lane.sending = lane.since = None
        self.stats.dropped += unsent
        return unsent


class _PublisherBase(ABC):
    """The options and the queueing both publishers share; each says how it wakes its sender."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        batch_size: int = MAX_BATCH,
        linger: float = DEFAULT_LINGER,
        max_queue: int = DEFAULT_MAX_QUEUE,
        name: str | None = None,
        on_rejected: Callable[[Rejection], object] | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self._batches = _Batches(
            batch_size=batch_size,
            linger=linger,
            max_queue=max_queue,
            name=name,
            backoff=backoff,
            on_rejected=on_rejected,
        )
        self._connect(url, token)

    @abstractmethod
    def _connect(self, url: str, token: str | None) -> None: ...

    @abstractmethod
    def _queue(self, channel: Channel, payloads: list[BaseModel]) -> None: ...

    def publish(self, channel: str | Channel, payload: Payload) -> None:
        """Queue one payload (its channel's model, or a dict of it); raises if it does not fit."""
        self.publish_many(channel, [payload])

    def publish_many(self, channel: str | Channel, payloads: Iterable[Payload]) -> None:
        """Queue payloads for one channel, in order; none is queued if any does not fit."""
        target, checked = _Batches.validate(channel, payloads)
        self._queue(target, checked)


class Publisher(_PublisherBase):
    """Publish from any thread; a background thread sends. Use as a context manager, or ``close()``.

    ``on_rejected`` is called on that thread for each refused batch; it may ``publish`` but not
    ``flush``, which would wait for the thread it runs on. Without it, ``flush`` and ``close`` raise
    ``PublishRejectedError``. ``name`` is the chat sender when the gateway has auth off (with auth on,
    the token's subject is).
    """

    def _connect(self, url: str, token: str | None) -> None:
        self._api = GatewayAPI(url, token)
        self._changed = threading.Condition()
        """Notified when payloads are queued, a flush starts, a batch is answered, or close begins."""
        self._thread = threading.Thread(target=self._run, name="pulseboard-publisher", daemon=True)
        self._thread.start()

    def _queue(self, channel: Channel, payloads: list[BaseModel]) -> None:
        with self._changed:
            self._batches.add(channel, payloads, time.monotonic())
            self._changed.notify_all()

    @property
    def stats(self) -> PublisherStats:
        """A copy of the counters as they are now."""
        with self._changed:
            return replace(self._batches.stats)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until everything published before this call is answered (stored or rejected).

        Raises ``TimeoutError`` when ``timeout`` seconds pass first (what is queued stays queued), and
        ``PublishRejectedError`` for batches refused since the last flush when there is no ``on_rejected``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            marks = self._batches.marks()
            self._batches.flushing += 1
            self._changed.notify_all()
            try:
                while not self._batches.flushed(marks):
                    if not self._thread.is_alive():
                        raise RuntimeError("the publisher is closed, or its thread failed (see the log)")
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        raise TimeoutError(f"the gateway did not take everything within {timeout} s")
                    self._changed.wait(left)
            finally:
                self._batches.flushing -= 1
            self._batches.raise_rejections()

    def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Flush for up to ``timeout`` seconds, give up what is left (``stats.dropped``), and stop.

        A request on its way when the time is up still gets its answer (at most httpx's timeout) before
        the thread ends. Raises ``PublishRejectedError`` like ``flush``.
        """
        if self._batches.closed:
            return
        try:
            self.flush(timeout)
        except TimeoutError:
            pass
        finally:
            with self._changed:
                self._batches.closed = True
                self._changed.notify_all()
            self._thread.join()
            with self._changed:
                unsent = self._batches.give_up()
            if unsent:
                log.warning("closed with %d payload(s) unsent", unsent)
            self._api.close()

    def __enter__(self) -> "Publisher":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            self.close()
            return
        # Already failing: do not hide that error behind a rejection or wait out a long flush.
        with contextlib.suppress(PublishRejectedError):
            self.close(timeout=0)

    def _run(self) -> None:
        batches = self._batches
        while True:
            with self._changed:
                lane = None
                # Once closing, no new request starts: close's flush had its time.
                while not batches.closed:
                    lane = batches.next_lane(time.monotonic())
                    if lane is not None:
                        break
                    self._changed.wait(batches.wait(time.monotonic()))
                if lane is None:
                    return
            # Without the lock, so publishing never waits on the network: the batch, its key and the
            # backoff are this thread's alone (publish only appends to the queue behind the batch).
            sent = send(self._api, lane.outbox, batches.backoff)
            with self._changed:
                rejection = batches.settle(lane, sent)
                self._changed.notify_all()
            if rejection is not None:
                batches.report(rejection)


class AsyncPublisher(_PublisherBase):
    """``Publisher`` for asyncio: ``publish`` is a plain call (it only queues), ``flush`` and ``close``
    are awaited; a task on the running loop sends. Use ``async with``, or ``await close()``.

    ``on_rejected`` is called on the event loop, so it must not block.
    """

    def _connect(self, url: str, token: str | None) -> None:
        self._api = AsyncGatewayAPI(url, token)
        self._wake = asyncio.Event()
        """Set when payloads are queued, a flush starts or close begins: the sender looks again."""
        self._answered = asyncio.Event()
        """Set (and replaced) each time a batch is answered: flushes look again."""
        self._task: asyncio.Task[None] | None = None

    def _queue(self, channel: Channel, payloads: list[BaseModel]) -> None:
        self._batches.add(channel, payloads, time.monotonic())
        self._start()
        self._wake.set()

    @property
    def stats(self) -> PublisherStats:
        return replace(self._batches.stats)

    async def flush(self) -> None:
        """Wait until everything published before this call is answered; raises like ``Publisher.flush``.

        Bound it with ``asyncio.timeout``: what is queued stays queued when it runs out.
        """
        marks = self._batches.marks()
        self._batches.flushing += 1
        self._start()
        self._wake.set()
        try:
            while not self._batches.flushed(marks):
                await self._answered.wait()
        finally:
            self._batches.flushing -= 1
        self._batches.raise_rejections()

    # The timeout is close's own: past it, close gives up what is left instead of raising TimeoutError.
    async def close(self, timeout: float = CLOSE_TIMEOUT) -> None:  # noqa: ASYNC109
        """Flush for up to ``timeout`` seconds, give up what is left, and stop; raises like ``flush``."""
        if self._batches.closed:
            return
        try:
            async with asyncio.timeout(timeout):
                await self.flush()
        except TimeoutError:
            pass
        finally:
            self._batches.closed = True
            self._wake.set()
            if self._task is not None:
                await self._task
            unsent = self._batches.give_up()
            if unsent:
                log.warning("closed with %d payload(s) unsent", unsent)
            await self._api.aclose()

    async def __aenter__(self) -> "AsyncPublisher":
        self._start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            await self.close()
            return
        with contextlib.suppress(PublishRejectedError):
            await self.close(timeout=0)

    def _start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="pulseboard-publisher")

    async def _run(self) -> None:
        batches = self._batches
        while not batches.closed:
            lane = batches.next_lane(time.monotonic())
            if lane is None:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(batches.wait(time.monotonic())):
                        await self._wake.wait()
                continue
            sent = await send_async(self._api, lane.outbox, batches.backoff)
            rejection = batches.settle(lane, sent)
            answered, self._answered = self._answered, asyncio.Event()
            answered.set()
            if rejection is not None:
                batches.report(rejection)
