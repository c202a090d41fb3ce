"""Which channels and series the Live page shows, as the URL keeps them, so a link reproduces a view.

- ``channel``: a ``data:`` channel to show, once per channel (none: every channel with data);
- ``series``: ``<channel>/<series>``, once per series picked (none for a channel: all its series).
  Neither channel nor series names may contain ``/`` (``shared.channels.NAME_PATTERN``), so the last
  ``/`` splits them.

Values that are not valid names are left out and listed in ``problems``, as ``dashboard.windows`` does
for the time range: a page always opens. Pure values, no Streamlit.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from shared.channels import Channel as ChannelName
from shared.channels import ChannelError, Namespace, is_valid_name


@dataclass(frozen=True, slots=True)
class Selection:
    channels: tuple[str, ...] = ()
    """The channels picked, in order; empty: all."""
    series: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """Per channel with a pick, the series picked (channels in order)."""
    problems: tuple[str, ...] = field(default=(), compare=False)

    def series_of(self, channel: str) -> list[str]:
        """The series picked on ``channel``; empty: all of them."""
        return list(dict(self.series).get(channel, ()))

    def params(self) -> dict[str, list[str]]:
        params: dict[str, list[str]] = {}
        if self.channels:
            params["channel"] = list(self.channels)
        picked = [f"{channel}/{name}" for channel, names in self.series for name in names]
        if picked:
            params["series"] = picked
        return params

    @classmethod
    def of(cls, channels: Sequence[str], series: Mapping[str, Sequence[str]]) -> "Selection":
        """From the page's pickers: channels in their order, series per channel (empty ones dropped)."""
        picks = tuple((channel, tuple(names)) for channel, names in sorted(series.items()) if names)
        return cls(tuple(channels), picks)

    @classmethod
    def from_params(cls, params: Mapping[str, Sequence[str]]) -> "Selection":
        problems: list[str] = []
        channels: list[str] = []
        for name in params.get("channel", ()):
            problem = _channel_problem(name)
            if problem:
                problems.append(f"`channel` {name[:80]!r}: {problem}")
            elif name not in channels:
                channels.append(name)
        series: dict[str, list[str]] = {}
        for value in params.get("series", ()):
            channel, _, name = value.rpartition("/")
            problem = _channel_problem(channel) or ("" if is_valid_name(name) else "not a series name")
            if problem:
                problems.append(f"`series` {value[:80]!r}: {problem}")
            elif name not in series.setdefault(channel, []):
                series[channel].append(name)
        return cls(
            tuple(channels),
            tuple((channel, tuple(names)) for channel, names in sorted(series.items())),
            tuple(problems),
        )


def _channel_problem(name: str) -> str:
    try:
        parsed = ChannelName.parse(name)
    except ChannelError as exc:
        return str(exc)
    return "" if parsed.namespace == Namespace.DATA else "not a data: channel"
