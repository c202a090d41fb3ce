"""The outbox's per-tick flush for direct sinks: one write per connection per tick, hand-over to the
sender task while a socket cannot take more, and one failing connection never stalls the others."""

import asyncio

from gateway.outbox import Outbox


class Sink:
    """A direct sink that records its writes; ``writable`` and ``fails`` are switched by the test."""

    def __init__(self, *, fails: bool = False) -> None:
        self.writes: list[list[str]] = []
        self.is_writable = True
        self.fails = fails

    def writable(self) -> bool:
        return self.is_writable

    def write_one(self, text: str) -> None:
        self.write_now([text])

    def write_now(self, texts: list[str]) -> None:
        if self.fails:
            raise OSError("the socket broke")
        self.writes.append(texts)


def outbox_for(sink: Sink, *, batch: bool = False) -> Outbox:
    return Outbox(64 * 1024, batch=batch, on_overflow=lambda: None, direct=sink)


def test_everything_queued_in_a_tick_goes_out_in_one_write() -> None:
    """Three puts in one tick are one write on the next, in order; packed when batching is on."""

    async def run() -> tuple[list[list[str]], list[list[str]]]:
        plain, packed = Sink(), Sink()
        for sink, batch in ((plain, False), (packed, True)):
            outbox = outbox_for(sink, batch=batch)
            for text in ('{"n":1}', '{"n":2}', '{"n":3}'):
                outbox.put(text)
        await asyncio.sleep(0)
        return plain.writes, packed.writes

    plain, packed = asyncio.run(run())
    assert plain == [['{"n":1}', '{"n":2}', '{"n":3}']]
    assert packed == [['[{"n":1},{"n":2},{"n":3}]']]


def test_a_full_socket_hands_over_to_the_sender_task_and_back() -> None:
    """While the sink is not writable nothing is written; the sender task waits, then writes in order,
    and later ticks are flushed directly again."""

    async def run() -> list[list[str]]:
        sink = Sink()
        outbox = outbox_for(sink)
        drained = asyncio.Event()

        async def write(texts: list[str]) -> None:
            await drained.wait()  # the socket's buffer draining
            sink.is_writable = True
            sink.write_now(texts)

        sender = asyncio.create_task(outbox.run(write))
        sink.is_writable = False
        outbox.put("a")
        outbox.put("b")
        await asyncio.sleep(0.01)
        assert sink.writes == []
        drained.set()
        await asyncio.sleep(0.01)
        outbox.put("c")
        await asyncio.sleep(0)
        outbox.close()
        await asyncio.wait_for(sender, 1)
        return sink.writes

    assert asyncio.run(run()) == [["a", "b"], ["c"]]


def test_one_failing_connection_does_not_stall_the_others_in_its_tick() -> None:
    """A sink that raises ends its own sender task with that error (its session then ends); the outboxes
    after it in the same tick are written."""

    async def run() -> tuple[list[list[str]], BaseException | None]:
        broken, healthy = Sink(fails=True), Sink()
        first, second = outbox_for(broken), outbox_for(healthy)

        async def write(texts: list[str]) -> None:
            raise AssertionError("the broken connection's sender must not write")

        sender = asyncio.create_task(first.run(write))
        await asyncio.sleep(0)
        first.put("lost")
        second.put("delivered")
        await asyncio.wait({sender}, timeout=1)
        return healthy.writes, sender.exception() if sender.done() else None

    healthy, error = asyncio.run(run())
    assert healthy == [["delivered"]]
    assert isinstance(error, OSError)
