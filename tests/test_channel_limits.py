"""Bounded channels against a real gateway, on both brokers: a cap on live channels with a clear refusal,
idle ``data:`` channels dropped, a paged and filtered channel list, and ``/ws/notifications`` choosing
its channels by a rule that publishing to many new channels cannot beat."""

import json
import time
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from gateway.broker.redis import LISTING_REFRESH
from tests.client import Client
from tests.servers import GatewayProcess, StartGateway
from tests.waiting import eventually

pytestmark = [pytest.mark.both_brokers, pytest.mark.redis_cluster]

POINT = {"values": {"v": 1.0}}


def listing(gateway: GatewayProcess, **params: Any) -> dict[str, Any]:
    response = httpx.get(f"{gateway.http_url}/api/channels", params=params, timeout=5)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def every_name(gateway: GatewayProcess, **params: Any) -> list[str]:
    """Every channel the list gives, following ``next`` page by page."""
    names: list[str] = []
    cursor: str | None = None
    while True:
        page = listing(gateway, **params, **({"cursor": cursor} if cursor else {}))
        names += [channel["name"] for channel in page["channels"]]
        cursor = page.get("next")
        if cursor is None:
            return names


def test_new_channels_past_the_cap_are_refused_with_a_clear_error(start_gateway: StartGateway) -> None:
    """With PULSE_MAX_CHANNELS=500, 600 new channels: the last 100 get 413 too_large (HTTP) and an
    error frame (WebSocket), nothing of theirs is stored, and existing channels keep working."""
    gateway = start_gateway(env={"PULSE_MAX_CHANNELS": "500"})
    with httpx.Client(base_url=gateway.http_url, timeout=5) as http:
        statuses = [
            http.post(f"/api/publish/data:c{index:04}", json=POINT).status_code for index in range(600)
        ]
        assert statuses == [200] * 500 + [413] * 100
        refused = http.post("/api/publish/notify:late", json={"level": "info", "title": "t"})
        assert refused.status_code == 413
        detail = refused.json()["detail"]
        assert detail.startswith("too_large:") and "PULSE_MAX_CHANNELS" in detail
        assert http.post("/api/publish/data:c0000", json=POINT).json() == {"offsets": [2]}
    with Client(gateway.ws_url) as client:
        error = client.request({"op": "publish", "channel": "data:c0599", "data": POINT})
        assert error["type"] == "error" and error["code"] == "too_large"
        assert "PULSE_MAX_CHANNELS" in error["detail"]
        assert client.request({"op": "publish", "channel": "data:c0001", "data": POINT})["type"] == "ack"
        assert client.subscribe("data:c0599")["offset"] == 0  # subscribing creates nothing: not refused
    names = every_name(gateway, limit=1000)
    assert len(names) == 500 and "data:c0599" not in names


def test_idle_data_channel_is_dropped_and_frees_its_place(start_gateway: StartGateway) -> None:
    """A data: channel idle past PULSE_CHANNEL_IDLE_TTL leaves the list and frees its place under the cap;
    chat stays; the channel published again starts afresh, and a resume from its old life is not
    recovered."""
    gateway = start_gateway(env={"PULSE_CHANNEL_IDLE_TTL": "1", "PULSE_MAX_CHANNELS": "2"})
    url = f"{gateway.http_url}/api/publish"
    httpx.post(f"{url}/chat:room", json={"text": "stays"}, timeout=5).raise_for_status()
    offsets = httpx.post(f"{url}/data:idle", json=[POINT, POINT], timeout=5).json()["offsets"]
    assert offsets == [1, 2]
    epoch = listing(gateway, prefix="data:")["channels"][0]["epoch"]
    assert httpx.post(f"{url}/data:other", json=POINT, timeout=5).status_code == 413
    eventually(lambda: every_name(gateway) == ["chat:room"], timeout=15, what="data:idle dropped")
    assert httpx.post(f"{url}/data:other", json=POINT, timeout=5).status_code == 200
    eventually(lambda: every_name(gateway) == ["chat:room"], timeout=15, what="data:other dropped")
    assert httpx.post(f"{url}/data:idle", json=POINT, timeout=5).json() == {"offsets": [1]}
    page = httpx.get(f"{gateway.http_url}/api/channels/data:idle/history", timeout=5).json()
    assert [publication["offset"] for publication in page["publications"]] == [1]
    with Client(gateway.ws_url) as client:
        resumed = client.subscribe("data:idle", since={"offset": 2, "epoch": epoch})
        assert resumed["recovered"] is False


def test_channel_list_pages_filters_and_orders(gateway: GatewayProcess) -> None:
    """GET /api/channels: prefix and limit select, next pages through every channel once, order=recent
    puts the latest publish first, and bad paging parameters get a clear 4xx."""
    with httpx.Client(base_url=gateway.http_url, timeout=5) as http:
        for index in range(25):
            http.post(f"/api/publish/data:p{index:03}", json=POINT).raise_for_status()
        http.post("/api/publish/notify:n", json={"level": "info", "title": "t"}).raise_for_status()
        time.sleep(LISTING_REFRESH + 0.1)  # Redis notes a channel's publish time once per this
        http.post("/api/publish/data:p003", json=POINT).raise_for_status()
        first = listing(gateway, prefix="data:p", limit=10)
        assert [c["name"] for c in first["channels"]] == [f"data:p{index:03}" for index in range(10)]
        assert first["next"]
        assert every_name(gateway, prefix="data:p", limit=10) == [f"data:p{index:03}" for index in range(25)]
        recent = every_name(gateway, order="recent", limit=7)
        assert recent[:2] == ["data:p003", "notify:n"] and sorted(recent) == sorted(every_name(gateway))
        newest = listing(gateway, prefix="data:", order="recent", limit=1)["channels"][0]
        assert newest["name"] == "data:p003" and newest["offset"] == 2
        assert newest["last_published"] == pytest.approx(time.time(), abs=60)
        assert set(listing(gateway)) == {"channels"}  # one page: the shape of old, no "next"
        assert http.get("/api/channels", params={"order": "recent", "cursor": "data:p001"}).status_code == 400
        assert http.get("/api/channels", params={"limit": 1001}).status_code == 422
        assert http.get("/api/channels", params={"prefix": "data:<script>"}).status_code == 422
        assert listing(gateway, prefix="chat:") == {"channels": []}


def test_notifications_keep_the_configured_channel_past_squatters(gateway: GatewayProcess) -> None:
    """230 one-point channels named to sort first (data:A000.., notify:A000..) do not stop
    /ws/notifications delivering notify:alerts; the subscription limit is reported, not silent."""
    with httpx.Client(base_url=gateway.http_url, timeout=5) as http:
        for index in range(230):
            http.post(f"/api/publish/notify:A{index:03}", json={"level": "info", "title": "squat"})
            http.post(f"/api/publish/data:A{index:03}", json=POINT)
        with connect(f"{gateway.ws_url}/notifications", open_timeout=5, proxy=None) as ws:
            notice = json.loads(ws.recv(timeout=10))
            assert notice["error"] == "too_large" and "subscriptions per connection" in notice["detail"]
            http.post(
                "/api/publish/notify:alerts", json={"level": "error", "title": "real"}
            ).raise_for_status()
            while True:
                message = json.loads(ws.recv(timeout=10))
                if message.get("channel") == "notify:alerts":
                    break
            assert message["title"] == "real"
