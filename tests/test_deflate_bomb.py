"""Compression attacks on /ws against a real gateway: a permessage-deflate bomb is cut off at
PULSE_MAX_MESSAGE_BYTES while decompressing (1009), and a compressed frame on a connection that did not
negotiate compression is a protocol error (1002); memory stays flat and other clients are unaffected."""

import base64
import os
import socket
import struct
import time
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.client import Client
from tests.servers import GatewayProcess, StartGateway

MiB = 1024 * 1024


def peak_rss(gateway: GatewayProcess) -> int:
    """The gateway's peak resident memory so far (``VmHWM``): a transient spike shows, unlike in RSS."""
    assert gateway.process is not None
    status = Path(f"/proc/{gateway.process.pid}/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) * 1024


def close_code_after(ws: ClientConnection, within: float = 10.0) -> int:
    """Read until the server closes; the code it closed with."""
    deadline = time.monotonic() + within
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            ws.recv(timeout=max(0.01, deadline - time.monotonic()))
    assert closed.value.rcvd is not None, "the server sent a close frame"
    return closed.value.rcvd.code


def bomb(gateway: GatewayProcess, uncompressed_bytes: int) -> tuple[int, float]:
    """Send one highly compressible text frame; (the close code, seconds from send to close)."""
    with connect(gateway.ws_url, proxy=None, open_timeout=10, compression="deflate") as ws:
        assert ws.response is not None
        assert "permessage-deflate" in ws.response.headers.get("Sec-WebSocket-Extensions", "")
        ws.recv(timeout=10)  # welcome
        started = time.monotonic()
        ws.send("a" * uncompressed_bytes)
        code = close_code_after(ws)
        return code, time.monotonic() - started


def publish(gateway: GatewayProcess, n: int) -> None:
    url = f"{gateway.http_url}/api/publish/data:calm"
    httpx.post(url, json={"values": {"n": n}}, timeout=10).raise_for_status()


def test_a_deflate_bomb_is_closed_with_1009_quickly_and_memory_stays_flat(
    start_gateway: StartGateway,
) -> None:
    """With deflate on, a 1 MiB frame that compresses to ~1 KB closes with 1009 in under 2 s; 16 MiB
    bombs never raise the gateway's peak RSS, and a subscriber receives before, between and after."""
    gateway = start_gateway(env={"PULSE_WS_PER_MESSAGE_DEFLATE": "true"})
    with Client(gateway.ws_url, compression="deflate") as bystander:
        bystander.subscribe("data:calm")
        code, seconds = bomb(gateway, 1 * MiB)
        assert code == 1009
        assert seconds < 2.0, f"closed after {seconds:.2f} s"
        publish(gateway, 0)
        assert bystander.pubs(1, timeout=10)[0]["data"]["values"]["n"] == 0
        before = peak_rss(gateway)
        for n in range(1, 4):
            # 16 MiB of one byte deflates to ~16 KB, under the 64 KiB frame limit: only decompressing
            # no further than the limit stops it (inflating it whole peaks ~50 MiB higher).
            assert bomb(gateway, 16 * MiB)[0] == 1009
            publish(gateway, n)
            assert bystander.pubs(1, timeout=10)[0]["data"]["values"]["n"] == n
        grown = peak_rss(gateway) - before
        assert grown < 16 * MiB, f"peak RSS rose by {grown / MiB:.1f} MiB over three 16 MiB bombs"
        assert bystander.request({"op": "ping", "id": "still-here"})["type"] == "pong"
    assert "Exception in ASGI application" not in gateway.log()


def handshake(port: int) -> socket.socket:
    """A raw WebSocket connection to /ws that offers permessage-deflate; the welcome frame is read."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, f"closed during the handshake: {head!r}"
        head += chunk
    response, _, rest = head.partition(b"\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 101"), response
    assert b"permessage-deflate" not in response.lower(), "deflate is off: not negotiated"
    opcode, payload = read_frame(sock, rest)
    assert opcode == 0x1 and b'"welcome"' in payload
    return sock


def read_frame(sock: socket.socket, buffered: bytes = b"") -> tuple[int, bytes]:
    """One unmasked server frame: (opcode, payload)."""
    data = bytearray(buffered)

    def need(count: int) -> bytes:
        while len(data) < count:
            chunk = sock.recv(65536)
            assert chunk, "connection closed mid-frame"
            data.extend(chunk)
        taken = bytes(data[:count])
        del data[:count]
        return taken

    first, second = need(2)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", need(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", need(8))
    return first & 0x0F, need(length)


def test_a_compressed_frame_without_negotiated_deflate_is_closed_with_1002(gateway: GatewayProcess) -> None:
    """With deflate off (the default) a frame with RSV1 set gets close 1002, not a crash."""
    with Client(gateway.ws_url) as bystander:
        bystander.subscribe("data:calm")
        with handshake(gateway.port) as sock:
            payload = b'{"op": "ping", "id": 1}'
            mask = os.urandom(4)
            masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
            sock.sendall(bytes([0x80 | 0x40 | 0x1, 0x80 | len(payload)]) + mask + masked)  # FIN, RSV1, text
            opcode, close = read_frame(sock)
            assert opcode == 0x8
            assert struct.unpack("!H", close[:2])[0] == 1002, close
            assert sock.recv(1) == b"", "the server closes the connection after its close frame"
        publish(gateway, 1)
        assert bystander.pubs(1, timeout=10)[0]["data"]["values"]["n"] == 1
    assert httpx.get(f"{gateway.http_url}/healthz", timeout=5).status_code == 200
    assert "Exception in ASGI application" not in gateway.log()
