"""The dashboard's pure pieces: settings, panels (stored history joined to live points), the figure, the
CSV export, time windows and their URL form, the status line, Markdown escaping, and the request/reply
matching of one link. No Streamlit, no network."""

import asyncio
import csv
import io
import json
import time

import numpy as np
import pytest
from pydantic import ValidationError

from dashboard.chart import chart_data
from dashboard.export import panels_to_csv
from dashboard.markup import escape_markdown
from dashboard.panel import Panel, take_panel
from dashboard.session_buffer import ConnectionState, ConnectionStatus, SessionBuffer
from dashboard.settings import DashboardSettings
from dashboard.status import STALE_AFTER, describe
from dashboard.windows import TimeRange
from pulseboard.link import Link, NotConnectedError, RequestRejectedError
from shared.codes import ErrorCode
from shared.messages import Ack, Error, PingOp, Pong


def settings(**env: str) -> DashboardSettings:
    return DashboardSettings(_env_file=None, **env)  # type: ignore[arg-type]


def test_settings_defaults_and_derived_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    names = ("GATEWAY_URL", "TOKEN", "DASHBOARD_ROOMS", "DASHBOARD_MAX_POINTS", "DASHBOARD_RANGE_POINTS")
    for key in (f"PULSE_{name}" for name in (*names, "DASHBOARD_RANGE_REFRESH")):
        monkeypatch.delenv(key, raising=False)
    default = settings()
    assert default.gateway_url == "http://127.0.0.1:8000"
    assert default.ws_url == "ws://127.0.0.1:8000/ws"
    assert default.dashboard_max_points == 100_000 and default.token_value is None
    assert default.dashboard_range_points == 1500 and default.dashboard_range_refresh == 30.0
    monkeypatch.setenv("PULSE_GATEWAY_URL", "https://pulse.example.com/base/")
    monkeypatch.setenv("PULSE_TOKEN", "t0ken")
    monkeypatch.setenv("PULSE_DASHBOARD_ROOMS", "chat:lobby, chat:ops")
    configured = settings()
    assert configured.ws_url == "wss://pulse.example.com/base/ws"
    assert configured.token_value == "t0ken" and "t0ken" not in repr(configured)
    assert configured.dashboard_rooms == ["chat:lobby", "chat:ops"]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("PULSE_GATEWAY_URL", "ftp://x"),
        ("PULSE_DASHBOARD_ROOMS", "data:cpu"),
        ("PULSE_DASHBOARD_ROOMS", "chat:bad name"),
        ("PULSE_DASHBOARD_MAX_POINTS", "10"),
        ("PULSE_DASHBOARD_REFRESH", "0"),
        ("PULSE_DASHBOARD_NAME", "<script>"),
        ("PULSE_DASHBOARD_RANGE_POINTS", "20000"),
        ("PULSE_DASHBOARD_RANGE_REFRESH", "0"),
    ],
)
def test_bad_settings_are_refused(monkeypatch: pytest.MonkeyPatch, key: str, value: str) -> None:
    monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError):
        settings()


def filled(points: int, series: tuple[str, ...] = ("a", "b")) -> SessionBuffer:
    buffer = SessionBuffer(max_points=points)
    now = time.time()
    ts = now - points * 0.01 + np.arange(points) * 0.01
    for index, name in enumerate(series):
        buffer.channel("data:x").extend(name, ts, np.sin(np.arange(points) / 50.0) + index)
    return buffer


def live_panel(buffer: SessionBuffer, series: list[str] | None, seconds: float | None, now: float) -> Panel:
    """The buffer's own points of data:x over the last ``seconds`` (None: everything it holds), no
    stored range: what a panel shows when the gateway keeps no history."""
    span = TimeRange(0.0 if seconds is None else now - seconds, now + 1)
    return take_panel(buffer.find("data:x"), "data:x", series, span, None, now)


def test_chart_gets_at_most_2000_points_per_series_and_keeps_the_spike() -> None:
    buffer = filled(100_000)
    spike_at = 54_321
    buffer.channel("data:x").extend("a", [buffer.snapshot("data:x", "a")[0][spike_at]], [1e6])  # a late spike
    panel = live_panel(buffer, None, None, time.time())
    data = chart_data(panel)
    assert [series["name"] for series in data["series"]] == ["a", "b"]
    assert len(data["x"]) <= 2 * 2000, "two series, at most 2 000 points each on the shared axis"
    assert data["x"] == sorted(data["x"])
    for series in data["series"]:
        assert sum(value is not None for value in series["mid"]) <= 2000
    assert max(value for value in data["series"][0]["mid"] if value is not None) == 1e6, (
        "peak-preserving: the one-point spike survives"
    )
    assert json.loads(json.dumps(data)) == data, "plain JSON: no NaN, no numpy types"


def test_panel_window_series_pick_and_gap_visibility() -> None:
    buffer = filled(1000, ("a", "b", "c"))
    now = time.time()
    panel = live_panel(buffer, ["b"], 60, now)
    assert [trace.series for trace in panel.traces] == ["b"]
    assert panel.span.start == pytest.approx(now - 60)
    assert panel.points == 1000  # 10 s of data, all inside the last minute
    assert not panel.gap_visible
    buffer.channel("data:x").mark_gap(now - 120)
    older_than_window = live_panel(buffer, None, 60, now)
    assert not older_than_window.gap_visible
    assert live_panel(buffer, None, 300, now).gap_visible
    assert live_panel(buffer, None, None, now).gap_visible


def test_csv_export_has_every_visible_point() -> None:
    buffer = filled(100, ("a", "b"))
    panel = live_panel(buffer, None, None, time.time())
    rows = list(csv.DictReader(io.StringIO(panels_to_csv([panel]).decode())))
    assert len(rows) == 200
    assert {row["series"] for row in rows} == {"a", "b"} and rows[0]["channel"] == "data:x"
    assert float(rows[0]["value"]) == panel.traces[0].values[0]
    assert rows[0]["time_utc"].endswith("+00:00")


def status(
    state: ConnectionState, attempt: int = 0, error: str = "", last: float | None = None
) -> ConnectionStatus:
    return ConnectionStatus(state, attempt, error, 0.0, last)


def test_status_lines() -> None:
    now = 1_000_000.0
    assert describe(status(ConnectionState.CONNECTED, last=now - 1), now).text == "Connected"
    stale = describe(status(ConnectionState.CONNECTED, last=now - STALE_AFTER - 5), now)
    assert stale.level == "warning" and stale.text.startswith("Connected, stale since ")
    again = describe(status(ConnectionState.RECONNECTING, 3, "closed: 1012"), now)
    assert again.text == "Reconnecting (attempt 3)" and again.detail == "closed: 1012"
    stopped = describe(status(ConnectionState.STOPPED, error="unauthorized (4401)"), now)
    assert stopped.level == "error" and "4401" in stopped.detail


def test_escape_markdown_leaves_no_markup() -> None:
    hostile = "**bold** ![img](http://x/y.png) [link](javascript:alert(1)) <b>html</b> `code` # head"
    escaped = escape_markdown(hostile)
    assert "\\*\\*bold\\*\\*" in escaped and "\\!\\[img\\]" in escaped and "\\<b\\>" in escaped


class FakeSocket:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, text: str) -> None:
        self.sent.append(text)


def test_link_matches_replies_by_ref_and_fails_waiters_on_close() -> None:
    async def scenario() -> None:
        socket = FakeSocket()
        link = Link(socket, "c1", "me")  # type: ignore[arg-type]
        first = asyncio.ensure_future(link.request(PingOp(op="ping")))
        second = asyncio.ensure_future(link.request(PingOp(op="ping", id="mine")))
        await asyncio.sleep(0)
        assert [frame for frame in socket.sent] == ['{"id":1,"op":"ping"}', '{"id":2,"op":"ping"}']
        assert not link.resolve(Pong(ref=99)), "nobody waits for ref 99"
        assert link.resolve(Pong(ref=2))
        assert isinstance(await second, Pong)
        assert link.resolve(Error(ref=1, code=ErrorCode.RATE_LIMITED, detail="slow down"))
        with pytest.raises(RequestRejectedError, match="rate_limited"):
            await first
        third = asyncio.ensure_future(link.request(PingOp(op="ping")))
        await asyncio.sleep(0)
        link.close("gone")
        with pytest.raises(NotConnectedError, match="gone"):
            await third
        with pytest.raises(NotConnectedError):
            await link.send(PingOp(op="ping"))
        assert not link.resolve(Ack(ref=3))

    asyncio.run(scenario())


def test_each_session_buffer_has_its_own_key() -> None:
    # The consumer is cached per key: two sessions (or two AppTests sharing a session id) never share one.
    assert len(SessionBuffer().key) == 32 and SessionBuffer().key != SessionBuffer().key
