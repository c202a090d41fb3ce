"""Channels (operator view): `/api/channels` (the most recently active page) and `/healthz` as the consumer
last read them."""

import time

import pandas as pd
import streamlit as st

from dashboard.chrome import session_chrome
from dashboard.consumer import MAX_AUTO_CHANNELS
from dashboard.markup import escape_markdown
from dashboard.session import session_buffer
from dashboard.settings import get_settings
from dashboard.status import clock_time

settings = get_settings()
buffer = session_buffer()
session_chrome()

st.title("Channels")


@st.fragment(run_every=settings.dashboard_refresh)
def overview() -> None:
    view = buffer.overview()
    if view is None:
        st.info("Waiting for the first answer from the gateway…", icon=":material/hourglass_empty:")
        return
    if view.error:
        st.warning(f"Last look failed: {escape_markdown(view.error)}", icon=":material/warning:")
    health = view.health
    if health is not None:
        columns = st.columns(4)
        columns[0].metric("Gateway", health.status)
        columns[1].metric("Broker", f"{health.broker.backend} ({'up' if health.broker.ok else 'down'})")
        columns[2].metric("Connections", health.connections)
        columns[3].metric("Auth", "on" if health.auth else "off")
        if health.broker.detail:
            st.text(health.broker.detail)
    age = time.time() - view.fetched_at
    shown = f"The {MAX_AUTO_CHANNELS} most recently active channels"
    st.caption(f"{shown}, as of {clock_time(view.fetched_at)} ({age:.0f} s ago)")
    table = pd.DataFrame(
        {
            "channel": [info.name for info in view.channels],
            "subscribers": [info.subscribers for info in view.channels],
            "rate (msg/s)": [round(info.rate, 2) for info in view.channels],
            "offset": [info.offset for info in view.channels],
            "epoch": [info.epoch for info in view.channels],
        }
    )
    st.dataframe(table, hide_index=True, width="stretch")


overview()
