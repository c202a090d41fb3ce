"""One admission for every WebSocket endpoint, and identities that cannot carry hidden text: attacks on a
real gateway with real ``websockets`` clients."""

import contextlib
import time
from contextlib import ExitStack

import httpx
import jwt
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection

from gateway.auth import is_printable_subject, mint_token
from tests.client import Client, plain
from tests.servers import GatewayProcess, StartGateway
from tests.waiting import eventually

SECRET = "admission-test-secret-of-32-bytes-or-more"
CLASSIC_PATHS = ("/ws/echo", "/ws/chat/lobby", "/ws/notifications")


def base(gateway: GatewayProcess) -> str:
    return gateway.ws_url.removesuffix("/ws")


def close_code(ws: ClientConnection) -> int | None:
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            ws.recv(timeout=5)
    return closed.value.rcvd.code if closed.value.rcvd else None


def connections(gateway: GatewayProcess) -> int:
    count: int = httpx.get(f"{gateway.http_url}/healthz", timeout=5).json()["connections"]
    return count


def raw_token(sub: object) -> str:
    """A correctly signed token whose ``sub`` the minting tool would refuse."""
    claims = {"sub": sub, "exp": int(time.time()) + 60, "channels": {"subscribe": ["*"], "publish": ["*"]}}
    return jwt.encode(claims, SECRET, algorithm="HS256")


@pytest.mark.parametrize("path", CLASSIC_PATHS)
def test_every_classic_endpoint_closes_a_client_without_a_token_with_4401(
    start_gateway: StartGateway, path: str
) -> None:
    """With auth on, /ws/echo (once open to anyone) and the other classic endpoints refuse a tokenless
    client with 4401 and never echo or deliver to it."""
    gateway = start_gateway(env={"PULSE_SECRET": SECRET})
    with plain(base(gateway) + path) as ws:
        assert close_code(ws) == 4401


def test_echo_with_a_header_token_works_and_a_bad_token_gets_4401(start_gateway: StartGateway) -> None:
    """/ws/echo takes the same header token as the other endpoints; a forged one is refused."""
    gateway = start_gateway(env={"PULSE_SECRET": SECRET})
    good = {"Authorization": f"Bearer {mint_token(SECRET, 'echoer', ttl=60)}"}
    with plain(f"{base(gateway)}/ws/echo", additional_headers=good) as ws:
        ws.send("hello")
        assert ws.recv(timeout=5) == "hello"
    forged = {"Authorization": f"Bearer {mint_token('another-secret-of-32-bytes-or-more!', 'x', ttl=60)}"}
    with plain(f"{base(gateway)}/ws/echo", additional_headers=forged) as ws:
        assert close_code(ws) == 4401


def test_echo_connections_count_toward_the_cap_and_the_gauge(start_gateway: StartGateway) -> None:
    """Echo connections are admitted like /ws ones: they fill the connection cap (503 past it), show in
    the connection gauge, and free their slot when they leave."""
    gateway = start_gateway(env={"PULSE_MAX_CONNECTIONS": "4"})
    with ExitStack() as stack:
        echoes = [stack.enter_context(plain(f"{base(gateway)}/ws/echo")) for _ in range(3)]
        for ws in echoes:
            ws.send("ping")
            assert ws.recv(timeout=5) == "ping"
        assert connections(gateway) == 3
        with Client(gateway.ws_url) as native:
            assert native.request({"op": "ping"})["type"] == "pong"
            for path in ("/ws/echo", "/ws"):
                with pytest.raises(InvalidStatus) as refused, plain(base(gateway) + path):
                    pass
                assert refused.value.response.status_code == 503
        echoes[0].close()
        eventually(lambda: connections(gateway) == 2, what="the echo's slot freed")
        with plain(f"{base(gateway)}/ws/echo") as again:
            again.send("back")
            assert again.recv(timeout=5) == "back"


def refused_status(url: str, **args: object) -> int:
    with pytest.raises(InvalidStatus) as refused, plain(url, **args):
        pass
    status: int = refused.value.response.status_code
    return status


def test_classic_endpoints_refused_for_a_missing_token_free_their_seat(start_gateway: StartGateway) -> None:
    """A tokenless client closed with 4401 on any classic endpoint leaves no connection counted behind:
    the cap still admits as many real clients as it did."""
    gateway = start_gateway(env={"PULSE_SECRET": SECRET, "PULSE_MAX_CONNECTIONS": "1"})
    for path in CLASSIC_PATHS:
        with plain(base(gateway) + path) as ws:
            assert close_code(ws) == 4401
    eventually(lambda: connections(gateway) == 0, what="no refused client still counted")
    token = {"Authorization": f"Bearer {mint_token(SECRET, 'erin', ttl=60)}"}
    with plain(f"{base(gateway)}/ws/echo", additional_headers=token) as ws:
        ws.send("still one seat")
        assert ws.recv(timeout=5) == "still one seat"


def test_every_endpoint_shares_the_global_cap(start_gateway: StartGateway) -> None:
    """One connection on each classic endpoint fills a cap of three: a fourth is refused with 503
    whichever endpoint it asks for, and a slot freed on one endpoint serves another."""
    gateway = start_gateway(env={"PULSE_MAX_CONNECTIONS": "3"})
    with ExitStack() as stack:
        open_ = {path: stack.enter_context(plain(base(gateway) + path)) for path in CLASSIC_PATHS}
        open_["/ws/echo"].send("here")
        assert open_["/ws/echo"].recv(timeout=5) == "here"
        eventually(lambda: connections(gateway) == 3, what="all three counted")
        for path in (*CLASSIC_PATHS, "/ws"):
            assert refused_status(base(gateway) + path) == 503, path
        open_["/ws/chat/lobby"].close()
        eventually(lambda: connections(gateway) == 2, what="the chat's slot freed")
        with Client(gateway.ws_url) as native:
            assert native.request({"op": "ping"})["type"] == "pong"


def test_an_identity_is_capped_across_endpoints_however_its_token_came(
    start_gateway: StartGateway,
) -> None:
    """alice's header-token connections on echo and chat fill her cap of two: a third is refused with 503
    on any endpoint, and one that names her with a first-message auth op is closed with 1013. bob, and
    alice again once a slot is free, get in."""
    gateway = start_gateway(env={"PULSE_SECRET": SECRET, "PULSE_MAX_CONNECTIONS_PER_IDENTITY": "2"})
    alice = mint_token(SECRET, "alice", ttl=60)
    as_alice = {"Authorization": f"Bearer {alice}"}
    with ExitStack() as stack:
        echo = stack.enter_context(plain(f"{base(gateway)}/ws/echo", additional_headers=as_alice))
        stack.enter_context(plain(f"{base(gateway)}/ws/chat/lobby", additional_headers=as_alice))
        for path in ("/ws/notifications", "/ws/echo", "/ws"):
            assert refused_status(base(gateway) + path, additional_headers=as_alice) == 503, path
        with Client(gateway.ws_url) as late:
            late.send({"op": "auth", "token": alice})
            assert close_code(late.ws) == 1013
        bob = {"Authorization": f"Bearer {mint_token(SECRET, 'bob', ttl=60)}"}
        with plain(f"{base(gateway)}/ws/notifications", additional_headers=bob):
            pass
        echo.close()
        eventually(lambda: connections(gateway) == 1, what="alice's echo slot freed")
        with Client(gateway.ws_url) as again:
            assert again.request({"op": "auth", "token": alice})["name"] == "alice"


def test_echo_closes_with_1008_at_its_first_frame_over_the_rate(start_gateway: StartGateway) -> None:
    """Echo has no error frame to tell a client it was limited, so the first frame over the bucket
    closes it with the same 1008 /ws sends for persistent flooding."""
    gateway = start_gateway(env={"PULSE_CLIENT_RATE": "0.01", "PULSE_CLIENT_BURST": "2"})
    with plain(f"{base(gateway)}/ws/echo") as ws:
        for word in ("one", "two"):
            ws.send(word)
            assert ws.recv(timeout=5) == word
        ws.send("three")
        assert close_code(ws) == 1008


@pytest.mark.parametrize(
    "sub",
    [
        "mallory\u202eevil",  # right-to-left override: reorders what others read
        "zero\u200bwidth",
        "line\nbreak",
        "bell\x07",
        " padded",
        "x" * 129,
        "",
    ],
)
def test_tokens_with_unprintable_subjects_are_refused(start_gateway: StartGateway, sub: str) -> None:
    """A signed token whose sub holds control or bidi characters, edge spaces or too many characters is
    refused on WebSocket (4401, header and auth op) and HTTP (401); nothing reaches a chat room."""
    gateway = start_gateway(env={"PULSE_SECRET": SECRET})
    token = raw_token(sub)
    reader_token = mint_token(SECRET, "reader", ttl=60)
    with Client(gateway.ws_url) as reader:
        reader.request({"op": "auth", "token": reader_token})
        reader.subscribe("chat:lobby")
        with pytest.raises(ConnectionClosed) as closed:
            Client(gateway.ws_url, additional_headers={"Authorization": f"Bearer {token}"})
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
        with Client(gateway.ws_url) as client:
            client.send({"op": "auth", "token": token})
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    client.recv(timeout=5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
        response = httpx.post(
            f"{gateway.http_url}/api/publish/chat:lobby",
            json={"text": "hi"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        )
        assert response.status_code == 401 and "printable" in response.text
        seen = []
        with contextlib.suppress(TimeoutError):
            while True:
                seen.append(reader.recv(timeout=0.3))
        assert not [m for m in seen if m["type"] == "pub" or m.get("name") == sub], seen


def test_printable_subjects_of_any_script_are_identities(start_gateway: StartGateway) -> None:
    """Names in other scripts, with inner spaces and punctuation, stay valid and become the sender."""
    gateway = start_gateway(env={"PULSE_SECRET": SECRET})
    name = "José Ωmega-李 (ops)"
    assert is_printable_subject(name)
    with Client(gateway.ws_url) as client:
        client.request({"op": "auth", "token": mint_token(SECRET, name, ttl=60, publish=["chat:*"])})
        client.subscribe("chat:lobby")
        client.request({"op": "publish", "channel": "chat:lobby", "data": {"text": "hola"}})
        assert client.pubs(1)[0]["data"]["sender"] == name


def test_the_token_tool_refuses_an_unprintable_subject() -> None:
    """Minting refuses a sub the gateway would refuse, so an operator learns it at once."""
    with pytest.raises(ValueError, match="printable"):
        mint_token(SECRET, "evil\u202e", ttl=60)
