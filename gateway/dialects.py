"""How a WebSocket endpoint speaks to its clients, over the one session implementation.

``/ws`` speaks the protocol (``NATIVE``). The classic endpoints (``gateway/classic.py``) speak the
simple formats of the common tutorials, as thin translations: a dialect turns a client's frame into a
protocol op, and each outgoing protocol frame into the classic form (or nothing). Subscriptions, fan-out,
limits and auth stay in the session and the hub: there is no second fan-out.
"""

from collections.abc import Awaitable, Callable

from gateway.state import Gateway
from shared.messages import ClientOp, parse_client_op

Apply = Callable[[ClientOp], Awaitable[None]]
"""Runs an op in the session as if the client had sent it (errors go to the client as usual)."""


class Dialect:
    native = True
    """Speaks the protocol itself: sends ``welcome``, packs frames into arrays, accepts every op."""
    auth_op = True
    """Lets a client authenticate after the accept with an ``auth`` op (within ``PULSE_AUTH_TIMEOUT``).
    Without one, with auth on, admission wants the header token and closes a client without it with
    4401 at once: a classic client has nothing to wait for."""

    def parse(self, text: str) -> ClientOp:
        """A client's text frame as an op; raises ``ProtocolError`` for bad input."""
        return parse_client_op(text)

    def render(self, frame: str) -> str | None:
        """An outgoing protocol frame (one message) as the client should see it; None drops it."""
        return frame

    async def join(self, gateway: Gateway, apply: Apply) -> None:
        """Runs before the client's first frame is read: subscriptions a message it sends at once must
        already find (a classic chat client sees its own message come back)."""

    async def follow(self, gateway: Gateway, apply: Apply) -> None:
        """Runs for the session's lifetime, from the start: a dialect subscribes its client here."""


NATIVE = Dialect()
