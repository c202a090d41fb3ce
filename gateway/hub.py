"""Fan-out: which local connections want which channel, and handing them each publication.

Delivery never awaits: the hub appends the publication's prebuilt frame to each subscriber's outbox.
A channel's publications (and chat events) of one event-loop tick are collected first and handed out
together at the end of it, packed into one JSON array built once for every subscriber: a tick with k
publications costs each subscriber one outbox entry, not k. Whoever joins or leaves a channel first has
that channel's collected publications handed out, so each goes to exactly the subscribers it had when
it was published.

A new subscription is first *pending* (it collects live publications in a list) while its history is
read; then history, and the pending publications newer than the history, go to the outbox and the
subscription turns *live*. Reading history can await (a shared broker), so this is what keeps
resume free of gaps and duplicates.

A replay may take at most half of the subscriber's free outbox room: more would close it as a slow
consumer at once, and it would come back with the same ``since`` forever. A resume that does not fit
answers ``recovered: false`` (the client pages history over HTTP); ``history: K`` gets the newest that fit.
"""

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from gateway.broker import Broker, Direct, Publication, PublishError
from gateway.metrics import Metrics
from gateway.outbox import MAX_PACKED_CHARS, Outbox
from shared.channels import Channel, Namespace
from shared.codes import ErrorCode
from shared.messages import (
    Join,
    Leave,
    PresenceEntry,
    ProtocolError,
    RequestId,
    StreamPosition,
    Subscribed,
    Unsubscribed,
    encode,
)

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Connection:
    """A WebSocket client as the hub sees it. Hashable by identity."""

    client_id: str
    name: str
    outbox: Outbox
    channels: set[str] = field(default_factory=set)
    kick: Callable[[int, str], None] = field(default=lambda code, reason: None, repr=False)
    """Closes the connection with a code and reason (the session's ``request_close``)."""

    @property
    def presence(self) -> PresenceEntry:
        return PresenceEntry(client_id=self.client_id, name=self.name)


class Hub:
    def __init__(
        self, broker: Broker, metrics: Metrics, *, max_subscriptions: int, direct_queue_bytes: int
    ) -> None:
        self._broker = broker
        self._metrics = metrics
        self._max_subscriptions = max_subscriptions
        self._direct_queue_bytes = direct_queue_bytes
        """Direct-message characters one connection may have queued (outside its slow-consumer limit)."""
        self._live: dict[str, set[Outbox]] = {}
        self._pending: dict[str, dict[Connection, list[Publication]]] = {}
        self._local: dict[str, int] = {}
        """Local subscriptions per channel, live or pending: the broker hears of the first and last."""
        self._clients: dict[str, Connection] = {}
        self._this_tick: dict[str, list[str]] = {}
        """Frames published per channel since the last hand-out, for the live subscribers."""
        self._listening: dict[str, asyncio.Future[None]] = {}
        """Channels whose first local subscriber is waiting for the broker to start listening: later
        subscribers wait for the same future, so none reads history before the broker listens."""

    # --- BrokerHandler -------------------------------------------------------------------------

    def on_publication(self, publication: Publication) -> None:
        channel = publication.channel
        pending = self._pending.get(channel)
        if pending:
            for waiting in pending.values():
                waiting.append(publication)
        live = self._live.get(channel)
        if live:
            self._collect(channel, publication.frame)
            self._metrics.messages_out += len(live)

    def on_event(self, channel: str, frame: str) -> None:
        if self._live.get(channel):
            self._collect(channel, frame)

    def on_direct(self, client_id: str, frame: str) -> Direct:
        connection = self._clients.get(client_id)
        if connection is None:
            return Direct.NOT_FOUND
        if not connection.outbox.put_direct(frame, self._direct_queue_bytes):
            self._metrics.direct_refused += 1
            return Direct.FULL
        return Direct.QUEUED

    def on_gap(self, channel: str) -> None:
        # The broker lost publications of this channel: a subscriber kept live would never notice. It
        # reconnects (1013 is a reconnect code), resumes with `since`, and gets `recovered: false`.
        for connection in list(self._clients.values()):
            if channel in connection.channels:
                connection.kick(1013, f"{channel}: publications lost in the broker; resubscribe")

    # --- the per-tick hand-out ----------------------------------------------------------------

    def _collect(self, channel: str, frame: str) -> None:
        collected = self._this_tick.get(channel)
        if collected is not None:
            collected.append(frame)
            return
        if not self._this_tick:
            asyncio.get_running_loop().call_soon(self._hand_out)
        self._this_tick[channel] = [frame]

    def _hand_out(self) -> None:
        collected, self._this_tick = self._this_tick, {}
        for channel, frames in collected.items():
            self._deliver(channel, frames)

    def _settle(self, channel: str) -> None:
        """Hand out the channel's collected frames now: its set of subscribers is about to change."""
        frames = self._this_tick.pop(channel, None)
        if frames:
            self._deliver(channel, frames)

    def _deliver(self, channel: str, frames: list[str]) -> None:
        live = self._live.get(channel)
        if not live:
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

    async def remove(self, connection: Connection) -> None:
        """Forget a closed connection: drop its subscriptions and presence, tell chat rooms it left.

        Idempotent: a session removes its connection before the close handshake and again when done.
        """
        if self._clients.get(connection.client_id) is connection:
            del self._clients[connection.client_id]
            await self._broker.client_removed(connection.client_id)
        for channel in list(connection.channels):
            await self._leave(connection, Channel.parse(channel))

    @property
    def connections(self) -> Iterable[Connection]:
        return self._clients.values()

    def subscribers(self, channel: str) -> int:
        return self._local.get(channel, 0)

    # --- subscriptions -------------------------------------------------------------------------

    async def subscribe(
        self,
        connection: Connection,
        channel: Channel,
        *,
        since: StreamPosition | None = None,
        history: int | None = None,
        ref: RequestId | None = None,
    ) -> None:
        name = str(channel)
        if name in connection.channels:
            raise ProtocolError(ErrorCode.BAD_REQUEST, f"already subscribed to {name}", ref)
        if len(connection.channels) >= self._max_subscriptions:
            raise ProtocolError(
                ErrorCode.TOO_LARGE,
                f"at most {self._max_subscriptions} subscriptions per connection: {name} is not subscribed",
                ref,
            )
        if since is not None and history is not None:
            raise ProtocolError(ErrorCode.BAD_REQUEST, "give either 'since' or 'history', not both", ref)
        connection.channels.add(name)
        waiting: list[Publication] = []
        self._pending.setdefault(name, {})[connection] = waiting
        try:
            await self._count_local(channel, +1)
            if since is not None:
                result = await self._broker.history(channel, since=since)
            else:
                result = await self._broker.history(channel, limit=history or 0)
        except PublishError as exc:
            await self._drop(connection, channel)
            raise ProtocolError(ErrorCode.UNAVAILABLE, f"cannot subscribe now: {exc}", ref) from None
        except BaseException:
            await self._drop(connection, channel)
            raise
        if self._pending.get(name, {}).pop(connection, None) is None:
            return  # unsubscribed or disconnected while history was read
        outbox = connection.outbox
        budget = outbox.room // 2 - sum(len(publication.frame) for publication in waiting)
        replay, recovered = _fit(result.publications, budget), result.recovered
        if since is not None and len(replay) < len(result.publications):
            replay, recovered = [], False
        outbox.put(
            encode(
                Subscribed(
                    ref=ref,
                    channel=name,
                    offset=result.position.offset,
                    epoch=result.position.epoch,
                    recovered=recovered,
                )
            )
        )
        for publication in replay:
            outbox.put(publication.frame)
        newest = result.position.offset
        for publication in waiting:
            if publication.offset > newest:
                outbox.put(publication.frame)
        self._settle(name)
        self._live.setdefault(name, set()).add(outbox)
        await self._broker.presence_add(channel, connection.presence)
        if channel.namespace is Namespace.CHAT:
            await self._broker.publish_event(
                channel, encode(Join(channel=name, client_id=connection.client_id, name=connection.name))
            )

    async def unsubscribe(self, connection: Connection, channel: Channel, *, ref: RequestId | None) -> None:
        name = str(channel)
        if name not in connection.channels:
            raise ProtocolError(ErrorCode.BAD_REQUEST, f"not subscribed to {name}", ref)
        await self._leave(connection, channel)
        connection.outbox.put(encode(Unsubscribed(ref=ref, channel=name)))

    async def _leave(self, connection: Connection, channel: Channel) -> None:
        was_live = connection.outbox in self._live.get(str(channel), ())
        await self._drop(connection, channel)
        if not was_live:
            return
        await self._broker.presence_remove(channel, connection.client_id)
        if channel.namespace is Namespace.CHAT:
            await self._broker.publish_event(
                channel,
                encode(Leave(channel=str(channel), client_id=connection.client_id, name=connection.name)),
            )

    async def _drop(self, connection: Connection, channel: Channel) -> None:
        name = str(channel)
        if name not in connection.channels:
            return
        connection.channels.discard(name)
        pending = self._pending.get(name)
        if pending is not None:
            pending.pop(connection, None)
            if not pending:
                del self._pending[name]
        live = self._live.get(name)
        if live is not None:
            self._settle(name)
            live.discard(connection.outbox)
            if not live:
                del self._live[name]
        await self._count_local(channel, -1)

    async def _count_local(self, channel: Channel, delta: int) -> None:
        name = str(channel)
        count = self._local.get(name, 0) + delta
        if count > 0:
            self._local[name] = count
        else:
            self._local.pop(name, None)
        if delta > 0 and count == 1:
            started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._listening[name] = started
            try:
                await self._broker.subscribe(channel)
                started.set_result(None)
            except BaseException as exc:
                started.set_exception(exc)
                started.exception()  # retrieved here: the waiters below re-raise it
                raise
            finally:
                if self._listening.get(name) is started:
                    del self._listening[name]
        elif delta > 0:
            waiting = self._listening.get(name)
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
