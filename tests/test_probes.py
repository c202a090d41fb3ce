"""Probes: ``/livez`` asks only whether the process's event loop runs on time, so a Redis outage leaves
it at 200 while ``/readyz`` and ``/healthz`` turn 503 and come back with Redis; the loop watchdog says
503 while the loop is behind by more than its limit, and when it has stopped."""

import asyncio
import signal
import time
from pathlib import Path

import httpx

from gateway.liveness import LoopWatchdog
from tests.redis_server import RedisServer
from tests.servers import GatewayProcess
from tests.waiting import eventually


def statuses(gateway: GatewayProcess) -> dict[str, int]:
    return {
        probe: httpx.get(f"{gateway.http_url}/{probe}", timeout=5).status_code
        for probe in ("livez", "readyz", "healthz")
    }


def test_livez_stays_up_through_a_redis_outage_that_readiness_reports(tmp_path: Path) -> None:
    """Redis stopped: /livez 200, /readyz and /healthz 503; Redis back: all three 200."""
    redis_server = RedisServer(tmp_path / "redis").start()
    env = {"PULSE_BROKER_URL": redis_server.url, "PULSE_HISTORY_URL": "none://"}
    gateway = GatewayProcess(tmp_path, env=env).start()
    try:
        assert statuses(gateway) == {"livez": 200, "readyz": 200, "healthz": 200}
        live = httpx.get(f"{gateway.http_url}/livez", timeout=5).json()
        assert live["status"] == "ok" and 0 <= live["loop_lag"] < 1

        redis_server.stop(signal.SIGKILL)
        # A publish makes the broker find out now rather than at its listener's next look.
        httpx.post(f"{gateway.http_url}/api/publish/data:probe", json={"values": {"x": 1.0}}, timeout=10)
        eventually(
            lambda: statuses(gateway) == {"livez": 200, "readyz": 503, "healthz": 503},
            timeout=20,
            what="readiness down, liveness up",
        )
        assert httpx.get(f"{gateway.http_url}/healthz", timeout=5).json()["status"] == "degraded"

        redis_server.start()
        eventually(
            lambda: statuses(gateway) == {"livez": 200, "readyz": 200, "healthz": 200},
            timeout=30,
            what="all probes back",
        )
    finally:
        gateway.stop()
        redis_server.stop()


def test_watchdog_reports_a_loop_that_fell_behind_and_recovers() -> None:
    """A loop blocked past the limit is not live until the watchdog runs on time again."""

    async def scenario() -> None:
        watchdog = LoopWatchdog(limit=0.3, interval=0.05)
        watchdog.start()
        await asyncio.sleep(0.2)
        assert watchdog.verdict().alive
        time.sleep(0.6)  # noqa: ASYNC251 -- blocking the loop is the point: a synchronous call on it
        behind = watchdog.verdict()
        assert not behind.alive and behind.lag > 0.3, behind
        await asyncio.sleep(0.01)  # the watchdog wakes up (0.6 s late) and notes it
        assert not watchdog.verdict().alive
        await asyncio.sleep(0.2)
        assert watchdog.verdict().alive, "on time again"
        watchdog.stop()
        await asyncio.sleep(0)
        stopped = watchdog.verdict()
        assert not stopped.alive and "not running" in stopped.detail

    asyncio.run(scenario())
