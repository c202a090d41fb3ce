"""The classic endpoints (``/ws/echo``, ``/ws/chat/{room}``, ``/ws/notifications``) with real
``websockets`` clients against a real gateway: same hub, same limits, simple formats."""

import json
import time
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection

from gateway.auth import mint_token
from tests.client import Client, plain
from tests.servers import GatewayProcess, StartGateway

SECRET = "a-test-secret-of-at-least-32-bytes"


def base(gateway: GatewayProcess) -> str:
    return gateway.ws_url.removesuffix("/ws")


def recv_json(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    message = json.loads(ws.recv(timeout=timeout))
    assert isinstance(message, dict)
    return message


def test_echo_returns_text_bytes_and_json_as_sent(gateway: GatewayProcess) -> None:
    with plain(f"{base(gateway)}/ws/echo") as ws:
        ws.send("hello")
        assert ws.recv(timeout=5) == "hello"
        ws.send(b"\x00\x01binary")
        assert ws.recv(timeout=5) == b"\x00\x01binary"
        document = json.dumps({"a": [1, 2, {"b": None}]})
        ws.send(document)
        echoed = ws.recv(timeout=5)
        assert isinstance(echoed, str) and json.loads(echoed) == {"a": [1, 2, {"b": None}]}


def test_echo_applies_the_size_limit(start_gateway: StartGateway) -> None:
    gateway = start_gateway(env={"PULSE_MAX_MESSAGE_BYTES": "1024"})
    with plain(f"{base(gateway)}/ws/echo") as ws:
        ws.send("x" * 2000)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    with plain(f"{base(gateway)}/ws/echo") as ws:  # the gateway goes on serving
        ws.send("ok")
        assert ws.recv(timeout=5) == "ok"


def recv_said(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    """The next chat message, skipping system lines (joins)."""
    while True:
        message = recv_json(ws, timeout)
        if not message.get("system"):
            return message


def recv_system(ws: ClientConnection, text: str, timeout: float = 5.0) -> dict[str, Any]:
    """The system line ``text``, skipping others before it."""
    while True:
        message = recv_json(ws, timeout)
        if message.get("system") and message["message"] == text:
            return message


def test_classic_chat_between_two_clients_with_leave(gateway: GatewayProcess) -> None:
    url = f"{base(gateway)}/ws/chat/lobby"
    with plain(f"{url}?client_id=alice") as alice:
        with plain(f"{url}?client_id=bob") as bob:
            recv_system(alice, "bob joined the chat")
            bob.send("hi alice")  # plain text
            assert recv_said(alice)["client_id"] == "bob"
            alice.send(json.dumps({"message": "hi bob"}))  # or {"message": ...}
            for ws in (alice, bob):
                if ws is bob:
                    assert recv_said(bob)["message"] == "hi alice"  # its own message comes back too
                said = recv_said(ws)
                assert (said["client_id"], said["message"]) == ("alice", "hi bob")
                assert isinstance(said["timestamp"], float)
        left = recv_system(alice, "bob left the chat")
        assert left["client_id"] == "bob"
    # Published through the real channel: history (and any /ws client) sees the same messages.
    history = httpx.get(f"{gateway.http_url}/api/channels/chat:lobby/history", timeout=5).json()
    assert [(p["data"]["sender"], p["data"]["text"]) for p in history["publications"]] == [
        ("bob", "hi alice"),
        ("alice", "hi bob"),
    ]


def test_classic_chat_messages_arrive_in_the_simple_shape(gateway: GatewayProcess) -> None:
    with (
        plain(f"{base(gateway)}/ws/chat/ops?client_id=carol") as carol,
        Client(f"{gateway.ws_url}?name=dave") as dave,  # a protocol client in the same room
    ):
        dave.subscribe("chat:ops")
        recv_system(carol, "dave joined the chat")
        dave.request({"op": "publish", "channel": "chat:ops", "data": {"text": "<b>from /ws</b>"}})
        assert dave.expect("pub", channel="chat:ops")["data"]["sender"] == "dave"  # its own, first
        message = recv_said(carol)
        assert message["client_id"] == "dave" and message["message"] == "<b>from /ws</b>"
        assert abs(message["timestamp"] - time.time()) < 60
        carol.send("from classic")
        pub = dave.expect("pub", channel="chat:ops")
        assert pub["data"]["sender"] == "carol" and pub["data"]["text"] == "from classic"
        assert recv_said(carol)["message"] == "from classic"


def test_classic_chat_bad_input_gets_an_error_and_the_connection_stays(gateway: GatewayProcess) -> None:
    with plain(f"{base(gateway)}/ws/chat/lobby?client_id=erin") as erin:
        recv_system(erin, "erin joined the chat")
        erin.send(json.dumps({"message": 42}))
        error = recv_json(erin)
        assert error["error"] == "bad_request"
        erin.send("x" * 3000)  # over the chat text limit
        assert recv_json(erin)["error"] in ("bad_request", "too_large")
        erin.send("fine")
        assert recv_json(erin)["message"] == "fine"


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/ws/chat/bad%20room", 400),
        ("/ws/chat/lobby?client_id=%3Cscript%3E", 400),
        ("/ws/notifications?channel=data:x", 400),
    ],
)
def test_classic_endpoints_refuse_bad_names_before_accepting(
    gateway: GatewayProcess, path: str, status: int
) -> None:
    with pytest.raises(InvalidStatus) as refused, plain(base(gateway) + path):
        pass
    assert refused.value.response.status_code == status


def test_notifications_stream_every_notify_channel(gateway: GatewayProcess) -> None:
    publish = f"{gateway.http_url}/api/publish"
    httpx.post(f"{publish}/notify:alerts", json={"level": "info", "title": "exists"}, timeout=5)
    with plain(f"{base(gateway)}/ws/notifications") as ws:
        time.sleep(0.3)
        httpx.post(
            f"{publish}/notify:alerts", json={"level": "error", "title": "disk", "body": "full"}, timeout=5
        )
        first = recv_json(ws)
        assert first == {
            **first,
            "channel": "notify:alerts",
            "level": "error",
            "title": "disk",
            "body": "full",
        }
        httpx.post(f"{publish}/notify:deploys", json={"level": "info", "title": "v2 out"}, timeout=5)
        second = recv_json(ws, timeout=10)  # a channel created after connecting is found and followed
        assert second["channel"] == "notify:deploys" and second["title"] == "v2 out"
        httpx.post(f"{publish}/data:cpu", json={"values": {"x": 1.0}}, timeout=5)
        ws.send("anything")
        assert recv_json(ws)["error"] == "bad_request"


def test_classic_endpoints_need_a_header_token_when_auth_is_on(start_gateway: StartGateway) -> None:
    gateway = start_gateway(env={"PULSE_SECRET": SECRET})
    with plain(f"{base(gateway)}/ws/chat/lobby?client_id=x") as ws:
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    token = mint_token(SECRET, "frank", ttl=600)
    headers = {"Authorization": f"Bearer {token}"}
    with plain(f"{base(gateway)}/ws/chat/lobby", additional_headers=headers) as ws:
        ws.send("with a token")
        message = recv_said(ws)
        assert message["client_id"] == "frank" and message["message"] == "with a token"


def test_classic_endpoints_check_the_origin(start_gateway: StartGateway) -> None:
    gateway = start_gateway(env={"PULSE_ALLOWED_ORIGINS": "http://good.example"})
    for path in ("/ws/echo", "/ws/chat/lobby", "/ws/notifications"):
        with (
            pytest.raises(InvalidStatus) as refused,
            plain(base(gateway) + path, origin="http://evil.example"),
        ):
            pass
        assert refused.value.response.status_code == 403
    with plain(f"{base(gateway)}/ws/echo", origin="http://good.example") as ws:
        ws.send("ok")
        assert ws.recv(timeout=5) == "ok"
