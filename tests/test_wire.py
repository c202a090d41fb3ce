"""Frames written straight to the transport: the same bytes as websockets would send, used only where
the connection allows it, and a client that never reads is dropped after its close grace period."""

import base64
import json
import os
import re
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Frame, Opcode

from gateway.transport.frames import _encode_frame, text_frame
from tests.client import Client
from tests.servers import StartGateway, metric
from tests.waiting import eventually


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 300_000])
def test_text_frame_matches_websockets_serialisation(size: int) -> None:
    """Every length encoding (7-bit, 16-bit, 64-bit) gives the bytes websockets itself would write."""
    text = ("é" * size)[: size // 2] + "x" * (size - size // 2)
    expected = Frame(Opcode.TEXT, text.encode()).serialize(mask=False)
    assert _encode_frame(text) == expected
    assert text_frame(text) == expected


def test_a_shared_frame_is_encoded_once() -> None:
    """The hub hands every subscriber the same frame text; it is encoded the first time only."""
    text = '{"type":"pub","channel":"data:x","offset":1}'
    assert text_frame(text) is text_frame(text)


def assert_delivers(http_url: str, client: Client, count: int) -> None:
    client.subscribe("data:wire")
    points = [{"values": {"a": float(i)}} for i in range(count)]
    httpx.post(f"{http_url}/api/publish/data:wire", json=points).raise_for_status()
    assert [p["offset"] for p in client.pubs(count)] == list(range(1, count + 1))


def test_plain_connections_take_the_direct_path(start_gateway: StartGateway) -> None:
    """Without compression, frames go straight to the transport and arrive intact, packed or not."""
    gateway = start_gateway()
    with Client(gateway.ws_url, compression=None) as client:
        assert_delivers(gateway.http_url, client, 300)
        assert metric(gateway.http_url, "pulse_direct_write_connections_total") == 1


def test_compressed_connections_go_through_asgi(start_gateway: StartGateway) -> None:
    """With permessage-deflate negotiated a frame is per connection: the ASGI path writes it, correctly."""
    gateway = start_gateway(env={"PULSE_WS_PER_MESSAGE_DEFLATE": "true"})
    deflate = [ClientPerMessageDeflateFactory(client_max_window_bits=True)]
    with Client(gateway.ws_url, compression=None, extensions=deflate) as client:
        assert client.ws.protocol.extensions, "the gateway did not negotiate permessage-deflate"
        assert_delivers(gateway.http_url, client, 50)
        assert metric(gateway.http_url, "pulse_direct_write_connections_total") == 0


def open_sockets(pid: int) -> int:
    fds = Path(f"/proc/{pid}/fd")
    count = 0
    for fd in fds.iterdir():
        try:
            count += os.readlink(fd).startswith("socket:")
        except FileNotFoundError:
            continue
    return count


def stuck_subscriber(port: int, channel: str) -> socket.socket:
    """A raw client with a tiny receive buffer that subscribes, then never reads again."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    op = json.dumps({"op": "subscribe", "channel": channel, "id": 1}).encode()
    sock.sendall(Frame(Opcode.TEXT, op).serialize(mask=True))
    return sock


def test_a_client_that_never_reads_is_dropped_after_the_close_grace(start_gateway: StartGateway) -> None:
    """Past its queue bound it gets 4001; as it never reads up to the close, its socket is aborted."""
    gateway = start_gateway(env={"PULSE_CLIENT_QUEUE_BYTES": str(64 * 1024)})
    assert gateway.process is not None
    pid = gateway.process.pid
    baseline = open_sockets(pid)
    sock = stuck_subscriber(gateway.port, "data:stuck")
    try:
        with httpx.Client(base_url=gateway.http_url) as http:
            eventually(lambda: metric(gateway.http_url, "pulse_connections_open") == 1, timeout=10)
            payload = [{"values": {f"s{i}": float(i) for i in range(40)}}] * 200
            for _ in range(20):
                http.post("/api/publish/data:stuck", json=payload).raise_for_status()
            eventually(lambda: metric(gateway.http_url, "pulse_slow_disconnects_total") == 1, timeout=20)
            started = time.monotonic()
            # The session is over at once; the socket goes when the close grace (10 s) runs out.
            eventually(lambda: open_sockets(pid) <= baseline, timeout=30)
            assert time.monotonic() - started < 25
            assert http.get("/healthz").status_code == 200
    finally:
        sock.close()


BATCHES = 40


def test_a_client_that_pauses_reading_gets_everything_in_order(start_gateway: StartGateway) -> None:
    """While its socket is full the sender task waits and takes over from the per-tick flush; once the
    client reads again, every message arrives once and in order."""
    gateway = start_gateway(env={"PULSE_CLIENT_QUEUE_BYTES": str(32 * 1024 * 1024)})
    # max_queue=1: the client library stops reading the socket while the test is not receiving; a small
    # receive buffer keeps the kernel from absorbing the backlog.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", gateway.port))
    with Client(gateway.ws_url, sock=sock, compression=None, max_queue=1) as client:
        client.subscribe("data:pause")
        payload = [{"values": {f"s{i}": float(i) for i in range(20)}}] * 500
        with httpx.Client(base_url=gateway.http_url) as http:
            # ~8 MB: more than the kernel's socket buffers and the transport's take on loopback.
            for _ in range(BATCHES):
                http.post("/api/publish/data:pause", json=payload).raise_for_status()
            pending = metric(gateway.http_url, "pulse_outbox_pending_characters")
            assert pending > 0, "the socket never filled up"
        offsets = [p["offset"] for p in client.pubs(BATCHES * 500, timeout=60)]
        assert offsets == list(range(1, BATCHES * 500 + 1))


def kernel_send_buffer(server_port: int, client_port: int) -> int:
    """SO_SNDBUF of the gateway's side of one connection, as ``ss`` reports it (``tb``)."""
    shown = subprocess.run(
        ["ss", "-tmnH", "state", "established", f"( sport = :{server_port} and dport = :{client_port} )"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = re.search(r"\btb(\d+)", shown)
    assert found, shown
    return int(found.group(1))


def test_the_kernel_send_buffer_is_capped(start_gateway: StartGateway) -> None:
    """PULSE_SOCKET_SEND_BUFFER bounds what a client that stops reading holds in the kernel (Linux
    reports twice the value set, for its bookkeeping)."""
    gateway = start_gateway(env={"PULSE_SOCKET_SEND_BUFFER": str(128 * 1024)})
    with Client(gateway.ws_url, compression=None) as client:
        client_port = client.ws.socket.getsockname()[1]
        assert kernel_send_buffer(gateway.port, client_port) == 2 * 128 * 1024
