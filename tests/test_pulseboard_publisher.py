"""``pulseboard.publisher`` against a real gateway: sync and async publishing arrives in order, a gateway
killed mid-stream loses nothing acknowledged and stores nothing twice, an answer lost on the way back
(a real TCP proxy drops it) is retried with the same idempotency key and stored once, and a refused
batch is reported without holding up the ones after it."""

import asyncio
import signal
import threading
import time

import httpx
import pydantic
import pytest

from pulseboard.publisher import AsyncPublisher, Publisher, PublishRejectedError, Rejection
from shared.api import HistoryPage
from shared.backoff import Backoff
from shared.channels import ChannelError
from shared.payloads import ChatPost, DataPoint
from tests.servers import GatewayProcess, free_port
from tests.tcp_proxy import AnswerDroppingProxy
from tests.waiting import eventually


def fast() -> Backoff:
    return Backoff(first=0.05, cap=0.5)


def history(gateway: GatewayProcess, channel: str) -> HistoryPage:
    response = httpx.get(f"{gateway.http_url}/api/channels/{channel}/history?limit=1000", timeout=10)
    response.raise_for_status()
    return HistoryPage.model_validate_json(response.content)


def values(page: HistoryPage) -> list[float]:
    return [publication.data["values"]["v"] for publication in page.publications]


def texts(page: HistoryPage) -> list[str]:
    return [publication.data["text"] for publication in page.publications]


def offsets(page: HistoryPage) -> list[int]:
    return [publication.offset for publication in page.publications]


def test_sync_single_points_and_batches_arrive_in_order(gateway: GatewayProcess) -> None:
    """Points published one by one and in batches, and chat posts as models, arrive in publishing order;
    batches of at most ``batch_size`` go, and ``name`` is the chat sender."""
    with Publisher(gateway.http_url, batch_size=4, linger=0.01, name="probe") as publisher:
        for i in range(10):
            publisher.publish("data:sync", {"values": {"v": float(i)}})
        publisher.publish_many("data:sync", [DataPoint(values={"v": float(i)}) for i in range(10, 25)])
        publisher.publish_many("chat:sync", [ChatPost(text="a"), {"text": "b"}])
        publisher.flush(10)
        stats = publisher.stats
    page = history(gateway, "data:sync")
    assert values(page) == [float(i) for i in range(25)] and offsets(page) == list(range(1, 26))
    chat = history(gateway, "chat:sync")
    assert texts(chat) == ["a", "b"] and {p.data["sender"] for p in chat.publications} == {"probe"}
    assert stats.published == 27 and stats.requests >= 8 and stats.failures == stats.dropped == 0


def test_async_single_points_and_batches_arrive_in_order(gateway: GatewayProcess) -> None:
    """The asyncio publisher: the same order and counts, ``flush`` awaited inside ``async with``."""

    async def scenario() -> None:
        async with AsyncPublisher(gateway.http_url, batch_size=4, linger=0.01) as publisher:
            for i in range(10):
                publisher.publish("data:async", {"values": {"v": float(i)}})
            publisher.publish_many("data:async", [{"values": {"v": float(i)}} for i in range(10, 25)])
            async with asyncio.timeout(10):
                await publisher.flush()
            assert publisher.stats.published == 25
            publisher.publish("notify:async", {"level": "info", "title": "done"})  # sent by close

    asyncio.run(scenario())
    page = history(gateway, "data:async")
    assert values(page) == [float(i) for i in range(25)] and offsets(page) == list(range(1, 26))
    assert [p.data["title"] for p in history(gateway, "notify:async").publications] == ["done"]


def test_a_gateway_killed_mid_stream_loses_nothing_acknowledged_and_duplicates_nothing(
    gateway: GatewayProcess,
) -> None:
    """SIGKILL while posts stream in (chat is committed before it is acknowledged): every post is stored
    exactly once and in order, whether its answer came back before the kill or only to a retry."""
    count = 300
    producing = threading.Event()

    def produce(publisher: Publisher) -> None:
        for i in range(count):
            publisher.publish("chat:restart", {"text": f"m{i}"})
            if i == 50:
                producing.set()
            time.sleep(0.005)

    with Publisher(gateway.http_url, batch_size=10, linger=0.01, backoff=fast()) as publisher:
        producer = threading.Thread(target=produce, args=(publisher,))
        producer.start()
        producing.wait(10)
        gateway.restart(signal.SIGKILL)
        producer.join()
        publisher.flush(30)
        stats = publisher.stats
    page = history(gateway, "chat:restart")
    assert texts(page) == [f"m{i}" for i in range(count)]
    assert offsets(page) == list(range(1, count + 1))
    assert stats.failures > 0, "the kill happened after everything was sent: nothing was tested"
    assert stats.published == count and stats.dropped == 0


def test_a_dropped_answer_is_retried_with_its_key_and_stored_once(gateway: GatewayProcess) -> None:
    """Through a proxy that lets the gateway store a batch and then drops its answer (twice): the retries
    carry the same Idempotency-Key, so each point is in the channel once, at offsets 1 to 5."""
    with (
        AnswerDroppingProxy(gateway.port, drop=2) as proxy,
        Publisher(proxy.url, linger=0.01, backoff=fast()) as publisher,
    ):
        publisher.publish_many("data:lost", [{"values": {"v": float(i)}} for i in range(5)])
        publisher.flush(10)
        stats = publisher.stats
    assert proxy.dropped == 2 and stats.failures == 2 and stats.published == 5
    page = history(gateway, "data:lost")
    assert values(page) == [0.0, 1.0, 2.0, 3.0, 4.0] and offsets(page) == [1, 2, 3, 4, 5]
    assert page.offset == 5


def test_async_a_dropped_answer_is_retried_with_its_key_and_stored_once(gateway: GatewayProcess) -> None:
    """The same lost answer for the asyncio publisher, on a durable chat channel."""

    async def scenario(url: str) -> int:
        async with AsyncPublisher(url, linger=0.01, backoff=fast()) as publisher:
            publisher.publish_many("chat:lost", [{"text": f"m{i}"} for i in range(3)])
            async with asyncio.timeout(10):
                await publisher.flush()
            return publisher.stats.failures

    with AnswerDroppingProxy(gateway.port, drop=1) as proxy:
        failures = asyncio.run(scenario(proxy.url))
    assert proxy.dropped == 1 and failures == 1
    page = history(gateway, "chat:lost")
    assert texts(page) == ["m0", "m1", "m2"] and offsets(page) == [1, 2, 3]


def test_a_rejected_batch_is_raised_by_flush_and_does_not_block_later_ones(gateway: GatewayProcess) -> None:
    """Without ``on_rejected``, a refused batch (413: text over the gateway's limit, sent by a client
    whose model did not check it) is raised by ``flush``; the posts after it are stored."""
    oversize = ChatPost.model_construct(text="x" * 5000)
    with Publisher(gateway.http_url, batch_size=1, linger=0.01) as publisher:
        publisher.publish("chat:refused", {"text": "before"})
        publisher.publish("chat:refused", oversize)
        publisher.publish("chat:refused", {"text": "after"})
        with pytest.raises(PublishRejectedError) as raised:
            publisher.flush(10)
        (rejection,) = raised.value.rejections
        assert rejection.status == 413 and rejection.payloads == [oversize]
        publisher.publish("chat:refused", {"text": "later"})
        publisher.flush(10)  # reported once: the next flush is clean
        assert publisher.stats.rejected == 1 and publisher.stats.published == 3
    assert texts(history(gateway, "chat:refused")) == ["before", "after", "later"]


def test_rejections_go_to_on_rejected_instead(gateway: GatewayProcess) -> None:
    """With ``on_rejected``, each refused batch is handed to it and ``flush`` does not raise."""
    heard: list[Rejection] = []
    with Publisher(gateway.http_url, batch_size=1, linger=0.01, on_rejected=heard.append) as publisher:
        publisher.publish("chat:heard", ChatPost.model_construct(text="x" * 5000))
        publisher.publish("chat:heard", {"text": "fine"})
        publisher.flush(10)
    assert [(r.status, str(r.channel)) for r in heard] == [(413, "chat:heard")]
    assert texts(history(gateway, "chat:heard")) == ["fine"]


def test_payloads_are_checked_against_their_channel_before_anything_is_queued() -> None:
    """A payload that does not fit its namespace's model, or a bad channel, raises in ``publish``."""
    with Publisher(f"http://127.0.0.1:{free_port()}") as publisher:
        with pytest.raises(pydantic.ValidationError):
            publisher.publish("data:x", {"values": {}})
        with pytest.raises(TypeError, match="chat:x takes ChatPost, not DataPoint"):
            publisher.publish("chat:x", DataPoint(values={"v": 1.0}))
        with pytest.raises(ChannelError):
            publisher.publish("cpu", {"values": {"v": 1.0}})
        with pytest.raises(pydantic.ValidationError):
            publisher.publish_many("data:x", [{"values": {"v": 1.0}}, {"values": {"v": "high"}}])
        assert publisher.stats.dropped == 0  # nothing was queued, the valid first point neither


def test_without_a_gateway_the_queue_keeps_the_newest_and_close_gives_up_the_rest() -> None:
    """Nothing listens: the batch on its way is kept for its retry, the queue behind it drops its oldest
    beyond ``max_queue``, ``flush`` times out, and ``close`` counts what it gives up."""
    publisher = Publisher(
        f"http://127.0.0.1:{free_port()}", batch_size=5, max_queue=5, linger=10, backoff=fast()
    )
    publisher.publish_many("data:down", [{"values": {"v": float(i)}} for i in range(5)])  # a full batch
    eventually(lambda: publisher.stats.failures >= 1, what="the first failed attempt")
    publisher.publish_many("data:down", [{"values": {"v": float(i)}} for i in range(5, 15)])
    assert publisher.stats.dropped == 5  # 5 to 9: the queue behind the batch holds 10 to 14
    with pytest.raises(TimeoutError):
        publisher.flush(0.3)
    publisher.close(timeout=0.1)
    assert publisher.stats.dropped == 15 and publisher.stats.published == 0
    with pytest.raises(RuntimeError, match="closed"):
        publisher.publish("data:down", {"values": {"v": 1.0}})
