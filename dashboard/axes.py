"""Which series of a time series panel share a y-axis: never two of different units, never two whose
values are decades apart (``pressure_hpa`` at ~1013 would flatten ``temperature_c`` at ~21 into a line).

Pure functions: the Live page calls ``panel_axes`` when it draws a panel, with the values then on screen,
so a series that appears or changes scale finds its axis on the next redraw.
"""

import math
from collections.abc import Mapping

from dashboard.board import TimeseriesSpec
from dashboard.stats import SeriesStats

DECADES_APART = 1.0
"""Unit-less series whose magnitudes (log10 of their peak absolute value) differ by more than this many
decades get different axes: 21 and 50 share one, 50 and 1013 do not (on a shared axis the smaller
would use a twentieth of its height). One decade: a series on another's axis uses at least a tenth."""


def magnitude(stats: SeriesStats | None) -> float | None:
    """A series' size for grouping: its peak absolute value over the window; None without points."""
    if stats is None or stats.minimum is None or stats.maximum is None:
        return None
    return max(abs(stats.minimum), abs(stats.maximum))


def axis_groups(values_by_series: Mapping[str, float | None], units: Mapping[str, str]) -> list[list[str]]:
    """The series of ``values_by_series`` (name to a recent absolute value, None when unknown) in groups,
    one y-axis each.

    - Series with a unit (``units``) share an axis with exactly the series of the same unit.
    - The others are grouped by order of magnitude: sorted by log10 of their value, a group takes series
      up to ``DECADES_APART`` decades above its smallest. A series with no magnitude yet (no value, zero,
      not finite) joins the group of the smallest values, which any axis of small values can show.

    Groups come in the order of their first series in ``values_by_series``, and so do series in a group:
    the layout follows the caller's order, not the values'.
    """
    order = {name: index for index, name in enumerate(values_by_series)}
    groups: list[list[str]] = []
    by_unit: dict[str, list[str]] = {}
    sized: list[tuple[float, str]] = []
    unsized: list[str] = []
    for name, value in values_by_series.items():
        unit = units.get(name, "").strip()
        if unit:
            by_unit.setdefault(unit, []).append(name)
        elif value is None or not math.isfinite(value) or value == 0:
            unsized.append(name)
        else:
            sized.append((math.log10(abs(value)), name))
    groups.extend(by_unit.values())
    magnitude_groups: list[list[str]] = []
    start = -math.inf
    for log, name in sorted(sized):
        if log - start > DECADES_APART:
            magnitude_groups.append([])
            start = log
        magnitude_groups[-1].append(name)
    if magnitude_groups:
        magnitude_groups[0].extend(unsized)
    elif unsized:
        magnitude_groups.append(unsized)
    groups.extend(magnitude_groups)
    for group in groups:
        group.sort(key=order.__getitem__)
    groups.sort(key=lambda group: order[group[0]])
    return groups


def panel_axes(spec: TimeseriesSpec, stats: Mapping[str, SeriesStats]) -> list[list[str]]:
    """The y-axes of a time series panel: the series it shows (of those in ``stats``, by
    ``spec.shown_series``) grouped by unit and magnitude, or one each for small multiples."""
    shown = spec.shown_series(stats)
    if spec.axis == "small-multiples":
        return [[name] for name in shown]
    units = {name: unit for name in shown if (unit := spec.unit_of(name))}
    return axis_groups({name: magnitude(stats.get(name)) for name in shown}, units)
