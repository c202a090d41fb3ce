"""The dashboard's consumer thread against a real gateway: live data, chat over the same socket, resume
after a gateway restart (no duplicates; a ``data:`` epoch change shows a gap and reloads), 4401, stop."""

import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest

from dashboard.consumer import Consumer, ConsumerConfig
from dashboard.session_buffer import ChatKind, ConnectionState, SessionBuffer
from gateway.auth import mint_token
from pulseboard.link import NotConnectedError, RequestRejectedError
from shared.payloads import ChatPost
from tests.servers import GatewayProcess, StartGateway
from tests.waiting import eventually

SECRET = "a-test-secret-of-at-least-32-bytes"


def config_for(gateway: GatewayProcess, **overrides: object) -> ConsumerConfig:
    config = ConsumerConfig(ws_url=gateway.ws_url, http_url=gateway.http_url, discover_interval=0.5)
    return replace(config, **overrides)  # type: ignore[arg-type]


def publish(gateway: GatewayProcess, channel: str, payloads: list[dict[str, object]]) -> list[int]:
    response = httpx.post(f"{gateway.http_url}/api/publish/{channel}", json=payloads, timeout=5)
    response.raise_for_status()
    offsets: list[int] = response.json()["offsets"]
    return offsets


def points(start: float, count: int, value: float = 1.0) -> list[dict[str, object]]:
    return [{"ts": start + i * 0.001, "values": {"v": value + i}} for i in range(count)]


def consumer_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("pulse-consumer-")]


@pytest.fixture
def buffer() -> SessionBuffer:
    return SessionBuffer()


@pytest.fixture
def running(gateway: GatewayProcess, buffer: SessionBuffer) -> Iterator[Consumer]:
    consumer = Consumer(buffer, config_for(gateway)).start()
    eventually(lambda: buffer.connection().state is ConnectionState.CONNECTED, what="connected")
    yield consumer
    consumer.stop()
    assert consumer.join(5)


def test_live_data_history_and_discovery(gateway: GatewayProcess, buffer: SessionBuffer) -> None:
    now = time.time()
    publish(gateway, "data:before", points(now, 30))  # exists before the consumer: loaded as history
    consumer = Consumer(buffer, config_for(gateway)).start()
    try:
        eventually(lambda: buffer.channel("data:before").retained("v") == 30, what="history loaded")
        publish(gateway, "data:later", points(now, 5))  # appears later: found by discovery
        eventually(lambda: buffer.channel("data:later").retained("v") == 5, what="discovered channel")
        publish(gateway, "data:before", points(now + 1, 20, value=100.0))
        eventually(lambda: buffer.channel("data:before").retained("v") == 50, what="live points")
        info = buffer.channel("data:before").info()
        assert info.duplicates == 0
        assert info.position is not None and info.position.offset == 50
        assert info.latency is not None and info.latency >= 0
        overview = eventually(buffer.overview, what="overview")
        assert overview is not None
        assert overview.health is not None and overview.health.status == "ok"
        assert {"data:before", "data:later"} <= {c.name for c in overview.channels}
    finally:
        consumer.stop()
        assert consumer.join(5)


def test_chat_round_trips_over_the_same_socket(running: Consumer, buffer: SessionBuffer) -> None:
    eventually(lambda: buffer.presence("chat:lobby"), what="own presence")
    offset = running.publish("chat:lobby", ChatPost(text="<b>hello</b> **there**"), timeout=5)
    log = eventually(lambda: [e for e in buffer.chat_log("chat:lobby") if e.kind is ChatKind.MESSAGE])
    assert [(e.sender, e.text) for e in log] == [("dashboard", "<b>hello</b> **there**")]
    assert buffer.positions()["chat:lobby"].offset == offset
    # The gateway saw one connection: the chat went over the consumer's socket, not a second one.
    health = httpx.get(f"{running.config.http_url}/healthz", timeout=5).json()
    assert health["connections"] == 1


def test_a_rejected_send_raises_and_the_connection_stays(running: Consumer, buffer: SessionBuffer) -> None:
    class TooLong(ChatPost):
        model_config = {"extra": "forbid", "frozen": True}

    bad = TooLong.model_construct(text="x" * 5000)  # over MAX_CHAT_TEXT: the gateway says bad_request
    with pytest.raises(RequestRejectedError) as caught:
        running.publish("chat:lobby", bad, timeout=5)
    assert caught.value.code in ("bad_request", "too_large")
    assert running.publish("chat:lobby", ChatPost(text="still here"), timeout=5) >= 1


def test_join_room_loads_its_history_and_presence(running: Consumer, buffer: SessionBuffer) -> None:
    gateway_url = running.config.http_url
    response = httpx.post(f"{gateway_url}/api/publish/chat:ops", json=[{"text": "earlier"}], timeout=5)
    response.raise_for_status()
    running.join_room("chat:ops")
    log = eventually(lambda: buffer.chat_log("chat:ops"), what="history on join")
    assert log[0].text == "earlier" and log[0].kind is ChatKind.MESSAGE
    eventually(lambda: buffer.presence("chat:ops"), what="presence on join")
    with pytest.raises(ValueError, match="not a chat"):
        running.join_room("data:cpu")


def test_notifications_history_is_logged_quietly_and_live_ones_pop_up(
    gateway: GatewayProcess, buffer: SessionBuffer
) -> None:
    publish(gateway, "notify:alerts", [{"level": "info", "title": "old news"}])
    consumer = Consumer(buffer, config_for(gateway)).start()
    try:
        eventually(lambda: buffer.notifications(), what="history")
        publish(gateway, "notify:alerts", [{"level": "error", "title": "disk full", "body": "/var"}])
        eventually(lambda: len(buffer.notifications()) == 2, what="live notification")
        assert [(n.level, n.title) for n in buffer.take_new_notifications()] == [("error", "disk full")]
    finally:
        consumer.stop()
        assert consumer.join(5)


def test_restart_resumes_without_duplicates_and_reloads_a_data_gap(
    gateway: GatewayProcess, buffer: SessionBuffer
) -> None:
    now = time.time()
    publish(gateway, "data:cpu", points(now, 20))
    publish(gateway, "chat:lobby", [{"text": f"before {i}"} for i in range(5)])
    # A slow first retry: the points published right after the restart are in history, not live.
    consumer = Consumer(buffer, config_for(gateway, backoff_first=3.0)).start()
    try:
        eventually(lambda: buffer.channel("data:cpu").retained("v") == 20, what="first load")
        eventually(lambda: len(buffer.chat_log("chat:lobby")) >= 5, what="chat history")
        old_epoch = buffer.positions()["data:cpu"].epoch

        gateway.restart()
        publish(gateway, "data:cpu", points(now + 10, 15, value=500.0))
        publish(gateway, "chat:lobby", [{"text": f"during {i}"} for i in range(3)])
        eventually(lambda: buffer.connection().state is ConnectionState.RECONNECTING, what="noticed")

        cpu = buffer.channel("data:cpu")
        eventually(lambda: cpu.retained("v") == 35, timeout=20, what="gap reloaded over HTTP")
        info = cpu.info()
        assert info.gap and info.gap_since is not None
        assert info.position is not None and info.position.epoch != old_epoch
        assert info.position.offset == 15
        messages = eventually(
            lambda: (
                [e.text for e in buffer.chat_log("chat:lobby") if e.kind is ChatKind.MESSAGE][-8:]
                if len([e for e in buffer.chat_log("chat:lobby") if e.kind is ChatKind.MESSAGE]) >= 8
                else None
            ),
            what="chat resumed",
        )
        assert messages == [f"before {i}" for i in range(5)] + [f"during {i}" for i in range(3)]

        # Live again, nothing doubled: every chat id once, every point once.
        publish(gateway, "data:cpu", points(now + 20, 5, value=900.0))
        eventually(lambda: cpu.retained("v") == 40, what="live after resume")
        ids = Counter(e.id for e in buffer.chat_log("chat:lobby") if e.kind is ChatKind.MESSAGE)
        assert set(ids.values()) == {1}
        ts, _ = cpu.snapshot("v")
        assert len(set(ts.tolist())) == len(ts) == 40
    finally:
        consumer.stop()
        assert consumer.join(5)


def test_unauthorized_stops_reconnecting_and_says_why(start_gateway: StartGateway) -> None:
    gateway = start_gateway(env={"PULSE_SECRET": SECRET})
    buffer = SessionBuffer()
    expired = mint_token(SECRET, "alice", ttl=-3600)  # far past the gateway's clock-skew leeway
    consumer = Consumer(buffer, config_for(gateway, token=expired)).start()
    assert consumer.join(10), "a 4401 must end the consumer, not start a reconnect loop"
    status = buffer.connection()
    assert status.state is ConnectionState.STOPPED
    assert "unauthorized" in status.last_error and "PULSE_TOKEN" in status.last_error
    with pytest.raises(NotConnectedError, match="unauthorized"):
        consumer.publish("chat:lobby", ChatPost(text="lost?"), timeout=1)


def test_a_valid_token_connects_with_its_identity(start_gateway: StartGateway) -> None:
    gateway = start_gateway(env={"PULSE_SECRET": SECRET})
    buffer = SessionBuffer()
    token = mint_token(SECRET, "alice", ttl=600)
    consumer = Consumer(buffer, config_for(gateway, token=token)).start()
    try:
        eventually(lambda: buffer.connection().state is ConnectionState.CONNECTED, what="connected")
        consumer.publish("chat:lobby", ChatPost(text="hi"), timeout=5)
        log = eventually(lambda: [e for e in buffer.chat_log("chat:lobby") if e.kind is ChatKind.MESSAGE])
        assert log[0].sender == "alice"
        eventually(buffer.overview, what="overview with the bearer token")
    finally:
        consumer.stop()
        assert consumer.join(5)


def test_not_connected_fails_at_once_and_backs_off(tmp_path: object) -> None:
    buffer = SessionBuffer()
    dead = "127.0.0.1:9"  # discard port: nothing listens
    consumer = Consumer(buffer, ConsumerConfig(ws_url=f"ws://{dead}/ws", http_url=f"http://{dead}")).start()
    try:
        eventually(lambda: buffer.connection().attempt >= 2, what="retries")
        status = buffer.connection()
        assert status.state is ConnectionState.RECONNECTING and "Connect" in status.last_error
        started = time.monotonic()
        with pytest.raises(NotConnectedError, match="reconnecting"):
            consumer.publish("chat:lobby", ChatPost(text="typed while offline"), timeout=5)
        assert time.monotonic() - started < 1.0, "must not wait for the send timeout"
    finally:
        consumer.stop()
        assert consumer.join(5)
    assert buffer.connection().state is ConnectionState.STOPPED


def test_stop_is_a_signal_and_the_thread_ends_with_its_socket(
    running: Consumer, gateway: GatewayProcess
) -> None:
    before = len(consumer_threads())
    started = time.monotonic()
    running.stop()  # returns at once: it is what on_release calls on Streamlit's event loop
    assert time.monotonic() - started < 0.1
    assert running.join(5)
    assert len(consumer_threads()) == before - 1
    eventually(lambda: httpx.get(f"{gateway.http_url}/healthz", timeout=5).json()["connections"] == 0)
    running.stop()  # twice is harmless
