"""What a chart is sent after its first drawing (only the points it lacks), and the view a link keeps:
paused windows, channels and series. Pure pieces: no Streamlit, no network."""

import json

import numpy as np

from dashboard.channel_buffer import ChannelBuffer
from dashboard.chart import ChartFeed, ChartMarker
from dashboard.panel import Panel, take_panel
from dashboard.selection import Selection
from dashboard.windows import TimeRange, View
from tests.chart_model import apply_message

T0 = 1_800_000_000.0
WINDOW = 300.0


def buffer_with(count: int, rate: float = 10.0, start: float = T0) -> ChannelBuffer:
    buffer = ChannelBuffer("data:x")
    for i in range(count):
        ts = start + i / rate
        buffer.append(ts, {"a": float(i), "b": float(-i)})
    return buffer


def panel_at(buffer: ChannelBuffer, now: float, series: list[str] | None = None) -> Panel:
    return take_panel(buffer, "data:x", series, TimeRange(now - WINDOW, now), None, now)


def test_a_drawn_chart_gets_only_new_points_and_ends_up_with_what_a_full_drawing_has() -> None:
    buffer = buffer_with(100)
    feed = ChartFeed()
    now = T0 + 10
    panel = panel_at(buffer, now)
    first = feed.message("k", panel, panel.traces, fixed=False)
    assert "base" not in first and len(first["x"]) == 100
    held = first
    sizes = []
    for tick in range(1, 6):
        for i in range(10):
            ts = now + (tick - 1) + (i + 1) / 10
            buffer.append(ts, {"a": float(1000 + tick * 10 + i), "b": 0.0})
        panel = panel_at(buffer, now + tick)
        sent = feed.message("k", panel, panel.traces, fixed=False)
        assert sent["base"] == held["version"] and len(sent["x"]) == 10
        sizes.append(len(json.dumps(sent)))
        held = apply_message(held, sent)
    full = ChartFeed().message("k", panel, panel.traces, fixed=False)
    assert held["x"] == full["x"]
    assert [s["mid"] for s in held["series"]] == [s["mid"] for s in full["series"]]
    assert max(sizes) * 5 < len(json.dumps(full)), "an append is a small part of a full drawing"


def test_nothing_new_keeps_the_version_and_a_new_marker_does_not() -> None:
    buffer = buffer_with(50)
    feed = ChartFeed()
    panel = panel_at(buffer, T0 + 10)
    first = feed.message("k", panel, panel.traces, fixed=False)
    again = feed.message("k", panel, panel.traces, fixed=False)
    assert again["version"] == first["version"] and again["x"] == []
    marker = ChartMarker(x=(T0 + 1) * 1000, level="error", color="#f00", label="!", text="<b>x</b>")
    marked = feed.message("k", panel, panel.traces, fixed=False, markers=[marker])
    assert marked["version"] == first["version"] + 1 and marked["markers"] == [marker]


def test_another_series_pick_a_fixed_range_or_a_forgotten_chart_get_a_full_drawing() -> None:
    buffer = buffer_with(50)
    feed = ChartFeed()
    panel = panel_at(buffer, T0 + 10)
    feed.message("k", panel, panel.traces, fixed=False)
    only_a = panel_at(buffer, T0 + 10, ["a"])
    assert "base" not in feed.message("k", only_a, only_a.traces, fixed=False)
    assert "base" not in feed.message("k", only_a, only_a.traces, fixed=True)
    assert "base" in feed.message("k", only_a, only_a.traces, fixed=True)
    feed.forget("k")
    assert "base" not in feed.message("k", only_a, only_a.traces, fixed=True)


def test_appends_keep_to_what_the_pixels_can_show() -> None:
    """A fast channel: 1000 points a second on a full 5-minute chart of 2000 points is far more than the
    second's share of the chart's width; the append is decimated to about that share, spikes kept."""
    buffer = buffer_with(3000, rate=1000.0)
    feed = ChartFeed()
    panel = panel_at(buffer, T0 + 3)
    assert len(feed.message("k", panel, panel.traces, fixed=False)["x"]) <= 2000
    for i in range(1000):
        buffer.append(T0 + 3 + i / 1000, {"a": 1e6 if i == 500 else 0.0, "b": 0.0})
    panel = panel_at(buffer, T0 + 4)
    sent = feed.message("k", panel, panel.traces, fixed=False)
    # What room the first drawing left (its decimation kept somewhat under 2000 rows) and the second's share.
    assert len(sent["x"]) < 1000 / 4
    assert 1e6 in sent["series"][0]["mid"]


def test_sliding_charts_drop_rows_before_the_window() -> None:
    panel = panel_at(buffer_with(10), T0 + 1)
    sent = ChartFeed().message("k", panel, panel.traces, fixed=False)
    assert sent["keep_from"] == (T0 + 1 - WINDOW) * 1000
    assert ChartFeed().message("k", panel, panel.traces, fixed=True)["keep_from"] is None


def test_a_paused_window_is_a_fixed_range_in_the_link() -> None:
    paused = View("1h").paused(T0)
    assert not paused.sliding and paused.span(T0 + 999) == TimeRange(T0 - 3600, T0)
    assert paused.params() == {"window": "1h", "paused": "2027-01-15T08:00:00Z"}
    assert View.from_params(paused.params()) == paused
    assert paused.key != View("1h").key and paused.paused(None) == View("1h")
    broken = View.from_params({"window": "1h", "paused": "soon"})
    assert broken == View("1h") and "paused" in broken.problems[0]


def test_channels_and_series_round_trip_through_the_link_and_bad_ones_are_named() -> None:
    selection = Selection.of(["data:b", "data:a"], {"data:a": ["temp", "hum"], "data:b": []})
    params = selection.params()
    assert params == {"channel": ["data:b", "data:a"], "series": ["data:a/temp", "data:a/hum"]}
    again = Selection.from_params(params)
    assert (
        again == selection
        and again.series_of("data:a") == ["temp", "hum"]
        and again.series_of("data:b") == []
    )
    bad = Selection.from_params(
        {"channel": ["chat:x", "data:ok", "nope"], "series": ["data:ok/<b>", "notify:n/v", "data:ok/v"]}
    )
    assert bad.channels == ("data:ok",) and bad.series == (("data:ok", ("v",)),)
    assert len(bad.problems) == 4 and all("`" in problem for problem in bad.problems)


def test_markers_and_values_travel_as_json() -> None:
    panel = panel_at(buffer_with(3), T0 + 1)
    marker = ChartMarker(x=T0 * 1000, level="info", color="#00f", label="i", text="a\nb")
    sent = ChartFeed().message("k", panel, panel.traces, fixed=False, markers=[marker])
    assert json.loads(json.dumps(sent))["markers"] == [marker]
    assert np.isfinite(sent["x"]).all()
