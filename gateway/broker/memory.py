"""The embedded broker: streams in this process's memory, chat and notifications also in SQLite.

Everything here runs on the event loop without awaiting in the middle of a publish, so offsets, history
appends and delivery to the hub happen as one step per publish: ordered and gap-free by construction.

Epochs: ``data:`` streams live only in this process, so they all share an epoch made when the broker
starts (a restart loses their history, and the new epoch says so); durable streams share the SQLite
file's epoch. A channel nobody has published to has offset 0 in that epoch, so reading or subscribing
to it needs no state: only a publish creates a stream.

Idempotency keys live here for ``IDEMPOTENCY_WINDOW`` seconds; those of durable channels are also
committed with their publications, and ``start`` reloads them, so a retry after a crash still gets the
first offsets. Keys of ``data:`` channels die with the process, as their streams do.
"""

import asyncio
import contextlib
import logging
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from typing import Any

from gateway.broker.base import (
    Broker,
    BrokerHandler,
    ChannelStats,
    HistoryResult,
    Publication,
    PublishError,
    missed_since,
)
from gateway.store import DurableStore, StoredKey, StoreError
from shared.api import BrokerHealth
from shared.channels import Channel
from shared.messages import PresenceEntry, StreamPosition

log = logging.getLogger(__name__)

IDEMPOTENCY_WINDOW = 300.0
IDEMPOTENCY_MAX_KEYS = 100_000
RATE_SAMPLE_SECONDS = 1.0
RATE_SMOOTHING = 0.5
MAINTENANCE_SECONDS = 30.0


class Stream:
    """One channel's stream: its epoch, its latest offset and a bounded, time-limited history."""

    __slots__ = ("_rate_mark", "epoch", "history", "published", "rate", "top")

    def __init__(self, epoch: str, size: int) -> None:
        self.epoch = epoch
        self.top = 0
        self.history: deque[Publication] = deque(maxlen=size)
        self.published = 0
        self.rate = 0.0
        self._rate_mark = 0

    def append(self, publication: Publication) -> None:
        self.history.append(publication)
        self.top = publication.offset
        self.published += 1

    def expire(self, oldest_ts: float) -> None:
        history = self.history
        while history and history[0].ts < oldest_ts:
            history.popleft()

    def sample_rate(self, elapsed: float) -> None:
        instant = (self.published - self._rate_mark) / elapsed
        self._rate_mark = self.published
        self.rate = RATE_SMOOTHING * self.rate + (1 - RATE_SMOOTHING) * instant

    @property
    def position(self) -> StreamPosition:
        return StreamPosition(offset=self.top, epoch=self.epoch)


class MemoryBroker(Broker):
    backend = "memory"

    def __init__(self, *, history_size: int, history_ttl: float, store: DurableStore | None) -> None:
        self._history_size = history_size
        self._history_ttl = history_ttl
        self._store = store
        self._streams: dict[str, Stream] = {}
        self._memory_epoch = secrets.token_hex(4)
        self._presence: dict[str, dict[str, PresenceEntry]] = {}
        # Offsets of one publish are consecutive: a range keeps a 1000-payload answer in O(1) memory.
        self._idempotency: OrderedDict[tuple[str, str], tuple[float, asyncio.Future[range]]] = OrderedDict()
        self._handler: BrokerHandler | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._store_error = ""

    async def start(self, handler: BrokerHandler) -> None:
        self._handler = handler
        if self._store is not None:
            self._store.open()
            for channel, stored in self._store.load().items():
                stream = self._stream(channel, durable=True)
                for item in stored:
                    stream.append(Publication.create(channel, item.offset, stream.epoch, item.ts, item.data))
            log.info("durable store %s: %d channels restored", self._store.path, len(self._streams))
            self._restore_idempotency_keys(self._store)
        self._tasks = [
            asyncio.create_task(self._sample_rates(), name="broker-rates"),
            asyncio.create_task(self._maintain(), name="broker-maintenance"),
        ]

    def _restore_idempotency_keys(self, store: DurableStore) -> None:
        wall, monotonic = time.time(), time.monotonic()
        loop = asyncio.get_running_loop()
        for stored in store.load_keys(wall, IDEMPOTENCY_MAX_KEYS):
            future: asyncio.Future[range] = loop.create_future()
            future.set_result(stored.offsets)
            self._idempotency[stored.channel, stored.key] = (monotonic + stored.expires - wall, future)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._store is not None:
            self._store.close()

    def _epoch(self, durable: bool) -> str:
        return self._store.epoch if durable and self._store is not None else self._memory_epoch

    def _stream(self, channel: str, *, durable: bool) -> Stream:
        stream = self._streams.get(channel)
        if stream is None:
            stream = self._streams[channel] = Stream(self._epoch(durable), self._history_size)
        return stream

    async def publish(
        self, channel: Channel, payloads: Sequence[dict[str, Any]], *, idempotency_key: str | None = None
    ) -> list[int]:
        if idempotency_key is None:
            return self._publish_now(channel, payloads)
        key = (str(channel), idempotency_key)
        now = time.monotonic()
        self._forget_idempotency_keys(now)
        remembered = self._idempotency.get(key)
        if remembered is not None:
            return list(await asyncio.shield(remembered[1]))
        future: asyncio.Future[range] = asyncio.get_running_loop().create_future()
        self._idempotency[key] = (now + IDEMPOTENCY_WINDOW, future)
        try:
            offsets = self._publish_now(channel, payloads, idempotency_key)
        except BaseException as exc:
            # A failed publish is not remembered: the client's retry must be able to succeed.
            del self._idempotency[key]
            future.set_exception(exc)
            future.exception()  # retrieved: waiting duplicates re-raise it, nobody else must
            raise
        future.set_result(range(offsets[0], offsets[-1] + 1))
        return offsets

    def _forget_idempotency_keys(self, now: float) -> None:
        remembered = self._idempotency
        while remembered:
            key, (expires, _) = next(iter(remembered.items()))
            if expires > now and len(remembered) < IDEMPOTENCY_MAX_KEYS:
                break
            del remembered[key]

    def _publish_now(
        self, channel: Channel, payloads: Sequence[dict[str, Any]], idempotency_key: str | None = None
    ) -> list[int]:
        name = str(channel)
        stream = self._stream(name, durable=channel.durable)
        now = time.time()
        first = stream.top + 1
        publications = [
            Publication.create(name, first + index, stream.epoch, now, data)
            for index, data in enumerate(payloads)
        ]
        if channel.durable and self._store is not None:
            key = None
            if idempotency_key is not None:
                offsets = range(first, first + len(publications))
                key = StoredKey(name, idempotency_key, offsets, now + IDEMPOTENCY_WINDOW)
            try:
                self._store.append(publications, key)
            except StoreError as exc:
                self._store_error = str(exc)
                log.error("publish to %s failed: %s", name, exc)
                raise PublishError(str(exc)) from exc
            self._store_error = ""
        stream.expire(now - self._history_ttl)
        handler = self._require_handler()
        for publication in publications:
            stream.append(publication)
            handler.on_publication(publication)
        return [publication.offset for publication in publications]

    async def history(
        self, channel: Channel, *, since: StreamPosition | None = None, limit: int | None = None
    ) -> HistoryResult:
        stream = self._streams.get(str(channel))
        if stream is None:
            position = StreamPosition(offset=0, epoch=self._epoch(channel.durable))
            fresh = since is None or (since.epoch == position.epoch and since.offset == 0)
            return HistoryResult([], position, recovered=fresh)
        stream.expire(time.time() - self._history_ttl)
        retained = stream.history
        position = stream.position
        if since is None:
            count = len(retained) if limit is None else min(limit, len(retained))
            recent = list(retained)[len(retained) - count :] if count else []
            return HistoryResult(recent, position, recovered=True)
        missed = missed_since(since, position, len(retained))
        if missed is None:
            return HistoryResult([], position, recovered=False)
        if missed == 0:
            return HistoryResult([], position, recovered=True)
        replay = list(retained)[len(retained) - missed :]
        if limit is not None:
            replay = replay[:limit]
        return HistoryResult(replay, position, recovered=True)

    async def publish_event(self, channel: Channel, frame: str) -> None:
        self._require_handler().on_event(str(channel), frame)

    async def send_direct(self, client_id: str, frame: str) -> bool:
        return self._require_handler().on_direct(client_id, frame)

    async def presence_add(self, channel: Channel, entry: PresenceEntry) -> None:
        self._presence.setdefault(str(channel), {})[entry.client_id] = entry

    async def presence_remove(self, channel: Channel, client_id: str) -> None:
        members = self._presence.get(str(channel))
        if members is not None:
            members.pop(client_id, None)
            if not members:
                del self._presence[str(channel)]

    async def presence(self, channel: Channel) -> list[PresenceEntry]:
        return list(self._presence.get(str(channel), {}).values())

    async def channels(self) -> list[ChannelStats]:
        return [
            ChannelStats(name, stream.position, round(stream.rate, 2))
            for name, stream in sorted(self._streams.items())
        ]

    def health(self) -> BrokerHealth:
        if self._store_error:
            return BrokerHealth(ok=False, backend=self.backend, detail=self._store_error)
        return BrokerHealth(ok=True, backend=self.backend)

    def _require_handler(self) -> BrokerHandler:
        if self._handler is None:
            raise RuntimeError("broker used before start()")
        return self._handler

    async def _sample_rates(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(RATE_SAMPLE_SECONDS)
            now = time.monotonic()
            for stream in self._streams.values():
                stream.sample_rate(now - last)
            last = now

    async def _maintain(self) -> None:
        if self._store is None:
            return
        while True:
            await asyncio.sleep(MAINTENANCE_SECONDS)
            try:
                await asyncio.to_thread(self._store.maintain)
            except Exception:
                log.exception("durable store maintenance failed")
