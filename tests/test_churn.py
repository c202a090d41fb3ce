"""Churn: 10 000 connect / subscribe / disconnect cycles leave nothing behind: the connection registry,
subscriber counts, presence, the gateway's tasks and its memory return to where they started."""

import asyncio
import re

import httpx
from websockets.asyncio.client import connect

from tests.client import Client
from tests.servers import StartGateway
from tests.waiting import eventually

CYCLES = 10_000
AT_ONCE = 100


def gauges(http_url: str) -> dict[str, float]:
    text = httpx.get(f"{http_url}/metrics", timeout=5).text
    return {name: float(value) for name, value in re.findall(r"^(\w+) ([\d.e+]+)$", text, re.MULTILINE)}


async def cycle(url: str, index: int) -> None:
    async with connect(f"{url}?name=churn{index % 50}", proxy=None, open_timeout=30) as ws:
        await ws.recv()  # welcome
        channel = "chat:churn" if index % 2 else f"data:churn{index % 7}"
        await ws.send(f'{{"op": "subscribe", "channel": "{channel}"}}')
        await ws.recv()  # subscribed


async def churn(url: str) -> None:
    for start in range(0, CYCLES, AT_ONCE):
        await asyncio.gather(*(cycle(url, i) for i in range(start, start + AT_ONCE)))


def test_10000_cycles_return_the_gateway_to_baseline(start_gateway: StartGateway) -> None:
    """Connections, hub registry, tasks, subscribers, presence and RSS are back where they started."""
    # Python's own GC threshold: this test looks for references kept (leaks). With the gateway's tuned
    # threshold, garbage from closed connections is collected later, a bounded plateau of some 40 MiB
    # after heavy churn, which the soak's RSS trend check covers.
    gateway = start_gateway(env={"PULSE_GC_THRESHOLD": "0"})
    asyncio.run(churn_warmup(gateway.ws_url))
    before = eventually(lambda: settled(gateway.http_url), what="idle before")
    asyncio.run(churn(gateway.ws_url))
    after = eventually(lambda: settled(gateway.http_url), timeout=20, what="idle after")
    assert before is not None and after is not None
    assert after["pulse_connections_open"] == 0 and after["pulse_clients_registered"] == 0
    assert after["pulse_connections_total"] >= CYCLES
    assert after["pulse_tasks"] <= before["pulse_tasks"], "no task left behind"
    growth = after["process_resident_memory_bytes"] - before["process_resident_memory_bytes"]
    assert growth < 20 * 1024 * 1024, f"RSS grew by {growth / 1024 / 1024:.1f} MiB over {CYCLES} cycles"
    channels = httpx.get(f"{gateway.http_url}/api/channels", timeout=5).json()["channels"]
    assert all(c["subscribers"] == 0 for c in channels)
    with Client(gateway.ws_url) as client:  # after 5 000 joins and leaves, nobody is left in the room
        assert client.request({"op": "presence", "channel": "chat:churn"})["clients"] == []


async def churn_warmup(url: str) -> None:
    # Imports, caches and allocator pools warm up first, so the baseline is a running gateway's.
    await asyncio.gather(*(cycle(url, i) for i in range(AT_ONCE)))


def settled(http_url: str) -> dict[str, float] | None:
    values = gauges(http_url)
    return values if values.get("pulse_connections_open") == 0 else None
