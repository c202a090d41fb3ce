"""Every WebSocket op and error code of protocol v1, against a real gateway process."""

import json
import threading
import time

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.client import Client
from tests.servers import GatewayProcess, StartGateway

pytestmark = [pytest.mark.both_brokers, pytest.mark.redis_cluster]


def test_welcome_names_the_connection(gateway: GatewayProcess) -> None:
    """The first frame is a welcome with a client_id, the protocol version and the identity."""
    with Client(f"{gateway.ws_url}?name=alice") as alice, Client(gateway.ws_url) as anonymous:
        assert alice.welcome["protocol"] == 1
        assert alice.welcome["name"] == "alice"
        assert anonymous.welcome["name"] == anonymous.client_id
        assert alice.client_id != anonymous.client_id
        assert alice.welcome["auth_required"] is False


def test_invalid_name_is_refused_before_accept(gateway: GatewayProcess) -> None:
    """A name query parameter outside the name rule is an HTTP 400 at the handshake."""
    with pytest.raises(Exception, match="400"):
        connect(f"{gateway.ws_url}?name=bad%20name", proxy=None, legacy=True)


def test_publish_reaches_every_subscriber_in_order(gateway: GatewayProcess) -> None:
    """Publications get contiguous offsets and reach all subscribers, in order, with the envelope."""
    with Client(gateway.ws_url) as a, Client(gateway.ws_url) as b, Client(gateway.ws_url) as pub:
        first = a.subscribe("data:temp")
        b.subscribe("data:temp")
        assert first["offset"] == 0 and first["recovered"] is True
        acks = [
            pub.request({"op": "publish", "channel": "data:temp", "data": {"values": {"t": i}}})
            for i in range(5)
        ]
        assert [ack["type"] for ack in acks] == ["ack"] * 5
        assert [ack["offset"] for ack in acks] == [1, 2, 3, 4, 5]
        for client in (a, b):
            pubs = client.pubs(5)
            assert [p["offset"] for p in pubs] == [1, 2, 3, 4, 5]
            assert [p["data"]["values"]["t"] for p in pubs] == [0, 1, 2, 3, 4]
            assert all(p["channel"] == "data:temp" and p["epoch"] == first["epoch"] for p in pubs)
            assert all(p["data"]["ts"] > 0 and p["ts"] > 0 for p in pubs)


def test_unsubscribe_stops_delivery(gateway: GatewayProcess) -> None:
    """After unsubscribed, nothing more arrives from that channel."""
    with Client(gateway.ws_url) as sub:
        sub.subscribe("data:x")
        reply = sub.request({"op": "unsubscribe", "channel": "data:x"})
        assert reply == {"type": "unsubscribed", "ref": reply["ref"], "channel": "data:x"}
        httpx.post(f"{gateway.http_url}/api/publish/data:x", json={"values": {"v": 1}}).raise_for_status()
        sub.nothing_for(0.3)
        again = sub.request({"op": "unsubscribe", "channel": "data:x"})
        assert again["type"] == "error" and again["code"] == "bad_request"


def test_chat_gets_sender_from_identity_and_an_id(gateway: GatewayProcess) -> None:
    """Chat messages carry the publisher's identity as sender and a unique id; a payload sender is refused."""
    with Client(f"{gateway.ws_url}?name=alice") as alice, Client(f"{gateway.ws_url}?name=bob") as bob:
        bob.subscribe("chat:lobby")
        alice.request({"op": "publish", "channel": "chat:lobby", "data": {"text": "hello"}})
        alice.request({"op": "publish", "channel": "chat:lobby", "data": {"text": "again"}})
        first, second = bob.pubs(2)
        assert first["data"]["sender"] == "alice" and first["data"]["text"] == "hello"
        assert first["data"]["id"] != second["data"]["id"]
        spoof = alice.request(
            {"op": "publish", "channel": "chat:lobby", "data": {"text": "x", "sender": "bob"}}
        )
        assert spoof["type"] == "error" and spoof["code"] == "bad_request"


def test_presence_and_join_leave_events(gateway: GatewayProcess) -> None:
    """Presence lists a chat room's members; members see join and leave events."""
    with Client(f"{gateway.ws_url}?name=alice") as alice:
        alice.subscribe("chat:room")
        alice.expect("join", name="alice")
        with Client(f"{gateway.ws_url}?name=bob") as bob:
            bob.subscribe("chat:room")
            joined = alice.expect("join", name="bob")
            assert joined["client_id"] == bob.client_id
            presence = alice.request({"op": "presence", "channel": "chat:room"})
            assert presence["type"] == "presence"
            assert sorted(c["name"] for c in presence["clients"]) == ["alice", "bob"]
        left = alice.expect("leave", name="bob")
        assert left["channel"] == "chat:room"
        presence = alice.request({"op": "presence", "channel": "chat:room"})
        assert [c["name"] for c in presence["clients"]] == ["alice"]


def test_direct_message_and_not_found(gateway: GatewayProcess) -> None:
    """A direct message reaches its target with the sender's client_id; an unknown target is not_found."""
    with Client(f"{gateway.ws_url}?name=alice") as alice, Client(f"{gateway.ws_url}?name=bob") as bob:
        ack = alice.request({"op": "direct", "to": bob.client_id, "data": {"text": "psst"}})
        assert ack["type"] == "ack" and "offset" not in ack
        message = bob.expect("direct")
        assert message["from"] == alice.client_id and message["name"] == "alice"
        assert message["data"] == {"text": "psst"}
        missing = alice.request({"op": "direct", "to": "nobody", "data": {}})
        assert missing["type"] == "error" and missing["code"] == "not_found"


def test_ping_pong(gateway: GatewayProcess) -> None:
    """ping is answered by pong with the op's id as ref, string ids included."""
    with Client(gateway.ws_url) as client:
        assert client.request({"op": "ping", "id": "abc"}) == {"type": "pong", "ref": "abc"}


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "bad_json"),
        ("[1, 2]", "bad_request"),
        ('{"id": 7}', "bad_request"),
        ('{"op": "dance", "id": 7}', "unknown_op"),
        ('{"op": "subscribe", "channel": "data:../x", "id": 7}', "bad_channel"),
        ('{"op": "subscribe", "channel": "nope:x", "id": 7}', "bad_channel"),
        (
            '{"op": "subscribe", "channel": "data:x", "since": {"offset": -1, "epoch": "e"}, "id": 7}',
            "bad_request",
        ),
        (
            '{"op": "subscribe", "channel": "data:x", "since": {"offset": "1", "epoch": "e"}, "id": 7}',
            "bad_request",
        ),
        (
            '{"op": "subscribe", "channel": "data:x", "since": {"offset": 0, "epoch": "e"}, '
            '"history": 3, "id": 7}',
            "bad_request",
        ),
        ('{"op": "publish", "channel": "data:x", "data": {"values": {"a": NaN}}, "id": 7}', "bad_request"),
        ('{"op": "publish", "channel": "data:x", "data": {"values": {"a": "1"}}, "id": 7}', "bad_request"),
        (
            '{"op": "publish", "channel": "notify:x", "data": {"level": "meh", "title": "t"}, "id": 7}',
            "bad_request",
        ),
        (
            '{"op": "publish", "channel": "chat:x", "data": {"text": "' + "x" * 2001 + '"}, "id": 7}',
            "too_large",
        ),
    ],
)
def test_bad_frames_get_an_error_and_the_connection_stays_usable(
    gateway: GatewayProcess, frame: str, code: str
) -> None:
    """Each kind of bad input gets its error code (with ref when the frame had an id); then ops still work."""
    with Client(gateway.ws_url) as client:
        client.ws.send(frame)
        error = client.expect("error")
        assert error["code"] == code, error
        assert error["detail"]
        if '"id": 7' in frame:
            assert error["ref"] == 7
        assert client.request({"op": "ping"})["type"] == "pong"


def test_binary_frame_is_an_error_not_a_close(gateway: GatewayProcess) -> None:
    """A binary frame on /ws is answered with bad_request; the connection stays open."""
    with Client(gateway.ws_url) as client:
        client.ws.send(b"\x00\x01")
        assert client.expect("error")["code"] == "bad_request"
        assert client.request({"op": "ping"})["type"] == "pong"


def test_double_subscribe_and_subscription_limit(start_gateway: StartGateway) -> None:
    """Subscribing twice is bad_request; past PULSE_MAX_SUBSCRIPTIONS it is too_large."""
    gateway = start_gateway(env={"PULSE_MAX_SUBSCRIPTIONS": "3"})
    with Client(gateway.ws_url) as client:
        for index in range(3):
            client.subscribe(f"data:s{index}")
        twice = client.request({"op": "subscribe", "channel": "data:s0"})
        assert twice["code"] == "bad_request"
        over = client.request({"op": "subscribe", "channel": "data:s3"})
        assert over["code"] == "too_large"


def test_frame_over_the_limit_closes_with_1009(gateway: GatewayProcess) -> None:
    """A frame over PULSE_MAX_MESSAGE_BYTES closes the connection with 1009; others are unaffected."""
    with Client(gateway.ws_url) as bystander, Client(gateway.ws_url, max_size=None) as client:
        bystander.subscribe("data:y")
        client.ws.send(json.dumps({"op": "ping", "pad": "x" * 70_000}))
        with pytest.raises(ConnectionClosed) as closed:
            client.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        httpx.post(f"{gateway.http_url}/api/publish/data:y", json={"values": {"v": 1}}).raise_for_status()
        assert bystander.pubs(1)[0]["offset"] == 1


def test_rate_limit_then_policy_close(start_gateway: StartGateway) -> None:
    """Ops beyond the token bucket get rate_limited; a client that keeps flooding is closed with 1008."""
    gateway = start_gateway(env={"PULSE_CLIENT_RATE": "1", "PULSE_CLIENT_BURST": "5"})
    with Client(gateway.ws_url) as client:
        for _ in range(5):
            client.send({"op": "ping"})
        client.send({"op": "ping"})
        replies = [client.recv() for _ in range(6)]
        assert [r["type"] for r in replies[:5]] == ["pong"] * 5
        assert replies[5]["type"] == "error" and replies[5]["code"] == "rate_limited"
        with pytest.raises(ConnectionClosed) as closed:
            for _ in range(20):
                client.send({"op": "ping"})
            while True:
                client.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


def test_a_flooding_client_is_closed_and_others_keep_their_round_trips(gateway: GatewayProcess) -> None:
    """One client firing ops without pause gets rate_limited then 1008; meanwhile another client's pings
    keep coming back promptly (never stalled behind the flood) and it stays connected."""
    flood_closed: list[int | None] = []

    def flood() -> None:
        with Client(gateway.ws_url) as flooder:
            op = json.dumps({"op": "publish", "channel": "data:flood", "data": {"values": {"a": 1.0}}})
            try:
                for _ in range(20_000):
                    flooder.ws.send(op)
                while True:
                    flooder.recv(timeout=10)
            except ConnectionClosed as closed:
                flood_closed.append(closed.rcvd.code if closed.rcvd else None)

    with Client(gateway.ws_url) as calm:
        flooder = threading.Thread(target=flood)
        flooder.start()
        worst = 0.0
        for _ in range(30):
            started = time.monotonic()
            assert calm.request({"op": "ping"})["type"] == "pong"
            worst = max(worst, time.monotonic() - started)
        flooder.join(30)
        assert flood_closed == [1008]
        assert worst < 1.0, f"a ping took {worst:.2f} s during the flood"
        assert calm.request({"op": "ping"})["type"] == "pong"


@pytest.mark.parametrize(
    "frame",
    [
        '{"op": "ping", "id": "\\ud800"}',
        '{"op": "direct", "to": "nobody", "data": {"t": "\\ud800"}}',
        '{"op": "direct", "to": "nobody", "data": ' + '{"a": ' * 600 + "1" + "}" * 601,
    ],
    ids=["lone-surrogate-id", "lone-surrogate-data", "deep-nesting"],
)
def test_unencodable_input_is_bad_json_not_an_internal_error(gateway: GatewayProcess, frame: str) -> None:
    """Lone surrogates and very deep nesting are bad_json; the connection stays open (never 1011)."""
    with Client(gateway.ws_url) as client:
        client.ws.send(frame)
        assert client.expect("error")["code"] == "bad_json"
        assert client.request({"op": "ping"})["type"] == "pong"
