"""A client that stops reading is closed with 4001; everyone else keeps receiving everything."""

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.client import Client
from tests.servers import StartGateway, metric

PAYLOAD = {"values": {f"series{i}": float(i) for i in range(40)}}
BATCHES = 150
BATCH = 100  # one burst (~90 KB) stays well under the queue bound


def test_slow_consumer_is_closed_with_4001_and_others_get_everything(
    start_gateway: StartGateway,
) -> None:
    """Flood a channel while one subscriber never reads: it gets 4001, the other receives every message."""
    gateway = start_gateway(env={"PULSE_CLIENT_QUEUE_BYTES": str(256 * 1024)})
    # max_queue=1: the stuck client's library stops reading the socket after one frame, like a hung app.
    with Client(gateway.ws_url, max_queue=1) as stuck, Client(gateway.ws_url) as healthy:
        stuck.subscribe("data:flood")
        healthy.subscribe("data:flood")
        total = BATCHES * BATCH
        offsets: list[int] = []
        with httpx.Client() as http:
            for _ in range(BATCHES):
                http.post(
                    f"{gateway.http_url}/api/publish/data:flood", json=[PAYLOAD] * BATCH
                ).raise_for_status()
                # Read as we go, as a live client does; this one must never be cut off.
                while len(offsets) < total:
                    try:
                        message = healthy.recv(timeout=0.01)
                    except TimeoutError:
                        break
                    if message["type"] == "pub":
                        offsets.append(message["offset"])
        offsets += [p["offset"] for p in healthy.pubs(total - len(offsets), timeout=30)]
        assert offsets == list(range(1, total + 1))

        with pytest.raises(ConnectionClosed) as closed:
            while True:
                stuck.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001

    assert metric(gateway.http_url, "pulse_slow_disconnects_total") == 1
