"""Why the server ends a connection, as one value: a close code and a reason (Centrifuge's ``Disconnect``).

Whatever decides a connection is over (a timer, the outbox, a frame limit, the hub) hands the session a
``Disconnect``; the session closes with exactly that. The common ones are constants here, so a code and
its reason are written once.
"""

from dataclasses import dataclass
from typing import ClassVar

from shared.codes import CloseCode


def close_reason(text: str, limit: int = 123) -> str:
    """``text`` cut to what a close frame can carry (125 bytes less the code), on a character boundary."""
    encoded = text.encode()
    if len(encoded) <= limit:
        return text
    return encoded[: limit - 3].decode(errors="ignore") + "..."


@dataclass(frozen=True, slots=True)
class Disconnect:
    code: CloseCode
    reason: str
    """As the close frame carries it: cut to fit when the value is made."""

    AUTH_TIMEOUT: ClassVar["Disconnect"]
    TOKEN_EXPIRED: ClassVar["Disconnect"]
    SLOW_CONSUMER: ClassVar["Disconnect"]
    RATE_LIMIT: ClassVar["Disconnect"]
    INTERNAL_ERROR: ClassVar["Disconnect"]

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", close_reason(self.reason))

    @classmethod
    def unauthorized(cls, reason: str) -> "Disconnect":
        """A bad or missing token: the client must not reconnect without a new one."""
        return cls(CloseCode.UNAUTHORIZED, reason)

    @classmethod
    def try_again_later(cls, reason: str) -> "Disconnect":
        return cls(CloseCode.TRY_AGAIN_LATER, reason)

    @classmethod
    def message_too_big(cls, limit: int) -> "Disconnect":
        return cls(CloseCode.MESSAGE_TOO_BIG, f"message over {limit} bytes")

    @classmethod
    def stream_lost(cls, channel: str) -> "Disconnect":
        """The broker lost publications of ``channel``: reconnecting and resuming tells the client
        (``recovered: false``), which a subscription kept live never would."""
        return cls(CloseCode.TRY_AGAIN_LATER, f"{channel}: publications lost in the broker; resubscribe")


Disconnect.AUTH_TIMEOUT = Disconnect(CloseCode.UNAUTHORIZED, "authentication timeout")
Disconnect.TOKEN_EXPIRED = Disconnect(CloseCode.UNAUTHORIZED, "token expired")
Disconnect.SLOW_CONSUMER = Disconnect(CloseCode.SLOW_CONSUMER, "slow consumer")
Disconnect.RATE_LIMIT = Disconnect(CloseCode.POLICY_VIOLATION, "rate limit exceeded")
Disconnect.INTERNAL_ERROR = Disconnect(CloseCode.INTERNAL_ERROR, "internal error")
