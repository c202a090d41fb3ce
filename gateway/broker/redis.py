"""The Redis broker: several gateway processes, one set of channels (``PULSE_BROKER_URL=redis://...``,
or ``redis+cluster://...`` for a Redis Cluster: ``gateway.broker.redis_link`` builds the client for either,
``gateway.broker.redis_keys`` names and lays out the keys).

History lives in one Redis Stream per channel and live fan-out goes through Redis pub/sub, the model of
Centrifugo's Redis engine. A Lua script (``redis_publish.lua``) does each publish atomically: the next
offsets, the stream append trimmed to ``PULSE_HISTORY_SIZE``, the epoch, the pub/sub message; so
offsets are contiguous and ordered across processes. Keys carry the channel as a ``{hash tag}``, and
on a Cluster the script publishes to a shard channel of the same slot, so it runs within one slot.

Failover (a Cluster master replaced by its replica, which may lack the last writes): the scripts stamp
each epoch with the replication id of the master that set it and replace an epoch stamped by another
master before using it (``redis_epoch.lua``). Offsets the new master hands out again are then in a new
epoch, which every listener and resume sees: ``recovered: false``, never a silent hole.

Each process listens in Redis only to channels with local subscribers and hands what it hears to the
hub, as the memory broker does. It remembers the last offset it delivered per channel; whenever the
next message is not the next offset (a pub/sub message lost, or the connection to Redis dropped and
came back) it reads the missing ones from the stream, so subscribers see no gap. When the stream no
longer has them (trimmed, or Redis lost its data and the epoch changed), the hub closes the channel's
local subscribers with 1013: they reconnect, resume with ``since`` and get an explicit
``recovered: false``. The listener never dies silently: on any Redis error it logs, marks the broker
degraded (``/healthz`` 503), reconnects with backoff, resubscribes and fills the gaps.

Live channels are listed in sorted sets per namespace (one on one Redis, buckets on a Cluster), scored by
their last publish time (refreshed at most once a second per channel and process). A channel's keys
expire when it has not been published to for its namespace's lifetime (``data:``: the idle time, at
most the history TTL; ``chat:``/``notify:``: the history TTL), and listing or creating a channel first
removes the set entries older than that, so the sets count live channels: the cap on them is checked
before a publish creates a channel (several processes creating at the same instant may overshoot it
by one each). A page of the list costs two pipelined round trips for the page, plus reading the names
of the namespaces the prefix selects.
"""

import asyncio
import bisect
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic_core import to_json
from redis.exceptions import RedisError

from gateway.broker import redis_keys as keys
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
from gateway.broker.redis_link import Listener, connect
from gateway.envelope import is_pub, json_number, lua_pieces
from shared.api import BrokerHealth
from shared.backoff import Backoff
from shared.channels import Channel, Namespace
from shared.messages import PresenceEntry, StreamPosition

log = logging.getLogger(__name__)


def _script(name: str) -> str:
    """A script with the epoch functions (and the envelope's pieces) declared above it."""
    here = Path(__file__).parent
    return lua_pieces() + (here / "redis_epoch.lua").read_text() + (here / name).read_text()


PUBLISH_SCRIPT = _script("redis_publish.lua")
POSITION_SCRIPT = _script("redis_position.lua")
ROTATE_SCRIPT = _script("redis_rotate.lua")
IDEMPOTENCY_SECONDS = 300
RATE_WINDOW = 5.0
RATE_SAMPLE = 200
HEALTH_SECONDS = 1.0
PROCESS_TTL = 15
"""Seconds a process's liveness key lives without a refresh: presence entries of a dead process vanish."""
COMMAND_TIMEOUT = 2.0
"""Seconds a Redis command may take: while Redis is down, publishes answer 503 quickly."""
LISTING_REFRESH = 1.0
"""Seconds between a process's updates of one channel's last-publish time in its channel set."""
_meta, _stream, _live = keys.meta, keys.stream, keys.live


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _fresh_epoch() -> str:
    return secrets.token_hex(4)


def _rate(newest: list[Any] | None, now: float) -> float:
    """Publications per second over the last few seconds, from the stream's own timestamps: the same
    answer on every process, with no sampling task per channel."""
    stamps = [float(fields[b"t"]) for _, fields in newest or [] if fields]
    recent = [ts for ts in stamps if now - ts <= RATE_WINDOW]
    if len(recent) == RATE_SAMPLE:
        return round(RATE_SAMPLE / max(now - recent[-1], 1e-3), 2)
    return round(len(recent) / RATE_WINDOW, 2)


def _unavailable(exc: BaseException) -> PublishError:
    """The error a client sees when Redis failed a command: some failures (a timeout) have no message,
    and "redis unavailable: " alone says nothing, so their kind is named instead."""
    return PublishError(f"redis unavailable: {str(exc) or type(exc).__name__}")


@dataclass
class _Listening:
    """A channel this process listens to, and the last publication it handed to the hub."""

    offset: int
    epoch: str
    confirmed: asyncio.Future[None]


class RedisBroker(Broker):
    backend = "redis"

    def __init__(
        self,
        url: str,
        *,
        history_size: int,
        history_ttl: float,
        max_channels: int = 10_000,
        idle_ttl: float = 3600.0,
        max_connections: int = 50,
        pool_timeout: float = 10.0,
    ) -> None:
        self._history_size = history_size
        self._history_ttl = history_ttl
        self._key_ttl = max(1, int(history_ttl))
        self._max_channels = max_channels
        self._lifetimes = {
            namespace: self._key_ttl
            if namespace is not Namespace.DATA
            else max(1, int(min(idle_ttl, history_ttl)))
            for namespace in Namespace
        }
        """Seconds each namespace's channel keys live after their last publish."""
        self._link = connect(
            url, max_connections=max_connections, pool_timeout=pool_timeout, timeout=COMMAND_TIMEOUT
        )
        self._redis = self._link.client
        self._keys = self._link.layout
        self._check_master = "1" if self._link.target.cluster else ""
        """On a Cluster, the scripts replace an epoch another master set (see redis_epoch.lua)."""
        self._publish_script = self._redis.register_script(PUBLISH_SCRIPT)
        self._position_script = self._redis.register_script(POSITION_SCRIPT)
        self._rotate_script = self._redis.register_script(ROTATE_SCRIPT)
        self._process = secrets.token_hex(6)
        self._handler: BrokerHandler | None = None
        self._listening: dict[str, _Listening] = {}
        self._subscribed: set[str] = set()
        """Pub/sub channels the listener's connection has sent SUBSCRIBE for (and not UNSUBSCRIBE)."""
        self._pubsub: Listener | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._ok = False
        self._detail = "not started"
        self._listed: dict[str, float] = {}
        """Channels this process published to, with when it last wrote their time to their channel set."""

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self, handler: BrokerHandler) -> None:
        self._handler = handler
        try:
            await self._redis.ping()
            self._ok, self._detail = True, ""
        except RedisError as exc:
            # Start anyway: the listener and the health check keep trying, /healthz says why.
            self._fail(exc)
        self._tasks = [
            asyncio.create_task(self._listen(), name="redis-listener"),
            asyncio.create_task(self._watch_health(), name="redis-health"),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.aclose()
        with contextlib.suppress(RedisError, OSError):
            await self._redis.delete(keys.process(self._process))
        await self._link.aclose()

    def _fail(self, exc: BaseException) -> None:
        if self._ok:
            log.error("redis: %s: %s", type(exc).__name__, exc)
        self._ok, self._detail = False, f"redis: {type(exc).__name__}: {exc}"[:300]
        # Redis may come back without the channel list: the next publish to each channel checks the cap
        # and lists it again.
        self._listed.clear()

    # --- publishing ----------------------------------------------------------------------------

    async def publish(
        self, channel: Channel, payloads: Sequence[dict[str, Any]], *, idempotency_key: str | None = None
    ) -> list[int]:
        name = str(channel)
        # Always a key in the channel's slot, even unused: the script's keys must all be declared.
        idempotency = keys.idempotency(name, idempotency_key or "")
        now = time.time()
        args: list[Any] = [
            _fresh_epoch(),
            self._history_size,
            self._lifetimes[channel.namespace],
            json_number(now),
            name,
            IDEMPOTENCY_SECONDS if idempotency_key else 0,
            _live(name),
            len(payloads),
            *(to_json(payload) for payload in payloads),
            self._link.publish_command,
            self._check_master,
        ]
        try:
            lifetime = self._lifetimes[channel.namespace]
            listed = self._listed.get(name)
            if listed is None or now - listed >= lifetime:
                await self._check_room(channel)  # not known to be live: this publish may create it
            # A channel the script creates starts in the epoch of its slot (one Redis: of all channels),
            # which changes when Redis lost it: offsets from 1 again are then in a new epoch.
            first, last, epoch, replayed = await self._publish_script(
                keys=[_meta(name), _stream(name), idempotency, self._keys.epoch(name)], args=args
            )
            if listed is None or now - listed >= LISTING_REFRESH:
                # The time written is never later than the last publish: its keys outlive it by `lifetime`.
                # Not per publish: one round trip less on the hot path.
                await self._redis.zadd(self._keys.channel_set(channel.namespace, name), {name: now})
                self._listed[name] = now
        except (RedisError, OSError) as exc:
            self._fail(exc)
            raise _unavailable(exc) from exc
        if not int(replayed):
            self._accepted(name, _text(epoch), int(first), payloads)
        return list(range(int(first), int(last) + 1))

    async def _check_room(self, channel: Channel) -> None:
        """Refuse (``ChannelLimitError``) to create ``channel`` when the live channels are at the cap."""
        name = str(channel)
        now = time.time()
        sets = [(key, namespace) for namespace in Namespace for key in self._keys.channel_sets(namespace)]
        async with self._link.pipeline() as pipe:
            pipe.zscore(self._keys.channel_set(channel.namespace, name), name)
            for key, namespace in sets:
                pipe.zremrangebyscore(key, "-inf", now - self._lifetimes[namespace])
                pipe.zcard(key)
            answers = await self._link.execute(pipe)
        live = answers[0] is not None
        if not live and sum(answers[2::2]) >= self._max_channels:
            raise ChannelLimitError(self._max_channels)

    def _forget_listed(self) -> None:
        """Drop this process's notes of channels whose keys have expired (the dict stays bounded)."""
        now = time.time()
        lifetimes = self._lifetimes
        stale = [
            name for name, at in self._listed.items() if now - at >= lifetimes[Namespace(name.split(":")[0])]
        ]
        for name in stale:
            del self._listed[name]

    async def publish_event(self, channel: Channel, frame: str) -> None:
        try:
            await self._link.publish(_live(str(channel)), frame)
        except (RedisError, OSError) as exc:
            self._fail(exc)  # join/leave are best effort: nothing is stored for them

    # --- history -------------------------------------------------------------------------------

    async def _position(self, name: str) -> StreamPosition:
        """The channel's latest offset and epoch; for a channel not yet published to, offset 0 in the
        epoch its first publish will use."""
        top, epoch = await self._position_script(
            keys=[_meta(name), self._keys.epoch(name)], args=[_fresh_epoch(), self._check_master]
        )
        return StreamPosition(offset=int(top), epoch=_text(epoch))

    def _publications(self, name: str, epoch: str, entries: list[Any]) -> list[Publication]:
        oldest = time.time() - self._history_ttl
        result = []
        for entry_id, fields in entries:
            ts = float(fields[b"t"])
            if ts < oldest:
                continue
            offset = int(entry_id.split(b"-")[0])
            data = json.loads(fields[b"d"])
            result.append(Publication.create(name, offset, epoch, ts, data))
        return result

    async def history(
        self, channel: Channel, *, since: StreamPosition | None = None, limit: int | None = None
    ) -> HistoryResult:
        name = str(channel)
        try:
            return await self._history(name, since, limit)
        except (RedisError, OSError) as exc:
            self._fail(exc)
            raise _unavailable(exc) from exc

    async def _history(self, name: str, since: StreamPosition | None, limit: int | None) -> HistoryResult:
        position = await self._position(name)
        if since is None:
            if limit == 0 or position.offset == 0:
                return HistoryResult([], position, recovered=True)
            count = self._history_size if limit is None else min(limit, self._history_size)
            # Bounded by the position just read: publishes racing this read are not history but live,
            # and the hub gets them (once) from the listener.
            entries = await self._redis.xrevrange(_stream(name), max=f"{position.offset}-1", count=count)
            recent = self._publications(name, position.epoch, list(reversed(entries or [])))
            return HistoryResult(recent, position, recovered=True)
        missed = missed_since(since, position, self._history_size)
        if missed is None:
            return HistoryResult([], position, recovered=False)
        if missed == 0:
            return HistoryResult([], position, recovered=True)
        first, last = f"{since.offset + 1}-0", f"{position.offset}-1"
        entries = await self._redis.xrange(_stream(name), min=first, max=last)
        replay = self._publications(name, position.epoch, list(entries or []))
        if len(replay) != missed or (replay and replay[0].offset != since.offset + 1):
            return HistoryResult([], position, recovered=False)  # trimmed or expired meanwhile
        if limit is not None:
            replay = replay[:limit]
        return HistoryResult(replay, position, recovered=True)

    # --- listening -----------------------------------------------------------------------------

    async def subscribe(self, channel: Channel) -> None:
        """Listen to ``channel``; return once Redis confirmed, so a history read after it misses nothing."""
        name = str(channel)
        listening = self._listening.get(name)
        if listening is None:
            try:
                await self._redis.ping()  # fail at once while Redis is down, not after the confirm timeout
            except (RedisError, OSError) as exc:
                self._fail(exc)
                raise _unavailable(exc) from exc
            confirmed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            # The listener notices the new channel within one poll and subscribes to it; the baseline
            # offset is read when Redis confirms (see _on_message).
            listening = self._listening[name] = _Listening(0, "", confirmed)
        try:
            await asyncio.wait_for(asyncio.shield(listening.confirmed), COMMAND_TIMEOUT * 2)
        except TimeoutError:
            raise PublishError("redis did not confirm the subscription in time") from None

    async def unsubscribe(self, channel: Channel) -> None:
        name = str(channel)
        listening = self._listening.pop(name, None)
        if listening is not None and not listening.confirmed.done():
            listening.confirmed.cancel()
        pubsub = self._pubsub
        if pubsub is not None:
            # Forgotten before the UNSUBSCRIBE goes out: a subscribe to the same channel right after this,
            # before the listener's next turn, must make it SUBSCRIBE again (and so be confirmed).
            self._subscribed.discard(_live(name))
            with contextlib.suppress(RedisError, OSError):
                await pubsub.unsubscribe(_live(name))

    async def _listen(self) -> None:
        """The pub/sub reader: runs for the broker's life, reconnecting after any failure."""
        backoff = Backoff(first=0.1, cap=2.0)
        while True:
            try:
                await self._listen_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Whatever it was, the listener must not die silently: log, back off, start again.
                self._fail(exc)
                delay = backoff.failed(time.monotonic())
                log.warning("redis listener lost its connection (%s); again in %.2f s", exc, delay)
                await asyncio.sleep(delay)
                continue
            backoff.succeeded(time.monotonic())

    async def _listen_once(self) -> None:
        pubsub = self._link.listener()
        self._pubsub = pubsub
        subscribed = self._subscribed = set()
        try:
            await pubsub.subscribe(self._keys.direct(self._process))
            recovering = True
            while True:
                wanted = {_live(name) for name in self._listening}
                if wanted - subscribed:
                    await pubsub.subscribe(*(wanted - subscribed))
                    subscribed |= wanted - subscribed
                if subscribed - wanted:
                    subscribed &= wanted
                if recovering:
                    # After a (re)connect: what was published while we were not listening comes from the
                    # streams, before anything newer from pub/sub. Redis may be back without the list of
                    # channels too: each is checked and listed again at its next publish.
                    self._listed.clear()
                    for name in list(self._listening):
                        await self._catch_up(name)
                    recovering = False
                    self._ok, self._detail = True, ""
                message = await pubsub.get_message(wait=0.05)
                if message is not None:
                    await self._on_message(message)
        finally:
            self._pubsub = None
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    async def _on_message(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        channel_name = message["channel"].decode()
        if kind == "subscribe":
            if channel_name.endswith("}:live"):
                name = keys.channel_of_live(channel_name)
                listening = self._listening.get(name)
                if listening is not None and not listening.confirmed.done():
                    # The baseline is read now that pub/sub is live: everything up to it is in the stream,
                    # where the hub's history read (after this) finds it; everything after it comes here.
                    # A baseline from before the SUBSCRIBE would make a catch-up hand the hub publications
                    # it also replays from history: duplicates.
                    position = await self._position(name)
                    listening.offset, listening.epoch = position.offset, position.epoch
                    listening.confirmed.set_result(None)
            return
        if kind != "message":
            return
        text = message["data"].decode()
        handler = self._require_handler()
        if self._keys.is_direct(channel_name):
            # The sender was acked when Redis took it: a refusal here (the target's direct budget is
            # full) cannot reach it, so the message is dropped (the hub counts it) and the target keeps
            # its connection.
            target, _, frame = text.partition(" ")
            handler.on_direct(target, frame)
            return
        name = keys.channel_of_live(channel_name)
        if not is_pub(text):
            handler.on_event(name, text)
            return
        envelope = json.loads(text)
        offset, epoch, ts, data = envelope["offset"], envelope["epoch"], envelope["ts"], envelope["data"]
        await self._deliver(name, Publication(name, offset, epoch, ts, data, text))

    async def _deliver(self, name: str, publication: Publication) -> None:
        listening = self._listening.get(name)
        if listening is None:
            return
        if publication.epoch == listening.epoch:
            if publication.offset <= listening.offset:
                return  # already delivered (history read or catch-up)
            if publication.offset > listening.offset + 1:
                await self._catch_up(name)  # a pub/sub message went missing: read it from the stream
                if publication.offset <= listening.offset:
                    return
        elif publication.offset != 1:
            await self._catch_up(name)
            return
        elif listening.offset > 0:
            # The channel started again (Redis lost it, or it expired) after subscribers had some of
            # its earlier life: tell them, as for any hole, rather than switch epochs under them.
            listening.offset, listening.epoch = publication.offset, publication.epoch
            self._require_handler().on_gap(name)
            return
        listening.offset, listening.epoch = publication.offset, publication.epoch
        self._require_handler().on_publication(publication)

    async def _catch_up(self, name: str) -> None:
        """Hand the hub what the stream has after the last delivered offset, or report a hole."""
        listening = self._listening.get(name)
        if listening is None:
            return
        since = StreamPosition(offset=listening.offset, epoch=listening.epoch)
        position = await self._position(name)
        if position.epoch == since.epoch and position.offset < since.offset:
            # Redis came back with less than was delivered (its last second of writes was lost): the
            # same offsets would be reused for other messages. A new epoch makes every resume see it.
            await self._rotate_epoch(name, since.epoch)
        result = await self._history(name, since, None)
        if not result.recovered:
            log.warning("%s: publications after %s are gone from redis; closing subscribers", name, since)
            listening.offset, listening.epoch = result.position.offset, result.position.epoch
            self._require_handler().on_gap(name)
            return
        for publication in result.publications:
            listening.offset, listening.epoch = publication.offset, publication.epoch
            self._require_handler().on_publication(publication)

    async def _rotate_epoch(self, name: str, old: str) -> None:
        await self._rotate_script(keys=[_meta(name)], args=[old, _fresh_epoch(), self._check_master])

    # --- presence, direct messages, channels, health -------------------------------------------

    async def presence_add(self, channel: Channel, entry: PresenceEntry) -> None:
        value = json.dumps({"client_id": entry.client_id, "name": entry.name, "process": self._process})
        with contextlib.suppress(RedisError, OSError):
            await self._redis.hset(keys.presence(str(channel)), entry.client_id, value)

    async def presence_remove(self, channel: Channel, client_id: str) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self._redis.hdel(keys.presence(str(channel)), client_id)

    async def presence(self, channel: Channel) -> list[PresenceEntry]:
        try:
            raw = await self._redis.hgetall(keys.presence(str(channel)))
            entries = [json.loads(value) for value in raw.values()]
            processes = sorted({entry["process"] for entry in entries})
            async with self._link.pipeline() as pipe:
                for process in processes:
                    pipe.exists(keys.process(process))
                found = await self._link.execute(pipe) if processes else []
            alive = {process for process, exists in zip(processes, found, strict=True) if exists}
        except (RedisError, OSError) as exc:
            self._fail(exc)
            raise _unavailable(exc) from exc
        return [
            PresenceEntry(client_id=entry["client_id"], name=entry["name"])
            for entry in entries
            if entry["process"] in alive
        ]

    async def client_added(self, client_id: str) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self._redis.set(keys.client(client_id), self._process, ex=self._key_ttl)

    async def client_removed(self, client_id: str) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self._redis.delete(keys.client(client_id))

    async def send_direct(self, client_id: str, frame: str) -> Direct:
        here = self._require_handler().on_direct(client_id, frame)
        if here is not Direct.NOT_FOUND:
            return here
        try:
            process = await self._redis.get(keys.client(client_id))
            if process is None:
                return Direct.NOT_FOUND
            target = self._keys.direct(_text(process))
            listeners = await self._link.publish(target, f"{client_id} {frame}")
            return Direct.QUEUED if listeners else Direct.NOT_FOUND
        except (RedisError, OSError) as exc:
            self._fail(exc)
            raise _unavailable(exc) from exc

    async def channels(self, query: ChannelQuery) -> ChannelPage:
        namespaces = [
            ns for ns in Namespace if f"{ns}:".startswith(query.prefix) or query.prefix.startswith(f"{ns}:")
        ]
        now = time.time()
        try:
            async with self._link.pipeline() as pipe:
                for namespace in namespaces:
                    for key in self._keys.channel_sets(namespace):
                        pipe.zremrangebyscore(key, "-inf", now - self._lifetimes[namespace])
                        pipe.zrange(key, 0, -1, withscores=True)
                answers = await self._link.execute(pipe)
            last = {_text(name): score for entries in answers[1::2] for name, score in entries}
            ordered: list[str]
            if query.order is ChannelOrder.RECENT:
                ordered = sorted(last, key=last.__getitem__, reverse=True)
            else:
                ordered = sorted(last)
                start = bisect.bisect_left(ordered, query.prefix)
                if query.cursor is not None:
                    start = max(start, bisect.bisect_right(ordered, query.cursor))
                ordered = ordered[start:]
            page, following = take_page(ordered, query)
            async with self._link.pipeline() as pipe:
                for name in page:
                    pipe.hmget(_meta(name), ["top", "epoch"])
                    pipe.xrevrange(_stream(name), count=RATE_SAMPLE)
                answers = await self._link.execute(pipe)
        except (RedisError, OSError) as exc:
            self._fail(exc)
            raise _unavailable(exc) from exc
        stats = [
            ChannelStats(
                name, StreamPosition(offset=int(top or 0), epoch=_text(epoch)), _rate(newest, now), last[name]
            )
            for name, (top, epoch), newest in zip(page, answers[0::2], answers[1::2], strict=True)
            if epoch is not None  # expired between the two reads: no longer live
        ]
        return ChannelPage(stats, following)

    def health(self) -> BrokerHealth:
        return BrokerHealth(ok=self._ok, backend=self.backend, detail=self._detail)

    async def _watch_health(self) -> None:
        last_beat = 0.0
        while True:
            try:
                await self._redis.ping()
                if time.monotonic() - last_beat > PROCESS_TTL / 3:
                    await self._redis.set(keys.process(self._process), "1", ex=PROCESS_TTL)
                    last_beat = time.monotonic()
                    self._forget_listed()
                if not self._ok and self._pubsub is not None:
                    self._ok, self._detail = True, ""
            except (RedisError, OSError) as exc:
                self._fail(exc)
            await asyncio.sleep(HEALTH_SECONDS)

    def _require_handler(self) -> BrokerHandler:
        if self._handler is None:
            raise RuntimeError("broker used before start()")
        return self._handler
