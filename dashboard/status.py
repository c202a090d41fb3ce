"""The connection status as the user reads it: connected, reconnecting (attempt n), stale since t, stopped."""

import time
from dataclasses import dataclass

from dashboard.session_buffer import ConnectionState, ConnectionStatus

STALE_AFTER = 10.0
"""Seconds without any message before a connected session is shown as stale."""


@dataclass(frozen=True, slots=True)
class StatusLine:
    level: str
    """``ok``, ``warning`` or ``error``: how the page colours it."""
    text: str
    detail: str = ""


def clock_time(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts))


def describe(status: ConnectionStatus, now: float) -> StatusLine:
    if status.state is ConnectionState.CONNECTED:
        last = status.last_message_at
        if last is not None and now - last > STALE_AFTER:
            return StatusLine("warning", f"Connected, stale since {clock_time(last)}", "no message since")
        return StatusLine("ok", "Connected")
    if status.state is ConnectionState.CONNECTING:
        return StatusLine("warning", "Connecting…")
    if status.state is ConnectionState.RECONNECTING:
        return StatusLine("warning", f"Reconnecting (attempt {status.attempt})", status.last_error)
    return StatusLine("error", "Disconnected", status.last_error)
