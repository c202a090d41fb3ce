"""A connection's outbound queue: bounded in bytes, drained by the connection's own sender task.

Fan-out only appends to outboxes (no await), so one slow client never delays another: its outbox fills
up, and when it would pass its byte limit the outbox is marked overflowed, dropped, and its connection
closed as a slow consumer (4001). The sender wakes once per burst and writes everything pending at once:
packed into one JSON-array frame when batching is on, else as separate frames in one socket write.
"""

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

MAX_PACKED_CHARS = 256 * 1024
"""Most the sender takes per write; as a packed array frame, well under clients' default 1 MiB limit."""


class Outbox:
    __slots__ = (
        "_batch",
        "_closed",
        "_frames",
        "_limit",
        "_on_overflow",
        "_pending",
        "_wakeup",
        "dropped",
        "overflowed",
    )

    def __init__(self, limit: int, *, batch: bool, on_overflow: Callable[[], None]) -> None:
        self._limit = limit
        self._batch = batch
        self._on_overflow = on_overflow
        self._frames: deque[str] = deque()
        self._pending = 0
        self._wakeup = asyncio.Event()
        self._closed = False
        self.overflowed = False
        self.dropped = 0
        """Messages discarded when the outbox overflowed."""

    @property
    def pending(self) -> int:
        """Characters queued and not yet handed to the socket (JSON is ASCII-heavy: about bytes)."""
        return self._pending

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
            self.overflowed = True
            self._closed = True
            self.dropped = len(self._frames) + 1
            self._frames.clear()
            self._pending = 0
            self._wakeup.set()
            self._on_overflow()
            return False
        self._frames.append(frame)
        self._pending += size
        self._wakeup.set()
        return True

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
            while frames and not self.overflowed:
                await write(self._take())
            if self._closed:
                return

    def _take(self) -> list[str]:
        frames = self._frames
        if len(frames) == 1:
            frame = frames.popleft()
            self._pending -= len(frame)
            return [frame]
        parts = []
        size = 0
        while frames and size < MAX_PACKED_CHARS:
            frame = frames.popleft()
            parts.append(frame)
            size += len(frame)
        self._pending -= size
        if self._batch and len(parts) > 1:
            return ["[" + ",".join(parts) + "]"]
        return parts
