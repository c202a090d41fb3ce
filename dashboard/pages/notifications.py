"""Notifications: the log of every ``notify:`` message this session received, filtered by level.

New ones also pop up as toasts on every page (``dashboard/app.py``). The table shows text as text.
"""

import pandas as pd
import streamlit as st

from dashboard.chrome import session_chrome
from dashboard.session import session_buffer
from dashboard.settings import get_settings
from dashboard.status import clock_time

LEVELS = ["info", "warning", "error"]

settings = get_settings()
buffer = session_buffer()
session_chrome()

st.title("Notifications")
levels = st.pills("Levels", LEVELS, selection_mode="multi", default=LEVELS, key="notify_levels")


@st.fragment(run_every=settings.dashboard_refresh)
def notification_log() -> None:
    entries = [entry for entry in reversed(buffer.notifications()) if entry.level in (levels or LEVELS)]
    if not entries:
        st.info("No notifications yet.", icon=":material/notifications_off:")
        return
    table = pd.DataFrame(
        {
            "time": [clock_time(entry.ts) for entry in entries],
            "level": [entry.level for entry in entries],
            "channel": [entry.channel for entry in entries],
            "title": [entry.title for entry in entries],
            "body": [entry.body for entry in entries],
        }
    )
    st.dataframe(table, hide_index=True, width="stretch")


notification_log()
