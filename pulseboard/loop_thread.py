"""An asyncio loop on a thread of its own, for programs that have none (a script, a Streamlit app).

The loop runs one main coroutine; other threads talk to it only through the methods here, which never
touch the loop's objects directly: ``call`` schedules a function on it, ``run`` waits for a coroutine's
result, ``stop`` cancels the main coroutine without waiting (safe from another event loop, such as
Streamlit's). When the main coroutine ends, the loop closes and ``run`` raises ``LoopClosedError``.
"""

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Self, TypeVar

T = TypeVar("T")


class LoopClosedError(Exception):
    """The thread's loop has ended: nothing more runs on it."""


class LoopThread:
    def __init__(self, main: Callable[[], Coroutine[Any, Any, None]], name: str) -> None:
        self.loop = asyncio.new_event_loop()
        # Created now, run on the thread: ``stop`` can cancel it even before the thread has started.
        self._main = self.loop.create_task(main(), name=name)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    @property
    def name(self) -> str:
        return self._thread.name

    def start(self) -> Self:
        self._thread.start()
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._main)
        except asyncio.CancelledError:
            pass
        finally:
            # Tasks the main coroutine left behind (a subscribe in flight) end with the loop.
            leftover = asyncio.all_tasks(self.loop)
            for task in leftover:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*leftover, return_exceptions=True))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    def call(self, function: Callable[..., object], *args: object) -> None:
        """Run ``function(*args)`` on the loop soon (``LoopClosedError`` once it has ended)."""
        try:
            self.loop.call_soon_threadsafe(function, *args)
        except RuntimeError:
            raise LoopClosedError("the loop has ended") from None

    def run(self, work: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run ``work`` on the loop and wait for its result; ``TimeoutError`` after ``timeout`` seconds
        (``work`` is then cancelled), ``LoopClosedError`` when the loop has ended."""
        try:
            future = asyncio.run_coroutine_threadsafe(work, self.loop)
        except RuntimeError:
            work.close()
            raise LoopClosedError("the loop has ended") from None
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"no answer within {timeout:g} s") from None

    def stop(self) -> None:
        """Cancel the main coroutine; returns at once (twice, or after the end, is harmless)."""
        with contextlib.suppress(RuntimeError):  # the loop has already closed
            self.loop.call_soon_threadsafe(self._main.cancel)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end; True when it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def is_alive(self) -> bool:
        return self._thread.is_alive()
