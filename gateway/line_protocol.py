"""InfluxDB line protocol in, data points per channel out: what ``/api/v2/write`` and ``/write`` accept.

Lines are parsed by ``line-protocol-parser`` (C, about 1.5 µs a line; its escaping rules are InfluxDB's)
and mapped so that Telegraf's and InfluxDB clients' output lands on channels without configuration:

- channel: ``data:`` + the measurement + ``.`` + each tag's value, in the order of the tag keys
  (``cpu,host=web1,cpu=cpu0`` -> ``data:cpu.cpu0.web1``);
- series: one per numeric or boolean field (integers and floats as they are, booleans as 1 and 0); string
  fields are not series and are left out, and a line with no other field is skipped;
- time: the line's timestamp in the request's precision, or the gateway's clock when it has none.

Names are made valid by ``shared.channels.to_name`` (``_`` for what a name cannot hold, a hash ending
for names over 64 characters). A body is parsed whole before anything is published: one bad
line rejects the request, naming the line.
"""

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from line_protocol_parser import LineFormatError, parse_line

from shared.channels import to_name
from shared.payloads import MAX_SERIES_PER_POINT

PRECISIONS = {
    "ns": 1e-9,
    "n": 1e-9,
    "us": 1e-6,
    "u": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
"""Seconds per timestamp unit, by ``precision`` (v2 takes ``ns``/``us``/``ms``/``s``; v1 also ``n``,
``u``, ``m`` and ``h``)."""


class LineError(ValueError):
    """A line that is not line protocol, or not one a channel can take."""

    def __init__(self, line: int, detail: str, text: bytes) -> None:
        shown = text[:120].decode(errors="replace")
        super().__init__(f"line {line}: {detail}: {shown!r}")
        self.line = line


@dataclass
class Batch:
    """A request's points, grouped by channel in the order the channels first appear."""

    points: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    skipped: int = 0
    """Lines with only string fields."""

    @property
    def count(self) -> int:
        return sum(len(points) for points in self.points.values())


def _lines(body: bytes) -> Iterator[tuple[int, bytes]]:
    for number, raw in enumerate(body.split(b"\n"), start=1):
        line = raw.strip()
        if line and not line.startswith(b"#"):
            yield number, line


def parse(body: bytes, precision: str, now: float) -> Batch:
    """Every point of ``body``; raises ``LineError`` for the first line that is not valid."""
    scale = PRECISIONS[precision]
    batch = Batch()
    channels: dict[tuple[str, tuple[tuple[str, str], ...]], list[dict[str, Any]]] = {}
    # Field keys repeat on every line: each is made a series name once per request.
    series_names: dict[str, str] = {}
    isfinite = math.isfinite
    for number, line in _lines(body):
        try:
            parsed = parse_line(line)
        except LineFormatError as exc:
            raise LineError(number, str(exc).rstrip("."), line) from None
        values: dict[str, float] = {}
        for key, value in parsed["fields"].items():
            kind = value.__class__
            if kind is str:
                continue
            number_value = value if kind is float else float(value)
            if not isfinite(number_value):
                raise LineError(number, f"field {key!r} is not a finite number", line)
            name = series_names.get(key)
            if name is None:
                name = series_names[key] = to_name(key)
            values[name] = number_value
        if not values:
            batch.skipped += 1
            continue
        if len(values) > MAX_SERIES_PER_POINT:
            raise LineError(number, f"{len(values)} fields; at most {MAX_SERIES_PER_POINT} per line", line)
        stamp = parsed["time"]
        tags = parsed["tags"]
        key = (parsed["measurement"], tuple(sorted(tags.items())) if tags else ())
        points = channels.get(key)
        if points is None:
            measurement, tag_pairs = key
            channel = "data:" + to_name(".".join([measurement, *(value for _, value in tag_pairs)]))
            points = channels[key] = batch.points.setdefault(channel, [])
        points.append({"ts": now if stamp is None else stamp * scale, "values": values})
    return batch
