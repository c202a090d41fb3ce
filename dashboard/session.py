"""The per-session objects the pages use: the ``SessionBuffer``, the one ``Consumer`` feeding it, and the
``RangeReader`` that reads stored history for the Live page.

The buffer lives in ``st.session_state``. The consumer is a session-scoped cached resource keyed by the
buffer's key, so reruns (and page switches) get the same consumer, never a second thread. When the
session ends, Streamlit releases the resource on its own event loop; ``on_release`` then only *signals*
the consumer's thread, which closes its socket and ends by itself. The range reader is cached the same
way (one per session, never shared between users); its release closes its HTTP client.
"""

import streamlit as st

from dashboard.consumer import Consumer, ConsumerConfig
from dashboard.ranges import RangeReader
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


def _close(reader: RangeReader) -> None:
    reader.close()


@st.cache_resource(scope="session", on_release=_close, show_spinner=False)
def _ranges_for(buffer_key: str) -> RangeReader:
    settings = get_settings()
    return RangeReader(
        settings.gateway_url,
        settings.token_value,
        points=settings.dashboard_range_points,
        refresh=settings.dashboard_range_refresh,
    )


def session_ranges() -> RangeReader:
    """This session's range reader (its cache is this session's alone)."""
    return _ranges_for(session_buffer().key)
