"""History and resume: ``since`` recovers exactly what was missed, or says ``recovered: false``."""

import threading

import httpx
import pytest

from tests.client import Client
from tests.servers import GatewayProcess, StartGateway

pytestmark = [pytest.mark.both_brokers, pytest.mark.redis_cluster]


def publish(gateway: GatewayProcess, channel: str, count: int, start: int = 0) -> list[int]:
    body = [{"values": {"n": start + index}} for index in range(count)]
    response = httpx.post(f"{gateway.http_url}/api/publish/{channel}", json=body)
    response.raise_for_status()
    offsets: list[int] = response.json()["offsets"]
    return offsets


def test_resume_replays_exactly_the_missed_messages(gateway: GatewayProcess) -> None:
    """A client that reconnects with since=last offset gets the missed messages once each, then live ones."""
    with Client(gateway.ws_url) as first:
        reply = first.subscribe("data:cpu")
        publish(gateway, "data:cpu", 3)
        seen = first.pubs(3)
    last = seen[-1]["offset"]
    assert publish(gateway, "data:cpu", 4, start=3) == [4, 5, 6, 7]
    with Client(gateway.ws_url) as again:
        resumed = again.subscribe("data:cpu", since={"offset": last, "epoch": reply["epoch"]})
        assert resumed["recovered"] is True and resumed["offset"] == 7
        replayed = again.pubs(4)
        assert [p["offset"] for p in replayed] == [4, 5, 6, 7]
        assert [p["data"]["values"]["n"] for p in replayed] == [3, 4, 5, 6]
        publish(gateway, "data:cpu", 1, start=7)
        assert again.pubs(1)[0]["offset"] == 8
        again.nothing_for(0.2)


def test_resume_at_the_head_replays_nothing(gateway: GatewayProcess) -> None:
    """since at the latest offset is recovered with nothing replayed."""
    publish(gateway, "data:head", 2)
    with Client(gateway.ws_url) as client:
        epoch = client.subscribe("data:head")["epoch"]
    with Client(gateway.ws_url) as client:
        resumed = client.subscribe("data:head", since={"offset": 2, "epoch": epoch})
        assert resumed["recovered"] is True
        client.nothing_for(0.2)


def test_wrong_epoch_is_not_recovered(gateway: GatewayProcess) -> None:
    """A since from another epoch gets recovered=false, the current epoch, and no partial replay."""
    publish(gateway, "data:e", 3)
    with Client(gateway.ws_url) as client:
        reply = client.subscribe("data:e", since={"offset": 1, "epoch": "stale"})
        assert reply["recovered"] is False and reply["offset"] == 3 and reply["epoch"] != "stale"
        client.nothing_for(0.2)


def test_gap_beyond_history_is_not_recovered(start_gateway: StartGateway) -> None:
    """When part of the gap fell out of history (PULSE_HISTORY_SIZE), nothing partial is replayed."""
    gateway = start_gateway(env={"PULSE_HISTORY_SIZE": "5"})
    with Client(gateway.ws_url) as client:
        epoch = client.subscribe("data:g")["epoch"]
    publish(gateway, "data:g", 8)
    with Client(gateway.ws_url) as client:
        reply = client.subscribe("data:g", since={"offset": 1, "epoch": epoch})
        assert reply["recovered"] is False and reply["offset"] == 8
        client.nothing_for(0.2)
        fits = Client(gateway.ws_url)
        reply = fits.subscribe("data:g", since={"offset": 3, "epoch": epoch})
        assert reply["recovered"] is True
        assert [p["offset"] for p in fits.pubs(5)] == [4, 5, 6, 7, 8]
        fits.close()


def test_history_replays_the_last_k(gateway: GatewayProcess) -> None:
    """history=K replays the last K retained messages, then live ones."""
    publish(gateway, "data:h", 10)
    with Client(gateway.ws_url) as client:
        reply = client.subscribe("data:h", history=3)
        assert reply["offset"] == 10
        assert [p["offset"] for p in client.pubs(3)] == [8, 9, 10]
        publish(gateway, "data:h", 1)
        assert client.pubs(1)[0]["offset"] == 11


def test_subscribe_during_a_publish_burst_has_no_gap_or_duplicate(gateway: GatewayProcess) -> None:
    """Joining with history while others publish: history + live is contiguous, each offset once."""
    publish(gateway, "data:burst", 50)
    stop = threading.Event()

    def keep_publishing() -> None:
        with httpx.Client() as http:
            while not stop.is_set():
                http.post(f"{gateway.http_url}/api/publish/data:burst", json=[{"values": {"n": 0}}] * 5)

    publisher = threading.Thread(target=keep_publishing)
    publisher.start()
    try:
        with Client(gateway.ws_url) as client:
            reply = client.subscribe("data:burst", history=20)
            received = [p["offset"] for p in client.pubs(200, timeout=20)]
    finally:
        stop.set()
        publisher.join()
    assert received[0] == reply["offset"] - 19
    assert received == list(range(received[0], received[0] + len(received)))


def test_http_history_pages_and_reports_recovery(gateway: GatewayProcess) -> None:
    """GET history returns the last `limit`, or the publications after `since` with the recovered flag."""
    publish(gateway, "data:page", 6)
    page = httpx.get(f"{gateway.http_url}/api/channels/data:page/history", params={"limit": 2}).json()
    assert [p["offset"] for p in page["publications"]] == [5, 6]
    assert page["offset"] == 6 and page["recovered"] is True
    after = httpx.get(
        f"{gateway.http_url}/api/channels/data:page/history",
        params={"since": 2, "epoch": page["epoch"], "limit": 3},
    ).json()
    assert [p["offset"] for p in after["publications"]] == [3, 4, 5]
    stale = httpx.get(
        f"{gateway.http_url}/api/channels/data:page/history", params={"since": 2, "epoch": "old"}
    ).json()
    assert stale["recovered"] is False and stale["publications"] == []


def test_http_since_needs_its_epoch(gateway: GatewayProcess) -> None:
    """An offset without its epoch is ambiguous across restarts, so history refuses it with 400."""
    response = httpx.get(f"{gateway.http_url}/api/channels/data:x/history", params={"since": 1})
    assert response.status_code == 400 and "epoch" in response.json()["detail"]


def test_reading_unknown_channels_creates_nothing(gateway: GatewayProcess) -> None:
    """History reads and subscriptions of channels nobody published to allocate no stream."""
    for index in range(20):
        httpx.get(f"{gateway.http_url}/api/channels/data:ghost{index}/history").raise_for_status()
    with Client(gateway.ws_url) as client:
        reply = client.subscribe("data:ghost-sub")
        assert reply["offset"] == 0 and reply["recovered"] is True
    assert httpx.get(f"{gateway.http_url}/api/channels").json() == {"channels": []}


def test_resume_too_big_for_the_client_queue_is_not_recovered(start_gateway: StartGateway) -> None:
    """A replay that would overflow the client queue answers recovered=false instead of a 4001 close."""
    gateway = start_gateway(env={"PULSE_CLIENT_QUEUE_BYTES": "65536"})
    with Client(gateway.ws_url) as client:
        epoch = client.subscribe("chat:big")["epoch"]
    url = f"{gateway.http_url}/api/publish/chat:big"
    httpx.post(url, json=[{"text": "y" * 1500}] * 60).raise_for_status()
    with Client(gateway.ws_url) as client:
        reply = client.subscribe("chat:big", since={"offset": 0, "epoch": epoch})
        assert reply["recovered"] is False and reply["offset"] == 60
        recent = client.subscribe("chat:big2", history=60)
        assert recent["offset"] == 0
        assert client.request({"op": "ping"})["type"] == "pong"
    with Client(gateway.ws_url) as client:
        client.subscribe("chat:big", history=60)
        replayed = [p["offset"] for p in client.pubs(10)]
        assert replayed[0] > 1 and replayed == list(range(replayed[0], replayed[0] + 10))
