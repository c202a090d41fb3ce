"""A reconnect storm: 500 clients come back within a second, each resuming with ``since``; every one
recovers exactly what it missed and nobody gets an error."""

import asyncio
import json

import httpx
from websockets.asyncio.client import connect

from tests.servers import GatewayProcess, metric

CLIENTS = 500


async def resume(url: str, since: dict[str, object]) -> list[int]:
    async with connect(url, proxy=None, open_timeout=30, max_size=None) as ws:
        await ws.recv()  # welcome
        await ws.send(json.dumps({"op": "subscribe", "id": 1, "channel": "data:storm", "since": since}))
        offsets: list[int] = []
        recovered = None
        while len(offsets) < 50:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 30))
            for message in frame if isinstance(frame, list) else [frame]:
                if message["type"] == "subscribed":
                    recovered = message["recovered"]
                elif message["type"] == "pub":
                    offsets.append(message["offset"])
                else:
                    raise AssertionError(f"unexpected {message}")
        assert recovered is True
        return offsets


async def storm(url: str, since: dict[str, object]) -> list[list[int]]:
    return await asyncio.gather(*(resume(url, since) for _ in range(CLIENTS)))


def test_500_clients_resume_at_once_and_all_recover_exactly(gateway: GatewayProcess) -> None:
    url = f"{gateway.http_url}/api/publish/data:storm"
    offsets = httpx.post(url, json=[{"values": {"n": float(i)}} for i in range(100)], timeout=10).json()
    epoch = httpx.get(f"{gateway.http_url}/api/channels", timeout=5).json()["channels"][0]["epoch"]
    assert offsets["offsets"][-1] == 100
    results = asyncio.run(storm(gateway.ws_url, {"offset": 50, "epoch": epoch}))
    assert len(results) == CLIENTS
    assert all(result == list(range(51, 101)) for result in results)
    assert metric(gateway.http_url, "pulse_client_errors_total") == 0
