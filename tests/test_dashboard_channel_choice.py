"""Which channels a dashboard session subscribes to, against a real gateway: configured channels first,
whatever else was published; then the most recently active; the user's picks, with any refusal said."""

from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest

from dashboard.consumer import MAX_AUTO_CHANNELS, Consumer, ConsumerConfig, choose_discovered
from dashboard.session_buffer import ConnectionState, SessionBuffer
from dashboard.settings import DashboardSettings
from tests.servers import GatewayProcess, StartGateway
from tests.waiting import eventually

SQUATTERS = 230


def squat(gateway: GatewayProcess, count: int = SQUATTERS) -> None:
    """One point to each of ``count`` new data: and notify: channels whose names sort first."""
    with httpx.Client(base_url=gateway.http_url, timeout=5) as http:
        for index in range(count):
            http.post(f"/api/publish/data:A{index:03}", json={"values": {"v": 1.0}}).raise_for_status()
            notice = {"level": "info", "title": "squat"}
            http.post(f"/api/publish/notify:A{index:03}", json=notice).raise_for_status()


def publish(gateway: GatewayProcess, channel: str, payload: dict[str, object]) -> None:
    httpx.post(f"{gateway.http_url}/api/publish/{channel}", json=payload, timeout=5).raise_for_status()


def subscribers(gateway: GatewayProcess, channel: str) -> int:
    page = httpx.get(f"{gateway.http_url}/api/channels", params={"prefix": channel}, timeout=5).json()
    return sum(info["subscribers"] for info in page["channels"] if info["name"] == channel)


@pytest.fixture
def buffer() -> SessionBuffer:
    return SessionBuffer()


def start_consumer(gateway: GatewayProcess, buffer: SessionBuffer) -> Consumer:
    """A consumer with the dashboard's default settings (configured channels included)."""
    settings = DashboardSettings(gateway_url=gateway.http_url)
    config = replace(ConsumerConfig.from_settings(settings), discover_interval=0.5)
    consumer = Consumer(buffer, config).start()
    eventually(lambda: buffer.connection().state is ConnectionState.CONNECTED, what="connected")
    return consumer


@pytest.fixture
def stopped_after() -> Iterator[list[Consumer]]:
    consumers: list[Consumer] = []
    yield consumers
    for consumer in consumers:
        consumer.stop()
        assert consumer.join(5)


def test_configured_channels_come_first_whatever_was_published(
    gateway: GatewayProcess, buffer: SessionBuffer, stopped_after: list[Consumer]
) -> None:
    """230 squatted data: and notify: channels do not keep data:cpu or notify:alerts from a new session,
    and the session asks the gateway for no more channels than it may subscribe to."""
    squat(gateway)
    stopped_after.append(start_consumer(gateway, buffer))
    overview = eventually(buffer.overview, what="first discovery")
    assert overview is not None and len(overview.channels) <= MAX_AUTO_CHANNELS
    publish(gateway, "data:cpu", {"values": {"user": 12.5}})
    publish(gateway, "notify:alerts", {"level": "error", "title": "real alert"})
    eventually(lambda: buffer.channel("data:cpu").retained("user") == 1, what="data:cpu point")
    eventually(lambda: any(n.title == "real alert" for n in buffer.notifications()), what="alert")


def test_a_pick_past_the_subscription_limit_is_reported(
    start_gateway: StartGateway, buffer: SessionBuffer, stopped_after: list[Consumer]
) -> None:
    """With room for 6 subscriptions, the user's pick is refused with a reason the page shows; search by
    prefix finds any live channel; discovery fills only what is left after the configured ones."""
    gateway = start_gateway(env={"PULSE_MAX_SUBSCRIPTIONS": "6"})
    squat(gateway, 20)
    consumer = start_consumer(gateway, buffer)
    stopped_after.append(consumer)
    assert consumer.find_channels("data:A01", 3, timeout=5) == ["data:A010", "data:A011", "data:A012"]
    newest = "notify:A019"  # the most recently active: discovery's choice for the one place left
    eventually(lambda: subscribers(gateway, newest) == 1, what="discovery's subscription")
    consumer.watch("data:A000")
    reason = eventually(lambda: consumer.refused().get("data:A000", ""), what="the refusal")
    assert reason.startswith("too_large") and "subscriptions per connection" in reason
    # The 39 channels discovery could not subscribe to were refused before the pick (same socket, in
    # order): they were not asked for by the user, so they are not reported as refused picks.
    assert set(consumer.refused()) == {"data:A000"}


def test_discovery_prefers_the_most_recently_active_and_skips_what_is_wanted() -> None:
    """The choosing rule: most recent first, data: and notify: only, nothing twice, at most the room."""
    active = ["chat:x", "data:cpu", "notify:alerts", "data:A000", "data:cpu", "data:A001"]
    assert choose_discovered(active, {"notify:alerts"}, 2) == ["data:cpu", "data:A000"]
    assert choose_discovered(active, set(), 0) == []
