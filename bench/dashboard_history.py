"""How fast a new dashboard tab shows a day of stored history (the history issue's target 4).

Run from the repository root::

    python -m bench.dashboard_history           # a day of 3 series at 10 Hz (2.6M samples), 5 tabs
    python -m bench.dashboard_history --quick   # a sparse day, 2 tabs: checks the harness, not the speed

What it does: writes a day of samples into a fresh ``history.duckdb`` (``tests.history_seed``), starts a
real gateway on it and ``streamlit run dashboard/app.py`` fed by it, and opens the Live page on
``?window=24h`` in new tabs of one headless Chromium (Debian's ``chromium``), one at a time: each tab is a
new Streamlit session that reads the range afresh; the browser's cache is shared, as between a user's
tabs. Measured in the page, from navigation start: until the first chart is painted (its canvas drawn
with the day's points). The first tab is a warm-up (a cold browser cache, and Streamlit
imports the page's modules on first use) and is reported apart. Alongside: the range read
itself (``GET /api/channels/{channel}/range``, 24 h, 1 500 points), timed from Python.

Target: the first chart painted within 1.5 s of page load, with a day of data behind it.
"""

import argparse
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from playwright.sync_api import BrowserContext, sync_playwright

from bench.report import Row, print_report, table
from dashboard.ranges import DEFAULT_POINTS
from tests.browser import CHROMIUM, CHROMIUM_FLAGS
from tests.history_seed import Seeded, seed_history
from tests.servers import AppProcess, GatewayProcess, dashboard_process

CHANNEL = "data:bench"
SERIES = ("user", "system", "idle")
DAY = 24 * 3600.0
TARGET = 1.5
"""Seconds from page load to the first chart painted."""


@dataclass(frozen=True)
class Config:
    rate: float
    """Publications per second in the seeded day."""
    series: tuple[str, ...]
    tabs: int
    """Tabs timed, after the warm-up one."""
    reads: int


FULL = Config(rate=10.0, series=SERIES, tabs=5, reads=15)
QUICK = Config(rate=0.5, series=SERIES[:1], tabs=2, reads=3)

PAINTED_JS = """() => {
    // performance.now() (ms since navigation start) once the first chart has drawn its data (dygraphs
    // paints its canvas while it is built; the chart's root then says how many points it holds).
    const chart = document.querySelector('.pulse-chart');
    return chart && chart.graph && Number(chart.dataset.points) > 0 ? performance.now() : 0;
}"""

RESOLUTION_JS = """() => [...document.querySelectorAll('[data-testid="stText"]')]
    .map((element) => element.textContent).find((text) => text.startsWith('Resolution: ')) || ''"""


@dataclass(frozen=True)
class Tab:
    painted: float
    """Seconds from navigation start to the first chart painted."""
    resolution: str


def open_tab(context: BrowserContext, url: str) -> Tab:
    """A new tab of the browser (a new Streamlit session) on ``url``, timed until its chart is painted."""
    page = context.new_page()
    try:
        page.goto(url, wait_until="commit")
        # Checked on every animation frame: the moment is exact to a frame (about 16 ms).
        handle = page.wait_for_function(PAINTED_JS, polling="raf", timeout=60_000)
        painted = float(handle.json_value()) / 1000.0
        page.wait_for_function(f"({RESOLUTION_JS})() !== ''", timeout=30_000)
        return Tab(painted, str(page.evaluate(RESOLUTION_JS)))
    finally:
        page.close()


def timed_reads(gateway: GatewayProcess, config: Config) -> list[float]:
    took = []
    with httpx.Client(base_url=gateway.http_url, timeout=30.0) as http:
        for _ in range(config.reads):
            end = time.time()
            params = {"start": end - DAY, "end": end, "points": DEFAULT_POINTS}
            began = time.perf_counter()
            http.get(f"/api/channels/{CHANNEL}/range", params=params).raise_for_status()
            took.append(time.perf_counter() - began)
    return took


def run(config: Config, workdir: Path) -> tuple[list[Row], list[str]]:
    began = time.perf_counter()
    day = seed_history(
        workdir / "data", CHANNEL, seconds=DAY, rate=config.rate, end=time.time(), series=config.series
    )
    seeded_in = time.perf_counter() - began
    gateway = GatewayProcess(workdir).start()
    dashboard: AppProcess | None = None
    try:
        dashboard = dashboard_process(workdir, gateway.http_url, {"PULSE_DASHBOARD_CHANNELS": CHANNEL})
        dashboard.start(ready_path="/_stcore/health")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            try:
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                url = f"{dashboard.url}/?window=24h"
                warmup = open_tab(context, url)
                tabs = [open_tab(context, url) for _ in range(config.tabs)]
            finally:
                browser.close()
        reads = timed_reads(gateway, config)
    finally:
        if dashboard is not None:
            dashboard.stop()
        gateway.stop()
    return _rows(config, day, warmup, tabs, reads), [
        f"Seeded {day.publications * len(day.series):,} samples in {seeded_in:.1f} s."
    ]


def _rows(config: Config, day: Seeded, warmup: Tab, tabs: list[Tab], reads: list[float]) -> list[Row]:
    painted = [tab.painted for tab in tabs]
    median = statistics.median(painted)
    samples = day.publications * len(day.series)
    size = f"24 h, {len(day.series)} series at {config.rate:g} Hz ({samples:,} samples)"
    labels = sorted({tab.resolution.removeprefix("Resolution: ") for tab in tabs})
    return [
        Row(
            case="new tab on 24 h: page load -> first chart painted",
            size=size,
            median=f"{median * 1000:,.0f} ms",
            best=f"{min(painted) * 1000:,.0f} ms",
            target=f"<= {TARGET * 1000:,.0f} ms: {'met' if median <= TARGET else 'MISSED'}",
            notes=f"{len(tabs)} tabs, each a new session; warm-up tab (cold cache) "
            f"{warmup.painted * 1000:,.0f} ms; resolution: {', '.join(labels)}",
        ),
        Row(
            case="range read, 24 h (HTTP)",
            size=f"{size}, {DEFAULT_POINTS:,} points/series",
            median=f"{statistics.median(reads) * 1000:,.1f} ms",
            best=f"{min(reads) * 1000:,.1f} ms",
            target="(part of the above)",
            notes=f"{len(reads)} reads from Python, one connection",
        ),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.dashboard_history", description="A new dashboard tab on a day of history."
    )
    parser.add_argument(
        "--quick", action="store_true", help="a sparse day and 2 tabs: checks the harness works"
    )
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(arguments)
    config = QUICK if args.quick else FULL
    command = shlex.join([sys.executable, "-m", "bench.dashboard_history", *arguments])
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as workdir:
        rows, notes = run(config, Path(workdir))
    notes += [
        "Painted: in the page, performance.now() when the first chart's line path is drawn (checked every "
        "animation frame), from navigation start; Chromium headless, 1400x1000.",
    ]
    print_report(
        "Dashboard: a new tab on a day of history",
        quick=args.quick,
        command=command,
        notes=notes,
        began=began,
        body=table(rows),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
