from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.browser import CHROMIUM, CHROMIUM_FLAGS
from tests.servers import GatewayProcess, StartGateway


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayProcess]:
    """A real gateway (``python -m gateway``) on a free port with its own data dir, auth off."""
    process = GatewayProcess(tmp_path).start()
    yield process
    process.stop()


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[StartGateway]:
    """Start gateways with custom settings: ``start_gateway(env={...})``; all are stopped afterwards."""
    started: list[GatewayProcess] = []

    def start(env: dict[str, str] | None = None) -> GatewayProcess:
        process = GatewayProcess(tmp_path, env=env or {}).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def browser() -> Iterator[Browser]:
    """Headless Debian Chromium under Playwright (never a downloaded browser)."""
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed: `make test` installs it (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()
