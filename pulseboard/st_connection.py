"""A Streamlit connection to a Pulseboard gateway: live channels in a user's own Streamlit app.

    import streamlit as st
    from pulseboard.st_connection import PulseConnection

    pulse = st.connection("pulse", type=PulseConnection)     # url, token: kwargs, secrets or env

    @st.fragment(run_every=1.0)
    def live() -> None:
        st.line_chart(pulse.frame("data:cpu"))

    live()

It follows Streamlit's ``BaseConnection`` convention: ``[connections.pulse]`` in ``secrets.toml`` may
hold ``url`` and ``token`` (else ``PULSE_GATEWAY_URL`` and ``PULSE_TOKEN``, else a local gateway). The
connection is global (``st.connection`` caches it per process): one background ``LiveFeed`` follows
each channel once for every session, and each session reads a copy of the points, so sessions never
share mutable state.
"""

import os
from typing import Any

import pandas as pd
from streamlit.connections import BaseConnection

from pulseboard.feed import LiveFeed
from pulseboard.gateway_api import GatewayAPI, Published, Rejected
from shared.channels import Channel
from shared.payloads import ChatPost

DEFAULT_URL = "http://127.0.0.1:8000"


class ChatSendError(Exception):
    """The gateway did not take a chat message (the reason says why)."""


class PulseConnection(BaseConnection[LiveFeed]):
    def _connect(self, **kwargs: Any) -> LiveFeed:
        secrets = self._secrets.to_dict()
        self.url = str(
            kwargs.get("url") or secrets.get("url") or os.environ.get("PULSE_GATEWAY_URL") or DEFAULT_URL
        )
        token = kwargs.get("token") or secrets.get("token") or os.environ.get("PULSE_TOKEN") or None
        self._token = None if token is None else str(token)
        return LiveFeed(self.url, token=self._token, keep=int(kwargs.get("keep", 1000)))

    @property
    def feed(self) -> LiveFeed:
        return self._instance

    def frame(self, channel: str) -> pd.DataFrame:
        """``channel``'s latest points as a DataFrame: a UTC time index, one column per series (empty
        until the first point arrives; the channel is followed from the first call on)."""
        points = self.feed.points(channel)
        if not points:
            return pd.DataFrame()
        index = pd.to_datetime([ts for ts, _ in points], unit="s", utc=True)
        return pd.DataFrame([values for _, values in points], index=index)

    def line_chart(self, channel: str, **chart: Any) -> None:
        """``st.line_chart`` of ``channel``'s latest points."""
        import streamlit as st

        st.line_chart(self.frame(channel), **chart)

    def send_chat(self, room: str, text: str, *, name: str | None = None) -> int:
        """Post ``text`` to ``room`` (``chat:<room>``); its offset once stored, else ``ChatSendError``."""
        channel = Channel.parse(room if room.startswith("chat:") else f"chat:{room}")
        with GatewayAPI(self.url, self._token) as api:
            outcome = api.publish(
                channel,
                [ChatPost(text=text)],
                idempotency_key=os.urandom(8).hex(),
                params={"name": name} if name and not self._token else None,
            )
        if isinstance(outcome, Published):
            return outcome.offsets[0]
        detail = outcome.detail if isinstance(outcome, Rejected) else outcome.reason
        raise ChatSendError(detail)
