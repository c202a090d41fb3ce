"""A peer that stops answering (SIGSTOP'ed client process) is dropped after the ping interval plus the
ping timeout, and everything it held in the gateway is freed."""

import signal
import subprocess
import sys
import time

import httpx

from tests.servers import ROOT, StartGateway, metric
from tests.waiting import eventually

FROZEN_CLIENT = """
import sys, time
from websockets.sync.client import connect
ws = connect(sys.argv[1], proxy=None, legacy=True)
ws.recv(timeout=5)
ws.send('{"op": "subscribe", "channel": "chat:frozen"}')
ws.recv(timeout=5)
print("ready", flush=True)
time.sleep(600)
"""


def health(http_url: str) -> dict[str, int]:
    result: dict[str, int] = httpx.get(f"{http_url}/healthz", timeout=5).json()
    return result


def test_a_frozen_peer_is_dropped_after_ping_interval_plus_timeout(start_gateway: StartGateway) -> None:
    gateway = start_gateway(env={"PULSE_WS_PING_INTERVAL": "1", "PULSE_WS_PING_TIMEOUT": "1"})
    client = subprocess.Popen(
        [sys.executable, "-c", FROZEN_CLIENT, f"{gateway.ws_url}?name=frozen"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert client.stdout is not None and client.stdout.readline().strip() == "ready"
        assert health(gateway.http_url)["connections"] == 1
        client.send_signal(signal.SIGSTOP)
        stopped = time.monotonic()
        eventually(lambda: health(gateway.http_url)["connections"] == 0, timeout=15, what="dropped")
        assert time.monotonic() - stopped < 10, "ping interval 1 s + timeout 1 s, with slack"
        assert metric(gateway.http_url, "pulse_connections_open") == 0
    finally:
        client.send_signal(signal.SIGCONT)
        client.kill()
        client.wait()
        if client.stdout is not None:
            client.stdout.close()
