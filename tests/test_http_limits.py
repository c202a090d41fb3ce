"""Limits on HTTP connections against a real gateway: a deadline on request bodies, a cap on open HTTP
connections with a clear 503, and the open-files soft limit raised at startup."""

import asyncio
import resource
import socket
from pathlib import Path

import httpx

from tests.client import Client
from tests.servers import GatewayProcess, StartGateway
from tests.test_connection_caps import refused
from tests.test_hostile_handshakes import (
    FAST,
    SLACK,
    assert_answered_at_deadline,
    drip,
    drips_while_serving,
    status_of,
)
from tests.waiting import eventually

BODY_TIMEOUT = 2.0
HTTP_CAP = 20
LOW_SOFT_LIMIT = 256


def publish_head(channel: str, length: int) -> bytes:
    return (
        f"POST /api/publish/{channel} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\nConnection: close\r\n\r\n"
    ).encode()


def test_trickled_bodies_get_408_at_the_body_deadline_while_others_are_served(
    start_gateway: StartGateway,
) -> None:
    """POST bodies dripped a byte a second get 408 and a close at PULSE_BODY_TIMEOUT and publish nothing;
    meanwhile a new client subscribes, publishes and receives, and /healthz stays fast."""
    gateway = start_gateway(env={"PULSE_BODY_TIMEOUT": str(BODY_TIMEOUT)})
    body = b'{"values": {"v": 1}}' + b" " * 980
    head = publish_head("data:slow", len(body))
    closes, seen, worst_health = drips_while_serving(gateway, body, HTTP_CAP, BODY_TIMEOUT, prefix=head)
    assert_answered_at_deadline(closes, 408, BODY_TIMEOUT)
    assert all(answer.endswith(b"request body not complete within 2 s") for _, answer in closes)
    assert seen >= 3, "the honest client kept publishing and receiving through the attack"
    assert worst_health < FAST, f"/healthz took {worst_health:.2f} s during the attack"
    history = httpx.get(f"{gateway.http_url}/api/channels/data:slow/history", timeout=5).json()
    assert history["publications"] == []
    assert "Exception in ASGI application" not in gateway.log()


def test_a_slow_body_that_ends_before_the_deadline_is_published(start_gateway: StartGateway) -> None:
    """A body dripped over most of PULSE_BODY_TIMEOUT is served: the deadline is for the last body byte."""
    gateway = start_gateway(env={"PULSE_BODY_TIMEOUT": str(BODY_TIMEOUT)})
    body = b'{"values": {"v": 7}}'
    interval = (BODY_TIMEOUT - 1.0) / len(body)
    _, answer = asyncio.run(
        drip(
            gateway.port, body, interval, BODY_TIMEOUT + SLACK, prefix=publish_head("data:timely", len(body))
        )
    )
    assert status_of(answer) == 200, answer
    assert answer.endswith(b'{"offsets":[1]}')


def test_past_the_http_connection_cap_new_connections_get_503_until_others_go(
    start_gateway: StartGateway,
) -> None:
    """With PULSE_MAX_HTTP_CONNECTIONS held open, a request or handshake gets 503 with a reason while open
    WebSockets (not counted) keep working; /healthz is served again once the holders go."""
    gateway = start_gateway(
        env={"PULSE_MAX_HTTP_CONNECTIONS": str(HTTP_CAP), "PULSE_HANDSHAKE_TIMEOUT": "60"}
    )
    healthz = f"{gateway.http_url}/healthz"
    websockets = [Client(gateway.ws_url) for _ in range(HTTP_CAP)]
    try:
        assert httpx.get(healthz, timeout=5).status_code == 200, "upgraded WebSockets take no HTTP slot"
        holders = [socket.create_connection(("127.0.0.1", gateway.port)) for _ in range(HTTP_CAP)]
        try:
            for _ in range(5):
                answer = httpx.get(healthz, timeout=5)
                assert answer.status_code == 503
                assert answer.text == f"over {HTTP_CAP} open HTTP connections, try again later"
                assert answer.headers["connection"] == "close"
            assert refused(gateway.ws_url) == 503
            for ws in websockets:
                assert ws.request({"op": "ping"})["type"] == "pong"
        finally:
            for holder in holders:
                holder.close()
        eventually(lambda: httpx.get(healthz, timeout=5).status_code == 200, what="/healthz served again")
        with Client(gateway.ws_url) as again:
            assert again.request({"op": "ping"})["type"] == "pong"
    finally:
        for ws in websockets:
            ws.close()


def test_the_open_files_soft_limit_is_raised_to_the_hard_limit(tmp_path: Path) -> None:
    """A gateway started with a low soft limit on open files raises it to the hard limit, and logs it."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert hard > LOW_SOFT_LIMIT, f"this test needs a hard limit over {LOW_SOFT_LIMIT} (ulimit -Hn)"
    low_soft = ["sh", "-c", f'ulimit -Sn {LOW_SOFT_LIMIT} && exec "$0" "$@"']
    gateway = GatewayProcess(tmp_path, env={"PULSE_LOG_LEVEL": "info"}, command_prefix=low_soft)
    gateway.start()
    try:
        assert gateway.process is not None
        limits = Path(f"/proc/{gateway.process.pid}/limits").read_text()
        soft_now, hard_now = next(
            line for line in limits.splitlines() if line.startswith("Max open files")
        ).split()[3:5]
        assert (int(soft_now), int(hard_now)) == (hard, hard)
        assert f"soft limit raised from {LOW_SOFT_LIMIT} to the hard limit {hard}" in gateway.log()
    finally:
        gateway.stop()
