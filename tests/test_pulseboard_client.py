"""The ``pulseboard`` client against a real gateway: a subscriber that reconnects across a gateway
restart and resumes exactly, reports a gap (and the range API fills it), publishes with an ack, and
HTTP publishing whose retry with the same idempotency key publishes nothing twice."""

import asyncio
import signal
import time
from pathlib import Path

import httpx
import pytest

from gateway.auth import mint_token
from pulseboard.gateway_api import GatewayAPI, Published, Rejected
from pulseboard.history import read_range
from pulseboard.link import RequestRejectedError
from pulseboard.subscriber import (
    ConnectionStoppedError,
    Gap,
    Pub,
    Refused,
    Subscriber,
    SyncSubscriber,
    Update,
)
from shared.backoff import Backoff
from shared.channels import Channel
from shared.codes import CloseCode
from shared.payloads import ChatPost, DataPoint
from tests.servers import GatewayProcess, StartGateway

FAST = Backoff(first=0.05, cap=0.5)
SECRET = "a-test-secret-of-at-least-32-bytes"


def publish(gateway: GatewayProcess, channel: str, payloads: list[dict[str, object]]) -> list[int]:
    response = httpx.post(f"{gateway.http_url}/api/publish/{channel}", json=payloads, timeout=10)
    response.raise_for_status()
    offsets: list[int] = response.json()["offsets"]
    return offsets


async def take(feed: Subscriber, count: int) -> list[Update]:
    async with asyncio.timeout(15):
        return [await anext(feed) for _ in range(count)]


def test_resumes_exactly_across_a_gateway_restart(tmp_path: Path) -> None:
    gateway = GatewayProcess(tmp_path).start()

    async def scenario() -> None:
        async with Subscriber(gateway.ws_url, ["chat:room"], history=10, backoff=FAST) as feed:
            publish(gateway, "chat:room", [{"text": f"m{i}"} for i in range(3)])
            first = await take(feed, 3)
            assert [e.offset for e in first if isinstance(e, Pub)] == [1, 2, 3]
            assert await feed.publish("chat:room", {"text": "mine"}) == 4
            assert [e.data["text"] for e in await take(feed, 1) if isinstance(e, Pub)] == ["mine"]

            await asyncio.to_thread(gateway.restart, signal.SIGTERM)  # 1012: the subscriber reconnects
            publish(gateway, "chat:room", [{"text": f"n{i}"} for i in range(2)])
            after = await take(feed, 2)
            assert [(e.offset, e.data["text"]) for e in after if isinstance(e, Pub)] == [(5, "n0"), (6, "n1")]
            assert feed.connections == 2
            with pytest.raises(RequestRejectedError) as refused:
                await feed.publish("chat:room", {"text": ""})
            assert refused.value.code == "bad_request"

    try:
        asyncio.run(scenario())
    finally:
        gateway.stop()


def test_a_lost_stream_is_reported_as_a_gap_and_the_range_api_fills_it(tmp_path: Path) -> None:
    gateway = GatewayProcess(tmp_path).start()

    async def scenario() -> None:
        async with (
            Subscriber(gateway.ws_url, ["data:x"], backoff=FAST) as feed,
            httpx.AsyncClient(base_url=gateway.http_url, timeout=10) as http,
        ):
            await asyncio.sleep(0.3)  # subscribed
            now = time.time()
            publish(gateway, "data:x", [{"ts": now - 10 + i, "values": {"v": float(i)}} for i in range(5)])
            seen = await take(feed, 5)
            await asyncio.sleep(1.5)  # the history store's flush
            # memory:// keeps data: channels in memory only: after a restart the stream starts a new epoch.
            await asyncio.to_thread(gateway.restart, signal.SIGTERM)
            gap = (await take(feed, 1))[0]  # on resubscribing
            publish(gateway, "data:x", [{"values": {"v": 99.0}}])
            live = (await take(feed, 1))[0]
            assert isinstance(gap, Gap) and isinstance(live, Pub)
            last = seen[-1]
            assert isinstance(last, Pub)
            assert gap.since.offset == 5 and gap.since.epoch == last.epoch != gap.position.epoch
            assert gap.last_ts == last.ts and live.data["values"] == {"v": 99.0}
            filled = await read_range(http, "data:x", now - 60, now + 60)
            assert filled.series["v"].max[-5:] == [0.0, 1.0, 2.0, 3.0, 4.0]

    try:
        asyncio.run(scenario())
    finally:
        gateway.stop()


def test_http_publishing_retried_with_its_key_publishes_once(tmp_path: Path) -> None:
    gateway = GatewayProcess(tmp_path).start()
    try:
        with GatewayAPI(gateway.http_url) as api:
            point = [DataPoint(values={"v": 1.0})]
            first = api.publish(Channel.parse("data:idem"), point, idempotency_key="k1")
            retry = api.publish(Channel.parse("data:idem"), point, idempotency_key="k1")
            assert isinstance(first, Published) and isinstance(retry, Published)
            assert first.offsets == retry.offsets == [1]
            refused = api.publish(
                Channel.parse("chat:room"), [ChatPost.model_construct(text="x" * 5000)], idempotency_key="k2"
            )
            assert isinstance(refused, Rejected) and refused.status == 413
    finally:
        gateway.stop()


def test_the_blocking_subscriber_follows_resumes_adds_channels_and_reports_refusals(tmp_path: Path) -> None:
    # One subscription per connection: the second channel asked for is refused, the first goes on.
    gateway = GatewayProcess(tmp_path, env={"PULSE_MAX_SUBSCRIPTIONS": "1"}).start()
    try:
        with SyncSubscriber(gateway.ws_url, ["chat:room"], backoff=FAST) as feed:
            assert feed.publish("chat:room", {"text": "first"}) == 1
            assert updates(feed, 1) == [("chat:room", 1)]

            feed.subscribe("chat:other")
            refused = feed.get(timeout=15)
            assert isinstance(refused, Refused) and refused.channel == "chat:other"
            assert refused.code == "too_large"

            gateway.restart(signal.SIGTERM)  # 1012: the subscriber reconnects and resumes with since
            publish(gateway, "chat:room", [{"text": f"n{i}"} for i in range(2)])
            assert updates(feed, 2) == [("chat:room", 2), ("chat:room", 3)]
            assert feed.connection.connections == 2
            assert feed.connection.wanted == ["chat:room"]  # a refused channel is not asked for again
    finally:
        gateway.stop()


def updates(feed: SyncSubscriber, count: int) -> list[tuple[str, int]]:
    """The channel and offset of the next ``count`` publications (anything else fails the test)."""
    seen = [feed.get(timeout=15) for _ in range(count)]
    assert all(isinstance(update, Pub) for update in seen), seen
    return [(update.channel, update.offset) for update in seen if isinstance(update, Pub)]


def test_a_refused_token_ends_the_iteration_instead_of_reconnecting(start_gateway: StartGateway) -> None:
    gateway = start_gateway(env={"PULSE_SECRET": SECRET})
    expired = mint_token(SECRET, "alice", ttl=-3600)  # far past the gateway's clock-skew leeway

    async def scenario() -> None:
        async with Subscriber(gateway.ws_url, ["chat:room"], token=expired, backoff=FAST) as feed:
            with pytest.raises(ConnectionStoppedError) as stopped:
                async with asyncio.timeout(15):
                    await anext(feed)
            assert stopped.value.code in (401, CloseCode.UNAUTHORIZED)
            assert feed.connections <= 1

    asyncio.run(scenario())
