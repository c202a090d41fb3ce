"""Live buffers of ``data:`` channels for a program with no event loop of its own (a Streamlit app):
one ``Connection`` on a thread of its own follows every watched channel and keeps its latest points.

Thread-safe: ``watch`` and ``points`` may be called from any thread. A gap (``recovered: false``) is
filled from the range API (``pulseboard.history``) from the last point kept to now, so a chart shows no
hole it does not have to.
"""

import contextlib
import threading
import time
from collections import deque

import httpx

from pulseboard.connection import Connection, ConnectionStoppedError, Event, Gap, Refused
from pulseboard.history import RangeError, read_range
from pulseboard.loop_thread import LoopThread
from shared.api import websocket_url
from shared.messages import Pub

Point = tuple[float, dict[str, float]]
"""A data point: its time (Unix seconds) and its values by series."""


class LiveFeed:
    def __init__(
        self, base_url: str, *, token: str | None = None, keep: int = 1000, history: int = 1000
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._keep = keep
        self._lock = threading.Lock()
        self._points: dict[str, deque[Point]] = {}
        self.errors: dict[str, str] = {}
        """Channels the gateway refused (or every channel, once it stopped the connection), with why."""
        self.connection = Connection(
            websocket_url(self.base_url), self._on_event, token=token, history=min(history, keep)
        )
        self._http: httpx.AsyncClient | None = None
        self._thread = LoopThread(self._run, name="pulseboard-feed").start()

    def watch(self, channel: str) -> None:
        """Start following ``channel`` (with its recent history) unless already."""
        with self._lock:
            if channel in self._points:
                return
            self._points[channel] = deque(maxlen=self._keep)
        self._thread.call(self.connection.subscribe, channel)

    def points(self, channel: str) -> list[Point]:
        """The latest points of ``channel`` kept so far, oldest first (watching it from now on)."""
        self.watch(channel)
        with self._lock:
            return list(self._points[channel])

    def close(self) -> None:
        self._thread.stop()
        self._thread.join(5)

    async def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        async with httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=10) as http:
            self._http = http
            try:
                await self.connection.run()
            except ConnectionStoppedError as stopped:
                for channel in self._points:
                    self.errors[channel] = str(stopped)

    def _keep_point(self, channel: str, point: Point) -> None:
        with self._lock:
            self._points[channel].append(point)

    async def _on_event(self, event: Event) -> None:
        match event:
            case Pub(channel=channel, data=data, ts=ts):
                self._keep_point(channel, (float(data.get("ts", ts)), dict(data.get("values", {}))))
            case Gap():
                await self._fill(event)
            case Refused(channel=channel, code=code, detail=detail):
                self.errors[channel] = f"{code}: {detail}"

    async def _fill(self, gap: Gap) -> None:
        if self._http is None:
            return
        start = gap.last_ts if gap.last_ts is not None else time.time() - 3600
        with contextlib.suppress(RangeError, httpx.HTTPError):
            stored = await read_range(self._http, gap.channel, start + 1e-6, time.time(), points=self._keep)
            by_series = {
                name: dict(zip(series.t, series.mean, strict=True)) for name, series in stored.series.items()
            }
            for moment in sorted({t for values in by_series.values() for t in values}):
                values = {name: found[moment] for name, found in by_series.items() if moment in found}
                self._keep_point(gap.channel, (moment, values))
