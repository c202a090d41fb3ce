"""The Streamlit dashboard in ``AppTest`` against a real gateway with real data published.

Notes on AppTest (Streamlit 1.67): fragments' ``run_every`` does not tick (each ``at.run()`` is a full
rerun); every AppTest shares one session id, which is why the consumer is keyed by the session's buffer;
and ``on_release`` runs on ``st.cache_resource.clear()``.
"""

import base64
import json
import re
import string
import threading
import time
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboard.session import BUFFER_KEY
from dashboard.session_buffer import SessionBuffer
from dashboard.settings import get_settings
from tests.servers import ROOT, GatewayProcess
from tests.waiting import eventually

APP = str(ROOT / "dashboard" / "app.py")


def consumer_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("pulse-consumer-")]


def connections(gateway: GatewayProcess) -> int:
    count: int = httpx.get(f"{gateway.http_url}/healthz", timeout=5).json()["connections"]
    return count


def publish(gateway: GatewayProcess, channel: str, payloads: list[dict[str, object]]) -> None:
    httpx.post(f"{gateway.http_url}/api/publish/{channel}", json=payloads, timeout=5).raise_for_status()


@pytest.fixture
def dashboard_env(gateway: GatewayProcess, monkeypatch: pytest.MonkeyPatch) -> Iterator[GatewayProcess]:
    monkeypatch.setenv("PULSE_GATEWAY_URL", gateway.http_url)
    monkeypatch.setenv("PULSE_DASHBOARD_DISCOVER_INTERVAL", "0.5")
    for key in ("PULSE_TOKEN", "PULSE_DASHBOARD_ROOMS", "PULSE_DASHBOARD_NAME"):
        monkeypatch.delenv(key, raising=False)
    get_settings.cache_clear()
    yield gateway
    st.cache_resource.clear()  # releases every session consumer (on_release)
    eventually(lambda: not consumer_threads(), timeout=5, what="consumers released")
    get_settings.cache_clear()


def start_app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=15)
    at.run()
    assert not at.exception, at.exception
    return at


def session_buffer_of(at: AppTest) -> SessionBuffer:
    buffer = at.session_state[BUFFER_KEY]
    assert isinstance(buffer, SessionBuffer)
    return buffer


def typed_array(value: object) -> np.ndarray:
    # plotly sends numpy arrays as base64 typed arrays: {"dtype": "f8", "bdata": ...}
    assert isinstance(value, dict) and value["dtype"] == "f8", "arrays must travel typed, not as lists"
    return np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.float64)


def chart_traces(at: AppTest, index: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``(x in seconds, y)`` per trace name of a chart, read from the figure the app sends to the browser."""
    charts = at.get("plotly_chart")
    if len(charts) <= index:
        return {}
    spec = json.loads(charts[index].proto.spec)
    return {
        trace["name"]: (typed_array(trace["x"]) / 1000.0, typed_array(trace["y"])) for trace in spec["data"]
    }


def chart_points(at: AppTest) -> dict[str, int]:
    """Points per trace name in the first chart."""
    return {name: len(x) for name, (x, _) in chart_traces(at).items()}


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
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["user · now"] == "99"
    assert metrics["user · max"] == "99" and metrics["user · min"] == "10"
    assert any("latency" in t.value for t in at.text)
    assert at.sidebar.success[0].value == "Connected"
    assert at.get("download_button"), "the CSV export button is on the page"


def test_pause_freezes_the_figure(dashboard_env: GatewayProcess) -> None:
    publish(dashboard_env, "data:cpu", [{"values": {"user": float(i)}} for i in range(10)])
    at = start_app()
    buffer = session_buffer_of(at)
    eventually(lambda: buffer.channel("data:cpu").retained("user") == 10, what="history")
    at.toggle(key="live_paused").set_value(True).run()
    frozen = at.get("plotly_chart")[0].proto.spec
    publish(dashboard_env, "data:cpu", [{"values": {"user": 50.0}}])
    eventually(lambda: buffer.channel("data:cpu").retained("user") == 11, what="live point")
    at.run()
    assert at.get("plotly_chart")[0].proto.spec == frozen, "paused: the figure must not change"
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
    """Names and notification text go into toasts, subheaders and metric labels as plain-text Markdown."""
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
    labels = [metric.label for metric in at.metric if metric.label.endswith(" · now")]
    assert len(labels) == len(series)
    for label, name in zip(labels, series, strict=True):
        assert_plain_markdown(label.removesuffix(" · now"), name)
    assert set(chart_points(at)) == set(series), "legend names are the series names"
    assert at.multiselect(key="live_channels").options == ["data:a_b_c"], "options are plain text"
    at.switch_page("pages/notifications.py").run()
    table = at.dataframe[0].value
    assert list(table["title"]) == [title] and list(table["body"]) == [body], "tables show the raw text"
