"""The stat, gauge, bar and table panels drawn with Streamlit, and ``stats_table``: a chart's numbers
(now, min, max, rate per series) as one compact table instead of a tile per number.

Each panel function takes its spec (``dashboard.board``) and a ``SeriesStats`` per series name, and
draws one element (the table: a heading and a dataframe). The stat, gauge and bar HTML comes from
``dashboard.widget_html``, where every file or publisher text is escaped.
"""

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st

from dashboard.arrays import FloatArray
from dashboard.board import BarSpec, GaugeSpec, StatSpec, TableSpec, Threshold, WidgetSpec, threshold_color
from dashboard.formatting import auto_decimals
from dashboard.stats import SeriesStats
from dashboard.widget_html import NO_STATS, bar_html, gauge_html, heading_html, stat_html

STATS_COLUMNS = ("series", "now", "min", "max", "rate", "unit")


@dataclass(frozen=True, slots=True)
class StatsRow:
    """One line of ``stats_table``."""

    series: str
    stats: SeriesStats
    unit: str | None = None


def stat_panel(spec: StatSpec, stats: Mapping[str, SeriesStats]) -> None:
    st.html(stat_html(spec, stats))


def gauge_panel(spec: GaugeSpec, stats: Mapping[str, SeriesStats]) -> None:
    st.html(gauge_html(spec, stats))


def bar_panel(spec: BarSpec, stats: Mapping[str, SeriesStats]) -> None:
    st.html(bar_html(spec, stats))


def table_panel(spec: TableSpec, stats: Mapping[str, SeriesStats], *, key: str | None = None) -> None:
    st.html(heading_html(spec.heading))
    rows = [
        StatsRow(name, stats.get(name, NO_STATS), spec.unit_of(name)) for name in spec.shown_series(stats)
    ]
    stats_table(rows, decimals=spec.decimals, thresholds=spec.thresholds, key=key)


def widget_panel(spec: WidgetSpec, stats: Mapping[str, SeriesStats], *, key: str | None = None) -> None:
    """Any panel type but the time series (a chart), by its spec's type."""
    match spec:
        case StatSpec():
            stat_panel(spec, stats)
        case GaugeSpec():
            gauge_panel(spec, stats)
        case BarSpec():
            bar_panel(spec, stats)
        case TableSpec():
            table_panel(spec, stats, key=key)


def stats_frame(rows: Sequence[StatsRow], decimals: int | None = None) -> pd.DataFrame:
    """The table ``stats_table`` shows: numbers stay numbers (the table sorts them; a missing one is NaN);
    without ``decimals`` each is rounded to about four significant digits, as ``format_value`` writes it."""

    def column(values: Iterable[float | None]) -> FloatArray:
        kept = [math.nan if value is None else value for value in values]
        if decimals is None:
            kept = [value if math.isnan(value) else round(value, auto_decimals(value)) for value in kept]
        return np.asarray(kept, dtype=np.float64)

    return pd.DataFrame(
        {
            "series": [row.series for row in rows],
            "now": column(row.stats.current for row in rows),
            "min": column(row.stats.minimum for row in rows),
            "max": column(row.stats.maximum for row in rows),
            "rate": np.asarray([row.stats.rate for row in rows], dtype=np.float64),
            "unit": [row.unit or "" for row in rows],
        }
    )


def stats_table(
    rows: Sequence[StatsRow],
    *,
    decimals: int | None = None,
    thresholds: Sequence[Threshold] = (),
    key: str | None = None,
) -> None:
    """Series, current value, minimum, maximum, rate (points/s) and unit, a line per series, as one
    dataframe. With ``thresholds``, each current value is written in its threshold's colour."""
    frame = stats_frame(rows, decimals)
    number = None if decimals is None else f"%.{decimals}f"
    config = {
        "series": st.column_config.TextColumn("series"),
        "now": st.column_config.NumberColumn("now", format=number),
        "min": st.column_config.NumberColumn("min", format=number),
        "max": st.column_config.NumberColumn("max", format=number),
        "rate": st.column_config.NumberColumn("rate", format="%.1f/s", help="points per second, recently"),
        "unit": st.column_config.TextColumn("unit"),
    }
    # A Styler only when it colours something: it costs some 10 ms per table (a 2-core machine), every
    # redraw, five times what the table itself costs.
    data = frame.style.map(_color_style(thresholds), subset=["now"]) if thresholds else frame
    st.dataframe(data, hide_index=True, column_config=config, width="stretch", key=key)


def _color_style(thresholds: Sequence[Threshold]) -> "_ColorStyle":
    return _ColorStyle(tuple(thresholds))


@dataclass(frozen=True, slots=True)
class _ColorStyle:
    """The CSS of a current value's cell: its threshold's colour, or none."""

    thresholds: tuple[Threshold, ...]

    def __call__(self, value: object) -> str:
        color = threshold_color(self.thresholds, value if isinstance(value, float) else None)
        return "" if color is None else f"color: {color}; font-weight: 600"
