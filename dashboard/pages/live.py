"""Live: one panel per ``data:`` channel over a time window, redrawn by a fragment, with a compact
table of per-series statistics and CSV export.

Each chart is the channel's stored history over the window, read from the gateway's range API (cached
per session, read again every ``PULSE_DASHBOARD_RANGE_REFRESH`` seconds), with the session's live points
after it. A box selection on a chart zooms every chart into that time range, read again at full
resolution; "Back" returns to the window. The window, a custom range, a zoom, a pause and the channels
and series picked are kept in the URL (``dashboard.windows``, ``dashboard.selection``), so a refresh, a
new tab or a link sent to a colleague shows the same view at once.

Series of very different magnitude or unit never share an axis: a panel draws one small chart per group
(``dashboard.board.axis_groups``). A chart once drawn gets only the points it lacks (``ChartFeed``). A
notification that names a channel is a marker on its charts.

Pausing freezes the panels as they are (kept in ``st.session_state``): the figures stop changing, so
the charts keep the user's hover, and the export gives exactly what is on screen. The export button
sits outside the redrawn fragment: its download stays valid while the charts redraw, so the first
click works.
"""

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

import streamlit as st

from dashboard.axes import magnitude, panel_axes
from dashboard.board import Board, PanelSpec, TimeseriesSpec, load_board
from dashboard.chart import CHART_HEIGHT, ChartBand, ChartFeed, ChartMarker, ChartStyle, show_chart, zoom_of
from dashboard.chrome import chrome_contents, session_chrome
from dashboard.export import panels_to_csv
from dashboard.markup import escape_markdown
from dashboard.panel import Panel, Trace, take_panel
from dashboard.selection import Selection
from dashboard.session import session_buffer, session_consumer, session_ranges
from dashboard.settings import get_settings
from dashboard.status import clock_time
from dashboard.widget_html import heading_html
from dashboard.widgets import StatsRow, stats_styles, stats_table, widget_panel
from dashboard.windows import CUSTOM, WINDOWS, TimeRange, View, format_time
from pulseboard.link import NotConnectedError
from shared.payloads import NotificationLevel

FROZEN_KEY = "live_frozen"
# The view shown last: the URL loses its parameters when the user visits another page. (A comment, not a
# docstring: Streamlit's magic would print a bare string in a page script.)
VIEW_KEY = "live_view"
SELECTION_KEY = "live_selection"
CUSTOM_SHOWN_KEY = "live_custom_shown"
CUSTOM_PROBLEM_KEY = "live_custom_problem"
FEED_KEY = "live_chart_feed"
SHOWN_KEY = "live_shown"
GROUPS_KEY = "live_axis_groups"
FOUND_AT_MOST = 20  # channels a picker search shows
MARKER_COLORS: dict[NotificationLevel, str] = {"info": "#1c83e1", "warning": "#ffa421", "error": "#ff2b2b"}
MARKER_LABELS: dict[NotificationLevel, str] = {"info": "i", "warning": "!", "error": "!"}


@dataclass
class Shown:
    """The panels drawn last, for the export: its download is built from them when the user clicks
    (on a server thread, so a plain holder, not session state)."""

    panels: list[Panel] = field(default_factory=list)


settings = get_settings()
buffer = session_buffer()
feed: ChartFeed = st.session_state.setdefault(FEED_KEY, ChartFeed())
consumer = session_consumer()
ranges = session_ranges()


def _url() -> dict[str, list[str]]:
    return {key: st.query_params.get_all(key) for key in st.query_params}


def _write_url(view: View, selection: Selection) -> None:
    """Put the view in the URL, when it is not there already (each write is a message to the browser)."""
    wanted: dict[str, list[str]] = {key: [value] for key, value in view.params().items()}
    wanted.update(selection.params())
    current = _url()
    if current != wanted and (wanted != {"window": [View().window]} or current):
        st.query_params.from_dict(wanted)


def _current_view() -> tuple[View, Selection]:
    """The URL's view when it names one (a link, a refresh), else the one shown last, else the default."""
    params = _url()
    if "window" in params or "zoom_from" in params:
        view = View.from_params({key: values[-1] for key, values in params.items()})
        selection = Selection.from_params(params)
    else:
        kept = st.session_state.get(VIEW_KEY)
        view = kept if isinstance(kept, View) else View()
        picked = st.session_state.get(SELECTION_KEY)
        selection = picked if isinstance(picked, Selection) else Selection()
    if st.session_state.get(SELECTION_KEY) != selection:
        # A link (or a visit back) names the picks: the pickers start from them.
        st.session_state["live_channels"] = list(selection.channels)
        for channel, series in selection.series:
            st.session_state[f"series_{channel}"] = list(series)
    st.session_state[VIEW_KEY] = view
    st.session_state[SELECTION_KEY] = selection
    _write_url(view, selection)
    return view, selection


def _set_view(view: View) -> None:
    st.session_state[VIEW_KEY] = view
    _write_url(view, st.session_state.get(SELECTION_KEY) or Selection())


def _selection_changed() -> None:
    state = st.session_state
    picks = {
        key.removeprefix("series_"): value
        for key, value in state.items()
        if isinstance(key, str) and key.startswith("series_")
    }
    selection = Selection.of(state.get("live_channels") or [], picks)
    state[SELECTION_KEY] = selection
    _write_url(state[VIEW_KEY], selection)


def _pause_changed() -> None:
    current: View = st.session_state[VIEW_KEY]
    paused = bool(st.session_state.get("live_paused"))
    _set_view(current.paused(time.time() if paused and current.sliding else None))


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


loaded = load_board(settings.dashboard_file) if settings.dashboard_file else None
board = loaded.board if loaded is not None else None
st.title(escape_markdown(board.title) if board is not None else "Live")
if loaded is not None:
    # What is wrong with the file, line by line; the panels it got right are drawn below all the same.
    for file_problem in loaded.problems:
        text = f"{settings.dashboard_file}: {file_problem}"
        st.error(escape_markdown(text), icon=":material/description:")
    if board is None:
        st.info("Showing the generated layout instead.", icon=":material/dashboard:")
view, selection = _current_view()
stats_styles()
for name in board.channels if board is not None else ():
    consumer.watch(name)
for problem in (*view.problems, *selection.problems):
    st.warning(escape_markdown(f"Part of the link was not understood: {problem}"), icon=":material/link_off:")
for name in selection.channels:
    consumer.watch(name)  # a link's channels are shown even when this session had not subscribed yet
st.session_state.setdefault("live_window", view.window)
controls = st.columns([4, 1, 1], vertical_alignment="bottom")
controls[0].segmented_control(
    "Time window",
    list(WINDOWS),
    format_func=lambda key: WINDOWS[key].label,
    key="live_window",
    on_change=_window_changed,
)
if view.paused_at is not None:
    st.session_state["live_paused"] = True  # a paused link opens paused
elif view.sliding:
    st.session_state["live_paused"] = False
paused = controls[1].toggle(
    "Pause", key="live_paused", on_change=_pause_changed, help="Freeze the charts to hover and export"
)
if not paused:
    st.session_state.pop(FROZEN_KEY, None)
else:
    session_chrome()  # the panels stand still: the status and toasts need their own redraws
shown: Shown = st.session_state.setdefault(SHOWN_KEY, Shown())
# Outside the fragment: the redraws never replace its download, so a click is never too late.
controls[2].download_button(
    "Export CSV",
    data=lambda: panels_to_csv(shown.panels),
    file_name="pulseboard-live.csv",
    mime="text/csv",
    on_click="ignore",
    icon=":material/download:",
    help="The data of the panels on screen",
)
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


def _stats_rows(panel: Panel) -> None:
    # One compact element for every number of the panel: a dozen metric tiles pushed the next chart
    # below the fold and cost a message each.
    stats_table([StatsRow(trace.series, trace.stats) for trace in panel.traces])


def _zoom_to_selection(key: str) -> None:
    """A drag across a chart zooms every chart into its time range.

    A callback, not the chart's return value: callbacks run with the state of the chart the user
    actually dragged on, before the rerun draws the charts again."""
    zoom = zoom_of(key)
    if zoom is not None:
        current: View = st.session_state[VIEW_KEY]
        _set_view(current.zoomed(TimeRange(*zoom)))


def _chart_key(*parts: str) -> str:
    # Hashed: Streamlit refuses some sequences in a component's key ("__"), and channel names are the
    # publishers'.
    return "chart-" + hashlib.blake2b("\n".join(parts).encode(), digest_size=12).hexdigest()


def _markers(panel: Panel) -> list[ChartMarker]:
    """The notifications about this channel within the range shown, as chart markers."""
    span = panel.span
    return [
        ChartMarker(
            x=note.ts * 1000.0,
            level=note.level,
            color=MARKER_COLORS[note.level],
            label=MARKER_LABELS[note.level],
            text=f"{note.level}: {note.title}" + (f"\n{note.body}" if note.body else ""),
        )
        for note in buffer.notifications()
        if note.about == panel.channel and span.start <= note.ts <= span.end
    ]


def _groups(place: str, spec: TimeseriesSpec, traces: Sequence[Trace]) -> list[list[Trace]]:
    """The panel's series, grouped so that each group can share a y axis (``dashboard.axes``).

    Decided once per panel and set of series, from each series' largest magnitude in the range: a
    value wandering across a decade must not move a series to another chart on every redraw."""
    by_name = {trace.series: trace for trace in traces}
    names = tuple(by_name)
    kept: dict[str, tuple[tuple[str, ...], list[list[str]]]] = st.session_state.setdefault(GROUPS_KEY, {})
    decided = kept.get(place)
    if decided is None or decided[0] != names:
        stats = {trace.series: trace.stats for trace in traces}
        if any(magnitude(one) is None for one in stats.values()):
            return [list(traces)]  # not every series has a value yet: decide once they do
        decided = kept[place] = (names, panel_axes(spec, stats))
    return [[by_name[name] for name in group if name in by_name] for group in decided[1]]


def _style(spec: TimeseriesSpec, traces: Sequence[Trace]) -> ChartStyle:
    style = ChartStyle()
    found = {spec.unit_of(trace.series) for trace in traces}
    if len(found) == 1 and (unit := found.pop()):
        style["unit"] = unit
    if spec.decimals is not None:
        style["decimals"] = spec.decimals
    if spec.thresholds:
        edges = [threshold.value for threshold in spec.thresholds]
        style["bands"] = [
            ChartBand(low=threshold.value, high=top, color=threshold.color)
            for threshold, top in zip(spec.thresholds, [*edges[1:], None], strict=True)
        ]
    return style


def _charts(place: str, spec: TimeseriesSpec, panel: Panel) -> None:
    """The panel's charts: one per axis group, each kept mounted and fed only what it lacks."""
    wanted = spec.shown_series(panel.known_series)
    traces = [trace for trace in panel.traces if trace.series in wanted]
    groups = _groups(place, spec, traces)
    markers = _markers(panel)
    height = CHART_HEIGHT if len(groups) <= 1 else max(CHART_HEIGHT // len(groups), 160)
    for group in groups:
        # One key per panel and series group whatever the view: the chart stays mounted and only gets
        # new data, so a drag that starts while a new view is drawn still lands on the chart that
        # reports it.
        key = _chart_key(place, *(trace.series for trace in group))
        message = feed.message(
            key,
            panel,
            group,
            fixed=not view.sliding,
            height=height,
            markers=markers,
            style=_style(spec, group),
        )
        show_chart(
            message,
            key=key,
            on_zoom=partial(_zoom_to_selection, key),
            on_unzoom=_unzoom,
            on_resync=partial(_resync, key),
        )


def _resync(key: str) -> None:
    feed.forget(key)


def _panel_view(panel: Panel) -> None:
    info = panel.info
    header = st.columns([2, 3], vertical_alignment="center")
    header[0].subheader(escape_markdown(panel.channel))
    picked = st.session_state.get(f"series_{panel.channel}") or []
    header[1].multiselect(
        "Series",
        list(dict.fromkeys([*panel.known_series, *picked])),
        key=f"series_{panel.channel}",
        placeholder="All series",
        label_visibility="collapsed",
        on_change=_selection_changed,
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
    _charts(panel.channel, TimeseriesSpec(channel=panel.channel), panel)
    _stats_rows(panel)


def _spec_panel(place: str, spec: PanelSpec, panel: Panel) -> None:
    """One panel of the dashboard file."""
    if isinstance(spec, TimeseriesSpec):
        st.html(heading_html(spec.heading))
        if panel.problem is not None:
            st.warning(
                escape_markdown(f"Stored history not loaded ({panel.problem})"), icon=":material/cloud_off:"
            )
        _charts(place, spec, panel)
    else:
        widget_panel(spec, {trace.series: trace.stats for trace in panel.traces})


def _board_view(board: Board, panels: dict[str, Panel]) -> None:
    """The dashboard file's rows of panels."""
    for row_index, row in enumerate(board.rows):
        if row.title:
            st.subheader(escape_markdown(row.title))
        columns = st.columns([panel.width for panel in row.panels])
        for index, (spec, column) in enumerate(zip(row.panels, columns, strict=True)):
            with column.container(border=True):
                _spec_panel(f"board-{row_index}-{index}", spec, panels[spec.channel])


def _panel(name: str, now: float, *, picked: bool = True) -> Panel:
    """Channel ``name`` over the view; ``picked``: only the series picked on its panel (if any)."""
    span = view.span(now)
    source = buffer.find(name)
    stored = ranges.read(name, view.key, span, source)
    picks = st.session_state.get(f"series_{name}") if picked else None
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
    if not paused:
        chrome_contents()  # the sidebar's status and the toasts, in this redraw rather than one more
    now = time.time()
    if board is not None:
        _board_panels(board, now)
        return
    frozen: tuple[str, list[Panel]] | None = st.session_state.get(FROZEN_KEY)
    channels, taken = _channel_options(now)
    if not channels:
        st.info(
            "Waiting for data: no data: channel has points in this range yet.",
            icon=":material/hourglass_empty:",
        )
        return
    picked = st.session_state.get("live_channels") or []
    chosen = st.multiselect(
        "Channels",
        list(dict.fromkeys([*channels, *picked])),
        key="live_channels",
        placeholder="All channels",
        on_change=_selection_changed,
    )
    visible = chosen or channels
    if frozen is None or frozen[0] != view.key:
        panels = [taken.get(name) or _panel(name, now) for name in visible]
        if paused:
            st.session_state[FROZEN_KEY] = (view.key, panels)
    else:
        panels = [panel for panel in frozen[1] if panel.channel in visible]
    shown.panels = panels
    for panel in panels:
        with st.container(border=True):
            _panel_view(panel)


def _board_panels(board: Board, now: float) -> None:
    frozen: tuple[str, list[Panel]] | None = st.session_state.get(FROZEN_KEY)
    if frozen is None or frozen[0] != view.key:
        panels = [_panel(name, now, picked=False) for name in board.channels]
        if paused:
            st.session_state[FROZEN_KEY] = (view.key, panels)
    else:
        panels = frozen[1]
    shown.panels = panels
    _board_view(board, {panel.channel: panel for panel in panels})


live_panels()
