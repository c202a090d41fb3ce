"""The hub's per-tick hand-out: a channel's publications of one event-loop tick reach every subscriber as
one packed array built once, each publication goes to exactly the subscribers it had when it was
published (joins and leaves in the same tick included), and a slow consumer's dropped count is in
messages, packed or not."""

import asyncio
import json
from typing import Any

from gateway.broker.memory import MemoryBroker
from gateway.hub import Connection, Hub
from gateway.metrics import Metrics
from gateway.outbox import Outbox
from gateway.session.subscriptions import Subscriptions
from shared.channels import Channel

CHANNEL = Channel.parse("data:ticks")


class Sink:
    """A direct sink that records what each write carried, as the texts themselves."""

    def __init__(self) -> None:
        self.writes: list[list[str]] = []

    def writable(self) -> bool:
        return True

    def write_one(self, text: str) -> None:
        self.writes.append([text])

    def write_now(self, texts: list[str]) -> None:
        self.writes.append(texts)

    def messages(self) -> list[dict[str, Any]]:
        """Every message received, packed arrays opened up, in order."""
        out: list[dict[str, Any]] = []
        for texts in self.writes:
            for text in texts:
                decoded = json.loads(text)
                out += decoded if isinstance(decoded, list) else [decoded]
        return out


async def started_hub() -> tuple[MemoryBroker, Subscriptions]:
    """A hub on a memory broker, subscribed to through the session layer (which encodes the replies)."""
    broker = MemoryBroker(history_size=100, history_ttl=3600, store=None)
    hub = Hub(broker, Metrics(), direct_queue_bytes=64 * 1024)
    await broker.start(hub)
    return broker, Subscriptions(hub, broker, max_per_connection=10, membership={})


def subscriber(name: str, sink: Sink, *, batch: bool = True, limit: int = 1 << 20) -> Connection:
    return Connection(name, name, Outbox(limit, batch=batch, on_overflow=lambda: None, direct=sink))


def points(*values: float) -> list[dict[str, Any]]:
    return [{"values": {"v": value}, "ts": 1.0} for value in values]


def pub_values(messages: list[dict[str, Any]]) -> list[float]:
    return [m["data"]["values"]["v"] for m in messages if m.get("type") == "pub"]


def test_a_ticks_publications_are_one_packed_frame_built_once_for_every_subscriber() -> None:
    async def run() -> tuple[Sink, Sink, Sink]:
        broker, subscriptions = await started_hub()
        packed, packed_too, unpacked = Sink(), Sink(), Sink()
        connections = [
            subscriber("a", packed),
            subscriber("b", packed_too),
            subscriber("c", unpacked, batch=False),
        ]
        for connection in connections:
            await subscriptions.subscribe(connection, CHANNEL)
        await asyncio.sleep(0.01)
        for sink in (packed, packed_too, unpacked):
            sink.writes.clear()
        await broker.publish(CHANNEL, points(1, 2, 3))
        await asyncio.sleep(0.01)
        await broker.close()
        return packed, packed_too, unpacked

    packed, packed_too, unpacked = asyncio.run(run())
    assert len(packed.writes) == 1 and len(packed.writes[0]) == 1
    assert packed.writes[0][0] is packed_too.writes[0][0], "the same str object: packed once"
    assert pub_values(packed.messages()) == [1, 2, 3]
    assert len(unpacked.writes) == 1 and len(unpacked.writes[0]) == 3, "without packing: 3 frames, 1 write"
    assert all(text.startswith("{") for text in unpacked.writes[0])
    assert pub_values(unpacked.messages()) == [1, 2, 3]


def test_a_subscriber_joining_within_the_tick_gets_each_publication_once() -> None:
    """Published, then subscribed with history, before the hand-out: the newcomer has it from its
    replay only, and the publication after the join arrives live."""

    async def run() -> tuple[Sink, Sink]:
        broker, subscriptions = await started_hub()
        early, late = Sink(), Sink()
        await subscriptions.subscribe(subscriber("early", early), CHANNEL)
        await broker.publish(CHANNEL, points(1))
        await subscriptions.subscribe(subscriber("late", late), CHANNEL, history=10)
        await broker.publish(CHANNEL, points(2))
        await asyncio.sleep(0.01)
        await broker.close()
        return early, late

    early, late = asyncio.run(run())
    assert pub_values(early.messages()) == [1, 2]
    assert pub_values(late.messages()) == [1, 2]
    assert late.messages()[0]["type"] == "subscribed"


def test_a_subscriber_leaving_within_the_tick_gets_what_was_published_before_it_left() -> None:
    async def run() -> tuple[Sink, Sink]:
        broker, subscriptions = await started_hub()
        leaving, staying = Sink(), Sink()
        connection = subscriber("leaving", leaving)
        await subscriptions.subscribe(connection, CHANNEL)
        await subscriptions.subscribe(subscriber("staying", staying), CHANNEL)
        await broker.publish(CHANNEL, points(1, 2))
        await subscriptions.unsubscribe(connection, CHANNEL, ref=7)
        await broker.publish(CHANNEL, points(3))
        await asyncio.sleep(0.01)
        await broker.close()
        return leaving, staying

    leaving, staying = asyncio.run(run())
    assert pub_values(leaving.messages()) == [1, 2]
    assert leaving.messages()[-1]["type"] == "unsubscribed", "after the publications it was sent"
    assert pub_values(staying.messages()) == [1, 2, 3]


def test_an_overflowing_outbox_counts_the_messages_it_dropped_packed_or_not() -> None:
    """A subscriber whose socket never takes anything: two packed ticks and a single publication queue
    up, and the next tick overflows it. ``dropped`` is every message it lost, not every queue entry."""

    class Stuck(Sink):
        def writable(self) -> bool:
            return False

    async def run() -> tuple[Outbox, int]:
        broker, subscriptions = await started_hub()
        connection = subscriber("stuck", Stuck(), limit=2_000)
        await subscriptions.subscribe(connection, CHANNEL)
        await asyncio.sleep(0.01)
        sent = 0
        while not connection.outbox.overflowed:
            batch = 3 if sent < 6 else 1
            await broker.publish(CHANNEL, points(*range(sent, sent + batch)))
            sent += batch
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        await broker.close()
        return connection.outbox, sent

    outbox, sent = asyncio.run(run())
    assert sent > 6, "two packed ticks and at least one single publication were queued"
    assert outbox.dropped == 1 + sent, "the `subscribed` reply and every publication, the refused ones too"
    assert outbox.pending == 0
