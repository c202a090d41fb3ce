"""The Streamlit server's thread pool under tab churn: ``streamlit run`` (with a thread census, see
``tests/thread_census.py``), a real gateway and headless Chromium tabs that come and go.

Streamlit 1.67 serves its static files through Starlette, which reads them in AnyIO worker threads.
Those threads come from one pool per event loop, capped by AnyIO's default thread limiter (40 tokens,
which Streamlit lowers to ``ANYIO_STATIC_FILE_THREAD_TOKENS``); an idle worker is kept for reuse and
stopped once it has been idle ``MAX_IDLE_TIME`` seconds, when the pool is next used.
"""

import json
import re
import signal
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from anyio._backends._asyncio import WorkerThread
from playwright.sync_api import Browser
from streamlit.web.server.starlette.starlette_server_config import ANYIO_STATIC_FILE_THREAD_TOKENS

from tests.servers import AppProcess, GatewayProcess, dashboard_process
from tests.thread_census import CENSUS_PATH_ENV
from tests.waiting import eventually

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

WORKER = "AnyIO worker thread"
WAVES = 3
TABS_PER_WAVE = 10
BURST_CLIENTS = 64


@pytest.fixture
def census_dashboard(gateway: GatewayProcess, tmp_path: Path) -> Iterator[AppProcess]:
    env = {"PULSE_DASHBOARD_REFRESH": "0.5", CENSUS_PATH_ENV: str(tmp_path / "threads.json")}
    process = dashboard_process(tmp_path, gateway.http_url, env, module="tests.thread_census")
    process.start(ready_path="/_stcore/health")
    yield process
    process.stop()


def census(dashboard: AppProcess) -> Counter[str]:
    """The dashboard process's threads now, counted by name."""
    assert dashboard.process is not None
    path = Path(dashboard.env[CENSUS_PATH_ENV])
    path.unlink(missing_ok=True)
    dashboard.process.send_signal(signal.SIGUSR1)
    eventually(path.exists, what="the thread census")
    names: Counter[str] = Counter(json.loads(path.read_text()))
    assert names["MainThread"] == 1, names
    return names


def workers(dashboard: AppProcess) -> int:
    """How many AnyIO worker threads the dashboard has, busy or idle."""
    return census(dashboard)[WORKER]


def other_threads(dashboard: AppProcess) -> int:
    """Every thread but the AnyIO workers: sessions' script runners and consumers among them."""
    names = census(dashboard)
    return names.total() - names[WORKER]


def gateway_connections(gateway: GatewayProcess) -> int:
    count: int = httpx.get(f"{gateway.http_url}/healthz", timeout=5).json()["connections"]
    return count


def static_assets(dashboard: AppProcess) -> list[str]:
    """The scripts and styles the page preloads: what every new tab fetches at once."""
    page = httpx.get(dashboard.url, timeout=10).text
    return [f"{dashboard.url}/{path}" for path in re.findall(r'"\./(static/[^"]+)"', page)]


def test_worker_threads_stay_within_the_limiter_and_idle_ones_are_reclaimed(
    browser: Browser, census_dashboard: AppProcess, gateway: GatewayProcess
) -> None:
    """30 tabs and a burst of asset fetches never hold more AnyIO workers than the limiter's tokens."""
    peak = 0
    settled: list[int] = []
    context = browser.new_context()
    for _ in range(WAVES):
        pages = [context.new_page() for _ in range(TABS_PER_WAVE)]
        for page in pages:
            page.goto(census_dashboard.url, wait_until="commit")
        # Each tab's session opens one gateway socket (hidden tabs stop redrawing, so count those).
        eventually(
            lambda: gateway_connections(gateway) == TABS_PER_WAVE, timeout=90, what="every tab's session"
        )
        peak = max(peak, workers(census_dashboard))
        for page in pages:
            page.close()
        eventually(lambda: gateway_connections(gateway) == 0, timeout=30, what="every tab's session gone")
        peak = max(peak, workers(census_dashboard))
        if settled:  # what the first wave left behind, and not one thread more per wave
            eventually(
                lambda: other_threads(census_dashboard) <= settled[0], what="the sessions' threads gone"
            )
        settled.append(other_threads(census_dashboard))
    context.close()

    assets = static_assets(census_dashboard)
    assert len(assets) > 20, assets
    # One connection per request: a client shared by the pool's threads raced in httpcore's pool
    # ("Bad file descriptor") in a CI run.
    with ThreadPoolExecutor(BURST_CLIENTS) as pool:
        statuses = set(pool.map(lambda url: httpx.get(url, timeout=30).status_code, assets * 4))
    assert statuses == {200}
    peak = max(peak, workers(census_dashboard))
    assert 0 < peak <= ANYIO_STATIC_FILE_THREAD_TOKENS, peak

    # Idle workers are stopped lazily: the next job after MAX_IDLE_TIME reuses one and stops the rest.
    time.sleep(WorkerThread.MAX_IDLE_TIME + 1)
    httpx.get(assets[0], timeout=10).raise_for_status()
    eventually(lambda: workers(census_dashboard) <= 1, timeout=10, what="idle workers stopped")
