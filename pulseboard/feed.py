"""Live buffers of ``data:`` channels for a program with no event loop of its own (a Streamlit app):
a background thread runs one ``Subscriber`` per watched channel and keeps its latest points.

Thread-safe: ``watch`` and ``points`` may be called from any thread. A gap (``recovered: false``) is
filled from the range API (``pulseboard.history``) from the last point kept to now, so a chart shows no
hole it does not have to.
"""

import asyncio
import contextlib
import threading
import time
from collections import deque
from concurrent.futures import Future

import httpx

from pulseboard.history import RangeError, read_range
from pulseboard.subscriber import Gap, Pub, Subscriber, SubscriberClosedError
from shared.api import websocket_url

Point = tuple[float, dict[str, float]]
"""A data point: its time (Unix seconds) and its values by series."""


class LiveFeed:
    def __init__(
        self, base_url: str, *, token: str | None = None, keep: int = 1000, history: int = 1000
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._ws_url = websocket_url(self.base_url)
        self._token = token
        self._keep = keep
        self._history = min(history, keep)
        self._lock = threading.Lock()
        self._points: dict[str, deque[Point]] = {}
        self.errors: dict[str, str] = {}
        """Channels the gateway refused for good, with why."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="pulseboard-feed", daemon=True)
        self._thread.start()
        self._tasks: dict[str, Future[None]] = {}

    def watch(self, channel: str) -> None:
        """Start following ``channel`` (with its recent history) unless already."""
        with self._lock:
            if channel in self._tasks:
                return
            self._points[channel] = deque(maxlen=self._keep)
            self._tasks[channel] = asyncio.run_coroutine_threadsafe(self._follow(channel), self._loop)

    def points(self, channel: str) -> list[Point]:
        """The latest points of ``channel`` kept so far, oldest first (watching it from now on)."""
        self.watch(channel)
        with self._lock:
            return list(self._points[channel])

    def close(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _keep_point(self, channel: str, point: Point) -> None:
        with self._lock:
            self._points[channel].append(point)

    async def _follow(self, channel: str) -> None:
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        async with (
            Subscriber(self._ws_url, [channel], token=self._token, history=self._history) as feed,
            httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=10) as http,
        ):
            try:
                async for event in feed:
                    if isinstance(event, Pub):
                        data = event.data
                        self._keep_point(
                            channel, (float(data.get("ts", event.ts)), dict(data.get("values", {})))
                        )
                    elif isinstance(event, Gap):
                        await self._fill(http, channel, event)
            except SubscriberClosedError as exc:
                self.errors[channel] = str(exc)

    async def _fill(self, http: httpx.AsyncClient, channel: str, gap: Gap) -> None:
        start = gap.last_ts if gap.last_ts is not None else time.time() - 3600
        with contextlib.suppress(RangeError, httpx.HTTPError):
            stored = await read_range(http, channel, start + 1e-6, time.time(), points=self._keep)
            by_series = {
                name: dict(zip(series.t, series.mean, strict=True)) for name, series in stored.series.items()
            }
            for moment in sorted({t for values in by_series.values() for t in values}):
                values = {name: found[moment] for name, found in by_series.items() if moment in found}
                self._keep_point(channel, (moment, values))
