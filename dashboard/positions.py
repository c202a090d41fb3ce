"""Resume positions: the ``(offset, epoch)`` a channel reached, and which messages are replays of it.

One rule for every namespace (docs/protocol.md §11, rule 6): drop a ``pub`` whose offset is not above
the last one seen for that channel and epoch; a new epoch (the gateway restarted) starts afresh. Pure
functions, safe from any thread: callers keep the last position under their own lock.
"""

from shared.messages import StreamPosition


def is_replay(offset: int, epoch: str, last_offset: int | None, last_epoch: str | None) -> bool:
    """True when ``(offset, epoch)`` is at or below the last position seen in the same epoch."""
    return last_offset is not None and epoch == last_epoch and offset <= last_offset


def stream_position(offset: int | None, epoch: str | None) -> StreamPosition | None:
    """The position as the protocol's model; None until both halves are known."""
    return None if offset is None or epoch is None else StreamPosition(offset=offset, epoch=epoch)
