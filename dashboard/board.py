"""The dashboard file ("dashboards as code"): rows of panels written in YAML, read into a typed ``Board``.

Why YAML and not TOML: every problem must name its line, the syntax errors and the semantic ones ("line 7:
panel type 'pie' is not one of ..."). PyYAML's composed nodes carry the position of every key and item,
so a validation error's location maps straight to a line (``dashboard.yaml_lines``). ``tomllib`` gives a
line for syntax errors only (inside its message text) and nothing for values, so the lines of semantic
errors would have to be found again by re-scanning the text. YAML's traps for hand-written files are
closed in ``dashboard.yaml_lines`` (core-schema scalars, so ``no`` stays text; no aliases; duplicate keys
reported).

Reading never raises. ``load_board`` and ``parse_board`` give a ``LoadedBoard``: the ``Board`` built from
every valid panel, and a ``Problem`` (line and plain words) for each mistake. One bad panel only sets that
panel aside; a file that cannot be read or parsed at all gives no board, only its problem, and the page
falls back to ``default_board``.

The specs are pydantic models, frozen: one parsed file is shared read-only by every session.
"""

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from dashboard.yaml_lines import YamlDocument, YamlPath, YamlSyntaxError, read_yaml
from shared.channels import Channel, ChannelError, Namespace, is_valid_name

PANEL_TYPES = ("timeseries", "stat", "gauge", "bar", "table")
AXIS_MODES = ("per-unit", "small-multiples")
NAMED_COLORS: Mapping[str, str] = {
    "green": "#2ca02c",
    "yellow": "#e6b400",
    "orange": "#ff7f0e",
    "red": "#d62728",
    "blue": "#1f77b4",
    "purple": "#9467bd",
    "grey": "#7f7f7f",
    "gray": "#7f7f7f",
}
"""The colour names a file may use besides CSS hex: a small set that reads well on light and dark themes."""
MAX_FILE_BYTES = 1 << 20
"""A dashboard file is a few kilobytes; a bigger one is a mistake (a wrong path), not a dashboard."""
MAX_DECIMALS = 10
MAX_THRESHOLDS = 20
DEFAULT_TITLE = "Pulseboard"
_HEX_DIGITS = frozenset("0123456789abcdef")
# A validator's error may point below the field it checks (a threshold's value, a gauge's max): it puts
# the rest of the path in its context under this key.
_AT = "at"


def _css_color(text: object) -> object:
    """``#rgb``, ``#rrggbb`` or a name from ``NAMED_COLORS``, as ``#rrggbb``: safe to put in a style."""
    if not isinstance(text, str):
        return text  # the str type check reports it
    lowered = text.strip().lower()
    if lowered in NAMED_COLORS:
        return NAMED_COLORS[lowered]
    digits = lowered.removeprefix("#")
    if lowered.startswith("#") and len(digits) in (3, 6) and set(digits) <= _HEX_DIGITS:
        return "#" + (digits if len(digits) == 6 else "".join(digit * 2 for digit in digits))
    names = ", ".join(NAMED_COLORS)
    raise PydanticCustomError(
        "color",
        "colour {text} is not CSS hex (#rgb or #rrggbb) nor one of {names}",
        {"text": repr(text), "names": names},
    )


def _data_channel(text: str) -> str:
    try:
        channel = Channel.parse(text)
    except ChannelError as exc:
        raise PydanticCustomError("channel", "{reason}", {"reason": str(exc)}) from None
    if channel.namespace is not Namespace.DATA:
        raise PydanticCustomError(
            "channel",
            "channel {text} is not a data: channel; panels show data: channels",
            {"text": repr(text)},
        )
    return text


def _series_name(text: str) -> str:
    if not is_valid_name(text):
        raise PydanticCustomError(
            "series",
            "series name {text} can only have letters, digits, '_', '.' and '-' (1 to 64)",
            {"text": repr(text)},
        )
    return text


Color = Annotated[str, BeforeValidator(_css_color)]
"""A colour as ``#rrggbb`` (lower case) once validated."""
DataChannel = Annotated[str, AfterValidator(_data_channel)]
SeriesName = Annotated[str, AfterValidator(_series_name)]
Number = Annotated[float, Strict(), Field(allow_inf_nan=False)]
"""A number written as one: ``"90"`` in quotes is text, and text is not a number here."""
Text = Annotated[str, Field(min_length=1, max_length=200)]
Unit = Annotated[str, Field(min_length=1, max_length=32)]


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Threshold(_Spec):
    """From ``value`` up (to the next threshold), values take ``color``."""

    value: Number
    color: Color


class BasePanelSpec(_Spec):
    """What every panel type has: where its numbers come from and how they are written."""

    channel: DataChannel
    series: tuple[SeriesName, ...] = ()
    """The series shown, in this order; empty: every series of the channel."""
    title: Text | None = None
    unit: Unit | None = None
    """The unit of every series that ``units`` does not name."""
    units: Mapping[SeriesName, Unit] = Field(default_factory=dict)
    """Per-series units (``{pressure_hpa: hPa}``); read-only: the parsed file is shared."""
    decimals: Annotated[int, Strict(), Field(ge=0, le=MAX_DECIMALS)] | None = None
    """Digits after the point; None: about four significant digits."""
    thresholds: Annotated[tuple[Threshold, ...], Field(max_length=MAX_THRESHOLDS)] = ()
    """Ascending: a value takes the colour of the highest threshold at or below it (none below the first)."""
    width: Annotated[float, Strict(), Field(gt=0, le=12)] = 1.0
    """The panel's share of its row, relative to the other panels' widths."""

    @field_validator("thresholds")
    @classmethod
    def _ascending(cls, thresholds: tuple[Threshold, ...]) -> tuple[Threshold, ...]:
        for index in range(1, len(thresholds)):
            previous, value = thresholds[index - 1].value, thresholds[index].value
            if value <= previous:
                raise PydanticCustomError(
                    "threshold_order",
                    "thresholds must go up: {value} comes after {previous}",
                    {"value": f"{value:g}", "previous": f"{previous:g}", _AT: (index, "value")},
                )
        return thresholds

    @property
    def heading(self) -> str:
        """The title, or what the panel shows when it has none."""
        if self.title is not None:
            return self.title
        return f"{self.channel} · {', '.join(self.series)}" if self.series else self.channel

    def shown_series(self, available: Iterable[str]) -> list[str]:
        """The series the panel shows: those it names (present or not yet), else every ``available`` one."""
        return list(self.series) if self.series else list(available)

    def unit_of(self, series: str) -> str | None:
        return self.units.get(series, self.unit)

    def color_of(self, value: float | None) -> str | None:
        """The colour ``thresholds`` give ``value``; None below the first threshold, or without a value."""
        return threshold_color(self.thresholds, value)


class TimeseriesSpec(BasePanelSpec):
    type: Literal["timeseries"] = "timeseries"
    axis: Literal["per-unit", "small-multiples"] = "per-unit"
    """``per-unit``: one y-axis per unit (series without one grouped by magnitude, ``dashboard.axes``);
    ``small-multiples``: one small chart per series."""


class StatSpec(BasePanelSpec):
    type: Literal["stat"] = "stat"


class GaugeSpec(BasePanelSpec):
    type: Literal["gauge"] = "gauge"
    min: Number = 0.0
    max: Number = 100.0

    @model_validator(mode="after")
    def _range(self) -> Self:
        if self.min >= self.max:
            raise PydanticCustomError(
                "gauge_range",
                "gauge 'max' ({max}) must be above 'min' ({min})",
                {"min": f"{self.min:g}", "max": f"{self.max:g}", _AT: ("max",)},
            )
        return self


class BarSpec(BasePanelSpec):
    type: Literal["bar"] = "bar"


class TableSpec(BasePanelSpec):
    type: Literal["table"] = "table"


PanelSpec = Annotated[
    TimeseriesSpec | StatSpec | GaugeSpec | BarSpec | TableSpec, Field(discriminator="type")
]
WidgetSpec = StatSpec | GaugeSpec | BarSpec | TableSpec
"""The panel types ``dashboard.widgets`` draws (a time series is a chart)."""
_SPEC_OF_TYPE: Mapping[str, type[BasePanelSpec]] = {
    "timeseries": TimeseriesSpec,
    "stat": StatSpec,
    "gauge": GaugeSpec,
    "bar": BarSpec,
    "table": TableSpec,
}


class RowSpec(_Spec):
    title: Text | None = None
    panels: tuple[PanelSpec, ...]


class Board(_Spec):
    title: Text = DEFAULT_TITLE
    rows: tuple[RowSpec, ...] = ()

    @property
    def panels(self) -> list[PanelSpec]:
        return [panel for row in self.rows for panel in row.panels]

    @property
    def channels(self) -> list[str]:
        """Every channel a panel reads, once each, in the order of the panels."""
        return list(dict.fromkeys(panel.channel for panel in self.panels))


def threshold_color(thresholds: Sequence[Threshold], value: float | None) -> str | None:
    """The colour of the highest threshold at or below ``value`` (ascending ``thresholds``)."""
    if value is None or math.isnan(value):
        return None
    found = None
    for threshold in thresholds:
        if threshold.value > value:
            break
        found = threshold.color
    return found


def default_board(channels: Iterable[str], title: str = DEFAULT_TITLE) -> Board:
    """The layout without a file: one time series panel per ``data:`` channel, a row each, every series,
    one y-axis per unit or magnitude (``dashboard.axes.panel_axes`` groups them when drawn, from the
    values then on screen)."""
    rows = [RowSpec(panels=(TimeseriesSpec(channel=name),)) for name in channels if name.startswith("data:")]
    return Board(title=title, rows=tuple(rows))


@dataclass(frozen=True, slots=True)
class Problem:
    """A mistake in the dashboard file, for the page to show."""

    line: int | None
    """1-based; None for a file that could not be read."""
    message: str

    def __str__(self) -> str:
        return self.message if self.line is None else f"line {self.line}: {self.message}"


@dataclass(frozen=True, slots=True)
class LoadedBoard:
    board: Board | None
    """Every valid panel, in rows; None when the file could not be read or parsed at all."""
    problems: tuple[Problem, ...]
    """In line order; empty for a file without mistakes."""


def load_board(path: str | Path) -> LoadedBoard:
    """The dashboard file at ``path``, read now (cheap: a file that did not change is not parsed again)."""
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return _failed(None, f"dashboard file {path} not found")
    except OSError as exc:
        return _failed(None, f"dashboard file {path} could not be read: {exc.strerror or exc}")
    if len(data) > MAX_FILE_BYTES:
        return _failed(None, f"dashboard file {path} is larger than {MAX_FILE_BYTES // 1024} KiB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return _failed(data.count(b"\n", 0, exc.start) + 1, "the file is not UTF-8 text")
    return parse_board(text)


@lru_cache(maxsize=16)
def parse_board(text: str) -> LoadedBoard:
    """A dashboard file's text as a board and its problems (cached by text: the result is immutable)."""
    try:
        document = read_yaml(text)
    except YamlSyntaxError as exc:
        return _failed(exc.line, exc.reason)
    return _Reading(document).board()


def _failed(line: int | None, message: str) -> LoadedBoard:
    return LoadedBoard(None, (Problem(line, message),))


class _Reading:
    """One document's board and problems. The file's frame (title, rows, panels lists) is checked here;
    each panel by its pydantic model, whose errors are put into words with their lines."""

    def __init__(self, document: YamlDocument) -> None:
        self.document = document
        self.problems: list[Problem] = []
        # Duplicate keys: reported, and a panel holding one is set aside (its meaning is unsure).
        self.unsure: list[YamlPath] = []
        for issue in document.issues:
            self.problems.append(Problem(issue.line, issue.message))
            self.unsure.append(issue.path)

    def board(self) -> LoadedBoard:
        root = self.document.value
        if root is None:
            return _failed(1, "the file is empty: expected 'title' and 'rows' (see the README's example)")
        if not isinstance(root, dict):
            return _failed(1, "expected a mapping with 'title' and 'rows' at the top of the file")
        self._unknown_keys(root, (), ("title", "rows"), "the top of the file")
        title = self._text(root, (), "title") or DEFAULT_TITLE
        rows = self._list(root, (), "rows", required=True)
        if rows is None:
            return LoadedBoard(None, self._sorted())
        built = [self._row(row, ("rows", index)) for index, row in enumerate(rows)]
        board = Board(title=title, rows=tuple(row for row in built if row is not None))
        return LoadedBoard(board, self._sorted())

    def _row(self, row: object, path: YamlPath) -> RowSpec | None:
        if not isinstance(row, dict):
            self._problem(path, "a row must be a mapping with 'panels' (and an optional 'title')")
            return None
        self._unknown_keys(row, path, ("title", "panels"), "a row")
        title = self._text(row, path, "title")
        panels = self._list(row, path, "panels", required=True) or []
        specs = [self._panel(panel, (*path, "panels", index)) for index, panel in enumerate(panels)]
        kept = tuple(spec for spec in specs if spec is not None)
        return RowSpec(title=title, panels=kept) if kept else None

    def _panel(self, panel: object, path: YamlPath) -> BasePanelSpec | None:
        if not isinstance(panel, dict):
            self._problem(path, "a panel must be a mapping with 'type', 'channel' and more")
            return None
        kind = panel.get("type", "timeseries")
        if not isinstance(kind, str) or kind not in _SPEC_OF_TYPE:
            types = ", ".join(PANEL_TYPES)
            if isinstance(kind, str):
                self._problem((*path, "type"), f"panel type {kind!r} is not one of {types}")
            else:
                self._problem((*path, "type"), f"panel 'type' must be one of {types}, got {_shown(kind)}")
            return None
        model = _SPEC_OF_TYPE[kind]
        try:
            spec = model.model_validate(panel)
        except ValidationError as exc:
            for error in exc.errors():
                at = tuple(error.get("ctx", {}).get(_AT, ()))
                where = (*path, *error["loc"], *at)
                self._problem(where, _in_words(error, model, kind))
            return None
        if any(unsure[: len(path)] == path for unsure in self.unsure):
            return None
        return spec

    def _unknown_keys(
        self, mapping: dict[str, object], path: YamlPath, known: Sequence[str], where: str
    ) -> None:
        for key in mapping:
            if key not in known:
                self._problem((*path, key), f"unknown key '{key}' at {where} (expected {', '.join(known)})")

    def _text(self, mapping: dict[str, object], path: YamlPath, key: str) -> str | None:
        value = mapping.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not 0 < len(value) <= 200:
            self._problem((*path, key), f"'{key}' must be text of 1 to 200 characters")
            return None
        return value

    def _list(
        self, mapping: dict[str, object], path: YamlPath, key: str, *, required: bool
    ) -> list[object] | None:
        if key not in mapping:
            if required:
                self._problem(path, f"'{key}' is missing: a list, one item per line starting with '- '")
            return None
        value = mapping[key]
        if not isinstance(value, list):
            self._problem((*path, key), f"'{key}' must be a list, one item per line starting with '- '")
            return None
        return value

    def _problem(self, path: YamlPath, message: str) -> None:
        self.problems.append(Problem(self.document.line_of(path), message))

    def _sorted(self) -> tuple[Problem, ...]:
        return tuple(sorted(self.problems, key=lambda problem: problem.line or 0))


def _shown(value: object) -> str:
    """A value from the file as the messages quote it: ``'pie'``, ``7``, ``true``, ``null``, ``a list``."""
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool) or value is None:
        return "null" if value is None else str(value).lower()
    if isinstance(value, list | dict):
        return "a list" if isinstance(value, list) else "a mapping"
    return str(value)


def _in_words(error: ErrorDetails, model: type[BasePanelSpec], kind: str) -> str:
    """A pydantic error on a panel in plain words (its line is given apart)."""
    loc = [part for part in error["loc"] if isinstance(part, str)]
    field = loc[-1] if loc else "panel"
    # How the message names what is wrong: the key as written, an item of a list, or the series a 'units'
    # entry is for.
    if loc[-2:-1] == ["units"]:
        name = f"the unit of '{field}'"
    elif error["loc"] and isinstance(error["loc"][-1], int):
        name = f"each item of '{field}'"
    else:
        name = f"'{field}'"
    got = error.get("input")
    ctx: dict[str, Any] = dict(error.get("ctx", {}))
    match error["type"]:
        case "missing":
            owner = "threshold" if "thresholds" in loc[:-1] else f"{kind} panel"
            hint = " (a data: channel, e.g. data:sensors)" if field == "channel" else ""
            return f"{owner} has no '{field}'{hint}"
        case "extra_forbidden":
            if "thresholds" in loc[:-1]:
                return f"unknown key '{field}' in a threshold (expected value, color)"
            allowed = ", ".join(key for key in model.model_fields if key != "type")
            return f"unknown key '{field}' for a {kind} panel (expected type, {allowed})"
        case "string_type" if field == "color" and got is None:
            return "'color' is empty: write a hex colour in quotes (after a space, # starts a comment)"
        case "string_type":
            hint = " (put it in quotes)" if isinstance(got, int | float | bool) else ""
            return f"{name} must be text, got {_shown(got)}{hint}"
        case "model_type" | "model_attributes_type":
            return f"{name} must be a mapping like {{value: 90, color: red}}, got {_shown(got)}"
        case "float_type" | "int_type" | "float_parsing" | "int_parsing" | "finite_number" | "int_from_float":
            whole = "a whole number" if error["type"].startswith("int") else "a number"
            finite = " (finite)" if error["type"] == "finite_number" else ""
            return f"{name} must be {whole}{finite}, got {_shown(got)}"
        case "tuple_type" | "list_type":
            return f"{name} must be a list, e.g. {field}: [a, b]"
        case "dict_type" | "mapping_type":
            return f"{name} must be a mapping, e.g. {field}: {{pressure_hpa: hPa}}"
        case "literal_error":
            return f"{name} must be one of {', '.join(AXIS_MODES)}, got {_shown(got)}"
        case "string_too_short" | "string_too_long":
            return f"{name} must be 1 to {ctx.get('max_length', 200)} characters"
        case "greater_than" | "greater_than_equal" | "less_than" | "less_than_equal":
            words = {"greater_than": "above", "greater_than_equal": "at least", "less_than": "below"}
            bound = ctx.get("gt", ctx.get("ge", ctx.get("lt", ctx.get("le"))))
            return f"{name} must be {words.get(error['type'], 'at most')} {bound:g}, got {_shown(got)}"
        case "too_long":
            return f"{name} has more than {ctx.get('max_length')} items"
        case "threshold_order" | "gauge_range" | "color" | "channel" | "series":
            return error["msg"]
    return f"{name}: {error['msg']}"
