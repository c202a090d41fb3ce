"""What every page shows besides its own content: the connection status in the sidebar and new
notifications as toasts. One fragment, redrawn every ``PULSE_DASHBOARD_REFRESH`` seconds.

Each page calls ``session_chrome()`` first; a page that redraws a fragment of its own every refresh
anyway (the Live page) calls ``chrome_contents()`` in it instead: one script run a second per viewer,
not two. (Not called from ``app.py``: Streamlit 1.67's AppTest drops a
fragment that the main script of an ``st.navigation`` app runs, after the first run.)
"""

import time

import streamlit as st

from dashboard.markup import escape_markdown
from dashboard.session import session_buffer
from dashboard.settings import get_settings
from dashboard.status import clock_time, describe

STATUS_ICONS = {"ok": ":material/wifi:", "warning": ":material/sync:", "error": ":material/wifi_off:"}
TOAST_ICONS = {"info": ":material/info:", "warning": ":material/warning:", "error": ":material/error:"}
MAX_TOASTS_PER_REDRAW = 5
"""A burst of alerts shows its newest few; every one of them is in the Notifications log."""


def _status() -> None:
    settings = get_settings()
    line = describe(session_buffer().connection(), time.time())
    show = {"ok": st.success, "warning": st.warning, "error": st.error}[line.level]
    show(line.text, icon=STATUS_ICONS[line.level])
    if line.detail:
        st.text(line.detail)
    st.caption(f"Gateway {escape_markdown(settings.gateway_url)}")


def _toasts() -> None:
    for entry in session_buffer().take_new_notifications()[-MAX_TOASTS_PER_REDRAW:]:
        text = f"{entry.title}: {entry.body}" if entry.body else entry.title
        st.toast(f"{escape_markdown(text)} ({clock_time(entry.ts)})", icon=TOAST_ICONS[entry.level])


def chrome_contents() -> None:
    with st.sidebar:
        _status()
    _toasts()


@st.fragment(run_every=get_settings().dashboard_refresh)
def _chrome() -> None:
    chrome_contents()


def session_chrome() -> None:
    _chrome()
