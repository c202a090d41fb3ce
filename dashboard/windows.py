"""What time range the Live page shows: a window back from now, a custom range, or a zoom into either.

A ``View`` is kept in the page's URL (``st.query_params``), so a browser refresh, a new tab or a shared
link shows the same chart at once:

- ``window``: ``5m``, ``1h``, ``6h``, ``24h``, ``7d``, ``30d`` (a window ending now, sliding) or
  ``custom``;
- ``from``, ``to``: the custom range, ISO 8601 (UTC unless an offset is given) or Unix seconds;
- ``zoom_from``, ``zoom_to``: a range zoomed into (a box selection on a chart), shown instead of the
  window until "Back";
- ``paused``: the moment a sliding window was paused at: the link shows the window ending then.

Pure values and functions, no Streamlit: safe from any thread.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime


@dataclass(frozen=True, slots=True)
class Window:
    key: str
    """How the URL spells it."""
    label: str
    seconds: float | None
    """Seconds back from now; None for the custom range."""


CUSTOM = "custom"
WINDOWS: dict[str, Window] = {
    window.key: window
    for window in (
        Window("5m", "5 min", 300.0),
        Window("1h", "1 h", 3600.0),
        Window("6h", "6 h", 6 * 3600.0),
        Window("24h", "24 h", 24 * 3600.0),
        Window("7d", "7 d", 7 * 24 * 3600.0),
        Window("30d", "30 d", 30 * 24 * 3600.0),
        Window(CUSTOM, "Custom", None),
    )
}
"""The window choices, in the order the page offers them."""
DEFAULT_WINDOW = "5m"


@dataclass(frozen=True, slots=True)
class TimeRange:
    """``[start, end)`` in Unix seconds; ``start`` before ``end``, both finite."""

    start: float
    end: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start) and math.isfinite(self.end)):
            raise ValueError("a time range needs finite times")
        if self.start >= self.end:
            raise ValueError(f"{format_time(self.start)} is not before {format_time(self.end)}")

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class View:
    window: str = DEFAULT_WINDOW
    """A key of ``WINDOWS``."""
    custom: TimeRange | None = None
    """The range of the ``custom`` window."""
    zoom: TimeRange | None = None
    """A range zoomed into, shown instead of the window."""
    paused_at: float | None = None
    """A sliding window stopped at this moment (Pause): it shows the window ending then."""
    problems: tuple[str, ...] = field(default=(), compare=False, kw_only=True)
    """What was wrong with the URL this view was read from (the faulty parts were left out)."""

    def __post_init__(self) -> None:
        if self.window not in WINDOWS:
            raise ValueError(f"unknown window {self.window!r}")
        if self.window == CUSTOM and self.custom is None:
            raise ValueError("the custom window needs a range")

    @property
    def sliding(self) -> bool:
        """The range ends now and moves on: live points are appended as they arrive."""
        return self.zoom is None and self.window != CUSTOM and self.paused_at is None

    def span(self, now: float) -> TimeRange:
        """The range shown at ``now``."""
        if self.zoom is not None:
            return self.zoom
        if self.custom is not None and self.window == CUSTOM:
            return self.custom
        seconds = WINDOWS[self.window].seconds
        assert seconds is not None  # only the custom window has none
        end = now if self.paused_at is None else self.paused_at
        return TimeRange(end - seconds, end)

    @property
    def key(self) -> str:
        """Names the range for caches and chart keys: the same view always gives the same key."""
        fixed = self.zoom or (self.custom if self.window == CUSTOM else None)
        if fixed is None and self.paused_at is not None:
            return f"{self.window}@{self.paused_at:.3f}"
        if fixed is None:
            return self.window
        kind = "zoom" if self.zoom is not None else CUSTOM
        return f"{kind}:{fixed.start:.3f}-{fixed.end:.3f}"

    @property
    def window_label(self) -> str:
        """What "Back to ..." returns to."""
        if self.window == CUSTOM and self.custom is not None:
            return f"{format_time(self.custom.start)} to {format_time(self.custom.end)}"
        return WINDOWS[self.window].label

    def zoomed(self, zoom: TimeRange | None) -> "View":
        return replace(self, zoom=zoom, problems=())

    def paused(self, at: float | None) -> "View":
        """Stopped at ``at`` (None: running again)."""
        return replace(self, paused_at=at, problems=())

    def params(self) -> dict[str, str]:
        """The URL's query parameters for this view."""
        params = {"window": self.window}
        if self.window == CUSTOM and self.custom is not None:
            params.update({"from": format_time(self.custom.start), "to": format_time(self.custom.end)})
        if self.zoom is not None:
            params.update({"zoom_from": format_time(self.zoom.start), "zoom_to": format_time(self.zoom.end)})
        if self.paused_at is not None:
            params["paused"] = format_time(self.paused_at)
        return params

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> "View":
        """The view a URL asks for. What is missing or wrong is left out (and listed in ``problems``):
        a page always opens, on the default window at worst."""
        problems: list[str] = []
        window = params.get("window", DEFAULT_WINDOW)
        if window not in WINDOWS:
            problems.append(f"unknown window {window!r}; the choices are {', '.join(WINDOWS)}")
            window = DEFAULT_WINDOW
        custom = None
        if window == CUSTOM:
            custom = _range(params, "from", "to", problems)
            if custom is None:
                window = DEFAULT_WINDOW
        zoom = _range(params, "zoom_from", "zoom_to", problems) if "zoom_from" in params else None
        paused_at = None
        if "paused" in params:
            try:
                paused_at = parse_time(params["paused"])
            except ValueError as exc:
                problems.append(f"`paused`: {exc}")
        return cls(window, custom, zoom, paused_at, problems=tuple(problems))


def _range(params: Mapping[str, str], first: str, last: str, problems: list[str]) -> TimeRange | None:
    try:
        return TimeRange(parse_time(params.get(first, "")), parse_time(params.get(last, "")))
    except ValueError as exc:
        problems.append(f"`{first}`/`{last}`: {exc}")
        return None


def parse_time(text: str) -> float:
    """Unix seconds from Unix seconds or ISO 8601 (no offset: UTC); ValueError when it is neither."""
    text = text.strip()
    if not text:
        raise ValueError("a time is missing")
    try:
        value = float(text)
    except ValueError:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a time (ISO 8601 or Unix seconds)") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a time")
    return value


def format_time(ts: float) -> str:
    """ISO 8601 in UTC, to the millisecond when the time has a fraction: ``2026-05-01T12:00:00Z``."""
    moment = datetime.fromtimestamp(ts, UTC)
    spec = "milliseconds" if moment.microsecond else "seconds"
    return moment.replace(tzinfo=None).isoformat(timespec=spec) + "Z"
