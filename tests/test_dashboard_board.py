"""The dashboard file: YAML read into a typed board, every mistake named with its line, valid panels kept
beside bad ones; the default board; the setting that names the file. No Streamlit."""

import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from dashboard.board import (
    Board,
    GaugeSpec,
    LoadedBoard,
    StatSpec,
    TableSpec,
    Threshold,
    TimeseriesSpec,
    default_board,
    load_board,
    parse_board,
    threshold_color,
)
from dashboard.settings import DashboardSettings
from dashboard.yaml_lines import read_yaml

ROOT = Path(__file__).resolve().parent.parent

EXAMPLE = ROOT / "dashboard" / "examples" / "pulseboard.yaml"


def parse(text: str) -> LoadedBoard:
    return parse_board(textwrap.dedent(text).lstrip("\n"))


def problems(text: str) -> list[str]:
    return [str(problem) for problem in parse(text).problems]


def board_of(text: str) -> Board:
    loaded = parse(text)
    assert loaded.board is not None, loaded.problems
    return loaded.board


def test_the_example_file_parses_cleanly_with_every_panel_type() -> None:
    """The file the README shows (dashboard/examples) has no problem and uses every panel type."""
    loaded = load_board(EXAMPLE)
    assert loaded.problems == ()
    assert loaded.board is not None
    assert {panel.type for panel in loaded.board.panels} == {"timeseries", "stat", "gauge", "bar", "table"}
    assert loaded.board.channels == ["data:sensors", "data:cpu", "data:network"]


def test_the_readme_example_is_the_example_file() -> None:
    """The README's complete example is the committed file, word for word."""
    readme = (ROOT / "README.md").read_text()
    assert EXAMPLE.read_text() in readme


def test_a_valid_file_gives_typed_frozen_specs() -> None:
    board = board_of("""
        title: Plant
        rows:
          - title: Sensors
            panels:
              - type: timeseries
                channel: data:sensors
                axis: small-multiples
                units: {pressure_hpa: hPa}
                unit: "°C"
              - type: gauge
                channel: data:sensors
                series: [humidity_pct]
                min: 0
                max: 100
                decimals: 0
                width: 2
                thresholds:
                  - {value: 30, color: green}
                  - {value: 60, color: "#F80"}
    """)
    assert board.title == "Plant"
    (row,) = board.rows
    assert row.title == "Sensors"
    chart, gauge = row.panels
    assert isinstance(chart, TimeseriesSpec) and chart.axis == "small-multiples"
    assert chart.unit_of("pressure_hpa") == "hPa" and chart.unit_of("temperature_c") == "°C"
    assert isinstance(gauge, GaugeSpec) and (gauge.min, gauge.max, gauge.width) == (0.0, 100.0, 2.0)
    assert gauge.thresholds == (Threshold(value=30, color="#2ca02c"), Threshold(value=60, color="#ff8800"))
    with pytest.raises(ValueError, match="frozen"):
        gauge.decimals = 3  # type: ignore[misc]


def test_defaults_of_a_minimal_panel() -> None:
    """Only a channel is required: a time series of every series, one axis per unit."""
    (panel,) = board_of("rows: [{panels: [{channel: data:cpu}]}]").panels
    assert isinstance(panel, TimeseriesSpec)
    assert (panel.series, panel.axis, panel.decimals, panel.width) == ((), "per-unit", None, 1.0)
    assert panel.shown_series(["a", "b"]) == ["a", "b"]
    assert panel.heading == "data:cpu"


def test_a_syntax_error_names_its_line() -> None:
    loaded = parse("""
        title: x
        rows:
          - panels:
              - type: stat
             channel: data:cpu
    """)
    assert loaded.board is None
    assert [str(problem) for problem in loaded.problems] == [
        "line 5: this line's indentation does not match the lines above it"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("title: x\nfoo\nrows: []\n", "line 2: expected 'key: value' here, but there is no ':'"),
        ('title: "x\nrows: []\n', "line 1: a quote opened here is never closed"),
        ("title: x\nrows: [\n  {channel: data:x}\n", "line 2: a '[' or '{' opened here is never closed"),
        ("title: x\n\trows: []\n", "line 2: a tab: YAML indents with spaces only"),
        ("a: &x 1\nb: *x\n", "line 2: aliases (*name) are not supported: write the value out"),
        ("title: !!python/object:os.system x\n", "line 1: tag !!python/object:os.system is not supported"),
        ("---\ntitle: a\n---\ntitle: b\n", "line 3: a second document starts here (---)"),
        (
            "rows:\n  - panels:\n      - {channel: data:x, thresholds: [{value: 1, color: #f00}]}\n  - x\n",
            "line 3: a colour written #... after a space starts a comment: put it in quotes",
        ),
    ],
)
def test_each_kind_of_syntax_error_points_at_the_line_to_fix(text: str, expected: str) -> None:
    loaded = parse_board(text)
    assert loaded.board is None
    assert len(loaded.problems) == 1
    assert str(loaded.problems[0]).startswith(expected), loaded.problems


def test_yaml_scalars_follow_the_core_schema() -> None:
    """``no`` and ``on`` stay text, ``010`` is ten, ``1e3`` a number; keys are always text as written."""
    document = read_yaml("a: no\nb: [on, off, true]\nc: 010\nd: 1e3\ne: 0x1F\nf: ~\n1: x\n")
    assert document.value == {
        "a": "no",
        "b": ["on", "off", True],
        "c": 10,
        "d": 1000.0,
        "e": 31,
        "f": None,
        "1": "x",
    }
    assert document.line_of(("b", 2)) == 2 and document.line_of(("zz", 4)) == 1


BROKEN = """
    title: Broken
    rows:
      - title: First
        panels:
          - type: pie
            channel: data:cpu
          - type: stat
            series: [user]
          - type: stat
            channel: chat:lobby
          - type: gauge
            channel: data:sensors
            thresholds:
              - {value: 90, color: reddish}
              - {value: high, color: red}
          - type: table
            channel: data:kept
            title: First kept
      - panels:
          - type: timeseries
            channel: data:sensors
            axis: log
            colour: red
          - type: bar
            channel: data:also.kept
"""


def test_several_problems_at_once_each_with_its_line_and_the_valid_panels_kept() -> None:
    """One bad panel sets aside only itself: every problem is listed, in line order, and the rest is
    drawn."""
    loaded = parse(BROKEN)
    assert [str(problem) for problem in loaded.problems] == [
        "line 5: panel type 'pie' is not one of timeseries, stat, gauge, bar, table",
        "line 7: stat panel has no 'channel' (a data: channel, e.g. data:sensors)",
        "line 10: channel 'chat:lobby' is not a data: channel; panels show data: channels",
        "line 14: colour 'reddish' is not CSS hex (#rgb or #rrggbb) nor one of green, yellow, orange, red, "
        "blue, purple, grey, gray",
        "line 15: 'value' must be a number, got 'high'",
        "line 22: 'axis' must be one of per-unit, small-multiples, got 'log'",
        "line 23: unknown key 'colour' for a timeseries panel (expected type, channel, series, title, unit, "
        "units, decimals, thresholds, width, axis)",
    ]
    assert loaded.board is not None
    assert [[panel.channel for panel in row.panels] for row in loaded.board.rows] == [
        ["data:kept"],
        ["data:also.kept"],
    ]
    assert loaded.board.rows[0].title == "First"
    assert isinstance(loaded.board.rows[0].panels[0], TableSpec)


@pytest.mark.parametrize(
    ("panel", "expected"),
    [
        (
            "{channel: data:x, thresholds: [{value: 90, color: red}, {value: 80, color: red}]}",
            "line 3: thresholds must go up: 80 comes after 90",
        ),
        (
            "{channel: data:x, thresholds: [{value: .inf, color: red}]}",
            "line 3: 'value' must be a number (finite)",
        ),
        (
            '{channel: data:x, thresholds: [{value: "90", color: red}]}',
            "line 3: 'value' must be a number, got '90'",
        ),
        (
            "{channel: data:x, thresholds: [{value: true, color: red}]}",
            "line 3: 'value' must be a number, got true",
        ),
        ("{channel: data:x, thresholds: [{color: red}]}", "line 3: threshold has no 'value'"),
        ("{channel: data:x, thresholds: [{value: 1, color: red, alpha: 1}]}", "line 3: unknown key 'alpha'"),
        (
            "{channel: data:x, thresholds: [{value: 1, color: '#12345'}]}",
            "line 3: colour '#12345' is not CSS hex",
        ),
        (
            "{channel: data:x, thresholds: [{value: 1, color: 'red; x: url(y)'}]}",
            "line 3: colour 'red; x: url(y)'",
        ),
        ("{channel: data:x, thresholds: [{value: 1, color: ~}]}", "line 3: 'color' is empty"),
        (
            "{type: gauge, channel: data:x, min: 10, max: 5}",
            "line 3: gauge 'max' (5) must be above 'min' (10)",
        ),
        ("{channel: data:x, decimals: 2.5}", "line 3: 'decimals' must be a whole number, got 2.5"),
        ("{channel: data:x, decimals: 11}", "line 3: 'decimals' must be at most 10, got 11"),
        ("{channel: data:x, width: 0}", "line 3: 'width' must be above 0, got 0"),
        ("{channel: data:x, series: user}", "line 3: 'series' must be a list, e.g. series: [a, b]"),
        (
            "{channel: data:x, series: [7]}",
            "line 3: each item of 'series' must be text, got 7 (put it in quotes)",
        ),
        ("{channel: data:x, thresholds: [90]}", "line 3: each item of 'thresholds' must be a mapping like"),
        ("{channel: data:x, series: ['a b']}", "line 3: series name 'a b' can only have letters"),
        (
            "{channel: data:x, units: {a: 5}}",
            "line 3: the unit of 'a' must be text, got 5 (put it in quotes)",
        ),
        ("{channel: data:x, units: [hPa]}", "line 3: 'units' must be a mapping"),
        ("{channel: 'data:bad name'}", "line 3: channel name must match"),
        ("{channel: cpu}", "line 3: channel 'cpu' has no namespace; use data:, chat: or notify:"),
        (
            "{type: [stat], channel: data:x}",
            "line 3: panel 'type' must be one of timeseries, stat, gauge, bar, table, got a list",
        ),
        ("{type: gauge, channel: data:x, axis: per-unit}", "line 3: unknown key 'axis' for a gauge panel"),
        ("{channel: data:x, title: ''}", "line 3: 'title' must be 1 to 200 characters"),
        ("[data:x]", "line 3: a panel must be a mapping"),
    ],
)
def test_each_kind_of_bad_panel_is_named_with_its_line(panel: str, expected: str) -> None:
    text = f"rows:\n  - panels:\n      - {panel}\n      - {{channel: data:fine}}\n"
    loaded = parse_board(text)
    assert loaded.board is not None and [p.channel for p in loaded.board.panels] == ["data:fine"]
    assert [str(problem) for problem in loaded.problems if str(problem).startswith(expected)], loaded.problems


def test_a_problem_in_block_style_points_at_its_own_line() -> None:
    """A nested value's line is its own, not its panel's: the colour on line 9, the missing value's
    threshold on line 10."""
    assert problems("""
        rows:
          - panels:
              - type: stat
                channel: data:x
                thresholds:
                  - value: 1
                    color: red
                  - value: 2
                    color: beige
                  - color: red
    """) == [
        "line 9: colour 'beige' is not CSS hex (#rgb or #rrggbb) nor one of green, yellow, orange, red, "
        "blue, purple, grey, gray",
        "line 10: threshold has no 'value'",
    ]


def test_a_bare_hex_colour_in_block_style_is_explained() -> None:
    """``color: #f00`` is a comment after ``color:``: the message says to quote it."""
    assert problems("""
        rows:
          - panels:
              - channel: data:x
                thresholds:
                  - value: 1
                    color: #f00
    """) == ["line 6: 'color' is empty: write a hex colour in quotes (after a space, # starts a comment)"]


def test_a_duplicate_key_sets_its_panel_aside_and_is_named() -> None:
    loaded = parse("""
        rows:
          - panels:
              - channel: data:a
                channel: data:b
              - channel: data:c
    """)
    assert [str(problem) for problem in loaded.problems] == [
        "line 4: key 'channel' appears twice in one mapping (first on line 3); the first is used"
    ]
    assert loaded.board is not None and [panel.channel for panel in loaded.board.panels] == ["data:c"]


@pytest.mark.parametrize(
    ("text", "expected", "has_board"),
    [
        ("", "line 1: the file is empty", False),
        ("- a\n- b\n", "line 1: expected a mapping with 'title' and 'rows'", False),
        ("title: x\n", "line 1: 'rows' is missing", False),
        ("title: x\nrows: 3\n", "line 2: 'rows' must be a list", False),
        ("title: [x]\nrows: []\n", "line 1: 'title' must be text", True),
        ("rows: []\ncolumns: 2\n", "line 2: unknown key 'columns' at the top of the file", True),
        ("rows:\n  - 3\n", "line 2: a row must be a mapping", True),
        ("rows:\n  - title: x\n", "line 2: 'panels' is missing", True),
    ],
)
def test_a_bad_frame_is_named(text: str, expected: str, has_board: bool) -> None:
    loaded = parse_board(text)
    assert (loaded.board is not None) == has_board
    assert str(loaded.problems[0]).startswith(expected), loaded.problems


def test_a_missing_or_unreadable_file_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    missing = load_board(tmp_path / "nope.yaml")
    assert (
        missing.board is None and str(missing.problems[0]) == f"dashboard file {tmp_path}/nope.yaml not found"
    )
    assert missing.problems[0].line is None
    folder = load_board(tmp_path)
    assert folder.board is None and "could not be read" in str(folder.problems[0])
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"title: x\nrows: []\n\xff\xfe\n")
    assert [str(problem) for problem in load_board(binary).problems] == ["line 3: the file is not UTF-8 text"]
    huge = tmp_path / "huge.yaml"
    huge.write_bytes(b"#" * (2 << 20))
    assert "larger than" in str(load_board(huge).problems[0])


def test_an_edited_file_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "board.yaml"
    path.write_text("rows: [{panels: [{channel: data:a}]}]\n")
    first = load_board(path).board
    assert first is not None and first.channels == ["data:a"]
    path.write_text("rows: [{panels: [{channel: data:b}]}]\n")
    second = load_board(path).board
    assert second is not None and second.channels == ["data:b"]


def test_thresholds_colour_a_value_from_their_value_up() -> None:
    thresholds = (Threshold(value=10, color="#00ff00"), Threshold(value=20, color="#ff0000"))
    assert threshold_color(thresholds, 9.99) is None
    assert threshold_color(thresholds, 10) == "#00ff00"
    assert threshold_color(thresholds, 19.5) == "#00ff00"
    assert threshold_color(thresholds, 20) == "#ff0000"
    assert threshold_color(thresholds, 1e9) == "#ff0000"
    assert threshold_color(thresholds, None) is None
    assert threshold_color((), 5) is None
    spec = StatSpec(channel="data:x", thresholds=thresholds)
    assert spec.color_of(15) == "#00ff00"


def test_default_board_is_one_time_series_per_data_channel() -> None:
    board = default_board(["data:cpu", "notify:alerts", "data:sensors"])
    assert [row.panels for row in board.rows] == [
        (TimeseriesSpec(channel="data:cpu"),),
        (TimeseriesSpec(channel="data:sensors"),),
    ]
    assert board.channels == ["data:cpu", "data:sensors"]


def test_the_dashboard_file_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PULSE_DASHBOARD_FILE", raising=False)
    assert DashboardSettings(_env_file=None).dashboard_file == ""
    monkeypatch.setenv("PULSE_DASHBOARD_FILE", " deploy/board.yaml ")
    assert DashboardSettings(_env_file=None).dashboard_file == "deploy/board.yaml"


def test_nesting_too_deep_is_a_problem_not_a_crash() -> None:
    assert [str(problem) for problem in parse_board("[" * 20_000).problems] == [
        "line 1: the file nests lists or mappings too deeply"
    ]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_text_gives_a_board_or_problems_never_an_exception(text: str) -> None:
    loaded = parse_board(text)
    assert loaded.board is not None or loaded.problems


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_the_example_with_any_line_changed_still_parses_without_raising(data: st.DataObject) -> None:
    """A typo anywhere: the other panels stay, and every problem has a line inside the file."""
    lines = EXAMPLE.read_text().splitlines()
    index = data.draw(st.integers(0, len(lines) - 1))
    lines[index] = data.draw(st.sampled_from(["", "  x", "- ", "]", lines[index][::-1], lines[index] + " {"]))
    loaded = parse_board("\n".join(lines))
    assert all(problem.line is not None and 1 <= problem.line <= len(lines) for problem in loaded.problems)


PANEL_KEYS = [
    "type",
    "channel",
    "series",
    "title",
    "unit",
    "units",
    "decimals",
    "thresholds",
    "width",
    "axis",
]
PANEL_KEYS += ["min", "max", "value", "color"]
LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["stat", "gauge", "data:x", "chat:x", "red", "#f00", "per-unit", "a", ""]),
    st.text(max_size=8),
)
ANY_VALUE = st.recursive(
    LEAVES,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(PANEL_KEYS) | st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(PANEL_KEYS), ANY_VALUE, max_size=6), max_size=4))
def test_any_panels_give_valid_panels_or_problems_never_an_exception(panels: list[dict[str, object]]) -> None:
    """Panels of any shape: each is kept, or the file has problems; nothing raises."""
    loaded = parse_board(yaml.safe_dump({"rows": [{"panels": panels}]}))
    assert loaded.board is not None
    if not loaded.problems:
        assert len(loaded.board.panels) == len(panels)
    assert len(loaded.board.panels) <= len(panels)
