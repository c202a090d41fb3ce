"""Threshold alerts: a series crossing its warning or error line becomes a ``Notification``, sparingly.

A series alerts when its level rises (ok to warning, ok or warning to error). It must then fall clearly
below the line (``hysteresis``) before that level counts as left, so a value hovering at the line does not
flap. On top of that each series waits ``cooldown`` seconds between alerts and all series together send
at most one alert per ``min_gap`` seconds: a burst of spikes makes one toast, not twenty. A crossing
swallowed by those limits is not sent later: by then it would be stale.
"""

from dataclasses import dataclass, field
from typing import Literal

from shared.payloads import Notification
from simulator.sources import Thresholds

Level = Literal["ok", "warning", "error"]
_RANK: dict[Level, int] = {"ok": 0, "warning": 1, "error": 2}


def _raw_level(value: float, thresholds: Thresholds) -> Level:
    if value >= thresholds.error:
        return "error"
    if value >= thresholds.warning:
        return "warning"
    return "ok"


@dataclass
class AlertWatcher:
    cooldown: float = 30.0
    """Seconds between two alerts of one series."""
    min_gap: float = 5.0
    """Seconds between any two alerts."""
    hysteresis: float = 0.05
    """How far below a line (as a fraction of it) a value must fall to leave that level."""
    _levels: dict[str, Level] = field(default_factory=dict)
    _last_alert: dict[str, float] = field(default_factory=dict)
    _last_any: float | None = None

    def _level(self, key: str, value: float, thresholds: Thresholds) -> Level:
        current = self._levels.get(key, "ok")
        raw = _raw_level(value, thresholds)
        if _RANK[raw] >= _RANK[current]:
            return raw
        line = thresholds.error if current == "error" else thresholds.warning
        if value > line - abs(line) * self.hysteresis:
            return current
        return raw

    def _allowed(self, key: str, now: float) -> bool:
        last = self._last_alert.get(key)
        if last is not None and now - last < self.cooldown:
            return False
        return self._last_any is None or now - self._last_any >= self.min_gap

    def observe(
        self, channel: str, series: str, value: float, thresholds: Thresholds, now: float, unit: str = ""
    ) -> Notification | None:
        """Record a sample taken at ``now`` (monotonic seconds); return the alert it raises, if any."""
        key = f"{channel}/{series}"
        previous = self._levels.get(key, "ok")
        level = self._level(key, value, thresholds)
        self._levels[key] = level
        if level == "ok" or _RANK[level] <= _RANK[previous] or not self._allowed(key, now):
            return None
        self._last_alert[key] = now
        self._last_any = now
        line = thresholds.error if level == "error" else thresholds.warning
        return Notification(
            level=level,
            title=f"{channel} {series} above {line:g}{unit}",
            body=f"{series} on {channel} reached {value:g}{unit} ({level} threshold: {line:g}{unit}).",
            channel=channel if channel.startswith("data:") else None,
        )
