"""The Streamlit dashboard in ``AppTest`` against a real gateway with real data published.

Notes on AppTest (Streamlit 1.67): fragments' ``run_every`` does not tick (each ``at.run()`` is a full
rerun); every AppTest shares one session id, which is why the consumer is keyed by the session's buffer;
and ``on_release`` runs on ``st.cache_resource.clear()``.
"""

import html
import json
import re
import string
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import httpx
import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboard.chart import CHART_COMPONENT, ChartData
from dashboard.session import BUFFER_KEY
from dashboard.session_buffer import SessionBuffer
from dashboard.settings import get_settings
from gateway.auth import mint_token
from tests.chart_model import apply_message
from tests.history_seed import SPIKE, Seeded, seed_history
from tests.servers import ROOT, GatewayProcess, StartGateway
from tests.waiting import eventually

APP = str(ROOT / "dashboard" / "app.py")


def consumer_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("pulse-consumer-")]


def connections(gateway: GatewayProcess) -> int:
    count: int = httpx.get(f"{gateway.http_url}/healthz", timeout=5).json()["connections"]
    return count


def publish(gateway: GatewayProcess, channel: str, payloads: list[dict[str, object]]) -> None:
    httpx.post(f"{gateway.http_url}/api/publish/{channel}", json=payloads, timeout=5).raise_for_status()


class DashboardOn(Protocol):
    """The ``dashboard_on`` fixture: point the app at ``gateway``, with extra ``PULSE_*`` settings."""

    def __call__(self, gateway: GatewayProcess, env: dict[str, str] | None = None) -> GatewayProcess: ...


@pytest.fixture
def dashboard_on(monkeypatch: pytest.MonkeyPatch) -> Iterator[DashboardOn]:
    def point(gateway: GatewayProcess, env: dict[str, str] | None = None) -> GatewayProcess:
        monkeypatch.setenv("PULSE_GATEWAY_URL", gateway.http_url)
        monkeypatch.setenv("PULSE_DASHBOARD_DISCOVER_INTERVAL", "0.5")
        for key in (
            "PULSE_TOKEN",
            "PULSE_DASHBOARD_ROOMS",
            "PULSE_DASHBOARD_NAME",
            "PULSE_DASHBOARD_CHANNELS",
        ):
            monkeypatch.delenv(key, raising=False)
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        get_settings.cache_clear()
        return gateway

    yield point
    st.cache_resource.clear()  # releases every session consumer and range reader (on_release)
    eventually(lambda: not consumer_threads(), timeout=5, what="consumers released")
    get_settings.cache_clear()


@pytest.fixture
def dashboard_env(gateway: GatewayProcess, dashboard_on: DashboardOn) -> GatewayProcess:
    return dashboard_on(gateway)


def start_app(**params: str) -> AppTest:
    """The app as a new tab opening the Live page, with ``params`` in its URL."""
    at = AppTest.from_file(APP, default_timeout=15)
    run = at._run

    def run_and_hold(*args: Any, **kwargs: Any) -> AppTest:
        # Every run's chart messages, as a browser gets them: appends only make sense in order.
        result = run(*args, **kwargs)
        charts(at)
        return result

    at._run = run_and_hold  # type: ignore[method-assign]
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, at.exception
    return at


def session_buffer_of(at: AppTest) -> SessionBuffer:
    buffer = at.session_state[BUFFER_KEY]
    assert isinstance(buffer, SessionBuffer)
    return buffer


_HELD: dict[tuple[int, str], ChartData] = {}
"""What each chart of each AppTest holds, as pulse_chart.js keeps it: a full drawing and its appends."""


def _held(at: AppTest, chart: str, sent: ChartData) -> ChartData:
    """Apply ``sent`` to what chart ``chart`` holds, as the browser does (pulse_chart.js)."""
    key = (id(at), chart)
    held = _HELD.get(key)
    if held is not None and held.get("version") == sent.get("version"):
        return held  # read again without a new run
    held = apply_message(held, sent)
    _HELD[key] = held
    return held


def charts(at: AppTest) -> list[ChartData]:
    """What each chart on the page holds after the messages the app sent it, in order."""
    found = [element.proto for element in at.get("bidi_component")]
    return [
        _held(at, proto.id, json.loads(proto.json))
        for proto in found
        if proto.component_name == CHART_COMPONENT
    ]


def _column(values: list[float | None]) -> np.ndarray:
    return np.asarray([np.nan if value is None else value for value in values], dtype=float)


def chart_series(
    at: AppTest, index: int = 0
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """``(x in seconds, low, mid, high)`` per series of a chart, where the series has points."""
    sent = charts(at)
    if len(sent) <= index:
        return {}
    x = np.asarray(sent[index]["x"]) / 1000.0
    found: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
    for series in sent[index]["series"]:
        low, mid, high = (_column(series[part]) for part in ("low", "mid", "high"))
        low, high = np.where(np.isnan(low), mid, low), np.where(np.isnan(high), mid, high)
        has = ~np.isnan(mid)
        found[series["name"]] = (x[has], low[has], mid[has], high[has])
    return found


def chart_traces(at: AppTest, index: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``(x in seconds, y)`` per series line of a chart."""
    return {name: (x, mid) for name, (x, _, mid, _) in chart_series(at, index).items()}


def stats_of(at: AppTest) -> dict[str, dict[str, str]]:
    """The statistics tables of the Live page (HTML): per series, its row as the page writes it."""
    rows: dict[str, dict[str, str]] = {}
    for element in at.get("html"):
        for table in re.findall(r'<table class="pulse-stats".*?</table>', element.proto.body):
            lines = [
                [html.unescape(cell) for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", line)]
                for line in re.findall(r"<tr>(.*?)</tr>", table)
            ]
            rows.update({line[0]: dict(zip(lines[0], line, strict=True)) for line in lines[1:]})
    return rows


def chart_points(at: AppTest) -> dict[str, int]:
    """Points per trace name in every chart on the page (a panel may split its series over several)."""
    return {
        name: len(x) for index in range(len(charts(at))) for name, (x, _) in chart_traces(at, index).items()
    }


def test_live_page_charts_points_with_metrics(dashboard_env: GatewayProcess) -> None:
    now = time.time()
    history = [{"ts": now - 10 + i * 0.1, "values": {"user": 10.0 + i, "sys": 1.0}} for i in range(50)]
    publish(dashboard_env, "data:cpu", history)
    at = start_app()
    buffer = session_buffer_of(at)
    eventually(lambda: buffer.channel("data:cpu").retained("user") == 50, what="history in the buffer")
    at.run()
    assert chart_points(at) == {"user": 50, "sys": 50}
    publish(dashboard_env, "data:cpu", [{"values": {"user": 99.0, "sys": 2.0}}])
    eventually(lambda: buffer.channel("data:cpu").retained("user") == 51, what="live point")
    at.run()
    assert chart_points(at) == {"user": 51, "sys": 51}
    stats = stats_of(at)["user"]
    assert (stats["now"], stats["max"], stats["min"]) == ("99", "99", "10")
    assert any("latency" in t.value for t in at.text)
    assert at.sidebar.success[0].value == "Connected"
    assert at.get("download_button"), "the CSV export button is on the page"


def test_pause_freezes_the_figure(dashboard_env: GatewayProcess) -> None:
    publish(dashboard_env, "data:cpu", [{"values": {"user": float(i)}} for i in range(10)])
    at = start_app()
    buffer = session_buffer_of(at)
    eventually(lambda: buffer.channel("data:cpu").retained("user") == 10, what="history")
    at.toggle(key="live_paused").set_value(True).run()
    frozen = charts(at)[0]
    publish(dashboard_env, "data:cpu", [{"values": {"user": 50.0}}])
    eventually(lambda: buffer.channel("data:cpu").retained("user") == 11, what="live point")
    at.run()
    assert charts(at)[0] == frozen, "paused: the chart must not change"
    at.toggle(key="live_paused").set_value(False).run()
    assert chart_points(at) == {"user": 11}


def test_one_consumer_and_one_socket_across_50_reruns_then_zero(dashboard_env: GatewayProcess) -> None:
    at = start_app()
    for _ in range(50):
        at.run()
    assert not at.exception
    assert len(consumer_threads()) == 1
    eventually(lambda: connections(dashboard_env) == 1, what="one socket")
    for page in ("pages/chat.py", "pages/notifications.py", "pages/channels.py", "pages/live.py"):
        at.switch_page(page).run()
        assert not at.exception, (page, at.exception)
    assert len(consumer_threads()) == 1
    assert connections(dashboard_env) == 1

    released = time.monotonic()
    st.cache_resource.clear()
    eventually(lambda: not consumer_threads(), timeout=5, what="thread gone")
    took = time.monotonic() - released
    eventually(lambda: connections(dashboard_env) == 0, what="socket closed")
    assert took < 5, took


def test_chat_round_trip_renders_untrusted_text_as_text(dashboard_env: GatewayProcess) -> None:
    at = start_app()
    buffer = session_buffer_of(at)
    at.switch_page("pages/chat.py").run()
    eventually(lambda: buffer.presence("chat:lobby"), what="joined the lobby")
    hostile = "<img src=x onerror=alert(1)> ![x](http://example.invalid/x.png) [y](javascript:alert(1))"
    at.chat_input(key="chat_prompt").set_value(hostile).run()
    assert not at.exception
    assert not at.toast, [t.value for t in at.toast]
    eventually(lambda: any(e.text == hostile for e in buffer.chat_log("chat:lobby")), what="echo")
    at.run()
    texts = [t.value for t in at.text]
    assert hostile in texts, "shown with st.text, exactly as typed"
    assert not any(hostile in m.value for m in at.markdown), "never through Markdown"
    assert any("dashboard" in t and "joined" in t for t in texts)
    assert "● dashboard" in texts


CHAT_SECRET = "a-dashboard-test-secret-of-32-bytes-or-more"


@pytest.mark.parametrize(("chat", "prompt"), [(None, False), ("on", True)], ids=["default", "on"])
def test_with_a_token_the_chat_page_is_read_only_unless_allowed(
    start_gateway: StartGateway, dashboard_on: DashboardOn, chat: str | None, prompt: bool
) -> None:
    """With PULSE_TOKEN every viewer would post as the token's sub, so by default the Chat page shows the
    room but no prompt; PULSE_DASHBOARD_CHAT=on brings the prompt back."""
    gateway = start_gateway(env={"PULSE_SECRET": CHAT_SECRET})
    env = {"PULSE_TOKEN": mint_token(CHAT_SECRET, "dashboard-service", ttl=300)}
    if chat is not None:
        env["PULSE_DASHBOARD_CHAT"] = chat
    dashboard_on(gateway, env)
    at = start_app()
    buffer = session_buffer_of(at)
    at.switch_page("pages/chat.py").run()
    eventually(lambda: buffer.presence("chat:lobby"), what="joined the lobby")
    at.run()
    assert not at.exception, at.exception
    assert len(at.chat_input) == int(prompt)
    assert any("Read-only" in caption.value for caption in at.caption) is not prompt


def test_a_send_while_disconnected_is_kept_and_reported(dashboard_env: GatewayProcess) -> None:
    at = start_app()
    buffer = session_buffer_of(at)
    at.switch_page("pages/chat.py").run()
    eventually(lambda: buffer.presence("chat:lobby"), what="joined")
    dashboard_env.stop()
    eventually(lambda: buffer.connection().state.value == "reconnecting", what="noticed")
    at.chat_input(key="chat_prompt").set_value("typed while the gateway is down").run()
    assert any("Message not sent" in t.value for t in at.toast)
    assert "Not sent: typed while the gateway is down" in [t.value for t in at.text]
    assert at.sidebar.warning[0].value.startswith("Reconnecting")

    dashboard_env.start()
    eventually(lambda: buffer.connection().state.value == "connected", timeout=20, what="reconnected")
    at.run()
    at.button(key="retry_0").click().run()
    eventually(
        lambda: any(e.text == "typed while the gateway is down" for e in buffer.chat_log("chat:lobby")),
        what="the retried message",
    )
    at.run()
    assert "Not sent: typed while the gateway is down" not in [t.value for t in at.text]


def test_notifications_toast_and_log(dashboard_env: GatewayProcess) -> None:
    at = start_app()
    buffer = session_buffer_of(at)
    eventually(lambda: buffer.connection().state.value == "connected", what="connected")
    publish(dashboard_env, "notify:alerts", [{"level": "warning", "title": "CPU **hot**", "body": "92%"}])
    eventually(lambda: buffer.notifications(), timeout=10, what="notification")
    at.run()
    toasts = [t.value for t in at.toast]
    assert len(toasts) == 1 and "CPU \\*\\*hot\\*\\*" in toasts[0], toasts
    at.run()
    assert not at.toast, "each notification pops up once"
    at.switch_page("pages/notifications.py").run()
    table = at.dataframe[0].value
    assert list(table["title"]) == ["CPU **hot**"] and list(table["level"]) == ["warning"]
    at.pills(key="notify_levels").set_value(["error"]).run()
    assert not at.dataframe


def test_channels_page_shows_the_gateway(dashboard_env: GatewayProcess) -> None:
    publish(dashboard_env, "data:cpu", [{"values": {"user": 1.0}}])
    at = start_app()
    buffer = session_buffer_of(at)
    eventually(lambda: (overview := buffer.overview()) is not None and overview.channels, what="overview")
    at.switch_page("pages/channels.py").run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Gateway"] == "ok" and metrics["Broker"] == "memory (up)"
    table = at.dataframe[0].value
    assert "data:cpu" in list(table["channel"])


def test_a_gateway_restart_shows_the_gap_and_the_reloaded_points(dashboard_env: GatewayProcess) -> None:
    publish(dashboard_env, "data:cpu", [{"values": {"user": float(i)}} for i in range(10)])
    at = start_app()
    buffer = session_buffer_of(at)
    eventually(lambda: buffer.channel("data:cpu").retained("user") == 10, what="history")
    at.run()
    assert not [w for w in at.warning if w.value.startswith("Gap")]

    dashboard_env.restart()  # data: channels live in memory: a new epoch, the old offsets mean nothing
    publish(dashboard_env, "data:cpu", [{"values": {"user": 100.0 + i}} for i in range(5)])
    eventually(lambda: buffer.channel("data:cpu").retained("user") == 15, timeout=20, what="reloaded")
    at.run()
    gaps = [w.value for w in at.warning if w.value.startswith("Gap")]
    assert len(gaps) == 1 and "history reloaded" in gaps[0]
    assert chart_points(at) == {"user": 15}


PUNCTUATION = set(string.punctuation)
LINK_OR_SHORTCODE = re.compile(r"https?://|www\.|[\w.+-]@[\w-]|:[\w/+-]+:", re.IGNORECASE)
"""What GFM autolinks and Streamlit's shortcodes look for in text after Markdown escapes are resolved."""


def assert_plain_markdown(source: str, raw: str) -> None:
    """``source`` is Markdown that renders as ``raw``: every ASCII punctuation character escaped, and
    no URL, e-mail address or shortcode left in the text that the escapes resolve to."""
    text = []
    characters = iter(source)
    for char in characters:
        assert char not in PUNCTUATION or char == "\\", f"unescaped {char!r} in {source!r}"
        text.append(next(characters) if char == "\\" else char)
    resolved = "".join(text)
    assert not LINK_OR_SHORTCODE.search(resolved), resolved
    assert resolved.replace("\u2060", "") == raw


def test_publisher_text_reaches_markdown_escaped(dashboard_env: GatewayProcess) -> None:
    """Names and notification text go into toasts and subheaders as plain-text Markdown."""
    series = ["x_y_z", "__strong__", "www.evil.example"]
    publish(dashboard_env, "data:a_b_c", [{"values": dict.fromkeys(series, 1.0)}])
    at = start_app()
    buffer = session_buffer_of(at)
    eventually(lambda: buffer.channel("data:a_b_c").retained("x_y_z") == 1, what="the point")
    title = "**bold** _x_ <img src=x> [l](http://evil.example/b) :material/warning:"
    body = "see http://evil.example/a www.evil.example me@evil.example\n\n    indented"
    publish(dashboard_env, "notify:alerts", [{"level": "error", "title": title, "body": body}])
    eventually(lambda: buffer.notifications(), timeout=10, what="notification")
    at.run()
    toast = at.toast[0].value
    assert_plain_markdown(toast[: toast.rindex(" (")], f"{title}: {' '.join(body.split())}")
    assert_plain_markdown(at.subheader[0].value, "data:a_b_c")
    assert list(stats_of(at)) == series, "a table shows names as text"
    assert set(chart_points(at)) == set(series), "legend names are the series names"
    assert at.multiselect(key="live_channels").options == ["data:a_b_c"], "options are plain text"
    at.switch_page("pages/notifications.py").run()
    table = at.dataframe[0].value
    assert list(table["title"]) == [title] and list(table["body"]) == [body], "tables show the raw text"


# --- stored history: windows, zoom, links ----------------------------------------------------------------

DAY = 24 * 3600.0
RATE = 2.0
"""Publications/s of the seeded day: 172 800 samples, enough for every tier, seeded in under a second."""
BUCKETS = re.compile(r"^Resolution: (\d+) s buckets from the 1s tier$")


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[tuple[GatewayProcess, Seeded]]:
    """A gateway started on a data dir that already holds a day of data:seed (series v, one spike)."""
    day = seed_history(tmp_path / "data", "data:seed", seconds=DAY, rate=RATE, end=time.time())
    gateway = GatewayProcess(tmp_path).start()
    yield gateway, day
    gateway.stop()


def resolution(at: AppTest) -> str:
    lines = [text.value for text in at.text if text.value.startswith("Resolution: ")]
    assert len(lines) == 1, lines
    return lines[0]


def test_a_new_tab_on_24h_shows_the_stored_day_at_once(
    seeded: tuple[GatewayProcess, Seeded], dashboard_on: DashboardOn
) -> None:
    """A link with window=24h charts the stored day on the first run: a min..max band with the spike, the
    mean line from a day ago, in 1 s-tier buckets that the panel names."""
    gateway, day = seeded
    dashboard_on(gateway, {"PULSE_DASHBOARD_CHANNELS": "data:seed"})
    at = start_app(window="24h")
    assert at.segmented_control(key="live_window").value == "24h"
    match = BUCKETS.match(resolution(at))
    assert match, resolution(at)
    bucket = float(match.group(1))
    traces = chart_series(at)
    assert set(traces) == {"v"}
    x, low, _, high = traces["v"]
    # The window is the 24 h before the page ran, seconds after the seeding: its first bucket starts within
    # one bucket of the day's first sample, on either side.
    assert day.start - bucket < x[0] < day.start + bucket and x[-1] <= day.end
    assert len(x) <= 1500 and x[-1] - x[0] > DAY - 2 * bucket
    assert high.max() == SPIKE, "the one-sample spike stays in the band"
    assert (low < high).all(), "buckets draw as a band"
    assert stats_of(at)["v"]["max"] == "1,000"


def test_a_zoom_reads_raw_samples_and_back_returns_to_the_window(
    seeded: tuple[GatewayProcess, Seeded], dashboard_on: DashboardOn
) -> None:
    """Zoomed into one minute of the day (as a box selection leaves it in the URL), the panel shows that
    minute's raw samples, spike included; "Back to 24 h" returns to the day's buckets."""
    gateway, day = seeded
    dashboard_on(gateway, {"PULSE_DASHBOARD_CHANNELS": "data:seed"})
    first = day.spike_at - 30
    at = start_app(window="24h", zoom_from=str(first), zoom_to=str(first + 60))
    assert resolution(at) == "Resolution: raw samples"
    traces = chart_traces(at)
    assert set(traces) == {"v"}
    x, y = traces["v"]
    # The chart's times are milliseconds (floats): a microsecond either way is its rounding, not a sample.
    assert len(x) == 60 * RATE and first - 1e-6 <= x[0] and x[-1] < first + 60 + 1e-6
    assert SPIKE in y.tolist()
    at.button(key="live_unzoom").click().run()
    assert "zoom_from" not in at.query_params and at.query_params["window"] == "24h"
    assert BUCKETS.match(resolution(at)), resolution(at)


def test_a_custom_range_from_the_pickers_is_read_and_kept_in_the_url(
    seeded: tuple[GatewayProcess, Seeded], dashboard_on: DashboardOn
) -> None:
    """Picking Custom starts from the range on screen; the date and time pickers (UTC) choose one minute,
    which the panel reads as raw samples, and the URL carries it for a refresh."""
    gateway, day = seeded
    dashboard_on(gateway, {"PULSE_DASHBOARD_CHANNELS": "data:seed"})
    at = start_app(window="1h")
    at.segmented_control(key="live_window").set_value("custom").run()
    assert at.query_params["window"] == "custom" and "from" in at.query_params
    minute = datetime.fromtimestamp(day.spike_at, UTC).replace(second=0, microsecond=0, tzinfo=None)
    after = minute + timedelta(minutes=1)
    at.date_input(key="live_from_date").set_value(minute.date())
    at.time_input(key="live_from_time").set_value(minute.time())
    at.date_input(key="live_to_date").set_value(after.date())
    at.time_input(key="live_to_time").set_value(after.time()).run()
    assert not at.exception, at.exception
    assert (
        at.query_params["from"] == minute.isoformat() + "Z"
        and at.query_params["to"] == after.isoformat() + "Z"
    )
    assert resolution(at) == "Resolution: raw samples"
    assert chart_points(at) == {"v": 60 * RATE}

    shown = chart_traces(at)["v"][1].tolist()
    again = start_app(**{key: at.query_params[key] for key in ("window", "from", "to")})
    assert chart_traces(again)["v"][1].tolist() == shown, "the link shows the same"
    at.switch_page("pages/chat.py").run()
    at.switch_page("pages/live.py").run()
    assert at.date_input(key="live_from_date").value == minute.date(), "the view outlives a visit elsewhere"
    assert at.time_input(key="live_from_time").value == minute.time()
    assert chart_traces(at)["v"][1].tolist() == shown


def test_a_bad_link_opens_the_default_window_and_says_why(dashboard_env: GatewayProcess) -> None:
    """A link with an unknown window still opens the Live page, on 5 min, with a warning naming it."""
    at = start_app(window="2h")
    assert at.segmented_control(key="live_window").value == "5m"
    assert any("unknown window" in warning.value for warning in at.warning)


def test_stored_history_and_live_points_join_without_gap_or_duplicate(
    start_gateway: StartGateway, dashboard_on: DashboardOn
) -> None:
    """30 points stored before the tab opened, 20 published after its range read: the chart holds each of
    the 50 once, in order, the stored ones from the range and the rest from the live buffer."""
    gateway = start_gateway(env={"PULSE_HISTORY_FLUSH_INTERVAL": "0.1"})
    dashboard_on(gateway, {"PULSE_DASHBOARD_RANGE_REFRESH": "3600"})
    now = time.time()
    publish(
        gateway, "data:cpu", [{"ts": now - 20 + i * 0.1, "values": {"user": float(i)}} for i in range(30)]
    )
    eventually(lambda: stored_samples(gateway) == 30, what="30 samples stored")
    at = start_app()
    buffer = session_buffer_of(at)
    eventually(lambda: buffer.channel("data:cpu").retained("user") == 30, what="the replayed history")
    at.run()  # the first run read the range before the consumer had data; the epoch it now has re-reads it
    publish(
        gateway,
        "data:cpu",
        [{"ts": now - 10 + i * 0.1, "values": {"user": float(30 + i)}} for i in range(20)],
    )
    eventually(lambda: buffer.channel("data:cpu").retained("user") == 50, what="the live points")
    eventually(lambda: stored_samples(gateway) == 50, what="the store caught up (a re-read would now see 50)")
    at.run()
    assert resolution(at) == "Resolution: raw samples, then live samples"
    x, y = chart_traces(at)["user"]
    assert y.tolist() == [float(i) for i in range(50)]
    assert bool(np.all(np.diff(x) > 0))


def test_with_history_off_the_chart_shows_the_session_points_and_says_why(
    start_gateway: StartGateway, dashboard_on: DashboardOn
) -> None:
    """A gateway with no history store: the panel warns, with the gateway's reason, and charts what the
    session received."""
    gateway = start_gateway(env={"PULSE_HISTORY_URL": "none://"})
    dashboard_on(gateway)
    publish(gateway, "data:cpu", [{"values": {"user": float(i)}} for i in range(5)])
    at = start_app()
    buffer = session_buffer_of(at)
    eventually(lambda: buffer.channel("data:cpu").retained("user") == 5, what="the replayed history")
    at.run()
    assert chart_points(at) == {"user": 5}
    assert resolution(at) == "Resolution: live samples"
    warnings = [warning.value for warning in at.warning]
    assert any("not loaded" in text and "history is off" in text for text in warnings), warnings


def stored_samples(gateway: GatewayProcess) -> int:
    history = httpx.get(f"{gateway.http_url}/readyz", timeout=5).json()["history"]
    return int(history["stored"]) if history["pending"] == 0 else -1


EXAMPLE_BOARD = ROOT / "dashboard" / "examples" / "pulseboard.yaml"


def publish_plant(gateway: GatewayProcess, count: int = 20) -> None:
    """Points on the example file's channels, as the simulator names them."""
    now = time.time()
    channels = {
        "data:sensors": {"temperature_c": 25.0, "humidity_pct": 45.0, "pressure_hpa": 1013.0},
        "data:cpu": {"user": 30.0, "system": 96.0, "iowait": 2.0},
        "data:network": {"rx_mbps": 120.0, "tx_mbps": 40.0, "latency_ms": 3.0},
    }
    for channel, values in channels.items():
        points = [{"ts": now - count + i, "values": values} for i in range(count)]
        publish(gateway, channel, points)


def html_of(at: AppTest) -> str:
    return "\n".join(element.proto.body for element in at.get("html"))


def test_the_example_dashboard_file_draws_every_panel_type(
    gateway: GatewayProcess, dashboard_on: DashboardOn
) -> None:
    publish_plant(gateway)
    dashboard_on(gateway, {"PULSE_DASHBOARD_FILE": str(EXAMPLE_BOARD)})
    at = start_app()
    buffer = session_buffer_of(at)
    eventually(lambda: buffer.channel("data:network").retained("rx_mbps") == 20, what="the plant's points")
    at.run()
    assert not at.exception and not at.error, at.error
    assert at.title[0].value == "Plant floor"
    assert [header.value for header in at.subheader] == ["Sensors", "Machines"]
    sent = charts(at)
    # Climate: one axis per unit (°C, %, hPa); CPU by kind: small multiples, one chart per series.
    series = [[one["name"] for one in chart["series"]] for chart in sent]
    assert series == [["temperature_c"], ["humidity_pct"], ["pressure_hpa"], ["user"], ["system"], ["iowait"]]
    assert [chart["style"].get("unit") for chart in sent] == ["°C", "%", "hPa", "%", "%", "%"]
    assert sent[0]["style"]["decimals"] == 1
    shown = html_of(at)
    assert "Temperature" in shown and "25.0 °C" in shown, "the stat panel, with its unit and decimals"
    assert "Humidity" in shown and "45%" in shown, "the gauge"
    assert "CPU now" in shown and "96.0%" in shown, "the bar panel"
    assert "#ff7f0e" in shown, "25 °C is past the stat's orange threshold"
    assert "#d62728" in shown, "system at 96 % is past the bar's red threshold"
    network = stats_of(at)
    assert set(network) == {"rx_mbps", "tx_mbps", "latency_ms"}, "the table panel"


def test_a_malformed_dashboard_file_names_the_line_and_the_rest_still_works(
    gateway: GatewayProcess, dashboard_on: DashboardOn, tmp_path: Path
) -> None:
    publish_plant(gateway)
    board = tmp_path / "board.yaml"
    board.write_text(
        "title: Half right\n"
        "rows:\n"
        "  - panels:\n"
        "      - type: stat\n"
        "        channel: data:sensors\n"
        "        series: [temperature_c]\n"
        "      - type: pie\n"
        "        channel: data:cpu\n"
        "      - type: gauge\n"
        "        channel: chat:room\n"
    )
    dashboard_on(gateway, {"PULSE_DASHBOARD_FILE": str(board)})
    at = start_app()
    buffer = session_buffer_of(at)
    eventually(lambda: buffer.channel("data:sensors").retained("temperature_c") == 20, what="points")
    at.run()
    assert not at.exception
    errors = [error.value for error in at.error]
    assert len(errors) == 2, errors
    assert "line 7" in errors[0] and "pie" in errors[0]
    assert "line 10" in errors[1] and "is not a data" in errors[1]
    assert at.title[0].value == "Half right" and "25" in html_of(at), "the good panel is drawn"
    assert at.get("segmented_control") and at.get("download_button"), "the controls still work"

    board.write_text("rows: [\n")
    at.run()
    assert "line" in at.error[0].value and at.title[0].value == "Live", "unparseable: the generated layout"
    assert charts(at), "with charts of the channels that have data"
