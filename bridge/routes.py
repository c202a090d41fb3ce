"""Which MQTT topics go to which channel, and what a message's payload becomes.

A route is ``PATTERN=CHANNEL``: an MQTT topic filter (``+`` one level, ``#`` the rest) and a ``data:``
channel template in which ``{1}``, ``{2}``, ... stand for the levels the ``+`` matched and ``{#}`` for
those ``#`` matched (joined with ``.``). ``sensors/+/+=data:sensors.{1}`` sends ``sensors/lab/temp`` to
``data:sensors.lab``. Routes are tried in order; the first that matches wins.

Payloads: a number (``21.5``) is one series named after the topic's last level; a JSON object of numbers
(``{"temp": 21.5, "rh": 40}``, booleans as 1 and 0, other fields left out) is one series per field; a
JSON object with ``values`` (and optionally ``ts``, Unix seconds) is taken as a data point as it is.
Anything else is not a point.
"""

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from shared.channels import Channel, ChannelError, Namespace, to_name
from shared.payloads import DataPoint

_PLACEHOLDER = re.compile(r"\{(\d+|#)\}")


class RouteError(ValueError):
    """A route that cannot work, saying why."""


@dataclass(frozen=True)
class Route:
    pattern: str
    channel: str

    @classmethod
    def parse(cls, text: str) -> "Route":
        pattern, sep, channel = text.strip().partition("=")
        pattern, channel = pattern.strip(), channel.strip()
        if not sep or not pattern or not channel:
            raise RouteError(f"route {text!r}: write it as TOPIC_FILTER=data:CHANNEL")
        levels = pattern.split("/")
        if "#" in levels[:-1] or any(("+" in level or "#" in level) and len(level) > 1 for level in levels):
            raise RouteError(f"route {text!r}: '+' and '#' must be whole levels, '#' only the last")
        if not channel.startswith(f"{Namespace.DATA}:"):
            raise RouteError(f"route {text!r}: the channel must be a data: channel")
        wildcards = levels.count("+")
        for placeholder in _PLACEHOLDER.findall(channel):
            if placeholder == "#" and levels[-1] != "#":
                raise RouteError(f"route {text!r}: {{#}} needs a '#' at the end of the filter")
            if placeholder != "#" and not 1 <= int(placeholder) <= wildcards:
                raise RouteError(f"route {text!r}: {{{placeholder}}} but the filter has {wildcards} '+'")
        return cls(pattern, channel)

    def channel_for(self, topic: str) -> Channel | None:
        """The channel ``topic`` goes to, or None when this route's filter does not match it."""
        levels, wanted = topic.split("/"), self.pattern.split("/")
        plus: list[str] = []
        rest: list[str] = []
        for index, level in enumerate(wanted):
            if level == "#":
                rest = levels[index:]
                break
            if index >= len(levels):
                return None
            if level == "+":
                plus.append(levels[index])
            elif level != levels[index]:
                return None
        else:
            if len(levels) != len(wanted):
                return None

        def fill(match: re.Match[str]) -> str:
            key = match.group(1)
            return ".".join(rest) if key == "#" else plus[int(key) - 1]

        name = _PLACEHOLDER.sub(fill, self.channel.removeprefix(f"{Namespace.DATA}:"))
        try:
            return Channel.parse(f"{Namespace.DATA}:{to_name(name)}")
        except ChannelError:
            return None


def parse_routes(text: str) -> list[Route]:
    """Routes separated by ``;`` or newlines."""
    routes = [Route.parse(part) for part in re.split(r"[;\n]", text) if part.strip()]
    if not routes:
        raise RouteError("no routes: give at least one TOPIC_FILTER=data:CHANNEL")
    return routes


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def point_of(topic: str, payload: bytes | bytearray) -> DataPoint | None:
    """The data point a message carries (see the module docstring), or None."""
    try:
        decoded = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    try:
        if isinstance(decoded, dict) and isinstance(decoded.get("values"), dict):
            return DataPoint.model_validate(decoded)
        if isinstance(decoded, dict):
            values = {
                to_name(key): number for key, raw in decoded.items() if (number := _number(raw)) is not None
            }
        else:
            number = _number(decoded)
            values = {} if number is None else {to_name(topic.rsplit("/", 1)[-1]): number}
        return DataPoint(values=values) if values else None
    except ValidationError:
        return None
