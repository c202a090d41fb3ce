"""The embedded broker: streams in this process's memory, chat and notifications also in SQLite.

Everything here runs on the event loop without awaiting in the middle of a publish, so offsets, history
appends and delivery to the hub happen as one step per publish: ordered and gap-free by construction.

Epochs: ``data:`` streams live only in this process, so they all share an epoch made when the broker
starts (a restart loses their history, and the new epoch says so); durable streams share the SQLite
file's epoch. A channel nobody has published to has offset 0 in that epoch, so reading or subscribing
to it needs no state: only a publish creates a stream.

Channels are bounded: a publish that would create a stream past ``max_channels`` is refused, and a
``data:`` stream with no publish for ``idle_ttl`` seconds is dropped. Dropping one starts a new epoch
for ``data:`` streams created from then on (those still live keep theirs), so a channel that comes back
never reuses the offsets of its earlier life in the same epoch: a resume across the drop is
``recovered: false``. Durable streams are never dropped (their offsets go on in SQLite).

Listing is cheap at any size: ``_streams`` is kept in publish order (a publish moves its stream to the
end) and ``_names`` sorted, so a page costs its own length plus what the prefix and token skip.

Idempotency keys live here for ``IDEMPOTENCY_WINDOW`` seconds; those of durable channels are also
committed with their publications, and ``start`` reloads them, so a retry after a crash still gets the
first offsets. Keys of ``data:`` channels die with the process, as their streams do.
"""

import asyncio
import bisect
import contextlib
import itertools
import logging
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from typing import Any

from gateway.broker.base import (
    Broker,
    BrokerHandler,
    ChannelLimitError,
    ChannelOrder,
    ChannelPage,
    ChannelQuery,
    ChannelStats,
    Direct,
    HistoryResult,
    Publication,
    PublishError,
    missed_since,
    take_page,
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
IDLE_SWEEP_SECONDS = 30.0
"""Most seconds between looks for idle ``data:`` streams (less when the idle time is shorter)."""


class Stream:
    """One channel's stream: its epoch, its latest offset and a bounded, time-limited history."""

    __slots__ = ("_rate_mark", "durable", "epoch", "history", "last_published", "published", "rate", "top")

    def __init__(self, epoch: str, size: int, *, durable: bool) -> None:
        self.epoch = epoch
        self.durable = durable
        self.top = 0
        self.history: deque[Publication] = deque(maxlen=size)
        self.published = 0
        self.rate = 0.0
        self.last_published = 0.0
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

    def __init__(
        self,
        *,
        history_size: int,
        history_ttl: float,
        store: DurableStore | None,
        max_channels: int = 10_000,
        idle_ttl: float = 3600.0,
    ) -> None:
        self._history_size = history_size
        self._history_ttl = history_ttl
        self._store = store
        self._max_channels = max_channels
        self._idle_ttl = idle_ttl
        self._streams: OrderedDict[str, Stream] = OrderedDict()
        """Every live stream, least recently published first."""
        self._names: list[str] = []
        """The names of ``_streams``, sorted."""
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
                # Restored whatever the cap: they are durable, and refusing them would lose offsets.
                stream = self._stream(channel, durable=True, capped=False)
                for item in stored:
                    stream.append(Publication.create(channel, item.offset, stream.epoch, item.ts, item.data))
                    stream.last_published = item.ts
            for name, _ in sorted(self._streams.items(), key=lambda item: item[1].last_published):
                self._streams.move_to_end(name)
            log.info("durable store %s: %d channels restored", self._store.path, len(self._streams))
            self._restore_idempotency_keys(self._store)
        self._tasks = [
            asyncio.create_task(self._sample_rates(), name="broker-rates"),
            asyncio.create_task(self._maintain(), name="broker-maintenance"),
            asyncio.create_task(self._drop_idle_forever(), name="broker-idle-channels"),
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

    def _stream(self, channel: str, *, durable: bool, capped: bool = True) -> Stream:
        stream = self._streams.get(channel)
        if stream is None:
            if capped and len(self._streams) >= self._max_channels:
                raise ChannelLimitError(self._max_channels)
            stream = Stream(self._epoch(durable), self._history_size, durable=durable)
            self._streams[channel] = stream
            bisect.insort(self._names, channel)
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
        stream.last_published = now
        self._streams.move_to_end(name)
        handler = self._require_handler()
        for publication in publications:
            stream.append(publication)
            handler.on_publication(publication)
        self._accepted(name, stream.epoch, first, payloads)
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

    async def send_direct(self, client_id: str, frame: str) -> Direct:
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

    async def channels(self, query: ChannelQuery) -> ChannelPage:
        names: Iterable[str]
        if query.order is ChannelOrder.RECENT:
            names = reversed(self._streams)
        else:
            start = bisect.bisect_left(self._names, query.prefix)
            if query.cursor is not None:
                start = max(start, bisect.bisect_right(self._names, query.cursor))
            names = itertools.islice(self._names, start, None)
        page, following = take_page(names, query)
        streams = self._streams
        stats = [
            ChannelStats(
                name, streams[name].position, round(streams[name].rate, 2), streams[name].last_published
            )
            for name in page
        ]
        return ChannelPage(stats, following)

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

    async def _drop_idle_forever(self) -> None:
        while True:
            await asyncio.sleep(min(IDLE_SWEEP_SECONDS, self._idle_ttl / 2))
            self.drop_idle(time.time() - self._idle_ttl)

    def drop_idle(self, cutoff: float) -> int:
        """Drop the ``data:`` streams last published before ``cutoff``; how many were dropped."""
        idle = []
        for name, stream in self._streams.items():
            if stream.last_published >= cutoff:
                break  # the rest were published later
            if not stream.durable:
                idle.append(name)
        for name in idle:
            del self._streams[name]
            del self._names[bisect.bisect_left(self._names, name)]
        if idle:
            # A channel created again must not reuse its old offsets in the epoch it had them in.
            self._memory_epoch = secrets.token_hex(4)
            log.info(
                "dropped %d idle data: channels; new ones start in epoch %s", len(idle), self._memory_epoch
            )
        return len(idle)

    async def _maintain(self) -> None:
        if self._store is None:
            return
        while True:
            await asyncio.sleep(MAINTENANCE_SECONDS)
            try:
                await asyncio.to_thread(self._store.maintain)
            except Exception:
                log.exception("durable store maintenance failed")
