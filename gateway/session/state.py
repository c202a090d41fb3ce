"""A session's connection state, as starlette's ``WebSocketState`` models it: one enum, checked moves.

CONNECTING -> OPEN when a token is verified (at once when auth is off or the header carried one);
CONNECTING or OPEN -> CLOSING when a ``Disconnect`` is decided (the first one wins); any -> CLOSED when
the session ends, the client gone or the close sent.
"""

from enum import Enum


class ConnectionState(Enum):
    CONNECTING = "connecting"
    """Accepted, not authenticated yet: only ``auth`` and ``ping`` are answered."""
    OPEN = "open"
    CLOSING = "closing"
    """A disconnect is decided: queued frames drain, then the close frame goes."""
    CLOSED = "closed"


_MOVES: dict[ConnectionState, frozenset[ConnectionState]] = {
    ConnectionState.CONNECTING: frozenset(
        {ConnectionState.OPEN, ConnectionState.CLOSING, ConnectionState.CLOSED}
    ),
    ConnectionState.OPEN: frozenset({ConnectionState.CLOSING, ConnectionState.CLOSED}),
    ConnectionState.CLOSING: frozenset({ConnectionState.CLOSED}),
    ConnectionState.CLOSED: frozenset(),
}


class StateError(RuntimeError):
    """A move the lifecycle does not have (a bug in the session, never the client's doing)."""


def advance(current: ConnectionState, to: ConnectionState) -> ConnectionState:
    """``to``, if a connection in ``current`` may move there; raises ``StateError`` otherwise."""
    if to not in _MOVES[current]:
        raise StateError(f"a connection cannot go from {current.name} to {to.name}")
    return to
