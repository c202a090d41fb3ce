"""The dashboard in a real browser: headless Chromium (Debian's ``chromium``, driven by Playwright with
``executable_path``; Playwright never downloads a browser here) against ``streamlit run``, a real gateway
and the simulator."""

import re
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page

from dashboard.windows import parse_time
from tests.browser import shown_as
from tests.history_seed import SPIKE, Seeded, seed_history
from tests.servers import AppProcess, GatewayProcess, dashboard_process

pytestmark = pytest.mark.slow


@pytest.fixture
def simulator(gateway: GatewayProcess, tmp_path: Path) -> Iterator[AppProcess]:
    args = ["-m", "simulator", "--gateway", gateway.http_url, "--rate", "20", "--seed", "7"]
    process = AppProcess(args, tmp_path, name="simulator").start()
    yield process
    process.stop()


@pytest.fixture
def dashboard(gateway: GatewayProcess, simulator: AppProcess, tmp_path: Path) -> Iterator[AppProcess]:
    process = dashboard_process(tmp_path, gateway.http_url, {"PULSE_DASHBOARD_REFRESH": "0.5"})
    process.start(ready_path="/_stcore/health")
    yield process
    process.stop()


POINTS_JS = """() => {
    // Rows of the first chart's time axis, as dygraphs itself holds them.
    const chart = document.querySelector('.pulse-chart');
    return chart && chart.graph ? chart.graph.numRows() : 0;
}"""


ALL_DRAWN_JS = "() => [...document.querySelectorAll('.pulse-chart')].every((chart) => chart.graph)"
MARK_CHARTS_JS = """() => {
    for (const chart of document.querySelectorAll('.pulse-chart')) {
        chart.graph.pulseMark = chart.dataset.updates;
        chart.querySelector('canvas').pulseMark = chart.dataset.updates;
    }
}"""
UPDATED_JS = """(more) => [...document.querySelectorAll('.pulse-chart')]
    .every((chart) => chart.graph && Number(chart.dataset.updates) >= Number(chart.graph.pulseMark) + more)"""
SAME_CHARTS_JS = """() => [...document.querySelectorAll('.pulse-chart')]
    .every((chart) => chart.graph.pulseMark !== undefined
        && chart.querySelector('canvas').pulseMark !== undefined)"""


def chart_points(page: Page) -> int:
    count: int = page.evaluate(POINTS_JS)
    return count


def test_live_chart_grows_and_chat_round_trips(
    browser: Browser, dashboard: AppProcess, tmp_path: Path
) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(dashboard.url)
    page.wait_for_selector(".pulse-chart canvas", timeout=30_000)
    page.wait_for_function(f"({POINTS_JS})() > 0", timeout=30_000)
    first = chart_points(page)
    page.wait_for_function(f"({POINTS_JS})() > {first}", timeout=30_000)
    assert chart_points(page) > first
    assert page.get_by_text("Connected").first.is_visible()
    # Updated in place: the same dygraphs object and canvas take several updates (appends), never a
    # remount; and pressure (~1013 hPa) never shares an axis with temperature (~21 °C).
    page.wait_for_function(ALL_DRAWN_JS, timeout=30_000)
    page.evaluate(MARK_CHARTS_JS)
    page.wait_for_function(UPDATED_JS, arg=3, timeout=30_000)
    assert page.evaluate(SAME_CHARTS_JS), "a chart was remounted"
    labels: list[list[str]] = page.evaluate(
        "() => [...document.querySelectorAll('.pulse-chart')].map((chart) => chart.graph.getLabels())"
    )
    assert any("pressure_hpa" in one for one in labels) and any("temperature_c" in one for one in labels)
    assert not any("pressure_hpa" in one and "temperature_c" in one for one in labels), labels
    # A chart out of view takes its updates but is painted only once scrolled into view.
    below = page.locator(".pulse-chart").last
    assert below.evaluate("(chart) => chart.getBoundingClientRect().top") > 1000, "the last chart is below"
    painted = below.evaluate("(chart) => [Number(chart.dataset.painted), Number(chart.dataset.updates)]")
    page.wait_for_function(UPDATED_JS, arg=5, timeout=30_000)
    assert below.evaluate("(chart) => Number(chart.dataset.painted)") == painted[0], "painted out of view"
    below.scroll_into_view_if_needed()
    more = f"(chart) => Number(chart.dataset.painted) > {painted[0]}"
    page.wait_for_function(more, arg=below.element_handle())
    page.evaluate("() => window.scrollTo(0, 0)")
    # The export works on the first click while the charts redraw twice a second.
    with page.expect_download(timeout=15_000) as download:
        page.get_by_role("button", name="Export CSV").click()
    exported = Path(download.value.path()).read_text()
    assert exported.startswith("channel,series,ts,") and "data:sensors,pressure_hpa," in exported
    # Paused, the figure stops changing: what the screenshot shows is what a user can zoom into.
    page.get_by_text("Pause", exact=True).click()
    page.wait_for_timeout(1500)
    page.screenshot(path=str(tmp_path / "live.png"), full_page=True)

    page.get_by_role("link", name="Chat").click()
    prompt = page.get_by_test_id("stChatInputTextArea")
    prompt.wait_for(timeout=15_000)
    hostile = "hello from chromium <img src=x onerror=window.pwned=1>"
    prompt.fill(hostile)
    prompt.press("Enter")
    page.get_by_text(hostile, exact=True).wait_for(timeout=15_000)
    assert page.evaluate("() => window.pwned === undefined"), "chat text must never run as HTML"
    page.screenshot(path=str(tmp_path / "chat.png"), full_page=True)
    assert (tmp_path / "chat.png").stat().st_size > 0


LABELS_JS = """() => [...document.querySelectorAll('.pulse-chart')]
    .map((chart) => (chart.graph ? chart.graph.getLabels().slice(1) : []))"""
RANGES_JS = """() => [...document.querySelectorAll('.pulse-chart')]
    .map((chart) => (chart.graph ? chart.graph.xAxisRange() : null))"""


def test_a_link_reproduces_the_view_and_a_paused_link_opens_the_same_moment(
    browser: Browser, dashboard: AppProcess
) -> None:
    """A link naming a window, a channel and a series shows exactly that; pausing puts the moment in
    the URL, and that URL opened in another tab shows the same frozen range."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    other = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(f"{dashboard.url}/?window=1h&channel=data:sensors&series=data:sensors/temperature_c")
        page.wait_for_function(f"({LABELS_JS})().length > 0 && ({LABELS_JS})().every((l) => l.length)")
        assert page.evaluate(LABELS_JS) == [["temperature_c"]]
        headings, _ = shown(page, '[data-testid="stHeading"] [data-heading-text]')
        assert [heading for heading in headings if heading.startswith("data:")] == ["data:sensors"]
        query = parse_qs(urlsplit(page.url).query)
        assert query["window"] == ["1h"] and query["series"] == ["data:sensors/temperature_c"]

        page.get_by_text("Pause", exact=True).click()
        page.wait_for_function("() => window.location.search.includes('paused=')", timeout=15_000)
        hour = f"""() => {{ const ranges = ({RANGES_JS})();
            return ranges.length > 0 && ranges.every((range) => range !== null
                && Math.abs(range[1] - range[0] - 3600000) < 1); }}"""
        page.wait_for_function(hour, timeout=15_000)  # the frozen drawing reached the chart
        other.goto(page.url)
        other.wait_for_function(f"({LABELS_JS})().length > 0 && ({LABELS_JS})().every((l) => l.length)")
        assert other.evaluate(LABELS_JS) == [["temperature_c"]]
        assert other.get_by_role("switch", name="Pause").is_checked()
        other.wait_for_function(hour, timeout=15_000)
        assert other.evaluate(RANGES_JS) == page.evaluate(RANGES_JS)
    finally:
        page.close()
        other.close()


def test_squatted_channels_do_not_hide_the_configured_ones(
    browser: Browser, gateway: GatewayProcess, tmp_path: Path
) -> None:
    """After 230 one-point data:A000.. and notify:A000.. channels, a new session still charts data:cpu,
    and the user can still find and add an old squatted channel by prefix."""
    with httpx.Client(base_url=gateway.http_url, timeout=5) as http:
        for index in range(230):
            http.post(f"/api/publish/data:A{index:03}", json={"values": {"v": 1.0}}).raise_for_status()
            notice = {"level": "info", "title": "squat"}
            http.post(f"/api/publish/notify:A{index:03}", json=notice).raise_for_status()
        http.post("/api/publish/data:cpu", json=[{"values": {"user": 1.0 + i}} for i in range(5)])
    process = dashboard_process(tmp_path, gateway.http_url, {"PULSE_DASHBOARD_REFRESH": "1"})
    process.start(ready_path="/_stcore/health")
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(process.url)
        page.get_by_role("heading", name=shown_as("data:cpu")).wait_for(timeout=60_000)
        page.get_by_text("Add a channel").click()
        page.get_by_label("Find data: channels by prefix").fill("A000")
        page.get_by_label("Find data: channels by prefix").press("Enter")
        page.get_by_test_id("stSelectbox").click()
        page.get_by_role("option", name="data:A000").click()
        page.get_by_role("button", name="Subscribe").click()
        page.get_by_role("heading", name=shown_as("data:A000")).wait_for(timeout=30_000)
    finally:
        page.screenshot(path=str(tmp_path / "squatted.png"), full_page=True)
        process.stop()


@pytest.fixture
def bare_dashboard(gateway: GatewayProcess, tmp_path: Path) -> Iterator[AppProcess]:
    """The dashboard on a gateway with no simulator: only what the test publishes is on the page."""
    process = dashboard_process(tmp_path, gateway.http_url, {"PULSE_DASHBOARD_REFRESH": "0.5"})
    process.start(ready_path="/_stcore/health")
    yield process
    process.stop()


HOSTILE_TITLE = "Deploy **bold** _x_ <img src=x onerror=window.pwned=1>"
HOSTILE_BODY = (
    "see http://evil.example/a www.evil.example/w me@evil.example [link](http://evil.example/b) "
    "![i](http://evil.example/i.png) <a href=http://evil.example/c>c</a> :material/warning: :red[red] `code`"
)
MARKUP_SERIES = ["x_y_z", "__strong__", "www.evil.example"]
"""Series names the gateway accepts that Markdown would turn into bold text and a link."""

MARKUP_JS = """(selector) => {
    // Markup inside the matched elements, and their text as a reader sees it (joiners are invisible).
    const found = [...document.querySelectorAll(selector)];
    return {
        texts: found.map((element) => element.textContent.replaceAll('\\u2060', '')),
        markup: found.flatMap((element) =>
            [...element.querySelectorAll('a, em, strong, img, code, del, h1, h2, h3, h4, h5, h6, [style]')]
                .map((inner) => inner.outerHTML)),
    };
}"""

EVIL_JS = """() => [...document.querySelectorAll('a[href*="evil"], img[src="x"], img[src*="evil"]')]
    .map((element) => element.outerHTML).concat(window.pwned === undefined ? [] : ['script ran'])"""


def shown(page: Page, selector: str) -> tuple[list[str], list[str]]:
    """The visible texts of ``selector`` and any markup elements inside them."""
    found: dict[str, list[str]] = page.evaluate(MARKUP_JS, selector)
    return found["texts"], found["markup"]


APPEARED_JS = """([selector, text]) =>
    [...document.querySelectorAll(selector)].some((element) => element.textContent.includes(text))"""


def appeared(page: Page, selector: str, text: str) -> None:
    """Wait until an element matching ``selector`` holds ``text`` (hidden ones count: the grid's cells)."""
    page.wait_for_function(APPEARED_JS, arg=[selector, text], timeout=15_000)


def test_publisher_text_shows_as_plain_text_everywhere(
    browser: Browser, bare_dashboard: AppProcess, gateway: GatewayProcess
) -> None:
    """Channel and series names and notification text show as typed: no links, emphasis, images or HTML,
    in toasts, headings, the statistics table, legends, pickers and the chart's notification marker."""
    point = {"values": dict.fromkeys(MARKUP_SERIES, 1.0)}
    for channel, body in (("data:a_b_c", point), ("data:_em_", {"values": {"v": 2.0}})):
        httpx.post(f"{gateway.http_url}/api/publish/{channel}", json=[body], timeout=5).raise_for_status()
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(bare_dashboard.url)
    page.wait_for_selector(".pulse-chart .pulse-legend-name", state="attached", timeout=30_000)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.pulse-chart')].filter((chart) => chart.graph).length == 2",
        timeout=30_000,
    )
    notification = {"level": "warning", "title": HOSTILE_TITLE, "body": HOSTILE_BODY, "channel": "data:a_b_c"}
    httpx.post(
        f"{gateway.http_url}/api/publish/notify:alerts", json=[notification], timeout=5
    ).raise_for_status()
    appeared(page, '[data-testid="stToast"]', "Deploy")

    toasts, markup = shown(page, '[data-testid="stToast"]')
    assert any(f"{HOSTILE_TITLE}: {HOSTILE_BODY}" in text for text in toasts), toasts
    assert not markup, markup
    headings, markup = shown(page, '[data-testid="stHeading"] [data-heading-text]')
    assert {"data:a_b_c", "data:_em_"} <= set(headings) and not markup, (headings, markup)
    appeared(page, ".pulse-stats td", "www.evil.example")
    cells, markup = shown(page, ".pulse-stats td")
    assert set(MARKUP_SERIES) <= set(cells) and not markup, (cells, markup)
    # The marker on data:a_b_c's chart (the last one; charts out of view are painted once in view): its
    # label and hover text are text, whatever the title holds.
    page.locator(".pulse-chart").last.scroll_into_view_if_needed()
    page.wait_for_selector(".pulse-chart .pulse-marker-warning", state="attached", timeout=15_000)
    marker = page.evaluate(
        """() => { const m = document.querySelector('.pulse-marker-warning');
                   return {title: m.title, children: m.children.length, text: m.textContent}; }"""
    )
    assert marker == {"title": f"warning: {HOSTILE_TITLE}\n{HOSTILE_BODY}", "children": 0, "text": "!"}
    legends, markup = shown(page, ".pulse-chart .pulse-legend-name")
    assert set(MARKUP_SERIES) <= set(legends) and not markup, (legends, markup)
    page.locator('[data-testid="stMultiSelect"]').first.scroll_into_view_if_needed()
    page.locator('[data-testid="stMultiSelect"]').first.click()
    page.wait_for_selector('[role="option"]', timeout=10_000)
    options, markup = shown(page, '[role="option"]')
    assert {"data:a_b_c", "data:_em_"} <= set(options) and not markup, (options, markup)
    page.keyboard.press("Escape")
    assert not page.evaluate(EVIL_JS)

    page.get_by_role("link", name="Notifications").click()
    # The grid draws on a canvas; its cells are also in an accessible table inside it, filled once drawn.
    appeared(page, '[data-testid="stDataFrame"] [role="gridcell"]', "Deploy")
    cells, markup = shown(page, '[data-testid="stDataFrame"] [role="gridcell"]')
    assert HOSTILE_TITLE in cells and HOSTILE_BODY in cells and not markup, (cells, markup)
    assert not page.evaluate(EVIL_JS)


DAY = 24 * 3600.0


@pytest.fixture
def day_dashboard(tmp_path: Path) -> Iterator[tuple[AppProcess, Seeded]]:
    """The dashboard on a gateway whose store already holds 24 h of 10 Hz data:seed (written into
    history.duckdb before the gateway started; nothing is published live)."""
    day = seed_history(tmp_path / "data", "data:seed", seconds=DAY, rate=10.0, end=time.time())
    gateway = GatewayProcess(tmp_path).start()
    settings = {
        "PULSE_DASHBOARD_REFRESH": "1",
        "PULSE_DASHBOARD_CHANNELS": "data:seed",
        "PULSE_DASHBOARD_RANGE_REFRESH": "3600",
    }
    process = dashboard_process(tmp_path, gateway.http_url, settings)
    try:
        process.start(ready_path="/_stcore/health")
        yield process, day
    finally:
        process.stop()
        gateway.stop()


LINE_JS = """() => {
    // The mean line (or raw samples) of series v in the chart, as dygraphs holds it: x in ms.
    const chart = document.querySelector('.pulse-chart');
    const graph = chart && chart.graph;
    const column = graph ? graph.getLabels().indexOf('v') : -1;
    if (column < 0) return null;
    const x = [], y = [];
    for (let row = 0; row < graph.numRows(); row++) {
        const bar = graph.getValue(row, column);
        if (bar !== null) { x.push(graph.getValue(row, 0)); y.push(bar[1]); }
    }
    return {x, y};
}"""

PIXEL_JS = """(ms) => {
    // Page coordinates of time `ms` on the chart's x axis, halfway down its plot area.
    const graph = document.querySelector('.pulse-chart').graph;
    const box = graph.graphDiv.getBoundingClientRect();
    const area = graph.getArea();
    return [box.left + graph.toDomXCoord(ms), box.top + area.y + area.h / 2];
}"""


SPANS_JS = """([first, last]) => {
    // The chart's x axis spans [first, last] (ms): it has been redrawn for that range.
    const chart = document.querySelector('.pulse-chart');
    if (!chart || !chart.graph) return false;
    const [low, high] = chart.graph.xAxisRange();
    return Math.abs(low - first) < 1 && Math.abs(high - last) < 1;
}"""


def line(page: Page) -> tuple[list[float], list[float]]:
    found: dict[str, list[float]] = page.evaluate(LINE_JS)
    return [x / 1000 for x in found["x"]], found["y"]


def drag_across(page: Page, first: float, last: float) -> None:
    """A drag from time ``first`` to ``last`` (Unix seconds) across the chart, as a user does it."""
    start = page.evaluate(PIXEL_JS, first * 1000)
    end = page.evaluate(PIXEL_JS, last * 1000)
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move((start[0] + end[0]) / 2, start[1], steps=5)
    page.mouse.move(*end, steps=5)
    page.mouse.up()


def zoom_of(page: Page) -> tuple[float, float]:
    """The zoomed range in the page's URL, once the chart shows it."""
    query = parse_qs(urlsplit(page.url).query)
    first, last = parse_time(query["zoom_from"][0]), parse_time(query["zoom_to"][0])
    page.wait_for_function(SPANS_JS, arg=[first * 1000, last * 1000], timeout=30_000)
    return first, last


RESOLUTION_JS = """([pattern, before]) => [...document.querySelectorAll('[data-testid="stText"]')]
    .some((element) => new RegExp(pattern).test(element.textContent) && element.textContent !== before)"""


def resolution(page: Page, pattern: str, before: str = "") -> str:
    """Wait until the panel's resolution line matches ``pattern`` (and is not ``before``); return it."""
    full = f"^Resolution: {pattern}$"
    page.wait_for_function(RESOLUTION_JS, arg=[full, before], timeout=30_000)
    found: str = page.get_by_text(re.compile(full)).first.text_content() or ""
    return found


def test_a_day_of_history_opens_at_once_and_drills_down_to_raw_samples(
    browser: Browser, day_dashboard: tuple[AppProcess, Seeded], tmp_path: Path
) -> None:
    """A new tab on ?window=24h charts the stored day (the line starts a day ago, in 1 s-tier buckets);
    two drags drill into one minute, which shows its raw samples with the spike; a refresh shows the same
    minute; "Back to 24 h" returns to the day."""
    dashboard, day = day_dashboard
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        opened = time.time()
        page.goto(f"{dashboard.url}/?window=24h")
        day_label = resolution(page, r"\d+ s buckets from the 1s tier")
        page.wait_for_function(f"({LINE_JS})() !== null", timeout=30_000)
        x, y = line(page)
        # The window is the 24 h up to when the page asked, which starts later than the seeded day by
        # however long seeding and starting took (a minute on a loaded machine); the first bucket lies
        # within one bucket (58 s) of it.
        earliest, latest = (max(day.start, moment - DAY) for moment in (opened, time.time()))
        assert earliest - 60 < x[0] <= latest + 60 and x[-1] >= day.end - 120, (x[0], x[-1])
        assert len(x) <= 1500

        drag_across(page, day.spike_at - 900, day.spike_at + 900)
        resolution(page, r"[\d.]+ s buckets from the (1s|raw) tier", before=day_label)
        first, last = zoom_of(page)
        assert last - first < 3600, "zoomed into about half an hour"

        drag_across(page, day.spike_at - 30, day.spike_at + 30)
        resolution(page, "raw samples")
        first, last = zoom_of(page)
        # The label and the zoom can arrive a render before the raw line itself: wait for the line that
        # starts inside the drilled minute, not the half hour's buckets still drawn.
        page.wait_for_function(
            f"(first) => {{ const found = ({LINE_JS})(); return found !== null && found.x[0] >= first; }}",
            arg=first * 1000,
            timeout=30_000,
        )
        x, y = line(page)
        assert 40 < last - first < 80
        assert abs(len(x) - (last - first) * 10) <= 2, "every sample of the range, one per 0.1 s"
        assert first <= x[0] and x[-1] < last and SPIKE in y
        page.screenshot(path=str(tmp_path / "drilled.png"), full_page=True)

        page.reload()
        resolution(page, "raw samples")
        page.wait_for_function(f"({LINE_JS})() !== null", timeout=30_000)
        assert line(page) == (x, y), "a refresh shows the same minute"
        assert zoom_of(page) == (first, last)

        page.get_by_role("button", name="Back to 24 h").click()
        resolution(page, r"\d+ s buckets from the 1s tier")
        assert "zoom_from" not in page.url and "window=24h" in page.url
    finally:
        page.screenshot(path=str(tmp_path / "history.png"), full_page=True)
