"""The stat, gauge, bar and table panels: their HTML (pure) and what Streamlit shows when a script draws
each with sample numbers (``AppTest``): values with units and decimals, threshold colours, and hostile
names shown as text, never as HTML."""

import html
import re

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.board import BarSpec, GaugeSpec, StatSpec, Threshold
from dashboard.stats import SeriesStats
from dashboard.widget_html import DEFAULT_COLOR, StatsRow, bar_html, gauge_html, stat_html, stats_html

HOSTILE = "<img src=x onerror=alert(1)>"
RED, ORANGE = "#d62728", "#ff7f0e"
HOT = (Threshold(value=24.5, color=ORANGE), Threshold(value=26, color=RED))


def now(value: float | None, low: float | None = None, high: float | None = None) -> SeriesStats:
    if value is None:
        return SeriesStats(0, None, None, None, None, 0.0)
    return SeriesStats(50, value, 1.0, value if low is None else low, value if high is None else high, 2.5)


def test_stat_shows_value_unit_and_threshold_colour() -> None:
    spec = StatSpec(channel="data:sensors", series=("temperature_c",), unit="°C", decimals=1, thresholds=HOT)
    body = stat_html(spec, {"temperature_c": now(25.04)})
    assert "25.0 °C" in body
    assert f"color:{ORANGE}" in body
    assert "data:sensors · temperature_c" in body, "without a title, the heading says what is shown"
    cool = stat_html(spec, {"temperature_c": now(20.0)})
    assert "20.0 °C" in cool and "color:inherit" in cool and ORANGE not in cool


def test_a_named_series_without_data_shows_n_a() -> None:
    spec = StatSpec(channel="data:sensors", series=("gone",), title="Gone")
    assert "n/a" in stat_html(spec, {})
    assert "no series yet" in stat_html(StatSpec(channel="data:x"), {})


def test_hostile_text_is_escaped_everywhere() -> None:
    """Series names, titles and units from a file or a publisher reach the page as text."""
    stats = {HOSTILE: now(30.0)}
    bodies = (
        stat_html(StatSpec(channel="data:x", title=HOSTILE, unit="<b>u</b>"), stats),
        gauge_html(GaugeSpec(channel="data:x", title=HOSTILE, unit="<b>u</b>"), stats),
        bar_html(BarSpec(channel="data:x", title=HOSTILE, unit="<b>u</b>"), stats),
    )
    for body in bodies:
        assert "<img" not in body and "<b>" not in body
        assert html.escape(HOSTILE) in body
        assert "30 &lt;b&gt;u&lt;/b&gt;" in body


def test_gauge_fill_band_and_limits() -> None:
    spec = GaugeSpec(channel="data:x", series=("h",), unit="%", decimals=0, min=0, max=200, thresholds=HOT)
    body = gauge_html(spec, {"h": now(50.0)})
    assert "width:25.00%" in body, "50 of 0..200 fills a quarter"
    assert "50%" in body and "0%" in body and "200%" in body
    assert f"background:{RED};opacity:0.25" in body, "threshold bands behind the fill"
    assert 'role="meter" aria-valuemin="0" aria-valuemax="200" aria-valuenow="50"' in body
    over = gauge_html(spec, {"h": now(500.0)})
    assert "width:100.00%" in over and "500%" in over, "clamped fill, true value"
    assert f'background:{RED}"' in over


def test_bars_share_one_scale_from_zero() -> None:
    spec = BarSpec(channel="data:cpu", unit="%", decimals=1, thresholds=(Threshold(value=85, color=RED),))
    body = bar_html(spec, {"user": now(90.0), "system": now(45.0), "idle": now(None)})
    assert re.findall(r"left:([0-9.]+)%;width:([0-9.]+)%", body) == [
        ("0.00", "100.00"),
        ("0.00", "50.00"),
        ("0.00", "0.00"),
    ]
    assert "90.0%" in body and "45.0%" in body and "n/a" in body
    assert f"background:{RED}" in body and f"background:{DEFAULT_COLOR}" in body


def test_negative_bars_go_left_of_zero() -> None:
    body = bar_html(BarSpec(channel="data:x"), {"down": now(-50.0), "up": now(150.0)})
    assert re.findall(r"left:([0-9.]+)%;width:([0-9.]+)%", body) == [("0.00", "25.00"), ("25.00", "75.00")]


def cells(body: str) -> list[list[str]]:
    """The statistics table's rows as text, header first."""
    return [
        [html.unescape(cell) for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row)]
        for row in re.findall(r"<tr>(.*?)</tr>", body)
    ]


def test_stats_table_rounds_without_decimals_and_writes_n_a_for_missing_values() -> None:
    rows = [StatsRow("p", now(1013.257, 1009.91, 1015.5), "hPa"), StatsRow("t", now(None))]
    assert cells(stats_html(rows)) == [
        ["series", "now", "min", "max", "rate", "unit"],
        ["p", "1,013", "1,010", "1,016", "2.5/s", "hPa"],
        ["t", "n/a", "n/a", "n/a", "0.0/s", ""],
    ]
    assert cells(stats_html(rows, decimals=2))[1][1] == "1,013.26"


def widgets_script(hostile: str) -> None:
    """Each panel type and a stats table with sample numbers: the script AppTest runs."""
    from dashboard.board import BarSpec, GaugeSpec, StatSpec, TableSpec, Threshold
    from dashboard.stats import SeriesStats
    from dashboard.widgets import StatsRow, stats_table, widget_panel

    hot = (Threshold(value=24.5, color="orange"), Threshold(value=26, color="red"))
    sensors = {
        "temperature_c": SeriesStats(100, 26.48, 1.0, 19.2, 26.5, 2.0),
        "pressure_hpa": SeriesStats(100, 1013.251, 1.0, 1009.9, 1015.5, 2.0),
        hostile: SeriesStats(10, 42.0, 1.0, 40.0, 44.0, 1.0),
    }
    temperature = {"temperature_c": sensors["temperature_c"]}
    widget_panel(
        StatSpec(channel="data:sensors", series=("temperature_c",), unit="°C", decimals=1, thresholds=hot),
        temperature,
    )
    widget_panel(
        GaugeSpec(
            channel="data:sensors", series=("temperature_c",), unit="°C", min=10, max=30, thresholds=hot
        ),
        temperature,
    )
    widget_panel(BarSpec(channel="data:sensors", title="Now", decimals=0), sensors)
    units = {"temperature_c": "°C", "pressure_hpa": "hPa"}
    widget_panel(TableSpec(channel="data:sensors", units=units, decimals=2, thresholds=hot), sensors)
    stats_table([StatsRow(name, stats) for name, stats in sensors.items()])


@pytest.fixture(scope="module")
def app() -> AppTest:
    at = AppTest.from_function(widgets_script, args=(HOSTILE,), default_timeout=30)
    at.run()
    assert not at.exception, at.exception
    return at


def test_each_widget_is_one_element(app: AppTest) -> None:
    """Stat, gauge, bar and table are one HTML element each, and so is the stats table: no tiles."""
    assert len(app.html) == 5 and not app.dataframe and not app.metric


def test_app_stat_and_gauge_show_value_unit_decimals_and_colour(app: AppTest) -> None:
    stat, gauge = app.html[0].proto.body, app.html[1].proto.body
    assert "26.5 °C" in stat and f"color:{RED}" in stat
    assert "26.48 °C" in gauge and "10 °C" in gauge and "30 °C" in gauge
    assert "width:82.40%" in gauge, "26.48 of 10..30"
    assert f"background:{RED}" in gauge


def test_app_bar_shows_hostile_name_as_text(app: AppTest) -> None:
    bar = app.html[2].proto.body
    assert "<img" not in bar and html.escape(HOSTILE) in bar
    assert ">1,013<" in bar and ">26<" in bar and ">42<" in bar, "decimals: 0"


def test_app_table_columns_values_and_threshold_colour(app: AppTest) -> None:
    body = app.html[3].proto.body
    assert "data:sensors" in body
    rows = cells(body)
    assert rows[0] == ["series", "now", "min", "max", "rate", "unit"]
    assert [row[0] for row in rows[1:]] == ["temperature_c", "pressure_hpa", HOSTILE], "names as text"
    assert "<img" not in body and html.escape(HOSTILE) in body
    assert [row[5] for row in rows[1:]] == ["°C", "hPa", ""]
    assert [row[1] for row in rows[1:]] == ["26.48", "1,013.25", "42.00"]
    assert body.count(f"color:{RED}") == 3, "26.48, 1013 and 42 are all past the red threshold (26)"


def test_app_stats_table_replaces_the_metric_tiles(app: AppTest) -> None:
    """The Live page's per-chart numbers: one table, rounded to about four significant digits, no
    colours."""
    rows = cells(app.html[4].proto.body)
    assert [row[1] for row in rows[1:]] == ["26.48", "1,013", "42"]
    assert [row[4] for row in rows[1:]] == ["2.0/s", "2.0/s", "1.0/s"]
    assert "color:#" not in app.html[4].proto.body
