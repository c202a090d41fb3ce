"""Follow channels as an iteration: asyncio (``Subscriber``) or blocking (``SyncSubscriber``).

    async with Subscriber("ws://127.0.0.1:8000/ws", ["data:cpu", "chat:lobby"]) as feed:
        async for event in feed:
            match event:
                case Pub(): ...          # a publication, in offset order, never twice
                case Gap(): ...          # publications were lost (recovered: false): read_range fills them
                case Refused(): ...      # the gateway refused a channel (the others go on)

    with SyncSubscriber("ws://127.0.0.1:8000/ws", ["data:cpu"]) as feed:
        for event in feed: ...

Both run a ``pulseboard.connection.Connection``: reconnect with backoff, exact resume with ``since``, a
``Gap`` where the gateway cannot replay. A close that must not be retried (4401: the token was refused)
ends the iteration with ``ConnectionStoppedError``. ``publish`` sends over the same connection and
returns the publication's offset once the gateway acks it (``RequestRejectedError`` when it refuses).
``subscribe`` adds a channel while the iteration runs.
"""

import asyncio
import contextlib
import queue
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self, Unpack

from pulseboard.connection import Connection, ConnectionOptions, ConnectionStoppedError, Event, Gap, Refused
from pulseboard.loop_thread import LoopThread
from shared.messages import Pub

__all__ = ["ConnectionStoppedError", "Gap", "Pub", "Refused", "Subscriber", "SyncSubscriber", "Update"]

ACK_TIMEOUT = 10.0

Update = Pub | Gap | Refused
"""What an iteration hands out: the stream's news, not the connection's bookkeeping."""


def _update(event: Event) -> Update | None:
    return event if isinstance(event, Pub | Gap | Refused) else None


class Subscriber:
    def __init__(
        self,
        url: str,
        channels: Sequence[str],
        **options: Unpack[ConnectionOptions],
    ) -> None:
        self._updates: asyncio.Queue[Update | BaseException] = asyncio.Queue()
        self.connection = Connection(url, self._on_event, channels, **options)
        self._task: asyncio.Task[None] | None = None

    @property
    def connections(self) -> int:
        """Connections opened so far (1 + reconnects)."""
        return self.connection.connections

    def _on_event(self, event: Event) -> None:
        update = _update(event)
        if update is not None:
            self._updates.put_nowait(update)

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run(), name="pulseboard-subscriber")
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()

    async def _run(self) -> None:
        try:
            await self.connection.run()
        except ConnectionStoppedError as stopped:
            self._updates.put_nowait(stopped)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Update:
        item = await self._updates.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def subscribe(self, channel: str) -> None:
        self.connection.subscribe(channel)

    async def publish(self, channel: str, data: dict[str, Any]) -> int:
        """Publish over the subscriber's connection (waiting for one while it reconnects); the offset
        once acked. Bound the wait with ``asyncio.timeout``."""
        return await self.connection.publish(channel, data, wait=True)


class SyncSubscriber:
    """The blocking form: the connection runs on a thread of its own; iterate from any one thread."""

    def __init__(
        self,
        url: str,
        channels: Sequence[str],
        **options: Unpack[ConnectionOptions],
    ) -> None:
        self._updates: queue.SimpleQueue[Update | BaseException] = queue.SimpleQueue()
        self.connection = Connection(url, self._on_event, channels, **options)
        self._thread = LoopThread(self._run, name="pulseboard-sync-subscriber")

    def _on_event(self, event: Event) -> None:
        update = _update(event)
        if update is not None:
            self._updates.put(update)

    async def _run(self) -> None:
        try:
            await self.connection.run()
        except ConnectionStoppedError as stopped:
            self._updates.put(stopped)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._thread.stop()
        self._thread.join(5)

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> Update:
        return self.get()

    def get(self, timeout: float | None = None) -> Update:
        """The next update; ``queue.Empty`` when none came within ``timeout`` seconds."""
        item = self._updates.get(timeout=timeout)
        if isinstance(item, BaseException):
            raise item
        return item

    def subscribe(self, channel: str) -> None:
        self._thread.call(self.connection.subscribe, channel)

    def publish(self, channel: str, data: dict[str, Any], timeout: float = ACK_TIMEOUT) -> int:
        """Publish over the subscriber's connection (waiting for one while it reconnects); the offset
        once acked, else ``TimeoutError`` after ``timeout`` seconds."""
        return self._thread.run(self.connection.publish(channel, data, wait=True), timeout)
