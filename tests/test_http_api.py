"""The HTTP API: publish (single, batch, idempotent), errors, channel list, health and metrics."""

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from gateway.auth import mint_token
from tests.client import Client
from tests.servers import GatewayProcess, StartGateway, metric

pytestmark = pytest.mark.both_brokers


def test_publish_one_and_a_batch(gateway: GatewayProcess) -> None:
    """A single payload and a batch get consecutive offsets, in order."""
    url = f"{gateway.http_url}/api/publish/data:cpu"
    assert httpx.post(url, json={"values": {"user": 1.5}}).json() == {"offsets": [1]}
    batch = [{"ts": 1_700_000_000 + i, "values": {"user": i}} for i in range(1000)]
    assert httpx.post(url, json=batch).json()["offsets"] == list(range(2, 1002))


def test_idempotent_publish_happens_once(gateway: GatewayProcess) -> None:
    """A repeated Idempotency-Key returns the first offsets and publishes nothing more."""
    url = f"{gateway.http_url}/api/publish/chat:lobby"
    headers = {"Idempotency-Key": "order-42"}
    first = httpx.post(url, json=[{"text": "a"}, {"text": "b"}], headers=headers).json()
    again = httpx.post(url, json=[{"text": "a"}, {"text": "b"}], headers=headers).json()
    assert first == again == {"offsets": [1, 2]}
    assert httpx.post(url, json={"text": "c"}).json() == {"offsets": [3]}
    other_channel = httpx.post(
        f"{gateway.http_url}/api/publish/chat:other", json={"text": "a"}, headers=headers
    )
    assert other_channel.json() == {"offsets": [1]}


def test_idempotent_repeat_is_still_validated_and_a_refused_key_is_not_remembered(
    gateway: GatewayProcess,
) -> None:
    """A repeat with another body gets the first offsets, a bad one is refused; a refused key stays free."""
    url = f"{gateway.http_url}/api/publish/chat:idem"
    first = httpx.post(url, json={"text": "a"}, headers={"Idempotency-Key": "k1"})
    other_body = httpx.post(url, json={"text": "b"}, headers={"Idempotency-Key": "k1"})
    assert first.json() == other_body.json() == {"offsets": [1]}
    assert httpx.post(url, json={"text": ""}, headers={"Idempotency-Key": "k1"}).status_code == 422
    assert httpx.post(url, json={"text": ""}, headers={"Idempotency-Key": "k2"}).status_code == 422
    assert httpx.post(url, json={"text": "c"}, headers={"Idempotency-Key": "k2"}).json() == {"offsets": [2]}
    page = httpx.get(f"{gateway.http_url}/api/channels/chat:idem/history").json()
    assert [publication["data"]["text"] for publication in page["publications"]] == ["a", "c"]


def test_concurrent_idempotent_repeats_publish_once(gateway: GatewayProcess) -> None:
    """Retries that race each other with one Idempotency-Key all get the same offsets; one copy is stored."""
    url = f"{gateway.http_url}/api/publish/data:idem"
    body = [{"values": {"a": 1}}, {"values": {"a": 2}}]

    def post(_: int) -> httpx.Response:
        return httpx.post(url, json=body, headers={"Idempotency-Key": "retry-storm"}, timeout=10)

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(post, range(16)))
    assert {response.status_code for response in responses} == {200}
    assert {tuple(response.json()["offsets"]) for response in responses} == {(1, 2)}
    page = httpx.get(f"{gateway.http_url}/api/channels/data:idem/history").json()
    assert page["offset"] == 2 and len(page["publications"]) == 2


def test_http_chat_sender(gateway: GatewayProcess) -> None:
    """Chat posted over HTTP carries ?name= as sender when auth is off (never a payload field)."""
    with Client(gateway.ws_url) as client:
        client.subscribe("chat:http")
        httpx.post(
            f"{gateway.http_url}/api/publish/chat:http?name=simbot", json={"text": "hi"}
        ).raise_for_status()
        assert client.pubs(1)[0]["data"]["sender"] == "simbot"


@pytest.mark.parametrize(
    ("channel", "body", "status", "needle"),
    [
        ("data:cpu", b"{nope", 400, "bad_json"),
        ("bogus:cpu", b'{"values": {"a": 1}}', 400, "bad_channel"),
        ("data:a b", b'{"values": {"a": 1}}', 400, "bad_channel"),
        ("data:cpu", b'{"values": {"a": "x"}}', 422, "values.a"),
        ("data:cpu", b'{"values": {"a": Infinity}}', 422, "values.a"),
        ("data:cpu", b'{"values": {}}', 422, "values"),
        ("data:cpu", b"[]", 422, "empty batch"),
        ("chat:x", b'{"text": ""}', 422, "text"),
        ("chat:x", b'{"text": "' + b"x" * 2001 + b'"}', 413, "too_large"),
        ("data:cpu", b"[" + b",".join([b'{"values": {"a": 1}}'] * 1001) + b"]", 413, "at most 1000"),
        ("notify:x", b'{"level": "panic", "title": "x"}', 422, "level"),
    ],
)
def test_bad_publish_gets_a_clear_error_and_publishes_nothing(
    gateway: GatewayProcess, channel: str, body: bytes, status: int, needle: str
) -> None:
    """Each bad publish has its status and a detail that says what is wrong; nothing is published."""
    response = httpx.post(
        f"{gateway.http_url}/api/publish/{channel}",
        content=body,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == status, response.text
    assert needle in response.json()["detail"]
    channels = httpx.get(f"{gateway.http_url}/api/channels").json()["channels"]
    assert all(item["offset"] == 0 for item in channels)


def test_body_over_the_limit_is_413(start_gateway: StartGateway) -> None:
    """A body over PULSE_MAX_BODY_BYTES is refused with 413, declared length or streamed."""
    gateway = start_gateway(env={"PULSE_MAX_BODY_BYTES": "2048"})
    big = b"[" + b",".join([b'{"values": {"a": 1}}'] * 200) + b"]"
    url = f"{gateway.http_url}/api/publish/data:x"
    assert httpx.post(url, content=big).status_code == 413
    assert httpx.post(url, content=iter([big[:1500], big[1500:]])).status_code == 413


def test_channels_list_health_and_metrics(gateway: GatewayProcess, broker_url: str) -> None:
    """/api/channels shows offsets, epochs and subscribers; /healthz is ok; /metrics counts traffic."""
    with Client(gateway.ws_url) as client:
        client.subscribe("data:cpu")
        httpx.post(f"{gateway.http_url}/api/publish/data:cpu", json=[{"values": {"a": 1}}] * 3)
        client.pubs(3)
        channels = {c["name"]: c for c in httpx.get(f"{gateway.http_url}/api/channels").json()["channels"]}
        assert channels["data:cpu"]["offset"] == 3 and channels["data:cpu"]["subscribers"] == 1
        assert channels["data:cpu"]["epoch"]
        health = httpx.get(f"{gateway.http_url}/healthz")
        assert health.status_code == 200
        backend = broker_url.partition(":")[0]
        assert health.json()["status"] == "ok" and health.json()["broker"]["backend"] == backend
        assert metric(gateway.http_url, "pulse_connections_open") == 1
        assert metric(gateway.http_url, "pulse_messages_in_total") == 3
        assert metric(gateway.http_url, "pulse_messages_out_total") == 3
        assert metric(gateway.http_url, "pulse_publish_latency_seconds_count") == 1


def test_idempotency_keys_belong_to_their_caller(start_gateway: StartGateway) -> None:
    """Two publishers that pick the same Idempotency-Key both get their messages published."""
    secret = "k" * 32
    gateway = start_gateway(env={"PULSE_SECRET": secret})
    url = f"{gateway.http_url}/api/publish/chat:shared"
    offsets = []
    for sub in ("alice", "bob"):
        headers = {"Idempotency-Key": "same", "Authorization": f"Bearer {mint_token(secret, sub, ttl=60)}"}
        offsets.append(httpx.post(url, json={"text": sub}, headers=headers).json()["offsets"])
    assert offsets == [[1], [2]]


def test_huge_batch_is_refused_by_count(gateway: GatewayProcess) -> None:
    """A body with far more than 1000 payloads is refused with 413 before anything is validated."""
    body = b"[" + b",".join([b"{}"] * 200_000) + b"]"
    response = httpx.post(f"{gateway.http_url}/api/publish/data:x", content=body)
    assert response.status_code == 413 and "at most 1000" in response.json()["detail"]


def test_openapi_declares_the_token_schemes_on_the_routes_that_take_tokens(gateway: GatewayProcess) -> None:
    """Bearer (and the InfluxDB forms) are security schemes referenced by every route that reads a token;
    probes and metrics need none."""
    spec = httpx.get(f"{gateway.http_url}/openapi.json", timeout=5).json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert schemes["influxPassword"]["in"] == "query" and schemes["influxPassword"]["name"] == "p"
    paths = spec["paths"]
    guarded = {
        ("post", "/api/publish/{channel}"),
        ("get", "/api/channels"),
        ("get", "/api/channels/{channel}/history"),
        ("get", "/api/channels/{channel}/range"),
        ("post", "/api/v2/write"),
        ("post", "/write"),
    }
    for method, path in guarded:
        assert {"bearer": []} in paths[path][method]["security"], (method, path)
        names = [parameter["name"].lower() for parameter in paths[path][method].get("parameters", [])]
        assert "authorization" not in names, "the token is a scheme, not a plain header parameter"
    assert {"influxPassword": []} in paths["/write"]["post"]["security"]
    for probe in ("/livez", "/readyz", "/healthz", "/metrics"):
        assert "security" not in paths[probe]["get"], probe
