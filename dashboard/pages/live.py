"""Live: one chart per ``data:`` channel over a time window, redrawn by a fragment, with per-series
metrics and CSV export.

Each chart is the channel's stored history over the window, read from the gateway's range API (cached
per session, read again every ``PULSE_DASHBOARD_RANGE_REFRESH`` seconds), with the session's live points
after it. A box selection on a chart zooms every chart into that time range, read again at full
resolution; "Back" returns to the window. The window, a custom range and a zoom are kept in the URL
(``dashboard.windows``), so a refresh or a new tab shows the same charts at once.

Pausing freezes the panels as they are (kept in ``st.session_state``): the figures stop changing, so
the charts keep the user's hover, and the export gives exactly what is on screen.
"""

import hashlib
import time
from datetime import UTC, datetime
from functools import partial

import streamlit as st

from dashboard.chart import chart_data, show_chart, zoom_of
from dashboard.chrome import session_chrome
from dashboard.export import panels_to_csv
from dashboard.link import NotConnectedError
from dashboard.markup import escape_markdown
from dashboard.panel import Panel, take_panel
from dashboard.session import session_buffer, session_consumer, session_ranges
from dashboard.settings import get_settings
from dashboard.stats import SeriesStats
from dashboard.status import clock_time
from dashboard.windows import CUSTOM, WINDOWS, TimeRange, View, format_time

FROZEN_KEY = "live_frozen"
# The view shown last: the URL loses its parameters when the user visits another page. (A comment, not a
# docstring: Streamlit's magic would print a bare string in a page script.)
VIEW_KEY = "live_view"
CUSTOM_SHOWN_KEY = "live_custom_shown"
CUSTOM_PROBLEM_KEY = "live_custom_problem"
FOUND_AT_MOST = 20  # channels a picker search shows

settings = get_settings()
buffer = session_buffer()
consumer = session_consumer()
ranges = session_ranges()
session_chrome()


def _current_view() -> View:
    """The URL's view when it names one (a link, a refresh), else the one shown last, else the default."""
    params = st.query_params.to_dict()
    if "window" in params or "zoom_from" in params:
        view = View.from_params(params)
    else:
        kept = st.session_state.get(VIEW_KEY)
        view = kept if isinstance(kept, View) else View()
    st.session_state[VIEW_KEY] = view
    if params != view.params() and (params or view != View()):
        st.query_params.from_dict(view.params())
    return view


def _set_view(view: View) -> None:
    st.session_state[VIEW_KEY] = view
    st.query_params.from_dict(view.params())


def _window_changed() -> None:
    current: View = st.session_state[VIEW_KEY]
    choice = st.session_state.get("live_window")
    if choice is None:  # the selected segment was clicked again: keep it
        st.session_state["live_window"] = current.window
    elif choice == CUSTOM:
        # The custom range starts as what was on screen, to whole seconds.
        shown = current.span(time.time())
        _set_view(View(CUSTOM, TimeRange(float(int(shown.start)), float(int(shown.end) + 1))))
    else:
        _set_view(View(choice))


def _utc(day: object, clock: object) -> float:
    moment = datetime.combine(day, clock)  # type: ignore[arg-type]
    return moment.replace(tzinfo=UTC).timestamp()


def _custom_changed() -> None:
    state = st.session_state
    try:
        chosen = TimeRange(
            _utc(state["live_from_date"], state["live_from_time"]),
            _utc(state["live_to_date"], state["live_to_time"]),
        )
    except (ValueError, TypeError, KeyError) as exc:
        state[CUSTOM_PROBLEM_KEY] = f"Not a range: {exc}"
        return
    state.pop(CUSTOM_PROBLEM_KEY, None)
    _set_view(View(CUSTOM, chosen))


def _custom_pickers(view: View) -> None:
    """Date and time pickers (UTC) for the custom range; any change reads that range."""
    assert view.custom is not None
    # Set from the view when it changed, or when the pickers' state went with a visit to another page.
    if st.session_state.get(CUSTOM_SHOWN_KEY) != view.key or "live_from_date" not in st.session_state:
        for side, ts in (("from", view.custom.start), ("to", view.custom.end)):
            moment = datetime.fromtimestamp(ts, UTC).replace(tzinfo=None)
            st.session_state[f"live_{side}_date"] = moment.date()
            st.session_state[f"live_{side}_time"] = moment.time().replace(second=0, microsecond=0)
        st.session_state[CUSTOM_SHOWN_KEY] = view.key
    columns = st.columns(4)
    columns[0].date_input("From (UTC)", key="live_from_date", on_change=_custom_changed)
    columns[1].time_input("From time", key="live_from_time", step=60, on_change=_custom_changed)
    columns[2].date_input("To (UTC)", key="live_to_date", on_change=_custom_changed)
    columns[3].time_input("To time", key="live_to_time", step=60, on_change=_custom_changed)
    problem = st.session_state.get(CUSTOM_PROBLEM_KEY)
    if problem:
        st.warning(problem, icon=":material/warning:")


def _unzoom() -> None:
    current: View = st.session_state[VIEW_KEY]
    _set_view(current.zoomed(None))


st.title("Live")
view = _current_view()
for problem in view.problems:
    st.warning(
        escape_markdown(f"The link's time range was not understood: {problem}"), icon=":material/link_off:"
    )
st.session_state.setdefault("live_window", view.window)
controls = st.columns([4, 1], vertical_alignment="bottom")
controls[0].segmented_control(
    "Time window",
    list(WINDOWS),
    format_func=lambda key: WINDOWS[key].label,
    key="live_window",
    on_change=_window_changed,
)
paused = controls[1].toggle("Pause", key="live_paused", help="Freeze the charts to hover and export")
if not paused:
    st.session_state.pop(FROZEN_KEY, None)
if view.window == CUSTOM:
    _custom_pickers(view)
if view.zoom is not None:
    zoom_row = st.columns([4, 1], vertical_alignment="center")
    zoom_row[0].text(f"Zoomed to {format_time(view.zoom.start)} to {format_time(view.zoom.end)} (UTC)")
    zoom_row[1].button(
        f"Back to {view.window_label}", key="live_unzoom", on_click=_unzoom, icon=":material/zoom_out:"
    )
else:
    st.caption("Drag across a chart to zoom into that time range; double-click to go back.")


def _channel_picker() -> None:
    """Any data: channel, found by prefix on the gateway: the user is never limited to those shown."""
    with st.expander("Add a channel", icon=":material/add:"):
        typed = st.text_input("Find data: channels by prefix", key="live_find", placeholder="cpu")
        if not typed:
            return
        prefix = typed if typed.startswith("data:") else f"data:{typed}"
        try:
            found = consumer.find_channels(prefix, FOUND_AT_MOST, timeout=5.0)
        except NotConnectedError as exc:
            st.warning(str(exc), icon=":material/warning:")
            return
        if not found:
            st.text(f"No live channel starts with {prefix}")
            return
        pick = st.selectbox("Channel", found, index=None, key="live_pick", placeholder="Pick one")
        if pick is not None and st.button("Subscribe", key="live_subscribe"):
            consumer.watch(pick)
            st.toast(f"Subscribed to {escape_markdown(pick)}", icon=":material/check:")


_channel_picker()
for name, reason in consumer.refused().items():
    st.warning(escape_markdown(f"Not subscribed to {name}: {reason}"), icon=":material/block:")


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.4g}"


def _metrics(series: str, stats: SeriesStats) -> None:
    # A metric label renders Markdown: the series name is the publisher's and must show as typed.
    name = escape_markdown(series)
    columns = st.columns(4)
    columns[0].metric(f"{name} · now", _number(stats.current))
    columns[1].metric(f"{name} · rate", f"{stats.rate:.1f}/s")
    columns[2].metric(f"{name} · min", _number(stats.minimum))
    columns[3].metric(f"{name} · max", _number(stats.maximum))


def _zoom_to_selection(key: str) -> None:
    """A drag across a chart zooms every chart into its time range.

    A callback, not the chart's return value: callbacks run with the state of the chart the user
    actually dragged on, before the rerun draws the charts again."""
    zoom = zoom_of(key)
    if zoom is not None:
        current: View = st.session_state[VIEW_KEY]
        _set_view(current.zoomed(TimeRange(*zoom)))


def _panel_view(panel: Panel) -> None:
    info = panel.info
    header = st.columns([2, 3], vertical_alignment="center")
    header[0].subheader(escape_markdown(panel.channel))
    header[1].multiselect(
        "Series",
        list(panel.known_series),
        key=f"series_{panel.channel}",
        placeholder="All series",
        label_visibility="collapsed",
    )
    facts = [f"{panel.points:,} points shown"]
    if info.latency is not None:
        facts.append(f"latency {info.latency * 1000:.0f} ms")
    if info.last_received_at is not None:
        facts.append(f"last at {clock_time(info.last_received_at)}")
    st.text(" · ".join(facts))
    st.text(f"Resolution: {panel.resolution}")
    if panel.problem is not None:
        text = (
            f"Stored history of {panel.channel} not loaded ({panel.problem}); showing this tab's own points"
        )
        st.warning(escape_markdown(text), icon=":material/cloud_off:")
    if panel.gap_visible and info.gap_since is not None:
        when = clock_time(info.gap_since)
        st.warning(f"Gap: data missing around {when}; history reloaded", icon=":material/warning:")
    # One key per channel whatever the view: the chart stays mounted and only gets new data, so a drag
    # that starts while a new view is drawn still lands on the chart that reports it. Hashed: Streamlit
    # refuses some sequences in a component's key ("__"), and channel names are the publishers'.
    key = "chart-" + hashlib.blake2b(panel.channel.encode(), digest_size=12).hexdigest()
    show_chart(
        chart_data(panel, fixed=not view.sliding),
        key=key,
        on_zoom=partial(_zoom_to_selection, key),
        on_unzoom=_unzoom,
    )
    for trace in panel.traces:
        _metrics(trace.series, trace.stats)


def _panel(name: str, now: float) -> Panel:
    span = view.span(now)
    source = buffer.find(name)
    stored = ranges.read(name, view.key, span, source)
    picks = st.session_state.get(f"series_{name}")
    live_until = None if view.sliding else span.end
    return take_panel(source, name, picks, span, stored, now, live_until=live_until)


def _channel_options(now: float) -> tuple[list[str], dict[str, Panel]]:
    """Channels with points in this session, and configured ones with stored history in the range (with
    the panels taken to find out)."""
    live = buffer.channels()
    configured = [
        name for name in settings.dashboard_channels if name.startswith("data:") and name not in live
    ]
    taken = {name: _panel(name, now) for name in configured}
    stored = [name for name, panel in taken.items() if not panel.empty]
    return sorted({*live, *stored}), taken


@st.fragment(run_every=None if paused else settings.dashboard_refresh)
def live_panels() -> None:
    if st.session_state.get(VIEW_KEY) != view:
        st.rerun()  # a zoom changed the view: the controls above the charts follow it
    now = time.time()
    frozen: tuple[str, list[Panel]] | None = st.session_state.get(FROZEN_KEY)
    channels, taken = _channel_options(now)
    if not channels:
        st.info(
            "Waiting for data: no data: channel has points in this range yet.",
            icon=":material/hourglass_empty:",
        )
        return
    chosen = st.multiselect("Channels", channels, key="live_channels", placeholder="All channels")
    shown = chosen or channels
    if frozen is None or frozen[0] != view.key:
        panels = [taken.get(name) or _panel(name, now) for name in shown]
        if paused:
            st.session_state[FROZEN_KEY] = (view.key, panels)
    else:
        panels = [panel for panel in frozen[1] if panel.channel in shown]
    st.download_button(
        "Export visible data (CSV)",
        # A callable: the CSV is built when the user clicks, not on every redraw.
        data=lambda: panels_to_csv(panels),
        file_name="pulseboard-live.csv",
        mime="text/csv",
        on_click="ignore",
        icon=":material/download:",
    )
    for panel in panels:
        with st.container(border=True):
            _panel_view(panel)


live_panels()
