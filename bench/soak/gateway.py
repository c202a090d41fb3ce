"""The gateway's side: its ``/metrics`` gauges, the publishes the simulator failed or dropped, and the
history prefill."""

import re
import time
from pathlib import Path
from typing import Any

import httpx

from bench.soak.channels import ALERTS, HISTORY, LOBBY, SEED, SOAK_ROOM
from shared.api import MAX_BATCH
from simulator.sources import build_sources

GAUGE_RE = re.compile(r"^(\w+) ([-\d.e+]+|NaN)$", re.MULTILINE)
SIMULATOR_RE = re.compile(r"errors (\d+)\s+dropped (\d+)")


async def gauges(http: httpx.AsyncClient) -> dict[str, float]:
    response = await http.get("/metrics")
    response.raise_for_status()
    return {name: float(value) for name, value in GAUGE_RE.findall(response.text)}


def simulator_failures(log: Path) -> int:
    """Publish requests that failed or payloads dropped, from the simulator's last progress line."""
    try:
        with log.open("rb") as handle:
            handle.seek(max(0, log.stat().st_size - 8192))
            tail = handle.read().decode(errors="replace")
    except OSError:
        return 0
    found = SIMULATOR_RE.findall(tail)
    return int(found[-1][0]) + int(found[-1][1]) if found else 0


def prefill(http_url: str, channels: int) -> None:
    """Fill every channel's history to ``HISTORY`` before the clock starts: otherwise the history filling
    up in the first minutes (legitimate, bounded growth) looks like a leak in a short soak."""
    sources = build_sources(channels, SEED)
    now = time.time()
    with httpx.Client(base_url=http_url, timeout=60) as http:

        def post(channel: str, body: list[dict[str, Any]], params: dict[str, str] | None = None) -> None:
            for start in range(0, len(body), MAX_BATCH):
                chunk = body[start : start + MAX_BATCH]
                http.post(f"/api/publish/{channel}", json=chunk, params=params).raise_for_status()

        for source in sources:
            points = [source.sample(now - (HISTORY - i) * 0.1, 0.1) for i in range(HISTORY)]
            post(str(source.channel), [p.model_dump(exclude_none=True) for p in points])
        for room in (LOBBY, SOAK_ROOM):
            post(room, [{"text": f"prefill #{i}"} for i in range(HISTORY)], {"name": "prefill"})
        post(ALERTS, [{"level": "info", "title": f"prefill #{i}"} for i in range(HISTORY)])
