"""How a WebSocket endpoint speaks to its clients, over the one session implementation.

``/ws`` speaks the protocol (``NATIVE``). The classic endpoints (``gateway/classic.py``) speak the
simple formats of the common tutorials, as thin translations (``Translated``): a dialect turns a
client's frame into a protocol op, and each outgoing protocol frame into the classic form (or nothing).
Subscriptions, fan-out, limits and auth stay in the session and the hub: there is no second fan-out.
Everything the two kinds do differently is a method here, so the session has no branch on the kind.
"""

from collections.abc import Awaitable, Callable

from gateway.outbox import DirectSink
from gateway.state import Gateway
from gateway.transport.writers import DirectWriter, FrameWriter
from shared.messages import ClientOp, Welcome, encode, parse_client_op

Apply = Callable[[ClientOp], Awaitable[None]]
"""Runs an op in the session as if the client had sent it (errors go to the client as usual)."""
Send = Callable[[list[str]], Awaitable[None]]
"""Writes a batch of outgoing protocol frames to the client."""


class Dialect:
    """The protocol itself: ``welcome`` first, frames packed into arrays, every op accepted."""

    auth_op = True
    """Lets a client authenticate after the accept with an ``auth`` op (within ``PULSE_AUTH_TIMEOUT``).
    Without one, with auth on, admission wants the header token and closes a client without it with
    4401 at once: a classic client has nothing to wait for."""
    batch = True
    """A tick's frames for the client may go as one JSON array."""

    def parse(self, text: str) -> ClientOp:
        """A client's text frame as an op; raises ``ProtocolError`` for bad input."""
        return parse_client_op(text)

    def greeting(self, welcome: Welcome) -> str | None:
        """The first frame the client gets, if any."""
        return encode(welcome)

    def direct_sink(self, writer: FrameWriter) -> DirectSink | None:
        """Where the outbox may write frames as they are, with no task switch; None: only ``sender``."""
        return writer if isinstance(writer, DirectWriter) else None

    def sender(self, writer: FrameWriter) -> Send:
        """How the session's sender task writes a batch of protocol frames."""
        return writer.write

    async def join(self, gateway: Gateway, apply: Apply) -> None:
        """Runs before the client's first frame is read: subscriptions a message it sends at once must
        already find (a classic chat client sees its own message come back)."""

    async def follow(self, gateway: Gateway, apply: Apply) -> None:
        """Runs for the session's lifetime, from the start: a dialect subscribes its client here."""


class Translated(Dialect):
    """A classic format: no ``welcome``, no ``auth`` op, and every frame rendered one by one, so none
    goes to the socket as the protocol wrote it (nor packed)."""

    auth_op = False
    batch = False

    def render(self, frame: str) -> str | None:
        """An outgoing protocol frame (one message) as the client should see it; None drops it."""
        return frame

    def greeting(self, welcome: Welcome) -> str | None:
        return None

    def direct_sink(self, writer: FrameWriter) -> DirectSink | None:
        return None

    def sender(self, writer: FrameWriter) -> Send:
        render = self.render

        async def send(frames: list[str]) -> None:
            rendered = [text for text in map(render, frames) if text is not None]
            if rendered:
                await writer.write(rendered)

        return send


NATIVE = Dialect()
