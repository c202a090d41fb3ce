"""The transport seam against a real gateway: what ordinary hostile traffic gets and logs, 1009 for an
oversized frame every time, and the portable paths when the server underneath lacks a capability."""

import contextlib
import logging
import os
import socket
import struct
import time
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from gateway.transport import server_protocols
from gateway.transport.http_guard import HandshakeGuardProtocol, missing
from gateway.transport.stats import stats
from gateway.transport.websocket import PulseWebSocketProtocol
from gateway.transport.websocket import missing as protocol_missing
from tests.servers import AppProcess, GatewayProcess, StartGateway, free_port, metric

MiB = 1024 * 1024
UPGRADE = (
    "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
)


@pytest.fixture
def gateway(start_gateway: StartGateway) -> GatewayProcess:
    # INFO, so the test sees every line an ordinary client's behaviour costs the operator's log.
    return start_gateway(env={"PULSE_LOG_LEVEL": "info", "PULSE_MAX_CONNECTIONS": "3"})


def masked_frame(opcode: int, payload: bytes) -> bytes:
    """A client frame (clients must mask), unfragmented."""
    mask = os.urandom(4)
    size = len(payload)
    head = (
        struct.pack("!BB", 0x80 | opcode, 0x80 | size)
        if size < 126
        else struct.pack("!BBH", 0x80 | opcode, 0xFE, size)
    )
    return head + mask + bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))


def upgraded(port: int, path: str = "/ws", extra: str = "") -> socket.socket:
    """A raw socket past the 101 (the welcome frame may follow)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(UPGRADE.format(path=path, extra=extra).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def read_until_closed(sock: socket.socket, seconds: float = 5.0) -> bytes:
    """Everything the server sends until it closes (EOF), a reset counting as the end too."""
    sock.settimeout(seconds)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return received


def close_code(received: bytes) -> int | None:
    """The code of the close frame (opcode 8) among unmasked server frames, if there is one."""
    at = 0
    while at + 2 <= len(received):
        opcode, size = received[at] & 0x0F, received[at + 1] & 0x7F
        at += 2
        if size == 126:
            size, at = struct.unpack("!H", received[at : at + 2])[0], at + 2
        elif size == 127:
            size, at = struct.unpack("!Q", received[at : at + 8])[0], at + 8
        if opcode == 8:
            return int(struct.unpack("!H", received[at : at + 2])[0]) if size >= 2 else 1005
        at += size
    return None


def assert_quiet(gateway: GatewayProcess) -> None:
    log = gateway.log()
    assert "Traceback" not in log, log
    assert " ERROR" not in log and "ERROR:" not in log, log


def test_a_5_mib_frame_gets_1009_every_time_and_others_are_served(gateway: GatewayProcess) -> None:
    """A client still sending a 5 MiB frame reads the 1009 close frame (not a reset), 10 tries of 10."""
    codes = []
    for _ in range(10):
        with connect(gateway.ws_url, compression=None, max_size=None) as client:
            client.recv(timeout=5)  # welcome
            try:
                client.send("x" * (5 * MiB))
                client.recv(timeout=10)
            except ConnectionClosed as closed:
                codes.append(closed.rcvd.code if closed.rcvd else None)
    assert codes == [1009] * 10
    with connect(gateway.ws_url, compression=None) as other:
        assert '"welcome"' in str(other.recv(timeout=5))
    assert_quiet(gateway)


def test_invalid_utf8_is_closed_with_1007_and_one_info_line(gateway: GatewayProcess) -> None:
    sock = upgraded(gateway.port)
    sock.sendall(masked_frame(0x1, b'{"op":"ping","x":"\xff\xfe"}'))
    assert close_code(read_until_closed(sock)) == 1007
    sock.close()
    time.sleep(0.3)
    assert_quiet(gateway)
    assert gateway.log().count("1007") == 1


@pytest.mark.parametrize("path", ["/ws", "/ws/echo", "/ws/chat/lobby", "/ws/notifications"])
def test_a_message_arriving_with_a_close_is_not_an_error(gateway: GatewayProcess, path: str) -> None:
    """A message and the close frame in one TCP segment: the session ends quietly, five times of five."""
    for _ in range(5):
        sock = upgraded(gateway.port, path)
        sock.sendall(
            masked_frame(0x1, b'{"op":"subscribe","channel":"data:cpu"}')
            + masked_frame(0x8, struct.pack("!H", 1000))
        )
        assert close_code(read_until_closed(sock)) == 1000
        sock.close()
    with connect(gateway.ws_url, compression=None) as other:
        assert '"welcome"' in str(other.recv(timeout=5))
    time.sleep(0.3)
    assert_quiet(gateway)


def test_resets_and_refused_handshakes_log_no_traceback(gateway: GatewayProcess) -> None:
    """A reset mid-session, a bad upgrade, a forbidden origin and a connection over the cap: each is
    answered (400, 403, 503) or dropped, and the log holds no ERROR and no traceback."""
    sock = upgraded(gateway.port)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # a reset

    bad = socket.create_connection(("127.0.0.1", gateway.port), timeout=5)
    bad.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
    assert read_until_closed(bad).split(b" ")[1] in (b"400", b"426")
    bad.close()

    forbidden = socket.create_connection(("127.0.0.1", gateway.port), timeout=5)
    forbidden.sendall(UPGRADE.format(path="/ws", extra="Origin: https://evil.example\r\n").encode())
    assert read_until_closed(forbidden).startswith(b"HTTP/1.1 403")
    forbidden.close()

    with contextlib.ExitStack() as held:
        for _ in range(3):
            held.enter_context(connect(gateway.ws_url, compression=None))
        over = socket.create_connection(("127.0.0.1", gateway.port), timeout=5)
        over.sendall(UPGRADE.format(path="/ws", extra="").encode())
        assert read_until_closed(over).startswith(b"HTTP/1.1 503")
        over.close()
    time.sleep(0.3)
    assert_quiet(gateway)


# --- the portable paths ------------------------------------------------------------------------------


class _ProtocolWithoutCycle:
    """A stand-in for a future uvicorn whose httptools protocol no longer has what the guard reads."""

    def __init__(self) -> None:
        self.server_state = None
        self.loop = None

    def connection_made(self) -> None: ...
    def connection_lost(self) -> None: ...
    def data_received(self) -> None: ...
    def on_message_begin(self) -> None: ...
    def on_headers_complete(self) -> None: ...
    def on_message_complete(self) -> None: ...


STATUS_LINE: dict[int, bytes] = {}


class RequestResponseCycle:
    """The stand-in module's request cycle: it sets none of the attributes the guard reads."""


class _ConfigWithoutPing:
    """A stand-in for a uvicorn ``Config`` that renamed its keepalive options."""

    def __init__(self) -> None:
        self.root_path = ""
        self.ws_max_size = 1
        self.ws_per_message_deflate = False

    def load(self) -> None:
        self.loaded = True
        self.loaded_app = None


class _ServerState:
    def __init__(self) -> None:
        self.connections: set[object] = set()
        self.tasks: set[object] = set()
        self.default_headers: list[object] = []


def test_todays_uvicorn_has_what_the_transport_needs() -> None:
    assert missing() == []
    assert protocol_missing() == []
    assert server_protocols() == {"http": HandshakeGuardProtocol, "ws": PulseWebSocketProtocol}


def test_a_missing_protocol_capability_switches_to_uvicorns_websocket_protocol_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    gaps = protocol_missing(_ConfigWithoutPing, _ServerState)
    assert gaps == ["_ConfigWithoutPing.ws_ping_interval", "_ConfigWithoutPing.ws_ping_timeout"]
    monkeypatch.setattr("gateway.transport.protocol_missing", lambda: gaps)
    before = stats.missing_capabilities
    with caplog.at_level(logging.WARNING, logger="gateway.transport"):
        chosen = server_protocols()
    assert chosen == {"http": HandshakeGuardProtocol, "ws": "websockets-sansio"}
    assert stats.missing_capabilities == before + 1
    assert "_ConfigWithoutPing.ws_ping_interval" in caplog.records[-1].getMessage()


def test_a_missing_capability_switches_to_the_portable_http_protocol_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    gaps = missing(_ProtocolWithoutCycle)
    assert "_ProtocolWithoutCycle.cycle" in gaps
    assert "_ProtocolWithoutCycle.handle_websocket_upgrade" in gaps
    assert "RequestResponseCycle.response_started" in gaps
    monkeypatch.setattr("gateway.transport.http_guard.missing", lambda: gaps)
    before = stats.missing_capabilities
    with caplog.at_level(logging.WARNING, logger="gateway.transport"):
        chosen = server_protocols()
    assert chosen["http"] == "httptools" and chosen["ws"] is PulseWebSocketProtocol
    assert stats.missing_capabilities == before + 1
    warning = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warning) == 1 and "_ProtocolWithoutCycle.cycle" in warning[0].getMessage()


def test_another_websocket_protocol_serves_through_asgi_with_a_warning_and_a_metric(tmp_path: Path) -> None:
    """Plain uvicorn with its own sans-I/O protocol: no direct writes offered, so frames go through ASGI
    (still delivered), the first connection logs one WARNING and every one is counted."""
    port = free_port()
    server = AppProcess(
        ["-m", "uvicorn", "gateway.app:app", "--port", str(port), "--log-level", "warning",
         "--ws", "websockets-sansio", "--ws-per-message-deflate", "false"],
        tmp_path,
        env={"PULSE_DATA_DIR": str(tmp_path / "data")},
        name="uvicorn",
        url=f"http://127.0.0.1:{port}",
    )  # fmt: skip
    server.start(ready_path="/healthz")
    try:
        for _ in range(2):
            with connect(f"ws://127.0.0.1:{port}/ws", compression=None) as client:
                assert '"welcome"' in str(client.recv(timeout=5))
        assert metric(server.url, "pulse_transport_portable_connections_total") == 2
        assert metric(server.url, "pulse_transport_missing_capabilities_total") == 1
        assert metric(server.url, "pulse_direct_write_connections_total") == 0
        assert server.log().count("offers no direct frame writes") == 1
    finally:
        server.stop()
