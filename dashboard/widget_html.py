"""The HTML of the stat, gauge, bar and table panels and of the Live page's statistics tables: pure
functions of a panel's spec (or rows) and its series' numbers.

Everything that comes from the file or a publisher (titles, series names, units) goes through
``html.escape``; colours reach a ``style`` attribute only as ``#rrggbb`` (the spec validates them, and
``_css_color`` checks again). The HTML has no script and no event handler, and ``st.html`` sanitises it
once more (DOMPurify). Inline styles only: the elements keep the theme's font and text colour.
"""

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dashboard.board import BarSpec, BasePanelSpec, GaugeSpec, StatSpec, Threshold, threshold_color
from dashboard.formatting import format_value
from dashboard.stats import SeriesStats

DEFAULT_COLOR = "#1f77b4"
"""A bar's or gauge's fill where no threshold gives one."""
NO_STATS = SeriesStats(0, None, None, None, None, 0.0)
"""What a series named by a panel but not (yet) in the channel shows: "n/a"."""
_HEX = re.compile(r"#[0-9a-f]{6}")
_TRACK = "position:relative;height:0.75rem;border-radius:0.375rem;background:rgba(128,128,128,0.18)"
_MUTED = "font-size:0.8rem;opacity:0.7"
_ELLIPSIS = "overflow:hidden;text-overflow:ellipsis;white-space:nowrap"
_NUMBER = "white-space:nowrap;font-variant-numeric:tabular-nums"


STATS_COLUMNS = ("series", "now", "min", "max", "rate", "unit")
STATS_CSS = (
    ".pulse-stats{width:100%;border-collapse:collapse;font-size:0.875rem}"
    ".pulse-stats th,.pulse-stats td{padding:0.125rem 0.5rem;border-bottom:1px solid rgba(128,128,128,0.2);"
    "text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}"
    ".pulse-stats th:first-child,.pulse-stats td:first-child,.pulse-stats th:last-child,"
    ".pulse-stats td:last-child{text-align:left}"
    ".pulse-stats td:first-child{max-width:16rem;overflow:hidden;text-overflow:ellipsis}"
)
"""The statistics tables' look, sent once per page (``widgets.stats_styles``), not in every cell."""


@dataclass(frozen=True, slots=True)
class StatsRow:
    """One line of a statistics table."""

    series: str
    stats: SeriesStats
    unit: str | None = None


def stats_html(
    rows: Sequence[StatsRow], decimals: int | None = None, thresholds: Sequence[Threshold] = ()
) -> str:
    """Series, current value, minimum, maximum, rate (points/s) and unit, a line per series, as one
    HTML table; with ``thresholds``, each current value in its threshold's colour.

    HTML rather than a dataframe: the Live page redraws one per channel every second, and a dataframe
    costs a pandas frame and Arrow bytes on the server and a canvas grid in the browser, each time."""
    head = "".join(f"<th>{name}</th>" for name in STATS_COLUMNS)
    lines = []
    for row in rows:
        stats = row.stats
        color = _css_color(threshold_color(thresholds, stats.current))
        now = "<td>" if color == "inherit" else f'<td style="color:{color}">'
        numbers = (stats.current, stats.minimum, stats.maximum)
        current, low, high = (html.escape(format_value(value, decimals, None)) for value in numbers)
        lines.append(
            f"<tr><td>{html.escape(row.series)}</td>{now}{current}</td><td>{low}</td><td>{high}</td>"
            f"<td>{stats.rate:.1f}/s</td><td>{html.escape(row.unit or '')}</td></tr>"
        )
    return f'<table class="pulse-stats"><thead><tr>{head}</tr></thead><tbody>{"".join(lines)}</tbody></table>'


def heading_html(text: str) -> str:
    return f'<div style="font-weight:600;margin-bottom:0.25rem">{html.escape(text)}</div>'


def _css_color(color: str | None, default: str = "inherit") -> str:
    return color if color is not None and _HEX.fullmatch(color) else default


def _current(stats: Mapping[str, SeriesStats], name: str) -> float | None:
    return stats.get(name, NO_STATS).current


def _label(spec: BasePanelSpec, name: str) -> str:
    """A series' label inside a panel: none when the panel shows one series its title already names."""
    return "" if len(spec.series) == 1 and spec.title is None else html.escape(name)


def stat_html(spec: StatSpec, stats: Mapping[str, SeriesStats]) -> str:
    """Each series' current value, large, in its threshold's colour, with the series name above it."""
    cells = []
    for name in spec.shown_series(stats):
        value = _current(stats, name)
        color = _css_color(spec.color_of(value))
        text = html.escape(format_value(value, spec.decimals, spec.unit_of(name)))
        cells.append(
            '<div style="min-width:6rem">'
            f'<div style="{_MUTED}">{_label(spec, name)}</div>'
            f'<div style="font-size:2rem;font-weight:700;line-height:1.2;color:{color}">{text}</div>'
            "</div>"
        )
    body = "".join(cells) or f'<div style="{_MUTED}">no series yet</div>'
    row = f'<div style="display:flex;flex-wrap:wrap;gap:1.5rem">{body}</div>'
    return f"<div>{heading_html(spec.heading)}{row}</div>"


def _percent(value: float, low: float, high: float) -> float:
    """Where ``value`` falls between ``low`` and ``high``, in percent, clamped to the track."""
    return min(100.0, max(0.0, (value - low) / (high - low) * 100.0))


def _bands(thresholds: tuple[Threshold, ...], low: float, high: float) -> str:
    """Each threshold's colour, faint, from its value to the next one's: where the colours change."""
    bands = []
    for index, threshold in enumerate(thresholds):
        start = _percent(threshold.value, low, high)
        end = _percent(thresholds[index + 1].value, low, high) if index + 1 < len(thresholds) else 100.0
        if end > start:
            color = _css_color(threshold.color, DEFAULT_COLOR)
            bands.append(
                f'<div style="position:absolute;top:0;bottom:0;left:{start:.2f}%;width:{end - start:.2f}%;'
                f'background:{color};opacity:0.25"></div>'
            )
    return "".join(bands)


def gauge_html(spec: GaugeSpec, stats: Mapping[str, SeriesStats]) -> str:
    """A horizontal gauge per series from ``spec.min`` to ``spec.max``: threshold bands behind, the
    current value as a fill in its threshold's colour, the value in words beside the name."""
    rows = []
    for name in spec.shown_series(stats):
        value = _current(stats, name)
        unit = spec.unit_of(name)
        color = _css_color(spec.color_of(value), DEFAULT_COLOR)
        filled = 0.0 if value is None else _percent(value, spec.min, spec.max)
        text = html.escape(format_value(value, spec.decimals, unit))
        limits = [html.escape(format_value(limit, spec.decimals, unit)) for limit in (spec.min, spec.max)]
        now = "" if value is None else f' aria-valuenow="{value:g}"'
        rows.append(
            '<div style="margin-bottom:0.5rem">'
            '<div style="display:flex;justify-content:space-between;gap:1rem">'
            f"<span>{_label(spec, name)}</span>"
            f'<span style="font-weight:700;color:{_css_color(spec.color_of(value))}">{text}</span></div>'
            f'<div role="meter" aria-valuemin="{spec.min:g}" aria-valuemax="{spec.max:g}"{now}'
            f' style="{_TRACK}">'
            f"{_bands(spec.thresholds, spec.min, spec.max)}"
            f'<div style="position:absolute;top:0.125rem;bottom:0.125rem;left:0;width:{filled:.2f}%;'
            f'border-radius:0.375rem;background:{color}"></div></div>'
            f'<div style="display:flex;justify-content:space-between;{_MUTED}">'
            f"<span>{limits[0]}</span><span>{limits[1]}</span></div>"
            "</div>"
        )
    body = "".join(rows) or f'<div style="{_MUTED}">no series yet</div>'
    return f"<div>{heading_html(spec.heading)}{body}</div>"


def bar_html(spec: BarSpec, stats: Mapping[str, SeriesStats]) -> str:
    """One horizontal bar per series, under its name and value: the current value on a scale shared by
    the panel's bars, from zero (to the left for negative values), in its threshold's colour."""
    names = spec.shown_series(stats)
    values = {name: _current(stats, name) for name in names}
    known = [value for value in values.values() if value is not None]
    low, high = min([0.0, *known]), max([0.0, *known])
    if high == low:
        high = low + 1.0
    zero = _percent(0.0, low, high)
    rows = []
    for name, value in values.items():
        color = _css_color(spec.color_of(value), DEFAULT_COLOR)
        text = html.escape(format_value(value, spec.decimals, spec.unit_of(name)))
        end = zero if value is None else _percent(value, low, high)
        left, width = min(zero, end), abs(end - zero)
        rows.append(
            '<div style="margin-bottom:0.375rem">'
            '<div style="display:flex;justify-content:space-between;gap:1rem">'
            f'<span style="{_ELLIPSIS}">{html.escape(name)}</span>'
            f'<span style="{_NUMBER};color:{_css_color(spec.color_of(value))}">{text}</span></div>'
            f'<div style="{_TRACK}"><div style="position:absolute;top:0;bottom:0;left:{left:.2f}%;'
            f'width:{width:.2f}%;border-radius:0.375rem;background:{color}"></div></div>'
            "</div>"
        )
    body = "".join(rows) or f'<div style="{_MUTED}">no series yet</div>'
    return f"<div>{heading_html(spec.heading)}{body}</div>"
