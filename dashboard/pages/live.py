"""Live: one chart per ``data:`` channel, redrawn by a fragment, with per-series metrics and CSV export.

Pausing freezes the panels as they are (kept in ``st.session_state``): the figures stop changing, so
plotly keeps the user's zoom and hover, and the export gives exactly what is on screen.
"""

import time

import streamlit as st

from dashboard.chrome import session_chrome
from dashboard.export import panels_to_csv
from dashboard.figures import build_figure
from dashboard.link import NotConnectedError
from dashboard.markup import escape_markdown
from dashboard.panel import DEFAULT_WINDOW, WINDOWS, Panel, take_panel
from dashboard.session import session_buffer, session_consumer
from dashboard.settings import get_settings
from dashboard.stats import SeriesStats
from dashboard.status import clock_time

FROZEN_KEY = "live_frozen"
FOUND_AT_MOST = 20  # channels a picker search shows

settings = get_settings()
buffer = session_buffer()
consumer = session_consumer()
session_chrome()

st.title("Live")
controls = st.columns([3, 1, 1], vertical_alignment="bottom")
window = controls[0].segmented_control(
    "Time window", list(WINDOWS), default=DEFAULT_WINDOW, key="live_window"
)
paused = controls[1].toggle("Pause", key="live_paused", help="Freeze the charts to zoom and hover")
if not paused:
    st.session_state.pop(FROZEN_KEY, None)


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


def _panel_view(panel: Panel) -> None:
    info = panel.info
    header = st.columns([2, 3], vertical_alignment="center")
    header[0].subheader(escape_markdown(panel.channel))
    header[1].multiselect(
        "Series",
        list(info.series),
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
    if panel.gap_visible and info.gap_since is not None:
        when = clock_time(info.gap_since)
        st.warning(f"Gap: data missing around {when}; history reloaded", icon=":material/warning:")
    st.plotly_chart(build_figure(panel), key=f"chart_{panel.channel}", config={"displaylogo": False})
    for trace in panel.traces:
        _metrics(trace.series, trace.stats)


@st.fragment(run_every=None if paused else settings.dashboard_refresh)
def live_panels() -> None:
    frozen: list[Panel] | None = st.session_state.get(FROZEN_KEY)
    channels = buffer.channels()
    if not channels:
        st.info("Waiting for data: no data: channel has published yet.", icon=":material/hourglass_empty:")
        return
    chosen = st.multiselect("Channels", channels, key="live_channels", placeholder="All channels")
    shown = chosen or channels
    if frozen is None:
        now = time.time()
        picks = {name: st.session_state.get(f"series_{name}") for name in shown}
        panels = [take_panel(buffer, name, picks[name], window or DEFAULT_WINDOW, now) for name in shown]
        if paused:
            st.session_state[FROZEN_KEY] = panels
    else:
        panels = [panel for panel in frozen if panel.channel in shown]
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
