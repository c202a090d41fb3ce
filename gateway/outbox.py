"""A connection's outbound queue: bounded in bytes, written once per event-loop tick.

Fan-out only appends to outboxes (no await), so one slow client never delays another: its outbox fills
up, and when it would pass its byte limit the outbox is marked overflowed, dropped, and its connection
closed as a slow consumer (4001).

Writing happens once per tick per connection, whatever was queued in it: packed into one JSON-array
frame when batching is on, else as separate frames in one socket write. A channel's publications of one
tick come in already packed (:meth:`Outbox.put_packed`, built once by the hub for every subscriber), so
the common case costs one queue entry per connection per tick, not one per message.

Direct messages (one connection to another) share the queue but not its limit: they have a budget of
their own (:meth:`Outbox.put_direct`), which refuses them when full, so another client's messages can
never close a connection as a slow consumer.

A connection with a direct sink (``gateway.transport.writers``: frames straight to the transport) is
written by one callback per tick that goes over every outbox queued to since the last one, with no task
switch per connection. The connection's sender task takes over whenever the socket cannot take more (its
buffer is over the high-water mark), waits until it can, and hands back; connections without a direct
sink are always written by their task.
"""

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol

log = logging.getLogger(__name__)

MAX_PACKED_CHARS = 256 * 1024
"""Most the sender takes per write; as a packed array frame, well under clients' default 1 MiB limit."""


class DirectSink(Protocol):
    def writable(self) -> bool:
        """The socket is open and its buffer below the high-water mark: a write now will not pile up."""

    def write_one(self, text: str) -> None: ...

    def write_now(self, texts: list[str]) -> None: ...


_due: list["Outbox"] = []
"""Outboxes queued to since the last flush (the gateway runs one event loop per process)."""


def _flush_due() -> None:
    due = _due[:]
    _due.clear()
    for outbox in due:
        try:
            outbox._flush()
        except Exception as exc:
            # One connection's failure must not leave the rest of this tick unwritten. Its sender task
            # raises it instead, which ends that connection's session as a failed socket does.
            log.warning("writing to a connection failed: %r", exc)
            outbox._fail(exc)


class Outbox:
    __slots__ = (
        "_batch",
        "_closed",
        "_direct",
        "_direct_frames",
        "_direct_pending",
        "_error",
        "_frames",
        "_limit",
        "_on_overflow",
        "_packed_counts",
        "_pending",
        "_scheduled",
        "_sending",
        "_wakeup",
        "dropped",
        "overflowed",
    )

    def __init__(
        self,
        limit: int,
        *,
        batch: bool,
        on_overflow: Callable[[], None],
        direct: DirectSink | None = None,
    ) -> None:
        self._limit = limit
        self._batch = batch
        self._on_overflow = on_overflow
        self._direct = direct
        self._frames: deque[str] = deque()
        """JSON texts to send: single messages (objects) and, when batching, packed arrays of them."""
        self._packed_counts: deque[int] | None = None
        """How many messages each queued packed array holds, oldest first (made on the first one)."""
        self._pending = 0
        """Characters queued toward the limit: everything but direct messages."""
        self._direct_frames: deque[str] | None = None
        """The direct messages among the queued frames, oldest first (made on the first one)."""
        self._direct_pending = 0
        self._wakeup = asyncio.Event()
        self._scheduled = False
        """A write is already due (flush or sender wake-up): further puts this tick only append."""
        self._sending = False
        """The sender task holds frames it took: it writes until the queue is empty, flushes keep off."""
        self._closed = False
        self._error: Exception | None = None
        self.overflowed = False
        self.dropped = 0
        """Messages discarded when the outbox overflowed."""

    @property
    def pending(self) -> int:
        """Characters queued and not yet handed to the socket (JSON is ASCII-heavy: about bytes)."""
        return self._pending + self._direct_pending

    @property
    def direct_pending(self) -> int:
        """Characters of direct messages queued (they do not count toward the slow-consumer limit)."""
        return self._direct_pending

    @property
    def room(self) -> int:
        """Characters that can still be queued before the outbox overflows."""
        return self._limit - self._pending

    def put(self, frame: str) -> bool:
        """Queue one JSON message; False when it was dropped (outbox closed or just overflowed)."""
        if self._closed:
            return False
        size = len(frame)
        if self._pending + size > self._limit:
            self._overflow(1)
            return False
        self._frames.append(frame)
        self._pending += size
        if not self._scheduled:
            self._scheduled = True
            if self._direct is None:
                self._wakeup.set()
            else:
                if not _due:
                    asyncio.get_running_loop().call_soon(_flush_due)
                _due.append(self)
        return True

    def put_direct(self, frame: str, budget: int) -> bool:
        """Queue a direct message if the direct messages queued, it included, stay within ``budget``
        characters; False (and nothing else happens) when they would not, or the outbox is closed."""
        size = len(frame)
        if self._closed or self._direct_pending + size > budget:
            return False
        # Kept out of the limit: put() counts it as _pending, so it is moved to _direct_pending, and
        # put()'s overflow check is made with _pending as it was (size taken off first, then added).
        self._pending -= size
        if not self.put(frame):
            return False
        directs = self._direct_frames
        if directs is None:
            directs = self._direct_frames = deque()
        directs.append(frame)
        self._direct_pending += size
        return True

    def put_packed(self, frames: list[str], packed: str) -> bool:
        """Queue several JSON messages of one channel at once; ``packed`` is them as one JSON array,
        shared by every subscriber. Without batching they are queued one by one."""
        if not self._batch:
            return all(self.put(frame) for frame in frames)
        if self._closed:
            return False
        if self._pending + len(packed) > self._limit:
            self._overflow(len(frames))
            return False
        counts = self._packed_counts
        if counts is None:
            counts = self._packed_counts = deque()
        counts.append(len(frames))
        return self.put(packed)

    def _overflow(self, refused: int) -> None:
        self.overflowed = True
        self._closed = True
        packed = self._packed_counts or ()
        self.dropped = len(self._frames) - len(packed) + sum(packed) + refused
        self._frames.clear()
        self._packed_counts = None
        self._direct_frames = None
        self._pending = self._direct_pending = 0
        self._wakeup.set()
        self._on_overflow()

    def close(self) -> None:
        """Take no more messages; the sender still writes what is queued, then returns."""
        self._closed = True
        self._wakeup.set()

    async def run(self, write: Callable[[list[str]], Awaitable[None]]) -> None:
        """Hand queued messages to ``write`` until closed (and drained) or overflowed.

        Each call gets everything pending (up to ``MAX_PACKED_CHARS``): one packed array frame when
        batching is on, else the frames themselves, which the writer coalesces into one socket write.
        """
        frames = self._frames
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if self._error is not None:
                raise self._error
            self._scheduled = False
            self._sending = True
            try:
                while frames and not self.overflowed:
                    await write(self._take())
            finally:
                self._sending = False
            if self._closed:
                return

    def _fail(self, error: Exception) -> None:
        self._error = error
        self._closed = True
        self._wakeup.set()

    def _flush(self) -> None:
        self._scheduled = False
        if self._sending:
            return
        direct = self._direct
        assert direct is not None
        frames = self._frames
        while frames and not self.overflowed:
            if not direct.writable():
                self._wakeup.set()  # the sender waits for the socket to drain, then writes the rest
                return
            if len(frames) == 1:  # the common case: one message, or one channel's packed tick
                direct.write_one(self._take_one())
            else:
                direct.write_now(self._take())

    def _take(self) -> list[str]:
        frames = self._frames
        if len(frames) == 1:
            return [self._take_one()]
        parts: list[str] = []
        size = 0
        while frames and (not parts or size + len(frames[0]) <= MAX_PACKED_CHARS):
            frame = frames.popleft()
            size += len(frame)
            if frame[0] == "[":
                self._unpacked()
            elif self._direct_frames and frame is self._direct_frames[0]:
                self._direct_taken()
            parts.append(frame)
        self._pending -= size
        if self._batch and len(parts) > 1:
            # Packed arrays among them are opened up: their messages join the others in one array.
            return ["[" + ",".join(p[1:-1] if p[0] == "[" else p for p in parts) + "]"]
        return parts

    def _take_one(self) -> str:
        frame = self._frames.popleft()
        self._pending -= len(frame)
        if frame[0] == "[":
            self._unpacked()
        elif self._direct_frames and frame is self._direct_frames[0]:
            self._direct_taken()
        return frame

    def _direct_taken(self) -> None:
        """The oldest direct message was just taken (and counted off ``_pending``): move its count back
        from there to ``_direct_pending``, where it belongs."""
        directs = self._direct_frames
        assert directs is not None
        size = len(directs.popleft())
        self._pending += size
        self._direct_pending -= size

    def _unpacked(self) -> None:
        counts = self._packed_counts
        assert counts is not None
        counts.popleft()
