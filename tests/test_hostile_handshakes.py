"""Hostile request heads against a real gateway over raw sockets: slowloris handshakes, silent
connections and oversized headers are timed out or refused (408, 431) while everyone else is served."""

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from tests.servers import AppProcess, GatewayProcess, StartGateway, free_port, metric

MiB = 1024 * 1024
HEAD_TIMEOUT = 3.0
MAX_HEADER_BYTES = 16 * 1024
SETTINGS = {"PULSE_HANDSHAKE_TIMEOUT": str(HEAD_TIMEOUT)}
SLACK = 5.0
"""Seconds a close may come after its deadline on a loaded 2-core machine."""
EARLY = 1.0
"""Seconds the client may start its clock after the server started the deadline (a busy client loop)."""
FAST = 2.0
"""Seconds within which an answer or ``/healthz`` counts as quick on a loaded 2-core machine."""

Answer = tuple[float, bytes]
"""Seconds until the server closed the connection, and what it sent before."""

UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)


def peak_rss(gateway: GatewayProcess) -> int:
    """The gateway's peak resident memory so far (``VmHWM``): a transient spike shows, unlike in RSS."""
    assert gateway.process is not None
    status = Path(f"/proc/{gateway.process.pid}/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) * 1024


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


async def read_to_eof(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes (a reset counts as a close)."""
    received = bytearray()
    with contextlib.suppress(ConnectionError):
        while chunk := await reader.read(65536):
            received += chunk
    return bytes(received)


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


async def send_all(port: int, data: bytes, within: float = 10.0) -> Answer:
    """Send ``data`` at once and return (seconds until the server closed, what it answered)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    try:
        writer.write(data)
        answer = await asyncio.wait_for(read_to_eof(reader), within)
        return time.monotonic() - started, answer
    finally:
        await close(writer)


async def drip(port: int, data: bytes, interval: float, within: float, prefix: bytes = b"") -> Answer:
    """Send ``prefix`` at once, then ``data`` one byte per ``interval`` until the server closes; (seconds
    from the end of the prefix until it closed, its answer)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(prefix)
    started = time.monotonic()
    answer = asyncio.ensure_future(read_to_eof(reader))
    try:
        for byte in data:
            with contextlib.suppress(ConnectionError):
                writer.write(bytes([byte]))
            done, _ = await asyncio.wait({answer}, timeout=interval)
            if done:
                break
        received = await asyncio.wait_for(answer, within)
        return time.monotonic() - started, received
    finally:
        answer.cancel()
        await close(writer)


async def silent(port: int, within: float) -> Answer:
    """Connect, send nothing; (seconds until the server closed, what it sent)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    try:
        answer = await asyncio.wait_for(read_to_eof(reader), within)
        return time.monotonic() - started, answer
    finally:
        await close(writer)


async def messages(ws: ClientConnection, within: float = 10.0) -> list[dict[str, Any]]:
    frame = json.loads(await asyncio.wait_for(ws.recv(), within))
    return frame if isinstance(frame, list) else [frame]


async def publication(ws: ClientConnection, n: int) -> None:
    while not any(m["type"] == "pub" and m["data"]["values"]["n"] == n for m in await messages(ws)):
        continue


async def keeps_serving(gateway: GatewayProcess, until: asyncio.Future[Any]) -> tuple[int, float]:
    """Connect, subscribe and get publications until ``until`` is done; (publications seen, worst
    ``/healthz`` time)."""
    worst = 0.0
    seen = 0
    async with (
        connect(gateway.ws_url, proxy=None, open_timeout=10) as ws,
        httpx.AsyncClient(base_url=gateway.http_url, timeout=10) as http,
    ):
        assert (await messages(ws))[0]["type"] == "welcome"
        await ws.send(json.dumps({"op": "subscribe", "channel": "data:calm", "id": 1}))
        assert any(m["type"] == "subscribed" for m in await messages(ws))
        while not until.done() or seen == 0:
            started = time.monotonic()
            assert (await http.get("/healthz")).status_code == 200
            worst = max(worst, time.monotonic() - started)
            sent = await http.post("/api/publish/data:calm", json={"values": {"n": seen}})
            assert sent.status_code == 200, sent.text
            await publication(ws, seen)
            seen += 1
            await asyncio.sleep(0.2)
    return seen, worst


def drips_while_serving(
    gateway: GatewayProcess, data: bytes, count: int, deadline: float, prefix: bytes = b""
) -> tuple[list[Answer], int, float]:
    """``count`` connections drip ``data`` (after ``prefix``) a byte a second while an honest client
    publishes and receives; (their answers, publications the client saw, its worst ``/healthz`` time)."""

    async def attack() -> tuple[list[Answer], tuple[int, float]]:
        drips = asyncio.gather(
            *(drip(gateway.port, data, 1.0, deadline + SLACK, prefix) for _ in range(count))
        )
        await asyncio.sleep(0.5)  # the attack is under way before the honest client comes
        served = await keeps_serving(gateway, drips)
        return await drips, served

    closes, (seen, worst_health) = asyncio.run(attack())
    return closes, seen, worst_health


def assert_answered_at_deadline(closes: list[Answer], status: int, deadline: float) -> None:
    """Every connection got ``status`` and was closed at ``deadline``, neither before nor long after."""
    took = [seconds for seconds, _ in closes]
    assert all(status_of(answer) == status for _, answer in closes), {answer[:40] for _, answer in closes}
    assert min(took) > deadline - EARLY, f"closed before the deadline: {min(took):.2f} s"
    assert max(took) < deadline + SLACK, f"closed too late: {max(took):.2f} s"


def test_slowloris_handshakes_are_closed_at_the_deadline_while_others_are_served(
    start_gateway: StartGateway,
) -> None:
    """200 upgrade requests dripped a byte a second get 408 and a close at PULSE_HANDSHAKE_TIMEOUT;
    meanwhile a new client connects, subscribes and receives, and /healthz stays fast."""
    gateway = start_gateway(env=SETTINGS)
    never_ends = UPGRADE + b"X-Slow: " + b"a" * 100
    closes, seen, worst_health = drips_while_serving(gateway, never_ends, 200, HEAD_TIMEOUT)
    assert_answered_at_deadline(closes, 408, HEAD_TIMEOUT)
    assert seen >= 5, "the honest client kept receiving through the attack"
    assert worst_health < FAST, f"/healthz took {worst_health:.2f} s during the attack"
    assert metric(gateway.http_url, "pulse_handshake_timeouts_total") == 200


def test_connections_that_send_nothing_are_closed_silently_at_the_deadline(
    start_gateway: StartGateway,
) -> None:
    """A connection that never sends a byte is closed, without an answer, after the handshake timeout."""
    gateway = start_gateway(env=SETTINGS)

    async def idle() -> list[Answer]:
        return await asyncio.gather(*(silent(gateway.port, HEAD_TIMEOUT + SLACK) for _ in range(100)))

    closes = asyncio.run(idle())
    assert all(answer == b"" for _, answer in closes)
    assert min(t for t, _ in closes) > HEAD_TIMEOUT - EARLY
    assert max(t for t, _ in closes) < HEAD_TIMEOUT + SLACK
    assert httpx.get(f"{gateway.http_url}/healthz", timeout=5).status_code == 200


def test_oversized_heads_get_431_at_once_and_memory_stays_flat(start_gateway: StartGateway) -> None:
    """One 100 KB header, thousands of headers or a 1 MiB header get 431 within a second, on plain
    HTTP and on upgrades, the gateway's RSS does not grow with them, and a subscriber keeps receiving."""
    gateway = start_gateway(env=SETTINGS)
    heads = {
        "one 100 KB header": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
        "5000 headers": b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-%d: a\r\n" % n for n in range(5000))
        + b"\r\n",
        "a 100 KB header on an upgrade": UPGRADE + b"X-Big: " + b"a" * 100_000 + b"\r\n\r\n",
        # Under the head cap but over websockets' own limits (8 KiB line, 128 headers): uvicorn alone
        # left these upgrades unanswered for ever.
        "a 10 KB header on an upgrade": UPGRADE + b"X-Big: " + b"a" * 10_000 + b"\r\n\r\n",
        "200 headers on an upgrade": UPGRADE + b"".join(b"X-%d: a\r\n" % n for n in range(200)) + b"\r\n",
    }
    flood = b"GET /ws HTTP/1.1\r\nHost: x\r\nCookie: " + b"a" * MiB + b"\r\n\r\n"

    async def hostile() -> tuple[dict[str, Answer], list[Answer], tuple[int, float]]:
        answers = {name: await send_all(gateway.port, head) for name, head in heads.items()}
        floods = asyncio.gather(*(send_all(gateway.port, flood) for _ in range(50)))
        served = await keeps_serving(gateway, floods)
        return answers, await floods, served

    warm = asyncio.run(send_all(gateway.port, flood))
    assert status_of(warm[1]) == 431
    before = peak_rss(gateway)
    answers, floods, (seen, worst_health) = asyncio.run(hostile())
    grown = peak_rss(gateway) - before
    for name, (seconds, answer) in answers.items():
        assert status_of(answer) == 431, f"{name}: {answer[:80]!r}"
        assert seconds < FAST, f"{name}: answered and closed after {seconds:.2f} s"
    assert all(status_of(answer) == 431 for _, answer in floods)
    assert grown < 10 * MiB, f"peak RSS rose by {grown / MiB:.1f} MiB over 50 1 MiB heads"
    assert seen >= 1 and worst_health < FAST


def test_big_but_allowed_heads_bodies_and_keep_alive_are_served(start_gateway: StartGateway) -> None:
    """A head just under PULSE_MAX_HEADER_BYTES, a body far over it, pipelined and kept-alive requests
    and a slow but timely head are all served: the cap and the deadline apply to heads only."""
    gateway = start_gateway(env=SETTINGS)
    with httpx.Client(base_url=gateway.http_url, timeout=10) as http:
        assert http.get("/healthz", headers={"Cookie": "a" * (MAX_HEADER_BYTES - 1024)}).status_code == 200
        batch = [{"values": {"a": n, "b": n, "c": n, "d": n}} for n in range(1000)]
        assert len(json.dumps(batch)) > 2 * MAX_HEADER_BYTES
        assert http.post("/api/publish/data:big", json=batch).status_code == 200
        assert all(http.get("/healthz").status_code == 200 for _ in range(30))  # one kept-alive connection
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    last = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    _, answer = asyncio.run(send_all(gateway.port, request * 20 + last))
    assert answer.count(b"HTTP/1.1 200 OK") == 21
    _, slow = asyncio.run(drip(gateway.port, last, (HEAD_TIMEOUT - 1.0) / len(last), HEAD_TIMEOUT + SLACK))
    assert status_of(slow) == 200


def test_the_uvicorn_command_line_takes_the_guard_with_http_flag(tmp_path: Path) -> None:
    """``uvicorn gateway.app:app --http gateway.transport.http_guard:HandshakeGuardProtocol`` applies the same
    deadline and cap as ``python -m gateway``."""
    port = free_port()
    server = AppProcess(
        ["-m", "uvicorn", "gateway.app:app", "--port", str(port), "--log-level", "warning",
         "--http", "gateway.transport.http_guard:HandshakeGuardProtocol"],
        tmp_path,
        env={**SETTINGS, "PULSE_DATA_DIR": str(tmp_path / "data")},
        name="uvicorn",
        url=f"http://127.0.0.1:{port}",
    )  # fmt: skip
    server.start(ready_path="/healthz")
    try:
        seconds, answer = asyncio.run(silent(port, HEAD_TIMEOUT + SLACK))
        assert answer == b"" and HEAD_TIMEOUT - EARLY < seconds < HEAD_TIMEOUT + SLACK
        _, answer = asyncio.run(send_all(port, b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n"))
        assert status_of(answer) == 431
    finally:
        server.stop()
