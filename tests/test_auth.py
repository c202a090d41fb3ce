"""Auth on (tokens, permissions, expiry) and off, and the browser origin policy."""

import base64
import time

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect
from websockets.typing import Origin

from gateway.auth import mint_token
from tests.client import Client
from tests.servers import GatewayProcess, StartGateway

SECRET = "test-secret-with-enough-bytes-for-hs256"


@pytest.fixture
def secured(start_gateway: StartGateway) -> GatewayProcess:
    # No clock-skew leeway, so expiry is checked to the second (the leeway has its own tests).
    return start_gateway(env={"PULSE_SECRET": SECRET, "PULSE_AUTH_TIMEOUT": "1.5", "PULSE_JWT_LEEWAY": "0"})


def token(sub: str = "alice", ttl: float = 60, **perms: list[str]) -> str:
    return mint_token(SECRET, sub, ttl=ttl, **perms)


def closed_code(client: Client, timeout: float = 5) -> int | None:
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            client.recv(timeout=timeout)
    return closed.value.rcvd.code if closed.value.rcvd else None


def test_auth_op_sets_identity_and_unlocks_ops(secured: GatewayProcess) -> None:
    """With auth on, ops wait for an auth op; then the token's sub is the identity and the chat sender."""
    with Client(secured.ws_url) as client:
        assert client.welcome["auth_required"] is True
        early = client.request({"op": "subscribe", "channel": "chat:x"})
        assert early["type"] == "error" and early["code"] == "forbidden"
        assert client.request({"op": "ping"})["type"] == "pong"
        authed = client.request({"op": "auth", "token": token("alice")})
        assert authed["type"] == "authenticated" and authed["name"] == "alice"
        client.subscribe("chat:x")
        client.request({"op": "publish", "channel": "chat:x", "data": {"text": "hi"}})
        assert client.pubs(1)[0]["data"]["sender"] == "alice"


def test_header_token_authenticates_at_handshake(secured: GatewayProcess) -> None:
    """An Authorization header authenticates at the handshake: welcome says so."""
    headers = {"Authorization": f"Bearer {token('bob')}"}
    with Client(secured.ws_url, additional_headers=headers) as client:
        assert client.welcome["auth_required"] is False and client.welcome["name"] == "bob"
        client.subscribe("data:cpu")


@pytest.mark.parametrize(
    "bad",
    [
        "not-a-jwt",
        mint_token("another-secret-entirely-32-bytes!!", "eve", ttl=60),
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJldmUiLCJleHAiOjk5OTk5OTk5OTl9.",
        mint_token(SECRET, "late", ttl=-10),
    ],
    ids=["garbage", "bad-signature", "alg-none", "expired"],
)
def test_bad_tokens_close_with_4401(secured: GatewayProcess, bad: str) -> None:
    """Garbage, a foreign signature, alg none and an expired token are all refused with 4401."""
    with Client(secured.ws_url) as client:
        client.send({"op": "auth", "token": bad})
        assert closed_code(client) == 4401
    with pytest.raises(ConnectionClosed) as closed:
        Client(secured.ws_url, additional_headers={"Authorization": f"Bearer {bad}"})
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


def test_no_auth_within_the_timeout_closes_with_4401(secured: GatewayProcess) -> None:
    """A connection that never authenticates is closed with 4401 after PULSE_AUTH_TIMEOUT."""
    with Client(secured.ws_url) as client:
        started = time.monotonic()
        assert closed_code(client) == 4401
        assert 1.0 < time.monotonic() - started < 5


def test_token_expiring_mid_connection_closes_with_4401(secured: GatewayProcess) -> None:
    """When the token expires, the connection is closed with 4401."""
    with Client(secured.ws_url) as client:
        client.request({"op": "auth", "token": token("brief", ttl=2)})
        client.subscribe("data:x")
        assert closed_code(client, timeout=6) == 4401


def test_a_token_expired_within_the_default_leeway_is_accepted(start_gateway: StartGateway) -> None:
    """PULSE_JWT_LEEWAY (30 s by default) absorbs clock skew: a token 10 s past its exp still opens a
    WebSocket that stays open and reads over HTTP; one 60 s past it gets 4401 and 401."""
    gateway = start_gateway(env={"PULSE_SECRET": SECRET})
    skewed = {"Authorization": f"Bearer {token('skewed', ttl=-10)}"}
    with Client(gateway.ws_url, additional_headers=skewed) as client:
        assert client.welcome["auth_required"] is False and client.welcome["name"] == "skewed"
        assert client.request({"op": "ping"})["type"] == "pong"
    assert httpx.get(f"{gateway.http_url}/api/channels", headers=skewed).status_code == 200

    stale = token("stale", ttl=-60)
    with Client(gateway.ws_url) as client:
        client.send({"op": "auth", "token": stale})
        assert closed_code(client) == 4401
    stale_header = {"Authorization": f"Bearer {stale}"}
    assert httpx.get(f"{gateway.http_url}/api/channels", headers=stale_header).status_code == 401


def test_the_leeway_is_a_setting(start_gateway: StartGateway) -> None:
    """With PULSE_JWT_LEEWAY=120 a token 60 s past its exp is still accepted on the WebSocket and over
    HTTP; with 0, one 10 s past it is refused on both."""
    gateway = start_gateway(env={"PULSE_SECRET": SECRET, "PULSE_JWT_LEEWAY": "120"})
    late = token("late", ttl=-60)
    with Client(gateway.ws_url) as client:
        authed = client.request({"op": "auth", "token": late})
        assert authed["type"] == "authenticated" and authed["expires"] > time.time()
    late_header = {"Authorization": f"Bearer {late}"}
    assert httpx.get(f"{gateway.http_url}/api/channels", headers=late_header).status_code == 200

    strict = start_gateway(env={"PULSE_SECRET": SECRET, "PULSE_JWT_LEEWAY": "0"})
    skewed_header = {"Authorization": f"Bearer {token('skewed', ttl=-10)}"}
    assert httpx.get(f"{strict.http_url}/api/channels", headers=skewed_header).status_code == 401


def test_permissions_limit_channels(secured: GatewayProcess) -> None:
    """A token allows only its channel patterns: others are forbidden for subscribe, publish and presence."""
    limited = token("reader", subscribe=["data:*"], publish=[])
    with Client(secured.ws_url) as client:
        client.request({"op": "auth", "token": limited})
        client.subscribe("data:cpu")
        for op in (
            {"op": "subscribe", "channel": "chat:secret"},
            {"op": "presence", "channel": "chat:secret"},
            {"op": "publish", "channel": "data:cpu", "data": {"values": {"a": 1}}},
        ):
            reply = client.request(op)
            assert reply["type"] == "error" and reply["code"] == "forbidden", reply


def test_http_reads_need_a_token_that_allows_the_channel(secured: GatewayProcess) -> None:
    """With auth on, channel list and history need a token; history needs subscribe permission."""
    writer = token("bot", publish=["chat:*"])
    httpx.post(
        f"{secured.http_url}/api/publish/chat:private",
        json={"text": "x"},
        headers={"Authorization": f"Bearer {writer}"},
    ).raise_for_status()
    assert httpx.get(f"{secured.http_url}/api/channels").status_code == 401
    assert httpx.get(f"{secured.http_url}/api/channels/chat:private/history").status_code == 401
    data_only = {"Authorization": f"Bearer {token('reader', subscribe=['data:*'])}"}
    assert (
        httpx.get(f"{secured.http_url}/api/channels/chat:private/history", headers=data_only).status_code
        == 403
    )
    assert httpx.get(f"{secured.http_url}/api/channels", headers=data_only).json() == {"channels": []}
    everything = {"Authorization": f"Bearer {token('ops')}"}
    page = httpx.get(f"{secured.http_url}/api/channels/chat:private/history", headers=everything).json()
    assert [p["data"]["text"] for p in page["publications"]] == ["x"]


def test_http_publish_needs_a_token_with_permission(secured: GatewayProcess) -> None:
    """HTTP publish: 401 without or with a bad token, 403 without permission, 200 with it."""
    url = f"{secured.http_url}/api/publish/data:cpu"
    body = {"values": {"a": 1}}
    assert httpx.post(url, json=body).status_code == 401
    assert httpx.post(url, json=body, headers={"Authorization": "Bearer nope"}).status_code == 401
    chat_only = token("bot", publish=["chat:*"])
    assert httpx.post(url, json=body, headers={"Authorization": f"Bearer {chat_only}"}).status_code == 403
    writer = token("bot", publish=["data:*"])
    assert httpx.post(url, json=body, headers={"Authorization": f"Bearer {writer}"}).json() == {
        "offsets": [1]
    }


def test_open_gateway_says_so_loudly(gateway: GatewayProcess) -> None:
    """With no PULSE_SECRET the gateway runs open, and warns about it in its log."""
    assert "gateway is OPEN" in gateway.log()
    assert httpx.get(f"{gateway.http_url}/healthz").json()["auth"] is False


@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.com",
        "null",
        "http://evil-localhost.com",
        "http://127.0.0.1.evil.com",
        "https://allowed.example.org",
    ],
)
def test_foreign_origins_are_refused_before_accept(start_gateway: StartGateway, origin: str) -> None:
    """A browser Origin that is neither the gateway's own nor listed gets HTTP 403 at the handshake."""
    gateway = start_gateway(env={"PULSE_ALLOWED_ORIGINS": "http://allowed.example.org"})
    with pytest.raises(InvalidStatus) as refused:
        connect(gateway.ws_url, origin=Origin(origin), proxy=None, legacy=True)
    assert refused.value.response.status_code == 403


def test_own_and_listed_origins_are_accepted(start_gateway: StartGateway) -> None:
    """The gateway's own origin, a listed origin and no Origin at all (non-browser) are accepted."""
    gateway = start_gateway(env={"PULSE_ALLOWED_ORIGINS": "http://allowed.example.org"})
    own = f"http://127.0.0.1:{gateway.port}"
    for origin in (own, "http://allowed.example.org", None):
        with Client(gateway.ws_url, origin=origin) as client:
            assert client.welcome["type"] == "welcome"


def test_long_token_errors_still_close_with_4401(secured: GatewayProcess) -> None:
    """A token whose error message is longer than a close frame allows still gets a 4401, not a drop."""
    header = base64.urlsafe_b64encode(b'{"a":' + b"1" * 4400 + b"}").rstrip(b"=").decode()
    bad = f"{header}.e30.sig"
    with pytest.raises(ConnectionClosed) as closed:
        Client(secured.ws_url, additional_headers={"Authorization": f"Bearer {bad}"})
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    with Client(secured.ws_url) as client:
        client.send({"op": "auth", "token": bad})
        assert closed_code(client) == 4401
