"""The limits every WebSocket endpoint puts on each frame a client sends: size first, then rate.

``/ws``, the classic dialects and ``/ws/echo`` all check frames here, so a frame is measured and counted
the same way whichever endpoint it reached. A frame over ``PULSE_MAX_MESSAGE_BYTES`` closes the
connection with 1009. A frame over the connection's token bucket (``PULSE_CLIENT_RATE``, bursts of
``PULSE_CLIENT_BURST``) is dropped; more than ``tolerated`` of those in a row close it with 1008.
"""

from gateway.disconnect import Disconnect
from gateway.ratelimit import TokenBucket
from gateway.settings import Settings


class FrameLimitError(Exception):
    """The frame ends the connection, with ``disconnect``."""

    def __init__(self, disconnect: Disconnect) -> None:
        super().__init__(disconnect.reason)
        self.disconnect = disconnect


class FrameLimits:
    """One connection's frame limits. ``tolerated``: rate-limited frames in a row before the close (by
    default ``PULSE_CLIENT_BURST``; an endpoint that cannot tell a client it was limited passes 0)."""

    __slots__ = ("_bucket", "_limit", "_limited_in_a_row", "_tolerated", "rate_detail")

    def __init__(self, settings: Settings, *, tolerated: int | None = None) -> None:
        self._bucket = TokenBucket(settings.client_rate, settings.client_burst)
        self._limit = settings.max_message_bytes
        self._tolerated = settings.client_burst if tolerated is None else tolerated
        self._limited_in_a_row = 0
        self.rate_detail = f"more than {settings.client_rate:g} ops/s"
        """What to tell a client whose frame was dropped for the rate."""

    def admit(self, text: str | None, data: bytes | None) -> bool:
        """Whether the frame may be handled (False: over the rate, dropped; the caller says so).

        Raises ``FrameLimitError`` when the frame ends the connection.
        """
        limit = self._limit
        # Characters first: a text under a quarter of the limit cannot be over it in UTF-8 bytes, so
        # most frames are never encoded just to be measured.
        size = len(data or b"") if text is None else len(text)
        if size > limit or (text is not None and size * 4 > limit and len(text.encode()) > limit):
            raise FrameLimitError(Disconnect.message_too_big(limit))
        if self._bucket.take():
            self._limited_in_a_row = 0
            return True
        self._limited_in_a_row += 1
        if self._limited_in_a_row > self._tolerated:
            raise FrameLimitError(Disconnect.RATE_LIMIT)
        return False
