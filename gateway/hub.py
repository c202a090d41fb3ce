"""Fan-out: which local connections want which channel, and handing them each publication's frame.

The hub knows frames, not the protocol: publications arrive with their frame built (the broker's
envelope), chat events arrive encoded, and a subscriber's ``subscribed`` reply is encoded by the session
(``gateway.session``). Checking ops, presence and chat announcements are the session's too.

Delivery never awaits: the hub appends the frame to each subscriber's outbox. A channel's publications
(and chat events) of one event-loop tick are collected first and handed out together at the end of it,
packed into one JSON array built once for every subscriber: a tick with k publications costs each
subscriber one outbox entry, not k. Whoever joins or leaves a channel first has that channel's collected
publications handed out, so each goes to exactly the subscribers it had when it was published.

A new subscription is first *pending* (:meth:`Hub.join`: it collects live publications in a list) while
its history is read; then (:meth:`Hub.go_live`) the reply, the history and the pending publications newer
than the history go to the outbox and the subscription turns *live*. Reading history can await (a shared
broker), so this is what keeps resume free of gaps and duplicates.

A replay may take at most half of the subscriber's free outbox room: more would close it as a slow
consumer at once, and it would come back with the same ``since`` forever. A resume that does not fit
answers ``recovered: false`` (the client pages history over HTTP); ``history: K`` gets the newest that fit.
"""

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from gateway.broker import Broker, Direct, Publication
from gateway.disconnect import Disconnect
from gateway.metrics import Metrics
from gateway.outbox import MAX_PACKED_CHARS, Outbox
from shared.channels import Channel, Namespace
from shared.messages import PresenceEntry, StreamPosition

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Connection:
    """A WebSocket client as the hub sees it. Hashable by identity."""

    client_id: str
    name: str
    outbox: Outbox
    channels: set[str] = field(default_factory=set)
    """Channels it is subscribed to, live or pending."""
    kick: Callable[[Disconnect], None] = field(default=lambda disconnect: None, repr=False)
    """Closes the connection (the session's close policy)."""

    @property
    def presence(self) -> PresenceEntry:
        return PresenceEntry(client_id=self.client_id, name=self.name)


class ChannelRecord:
    """Everything the hub keeps for one channel with local subscribers."""

    __slots__ = ("listening", "live", "namespace", "pending", "subscribers", "tick")

    def __init__(self, namespace: Namespace) -> None:
        self.namespace = namespace
        """The channel's namespace, kept so counting a delivery per namespace costs no parsing."""
        self.live: set[Outbox] = set()
        self.pending: dict[Connection, list[Publication]] = {}
        """Subscriptions whose history is being read, each with the publications it missed meanwhile."""
        self.subscribers = 0
        """Local subscriptions, live or pending: the broker hears of the first and the last."""
        self.tick: list[str] | None = None
        """Frames collected since the last hand-out, for the live subscribers."""
        self.listening: asyncio.Future[None] | None = None
        """Set while the first local subscriber waits for the broker to start listening: later
        subscribers wait for the same future, so none reads history before the broker listens."""


@dataclass(slots=True)
class Joining:
    """A pending subscription whose history was read: what :meth:`Hub.go_live` hands out."""

    connection: Connection
    channel: str
    position: StreamPosition
    """The channel's latest offset and epoch when the history was read."""
    recovered: bool
    replay: list[Publication]
    """The history that fits the subscriber's outbox, oldest first."""


class Hub:
    def __init__(self, broker: Broker, metrics: Metrics, *, direct_queue_bytes: int) -> None:
        self._broker = broker
        self._metrics = metrics
        self._direct_queue_bytes = direct_queue_bytes
        """Direct-message characters one connection may have queued (outside its slow-consumer limit)."""
        self._channels: dict[str, ChannelRecord] = {}
        self._clients: dict[str, Connection] = {}
        self._due: dict[ChannelRecord, None] = {}
        """Channels with frames collected since the last hand-out, in the order they are handed out."""

    # --- BrokerHandler -------------------------------------------------------------------------

    def on_publication(self, publication: Publication) -> None:
        record = self._channels.get(publication.channel)
        if record is None:
            return
        pending = record.pending
        if pending:
            for waiting in pending.values():
                waiting.append(publication)
        live = record.live
        if live:
            self._collect(record, publication.frame)
            self._metrics.messages_out[record.namespace] += len(live)

    def on_event(self, channel: str, frame: str) -> None:
        record = self._channels.get(channel)
        if record is not None and record.live:
            self._collect(record, frame)

    def on_direct(self, client_id: str, frame: str) -> Direct:
        connection = self._clients.get(client_id)
        if connection is None:
            return Direct.NOT_FOUND
        if not connection.outbox.put_direct(frame, self._direct_queue_bytes):
            self._metrics.direct_refused += 1
            return Direct.FULL
        return Direct.QUEUED

    def on_gap(self, channel: str) -> None:
        for connection in list(self._clients.values()):
            if channel in connection.channels:
                connection.kick(Disconnect.stream_lost(channel))

    # --- the per-tick hand-out ----------------------------------------------------------------

    def _collect(self, record: ChannelRecord, frame: str) -> None:
        tick = record.tick
        if tick is not None:
            tick.append(frame)
            return
        if not self._due:
            asyncio.get_running_loop().call_soon(self._hand_out)
        record.tick = [frame]
        self._due[record] = None

    def _hand_out(self) -> None:
        due, self._due = self._due, {}
        for record in due:
            self._deliver(record)

    def _settle(self, record: ChannelRecord) -> None:
        """Hand out the channel's collected frames now: its set of subscribers is about to change."""
        if self._due.pop(record, 0) is None:
            self._deliver(record)

    @staticmethod
    def _deliver(record: ChannelRecord) -> None:
        frames = record.tick
        record.tick = None
        live = record.live
        if not frames or not live:
            return
        if len(frames) == 1:
            frame = frames[0]
            for outbox in live:
                outbox.put(frame)
            return
        for chunk in _chunks(frames, MAX_PACKED_CHARS):
            if len(chunk) == 1:
                for outbox in live:
                    outbox.put(chunk[0])
                continue
            packed = "[" + ",".join(chunk) + "]"
            for outbox in live:
                outbox.put_packed(chunk, packed)

    # --- connections ---------------------------------------------------------------------------

    async def add(self, connection: Connection) -> None:
        self._clients[connection.client_id] = connection
        await self._broker.client_added(connection.client_id)

    async def remove(self, connection: Connection) -> list[Channel]:
        """Forget a closed connection and drop its subscriptions; returns the channels it was live in.

        Idempotent (a session removes its connection before the close handshake and again when done):
        a second call returns nothing.
        """
        if self._clients.get(connection.client_id) is connection:
            del self._clients[connection.client_id]
            await self._broker.client_removed(connection.client_id)
        was_live: list[Channel] = []
        for name in list(connection.channels):
            channel = Channel.parse(name)
            if await self.leave(connection, channel):
                was_live.append(channel)
        return was_live

    @property
    def connections(self) -> Iterable[Connection]:
        return self._clients.values()

    def subscribers(self, channel: str) -> int:
        record = self._channels.get(channel)
        return 0 if record is None else record.subscribers

    def subscriber_counts(self) -> dict[str, int]:
        """Local subscribers of every channel that has any."""
        return {name: record.subscribers for name, record in self._channels.items() if record.subscribers}

    # --- subscriptions -------------------------------------------------------------------------

    async def join(
        self,
        connection: Connection,
        channel: Channel,
        *,
        since: StreamPosition | None = None,
        history: int = 0,
    ) -> Joining | None:
        """Subscribe ``connection`` as pending and read its history: ``since`` a position, or the
        newest ``history``. None when it left while the history was read. Raises the broker's errors
        (the subscription is then dropped). Call :meth:`go_live` next, with no await in between: the
        replay was fitted to the outbox as it is now."""
        name = str(channel)
        connection.channels.add(name)
        record = self._channels.get(name)
        if record is None:
            record = self._channels[name] = ChannelRecord(channel.namespace)
        waiting: list[Publication] = []
        record.pending[connection] = waiting
        try:
            await self._count_local(channel, record, +1)
            if since is not None:
                result = await self._broker.history(channel, since=since)
            else:
                result = await self._broker.history(channel, limit=history)
        except BaseException:
            await self._drop(connection, channel)
            raise
        if connection not in record.pending:
            return None
        budget = connection.outbox.room // 2 - sum(len(publication.frame) for publication in waiting)
        replay, recovered = _fit(result.publications, budget), result.recovered
        if since is not None and len(replay) < len(result.publications):
            replay, recovered = [], False
        return Joining(connection, name, result.position, recovered, replay)

    def go_live(self, joining: Joining, reply: str) -> bool:
        """Queue ``reply`` (the encoded ``subscribed``), the replay and the publications that came while
        the history was read, then deliver to the subscription live. False when it left meanwhile."""
        record = self._channels.get(joining.channel)
        connection = joining.connection
        waiting = None if record is None else record.pending.pop(connection, None)
        if record is None or waiting is None:
            return False
        outbox = connection.outbox
        outbox.put(reply)
        for publication in joining.replay:
            outbox.put(publication.frame)
        newest = joining.position.offset
        for publication in waiting:
            if publication.offset > newest:
                outbox.put(publication.frame)
        self._settle(record)
        record.live.add(outbox)
        return True

    async def leave(self, connection: Connection, channel: Channel) -> bool:
        """Drop the connection's subscription to ``channel``; whether it was live (not still pending)."""
        record = self._channels.get(str(channel))
        was_live = record is not None and connection.outbox in record.live
        await self._drop(connection, channel)
        return was_live

    async def _drop(self, connection: Connection, channel: Channel) -> None:
        name = str(channel)
        if name not in connection.channels:
            return
        connection.channels.discard(name)
        record = self._channels[name]
        record.pending.pop(connection, None)
        if connection.outbox in record.live:
            self._settle(record)
            record.live.discard(connection.outbox)
        await self._count_local(channel, record, -1)

    async def _count_local(self, channel: Channel, record: ChannelRecord, delta: int) -> None:
        record.subscribers += delta
        count = record.subscribers
        name = str(channel)
        if count == 0 and self._channels.get(name) is record:
            del self._channels[name]
        if delta > 0 and count == 1:
            started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            record.listening = started
            try:
                await self._broker.subscribe(channel)
                started.set_result(None)
            except BaseException as exc:
                started.set_exception(exc)
                started.exception()  # retrieved here: the waiters below re-raise it
                raise
            finally:
                if record.listening is started:
                    record.listening = None
        elif delta > 0:
            waiting = record.listening
            if waiting is not None:
                await asyncio.shield(waiting)
        elif delta < 0 and count == 0:
            await self._broker.unsubscribe(channel)


def _chunks(frames: list[str], limit: int) -> Iterable[list[str]]:
    """``frames`` in order, in runs of at most ``limit`` characters (a longer frame is a run alone)."""
    chunk: list[str] = []
    size = 0
    for frame in frames:
        if chunk and size + len(frame) > limit:
            yield chunk
            chunk, size = [], 0
        chunk.append(frame)
        size += len(frame)
    if chunk:
        yield chunk


def _fit(publications: list[Publication], room: int) -> list[Publication]:
    """The newest publications whose frames fit in ``room`` characters, oldest first."""
    used = 0
    for index in range(len(publications) - 1, -1, -1):
        used += len(publications[index].frame)
        if used > room:
            return publications[index + 1 :]
    return publications
