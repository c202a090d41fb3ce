"""Counting what the simulator did, and telling the user on stderr.

On a terminal the status line is rewritten in place about once a second; anywhere else (a pipe, a log
file, honcho) it becomes one log line per second, because carriage returns make a mess of logs. One-off
messages (a lost gateway, a rejected payload) always get a line of their own.
"""

import time
from dataclasses import dataclass, field
from typing import TextIO

PREFIX = "simulator:"


@dataclass
class Stats:
    published: int = 0
    """Payloads the gateway stored (data points, chat posts and alerts)."""
    points: int = 0
    chats: int = 0
    alerts: int = 0
    requests: int = 0
    """Publish requests made, retries included."""
    errors: int = 0
    """Publish requests that failed or were rejected."""
    dropped: int = 0
    """Payloads given up on: rejected, over the backlog during an outage, or unsent at the end."""
    started: float = field(default_factory=time.monotonic)

    def summary(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        return (
            f"{self.published} messages published in {elapsed:.1f}s ({self.published / elapsed:.1f}/s): "
            f"{self.points} points, {self.chats} chat, {self.alerts} alerts in {self.requests} requests; "
            f"{self.errors} errors, {self.dropped} dropped"
        )


class Progress:
    def __init__(self, stream: TextIO, *, interval: float = 1.0) -> None:
        self._stream = stream
        self._interval = interval
        self._live = stream.isatty()
        self._line_open = False
        self._last_report: float | None = None
        self._last_published = 0

    def _write_line(self, text: str) -> None:
        if self._line_open:
            self._stream.write("\r\x1b[K")
            self._line_open = False
        self._stream.write(f"{text}\n")
        self._stream.flush()

    def message(self, text: str) -> None:
        self._write_line(f"{PREFIX} {text}")

    def tick(self, stats: Stats, now: float, status: str = "") -> None:
        """Report progress if a second has passed since the last report."""
        if self._last_report is None:
            self._last_report = now
            return
        if now - self._last_report < self._interval:
            return
        rate = (stats.published - self._last_published) / (now - self._last_report)
        self._last_report = now
        self._last_published = stats.published
        line = (
            f"{PREFIX} {now - stats.started:5.0f}s  published {stats.published}  {rate:.1f} msg/s  "
            f"errors {stats.errors}  dropped {stats.dropped}"
        )
        if status:
            line = f"{line}  ({status})"
        if self._live:
            self._stream.write(f"\r\x1b[K{line}")
            self._stream.flush()
            self._line_open = True
        else:
            self._write_line(line)

    def finish(self, stats: Stats, now: float) -> None:
        self.message(stats.summary(now))
