"""The stat, gauge, bar and table panels drawn with Streamlit, and ``stats_table``: a chart's numbers
(now, min, max, rate per series) as one compact HTML table instead of a tile per number.

Each panel function takes its spec (``dashboard.board``) and a ``SeriesStats`` per series name, and
draws one HTML element. The stat, gauge and bar HTML comes from
``dashboard.widget_html``, where every file or publisher text is escaped.
"""

from collections.abc import Mapping, Sequence

import streamlit as st

from dashboard.board import BarSpec, GaugeSpec, StatSpec, TableSpec, Threshold, WidgetSpec
from dashboard.stats import SeriesStats
from dashboard.widget_html import (
    NO_STATS,
    STATS_CSS,
    StatsRow,
    bar_html,
    gauge_html,
    heading_html,
    stat_html,
    stats_html,
)

__all__ = ["StatsRow", "stats_styles", "stats_table", "widget_panel"]


def stat_panel(spec: StatSpec, stats: Mapping[str, SeriesStats]) -> None:
    st.html(stat_html(spec, stats))


def gauge_panel(spec: GaugeSpec, stats: Mapping[str, SeriesStats]) -> None:
    st.html(gauge_html(spec, stats))


def bar_panel(spec: BarSpec, stats: Mapping[str, SeriesStats]) -> None:
    st.html(bar_html(spec, stats))


def table_panel(spec: TableSpec, stats: Mapping[str, SeriesStats]) -> None:
    rows = [
        StatsRow(name, stats.get(name, NO_STATS), spec.unit_of(name)) for name in spec.shown_series(stats)
    ]
    st.html(heading_html(spec.heading) + stats_html(rows, spec.decimals, spec.thresholds))


def widget_panel(spec: WidgetSpec, stats: Mapping[str, SeriesStats]) -> None:
    """Any panel type but the time series (a chart), by its spec's type."""
    match spec:
        case StatSpec():
            stat_panel(spec, stats)
        case GaugeSpec():
            gauge_panel(spec, stats)
        case BarSpec():
            bar_panel(spec, stats)
        case TableSpec():
            table_panel(spec, stats)


def stats_styles() -> None:
    """The statistics tables' stylesheet: once per page run, outside any redrawn fragment."""
    st.html(f"<style>{STATS_CSS}</style>")


def stats_table(
    rows: Sequence[StatsRow], *, decimals: int | None = None, thresholds: Sequence[Threshold] = ()
) -> None:
    """Series, current value, minimum, maximum, rate (points/s) and unit, a line per series, as one
    element (``widget_html.stats_html``). With ``thresholds``, each current value in its threshold's
    colour."""
    st.html(stats_html(rows, decimals, thresholds))
