"""Error codes (in ``error`` frames) and WebSocket close codes.

Close codes are split the way Centrifugo splits them: a client should reconnect (and resume) after
``SLOW_CONSUMER`` and ``SERVER_RESTART``; after ``UNAUTHORIZED`` it must not reconnect without a new
token; ``POLICY_VIOLATION`` and ``MESSAGE_TOO_BIG`` mean the client itself misbehaved.
"""

from enum import IntEnum, StrEnum


class ErrorCode(StrEnum):
    BAD_JSON = "bad_json"
    """The frame is not valid JSON."""
    BAD_REQUEST = "bad_request"
    """Valid JSON of the wrong shape, a payload that fails validation, or an op not allowed now."""
    UNKNOWN_OP = "unknown_op"
    BAD_CHANNEL = "bad_channel"
    FORBIDDEN = "forbidden"
    """Not authenticated yet, or the token does not allow this channel."""
    NOT_FOUND = "not_found"
    RATE_LIMITED = "rate_limited"
    TOO_LARGE = "too_large"
    """A size or count limit was exceeded (text length, batch size, subscriptions per connection)."""
    UNAVAILABLE = "unavailable"
    """The server could not complete the op (storage or broker down); retrying later may succeed."""


class CloseCode(IntEnum):
    NORMAL = 1000
    GOING_AWAY = 1001
    UNSUPPORTED_DATA = 1003
    INVALID_PAYLOAD = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    SERVER_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    SLOW_CONSUMER = 4001
    UNAUTHORIZED = 4401


RECONNECT_CODES = frozenset(
    {
        CloseCode.GOING_AWAY,
        CloseCode.INTERNAL_ERROR,
        CloseCode.SERVER_RESTART,
        CloseCode.TRY_AGAIN_LATER,
        CloseCode.SLOW_CONSUMER,
    }
)
"""Close codes after which a client should reconnect with backoff and resume its subscriptions."""


def should_reconnect(code: int | None) -> bool:
    """Whether a client should reconnect after the server closed with ``code`` (None: connection lost)."""
    if code is None or code == 1006:
        return True
    return code in RECONNECT_CODES
