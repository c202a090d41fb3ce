"""Which series share a y-axis: by unit when known, else by order of magnitude; small multiples apart."""

import math

from hypothesis import given
from hypothesis import strategies as st

from dashboard.axes import DECADES_APART, axis_groups, magnitude, panel_axes
from dashboard.board import TimeseriesSpec
from dashboard.stats import SeriesStats


def stats(low: float, high: float) -> SeriesStats:
    return SeriesStats(10, high, 0.0, low, high, 1.0)


def test_pressure_never_shares_an_axis_with_temperature_and_humidity() -> None:
    """The simulator's sensors: ~1013 hPa apart from ~21 °C and ~50 %, which may share, in any order."""
    values = {"temperature_c": 21.5, "humidity_pct": 50.0, "pressure_hpa": 1013.2}
    assert axis_groups(values, {}) == [["temperature_c", "humidity_pct"], ["pressure_hpa"]]
    assert axis_groups({"pressure_hpa": 1013.2, "humidity_pct": 50.0}, {}) == [
        ["pressure_hpa"],
        ["humidity_pct"],
    ]


def test_units_decide_when_known() -> None:
    """Same unit, same axis, whatever the values; different units never share."""
    values = {"rx": 120.0, "tx": 0.5, "latency": 18.0, "loss": 0.01}
    units = {"rx": "Mbit/s", "tx": "Mbit/s", "latency": "ms", "loss": "%"}
    assert axis_groups(values, units) == [["rx", "tx"], ["latency"], ["loss"]]


def test_units_and_magnitudes_together_in_the_callers_order() -> None:
    """Series without a unit never join a unit's axis; groups keep the order of their first series."""
    values = {"big": 5000.0, "pct": 40.0, "small": 3.0, "also_small": 7.0}
    assert axis_groups(values, {"pct": "%"}) == [["big"], ["pct"], ["small", "also_small"]]


def test_the_decade_boundary() -> None:
    """A group reaches DECADES_APART decades above its smallest value and no further."""
    inside = 10 ** (DECADES_APART - 0.01)
    outside = 10 ** (DECADES_APART + 0.01)
    assert axis_groups({"a": 1.0, "b": inside}, {}) == [["a", "b"]]
    assert axis_groups({"a": 1.0, "b": outside}, {}) == [["a"], ["b"]]
    assert axis_groups({"a": -1.0, "b": -outside}, {}) == [["a"], ["b"]], "negative values by size"


def test_series_without_a_magnitude_join_the_smallest_values() -> None:
    """No value yet, zero, NaN: any axis of small values shows them."""
    values = {"p": 1013.0, "t": 21.0, "none": None, "zero": 0.0, "nan": math.nan}
    assert axis_groups(values, {}) == [["p"], ["t", "none", "zero", "nan"]]
    assert axis_groups({"a": None, "b": 0.0}, {}) == [["a", "b"]]
    assert axis_groups({}, {}) == []


def test_magnitude_is_the_peak_absolute_value() -> None:
    assert magnitude(stats(-300.0, 20.0)) == 300.0
    assert magnitude(SeriesStats(0, None, None, None, None, 0.0)) is None
    assert magnitude(None) is None


def test_panel_axes_use_the_panels_units_series_and_mode() -> None:
    by_series = {
        "temperature_c": stats(19, 24),
        "humidity_pct": stats(40, 50),
        "pressure_hpa": stats(1010, 1015),
    }
    assert panel_axes(TimeseriesSpec(channel="data:sensors"), by_series) == [
        ["temperature_c", "humidity_pct"],
        ["pressure_hpa"],
    ]
    with_units = TimeseriesSpec(channel="data:sensors", units={"temperature_c": "°C", "humidity_pct": "%"})
    assert panel_axes(with_units, by_series) == [["temperature_c"], ["humidity_pct"], ["pressure_hpa"]]
    picked = TimeseriesSpec(channel="data:sensors", series=("pressure_hpa", "humidity_pct"))
    assert panel_axes(picked, by_series) == [["pressure_hpa"], ["humidity_pct"]]
    multiples = TimeseriesSpec(channel="data:sensors", axis="small-multiples")
    assert panel_axes(multiples, by_series) == [["temperature_c"], ["humidity_pct"], ["pressure_hpa"]]


names = st.text(alphabet="abcdefgh", min_size=1, max_size=4)
values = st.one_of(st.none(), st.just(math.nan), st.floats(min_value=-1e12, max_value=1e12))


@given(st.dictionaries(names, st.tuples(values, st.sampled_from(["", "", "hPa", "%", "°C"])), max_size=12))
def test_every_series_on_exactly_one_axis_that_mixes_neither_units_nor_decades(
    series: dict[str, tuple[float | None, str]],
) -> None:
    by_value = {name: value for name, (value, _) in series.items()}
    units = {name: unit for name, (_, unit) in series.items() if unit}
    groups = axis_groups(by_value, units)
    assert sorted(name for group in groups for name in group) == sorted(series)
    order = list(series)
    for group in groups:
        assert group == sorted(group, key=order.index)
        assert len({units.get(name, "") for name in group}) == 1
        logs = [math.log10(abs(v)) for name in group if (v := by_value[name]) and math.isfinite(v)]
        if not units.get(group[0]) and logs:
            assert max(logs) - min(logs) <= DECADES_APART
