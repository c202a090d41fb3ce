"""Stored history joined to live points, pure: where a range read hands over to the session's buffer, the
band figure, the resolution words, the CSV of buckets, and time windows in the URL. No Streamlit, no
network (the same pieces against a real gateway are in test_dashboard_app.py)."""

import csv
import io

import pytest

from dashboard.channel_buffer import PUBLICATION_LOG, ChannelBuffer
from dashboard.chart import chart_data
from dashboard.export import panels_to_csv
from dashboard.panel import Panel, describe_resolution, seconds_text, take_panel
from dashboard.ranges import StoredRange
from dashboard.windows import CUSTOM, WINDOWS, TimeRange, View, format_time, parse_time
from shared.api import HistoryRange, RangeResolution, SeriesRange
from shared.messages import StreamPosition

T0 = 1_800_000_000.0
EPOCH = "e1"
SUB_MICRO = 3e-7
"""Publishers' times carry fractions of a microsecond that the store does not keep."""


def published(count: int, epoch: str = EPOCH) -> ChannelBuffer:
    """A channel that received ``count`` publications of ``v`` = 0, 1, ... at 10 Hz, offsets 1.."""
    buffer = ChannelBuffer("data:x")
    for index in range(count):
        buffer.append(T0 + index / 10 + SUB_MICRO, {"v": float(index)}, offset=index + 1, epoch=epoch)
    return buffer


def stored_raw(count: int, position: StreamPosition | None) -> HistoryRange:
    """What the range API answers when the first ``count`` of those publications are stored: raw samples,
    their times as the store keeps them (whole microseconds)."""
    t = [round((T0 + index / 10 + SUB_MICRO) * 1e6) / 1e6 for index in range(count)]
    values = [float(index) for index in range(count)]
    series = SeriesRange(t=t, min=values, max=values, mean=values, last=values, count=[1] * count)
    return HistoryRange(
        channel="data:x",
        start=T0 - 60,
        end=T0 + 60,
        resolution=RangeResolution(tier="raw", bucket=0.0),
        position=position,
        series={"v": series},
    )


SPAN = TimeRange(T0 - 60, T0 + 60)


def line(panel: Panel) -> tuple[list[float], list[float]]:
    """Series v's line as the chart gets it: (seconds, values) where it has a point."""
    data = chart_data(panel)
    series = next(series for series in data["series"] if series["name"] == "v")
    points = [(x / 1000, y) for x, y in zip(data["x"], series["mid"], strict=True) if y is not None]
    return [x for x, _ in points], [y for _, y in points]


def test_the_live_part_starts_right_after_the_stored_position() -> None:
    """30 publications stored, 50 received: the chart is 0..49 once each, 30 from the store, 20 live."""
    buffer = published(50)
    stored = StoredRange.read_at(stored_raw(30, StreamPosition(offset=30, epoch=EPOCH)), T0, buffer)
    assert stored.exact and stored.cut == T0 + 2.9 + SUB_MICRO
    panel = take_panel(buffer, "data:x", None, SPAN, stored, T0 + 5)
    trace = panel.traces[0]
    assert len(trace.history) == 30 and trace.ts.tolist() == [T0 + i / 10 + SUB_MICRO for i in range(30, 50)]
    _, values = line(panel)
    assert values == [float(i) for i in range(50)], "no gap, no duplicate"
    assert panel.resolution == "raw samples, then live samples"
    assert trace.stats.count == 50 and trace.stats.maximum == 49 and trace.stats.current == 49


def test_without_the_position_in_the_buffer_the_live_part_starts_after_the_stored_data() -> None:
    """A position from an older epoch (the gateway restarted) is not in the buffer: the live part starts
    after the last stored sample, whose stored time differs from the buffer's by a fraction of a µs."""
    buffer = published(50)
    stored = StoredRange.read_at(stored_raw(30, StreamPosition(offset=900, epoch="old")), T0, buffer)
    assert not stored.exact
    _, values = line(take_panel(buffer, "data:x", None, SPAN, stored, T0 + 5))
    assert values == [float(i) for i in range(50)]
    nothing_stored = StoredRange.read_at(stored_raw(0, None), T0, buffer)
    _, values = line(take_panel(buffer, "data:x", None, SPAN, nothing_stored, T0 + 5))
    assert values == [float(i) for i in range(50)], "an empty store: the buffer alone"


def test_series_keep_the_published_order_whether_or_not_the_store_has_them() -> None:
    """The range API lists series by name; the panel keeps the order they were published in, so the
    table and the colours do not change when the store catches up with the buffer."""
    buffer = ChannelBuffer("data:x")
    buffer.append(T0 + 1, {"zeta": 1.0, "alpha": 2.0, "mid": 3.0}, offset=1, epoch=EPOCH)
    one = SeriesRange(t=[T0 + 1], min=[1.0], max=[1.0], mean=[1.0], last=[1.0], count=[1])
    by_name = {name: one for name in ("alpha", "beta", "mid", "zeta")}  # "beta": stored only
    answer = stored_raw(0, None).model_copy(update={"series": by_name})
    for stored in (None, StoredRange.read_at(answer, T0 + 2, buffer)):
        panel = take_panel(buffer, "data:x", None, SPAN, stored, T0 + 2)
        expected = ("zeta", "alpha", "mid") if stored is None else ("zeta", "alpha", "mid", "beta")
        assert panel.known_series == expected
        assert [trace.series for trace in panel.traces] == list(expected)


def test_a_position_read_before_it_reached_the_buffer_is_placed_later() -> None:
    """The store can hold a publication the socket has not delivered yet; once it arrives, the cut moves
    to its time; publications of another epoch clear the log."""
    buffer = published(20)
    stored = StoredRange.read_at(stored_raw(25, StreamPosition(offset=25, epoch=EPOCH)), T0, buffer)
    assert not stored.exact
    for index in range(20, 30):
        buffer.append(T0 + index / 10, {"v": float(index)}, offset=index + 1, epoch=EPOCH)
    placed = stored.placed_in(buffer)
    assert placed.exact and placed.cut == T0 + 2.4
    buffer.append(T0 + 10, {"v": 1.0}, offset=1, epoch="e2")
    assert buffer.time_of(StreamPosition(offset=25, epoch=EPOCH)) is None
    assert buffer.time_of(StreamPosition(offset=1, epoch="e2")) == T0 + 10


def test_the_publication_log_is_bounded() -> None:
    """Only the newest PUBLICATION_LOG publications are placed; older positions fall back."""
    buffer = published(PUBLICATION_LOG + 10)
    assert buffer.time_of(StreamPosition(offset=10, epoch=EPOCH)) is None
    assert buffer.time_of(StreamPosition(offset=11, epoch=EPOCH)) == T0 + 1.0 + SUB_MICRO


def bucketed(spike: float) -> HistoryRange:
    """Ten 60 s buckets from the 1s tier; the fourth holds one spike."""
    t = [T0 + 60 * i for i in range(10)]
    highs = [10.0] * 10
    highs[3] = spike
    series = SeriesRange(t=t, min=[1.0] * 10, max=highs, mean=[5.0] * 10, last=[6.0] * 10, count=[600] * 10)
    return HistoryRange(
        channel="data:x",
        start=T0,
        end=T0 + 600,
        resolution=RangeResolution(tier="1s", bucket=60.0),
        position=StreamPosition(offset=6000, epoch=EPOCH),
        series={"v": series},
    )


def test_buckets_draw_as_a_band_under_the_mean_line_and_keep_the_spike() -> None:
    """Each series is its buckets' mean line inside their min..max band; the live points continue the
    line; the chart spans the view."""
    buffer = ChannelBuffer("data:x")
    buffer.append(T0 + 700, {"v": 7.0})
    stored = StoredRange.read_at(bucketed(spike=1e6), T0 + 600, buffer)
    span = TimeRange(T0, T0 + 800)
    panel = take_panel(buffer, "data:x", None, span, stored, T0 + 800)
    data = chart_data(panel, fixed=True)
    (series,) = data["series"]
    assert series["name"] == "v"
    assert max(value for value in series["high"] if value is not None) == 1e6, "the spike stays in the band"
    assert series["mid"] == [5.0] * 10 + [7.0]
    assert series["low"][-1] is None and series["high"][-1] is None, "a live point has no band"
    assert data["range"] == [T0 * 1000, (T0 + 800) * 1000]
    assert chart_data(panel)["range"] is None, "a sliding window's axis fits its data"
    assert panel.resolution == "1 min buckets from the 1s tier, then live samples"
    stats = panel.traces[0].stats
    assert stats.maximum == 1e6 and stats.count == 6001 and stats.current == 7.0


def test_buckets_outside_the_view_are_left_out() -> None:
    """A sliding window drops the buckets that ended before it starts (one that overlaps it stays)."""
    stored = StoredRange.read_at(bucketed(spike=50.0), T0 + 600, None)
    panel = take_panel(None, "data:x", None, TimeRange(T0 + 150, T0 + 600), stored, T0 + 600)
    assert panel.traces[0].history.t.tolist() == [T0 + 60 * i for i in range(2, 10)]


def test_resolution_words() -> None:
    """Each panel says what it shows: the bucket and tier, raw samples, live samples, or nothing."""
    assert describe_resolution(None, history=False, live=True) == "live samples"
    assert describe_resolution(None, history=False, live=False) == "no data in this range"
    raw = StoredRange.read_at(stored_raw(3, None), T0, None)
    assert describe_resolution(raw, history=True, live=False) == "raw samples"
    assert [seconds_text(s) for s in (0.2, 1.0, 58.0, 120.0, 3600.0, 1.5 * 86400)] == [
        "0.2 s",
        "1 s",
        "58 s",
        "2 min",
        "1 h",
        "1.5 d",
    ]


def test_csv_export_has_a_row_per_bucket_with_its_envelope() -> None:
    """A bucket exports its mean as the value with its min, max and count; a live sample counts once."""
    buffer = ChannelBuffer("data:x")
    buffer.append(T0 + 700, {"v": 7.0})
    stored = StoredRange.read_at(bucketed(spike=99.0), T0 + 600, buffer)
    panel = take_panel(buffer, "data:x", None, TimeRange(T0, T0 + 800), stored, T0 + 800)
    rows = list(csv.DictReader(io.StringIO(panels_to_csv([panel]).decode())))
    assert len(rows) == 11
    assert rows[3]["max"] == "99.0" and rows[3]["min"] == "1.0" and rows[3]["count"] == "600"
    assert rows[-1]["value"] == rows[-1]["min"] == rows[-1]["max"] == "7.0" and rows[-1]["count"] == "1"


def test_views_round_trip_through_the_url() -> None:
    """Every window, a custom range and a zoom come back from their query parameters as they were."""
    for key in WINDOWS:
        if key != CUSTOM:
            assert View.from_params(View(key).params()) == View(key)
    custom = View(CUSTOM, TimeRange(T0, T0 + 3600))
    zoomed = View("24h", zoom=TimeRange(T0 + 0.25, T0 + 60.5))
    for view in (custom, zoomed, custom.zoomed(TimeRange(T0 + 1, T0 + 2))):
        again = View.from_params(view.params())
        assert again == view and not again.problems and again.key == view.key
    assert custom.params() == {
        "window": "custom",
        "from": "2027-01-15T08:00:00Z",
        "to": "2027-01-15T09:00:00Z",
    }
    assert zoomed.params()["zoom_from"] == "2027-01-15T08:00:00.250Z"
    assert zoomed.span(0.0) == TimeRange(T0 + 0.25, T0 + 60.5) and not zoomed.sliding
    assert View("1h").span(T0) == TimeRange(T0 - 3600, T0) and View("1h").sliding
    assert zoomed.window_label == "24 h"


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"window": "2h"}, "unknown window"),
        ({"window": "custom"}, "missing"),
        ({"window": "custom", "from": "2027-01-02", "to": "2027-01-01"}, "not before"),
        ({"window": "1h", "zoom_from": "soon", "zoom_to": "later"}, "not a time"),
        ({"window": "1h", "zoom_from": "nan", "zoom_to": "1"}, "not a time"),
    ],
)
def test_a_bad_link_opens_the_default_and_says_why(params: dict[str, str], says: str) -> None:
    """A link with a bad window or range still opens a page: the bad part is left out and named."""
    view = View.from_params(params)
    assert view.zoom is None and view.window in ("5m", "1h")
    assert any(says in problem for problem in view.problems), view.problems


def test_times_from_links() -> None:
    """ISO 8601 (UTC without an offset) or Unix seconds in links."""
    assert parse_time("2027-01-15T08:00:00Z") == parse_time("2027-01-15 08:00:00") == T0
    assert parse_time("2027-01-15T09:00:00+01:00") == T0 and parse_time(str(T0)) == T0
    assert format_time(T0) == "2027-01-15T08:00:00Z"
