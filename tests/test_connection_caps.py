"""Connection caps: past the global or per-identity limit a handshake gets HTTP 503 before accept,
while the connected clients and HTTP publishing keep working."""

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from tests.client import Client
from tests.servers import StartGateway
from tests.waiting import eventually


def refused(url: str) -> int:
    with pytest.raises(InvalidStatus) as caught, Client(url):
        pass
    status: int = caught.value.response.status_code
    return status


def connections(http_url: str) -> int:
    count: int = httpx.get(f"{http_url}/healthz", timeout=5).json()["connections"]
    return count


def test_the_global_cap_refuses_new_handshakes_and_serves_the_rest(start_gateway: StartGateway) -> None:
    gateway = start_gateway(env={"PULSE_MAX_CONNECTIONS": "3"})
    clients = [Client(gateway.ws_url) for _ in range(3)]
    try:
        for client in clients:
            client.subscribe("data:cap")
        assert refused(gateway.ws_url) == 503
        response = httpx.post(
            f"{gateway.http_url}/api/publish/data:cap", json={"values": {"v": 1.0}}, timeout=5
        )
        assert response.status_code == 200
        for client in clients:
            assert client.pubs(1)[0]["data"]["values"] == {"v": 1.0}
            assert client.request({"op": "ping"})["type"] == "pong"
        clients.pop().close()
        eventually(lambda: connections(gateway.http_url) == 2, what="a slot freed")
        with Client(gateway.ws_url) as again:
            assert again.request({"op": "ping"})["type"] == "pong"
    finally:
        for client in clients:
            client.close()


def test_the_per_identity_cap_counts_each_identity_apart(start_gateway: StartGateway) -> None:
    gateway = start_gateway(env={"PULSE_MAX_CONNECTIONS_PER_IDENTITY": "2"})
    bob = f"{gateway.ws_url}?name=bob"
    with Client(bob), Client(bob):
        assert refused(bob) == 503
        with Client(f"{gateway.ws_url}?name=alice") as alice, Client(gateway.ws_url) as anonymous:
            assert alice.request({"op": "ping"})["type"] == "pong"
            assert anonymous.request({"op": "ping"})["type"] == "pong"
    eventually(lambda: connections(gateway.http_url) == 0, what="all closed")
    with Client(bob), Client(bob):
        pass  # both of bob's slots came back
