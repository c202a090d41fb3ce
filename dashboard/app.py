"""Pulseboard's dashboard: ``streamlit run dashboard/app.py``.

This script runs on every rerun: it makes sure the session has its buffer and its one consumer, then
runs the page the user picked. The pages live in ``dashboard/pages/``, one module each; each starts with
``session_chrome()`` (connection status, notification toasts).
"""

import logging
import sys
from pathlib import Path

# `streamlit run` puts only this file's folder on sys.path; the packages live one level up.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import streamlit as st  # noqa: E402

from dashboard.session import session_consumer  # noqa: E402

# One line per HTTP request the consumer makes would drown everything else.
logging.getLogger("httpx").setLevel(logging.WARNING)

st.set_page_config(page_title="Pulseboard", page_icon=":material/monitoring:", layout="wide")
session_consumer()
page = st.navigation(
    [
        st.Page("pages/live.py", title="Live", icon=":material/monitoring:", default=True),
        st.Page("pages/chat.py", title="Chat", icon=":material/chat:"),
        st.Page("pages/notifications.py", title="Notifications", icon=":material/notifications:"),
        st.Page("pages/channels.py", title="Channels", icon=":material/hub:"),
    ]
)
page.run()
