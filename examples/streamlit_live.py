"""A Streamlit app of your own on a Pulseboard gateway: a live chart and a chat box in a few lines.

streamlit run examples/streamlit_live.py    # PULSE_GATEWAY_URL, PULSE_TOKEN as for the dashboard
"""

import os

import streamlit as st

from pulseboard.st_connection import ChatSendError, PulseConnection

pulse = st.connection("pulse", type=PulseConnection)
channel = st.text_input("Channel", os.environ.get("PULSE_EXAMPLE_CHANNEL", "data:cpu"))


@st.fragment(run_every=1.0)
def live() -> None:
    frame = pulse.frame(channel)
    st.metric("Points", len(frame))
    if not frame.empty:
        st.line_chart(frame)


live()

with st.form("chat", clear_on_submit=True):
    text = st.text_input("Say something in chat:lobby")
    if st.form_submit_button("Send") and text:
        try:
            st.success(f"sent as #{pulse.send_chat('lobby', text, name='example')}")
        except ChatSendError as exc:
            st.error(f"not sent: {exc}")
