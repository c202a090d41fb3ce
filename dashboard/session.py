"""The two per-session objects every page uses: the ``SessionBuffer`` and the one ``Consumer`` feeding it.

The buffer lives in ``st.session_state``. The consumer is a session-scoped cached resource keyed by the
buffer's key, so reruns (and page switches) get the same consumer, never a second thread. When the
session ends, Streamlit releases the resource on its own event loop; ``on_release`` then only *signals*
the consumer's thread, which closes its socket and ends by itself.
"""

import streamlit as st

from dashboard.consumer import Consumer, ConsumerConfig
from dashboard.session_buffer import SessionBuffer
from dashboard.settings import get_settings

BUFFER_KEY = "pulse_buffer"


def session_buffer() -> SessionBuffer:
    buffer = st.session_state.get(BUFFER_KEY)
    if not isinstance(buffer, SessionBuffer):
        settings = get_settings()
        buffer = SessionBuffer(max_points=settings.dashboard_max_points, max_age=settings.dashboard_max_age)
        st.session_state[BUFFER_KEY] = buffer
    return buffer


def _release(consumer: Consumer) -> None:
    consumer.stop()


@st.cache_resource(scope="session", on_release=_release, show_spinner=False)
def _consumer_for(buffer_key: str, _buffer: SessionBuffer) -> Consumer:
    return Consumer(_buffer, ConsumerConfig.from_settings(get_settings())).start()


def session_consumer() -> Consumer:
    buffer = session_buffer()
    return _consumer_for(buffer.key, buffer)
