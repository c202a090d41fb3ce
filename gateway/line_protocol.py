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

A body of plain lines (what Telegraf and the InfluxDB clients send: no escapes, no string fields, float
or ``i`` integer fields under valid series names) is read in bulk (``_parse_plain``): its fields become
one JSON array that pydantic-core parses at once, and the C parser reads only the first line of each
measurement-and-tags. One C parse per line cost more than the JSON batch endpoint spends on a point. The
bulk path takes a body only where the C parser would read it the same way (``tests/test_line_protocol.py``
checks that on generated bodies); it gives up on anything else, and then every line goes through the C
parser (``_parse_each``), whose rules and error messages stay the only ones.
"""

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import repeat
from typing import Annotated, Any

from line_protocol_parser import LineFormatError, parse_line
from pydantic import Field, TypeAdapter, ValidationError

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

_NOT_PLAIN = (b"\\", b'"', b"\t", b"\r", b"\x0b", b"\x0c", b"\n\n", b"  ", b"\n ", b" \n", b"\n#")
"""Escapes, string fields, whitespace other than one space between parts, blank and comment lines: a
body with any of these is read line by line."""
_FIELD_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-=,\n"
"""All that plain fields hold: series-name characters, ``=``, ``,`` (and the line breaks joining them).
No quote or bracket, so the only JSON strings are the keys ``_parse_plain`` quotes itself."""
_INTEGER_SUFFIX = (b"i,", b"i\n")
_UNSURE_INTEGER = re.compile(rb"[.eE][0-9.eE-]*i[,\n]|\d{19}i")
"""``i`` after a fraction, an exponent or ``true``/``false``, which the C parser refuses, or an integer
that may be out of its int64 range: where dropping the ``i`` would make JSON of something invalid."""
_NEGATIVE_ZERO = (b"=-0,", b"=-0\n")
"""A float ``-0`` that JSON reads as the integer 0, losing the sign the C parser keeps."""
_EXPONENT_UNDERFLOW = re.compile(rb"[eE]-\d{3}")
_ZEROS_UNDERFLOW = b"0" * 200
"""A value that may underflow (a three-digit negative exponent, or 200 zeros before a two-digit one):
JSON gives 0.0 where the C parser refuses it."""
_LAST_TIME = 9 * 10**18
"""Timestamps well inside int64 (the C parser refuses what is not), in any precision."""
_FIELDS = TypeAdapter(list[dict[str, Annotated[float, Field(allow_inf_nan=False)]]])
_TIMES = TypeAdapter(list[Annotated[int, Field(strict=True, ge=-_LAST_TIME, le=_LAST_TIME)]])


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
    plain = _parse_plain(body, scale, now)
    return plain if plain is not None else _parse_each(body, scale, now)


def _channel(measurement: str, tags: dict[str, str]) -> str:
    return "data:" + to_name(".".join([measurement, *(value for _, value in sorted(tags.items()))]))


def _parse_plain(body: bytes, scale: float, now: float) -> Batch | None:
    """The points of a body of plain lines, as ``_parse_each`` reads them; None for any other body (a
    malformed one included: ``_parse_each`` names its line)."""
    if not body or body[0] in b" #\n" or body.endswith(b" ") or any(piece in body for piece in _NOT_PLAIN):
        return None
    lines = body.split(b"\n")
    if not lines[-1]:
        lines.pop()
    rows = list(map(bytes.split, lines, repeat(b" ")))
    widths = set(map(len, rows))
    if widths != {2} and widths != {3}:
        return None
    columns = list(zip(*rows, strict=True))
    fields = b"\n".join(columns[1]) + b"\n"
    if fields.translate(None, _FIELD_BYTES) or any(piece in fields for piece in _NEGATIVE_ZERO):
        return None
    if _ZEROS_UNDERFLOW in fields or (
        (b"e-" in fields or b"E-" in fields) and _EXPONENT_UNDERFLOW.search(fields)
    ):
        return None
    if any(piece in fields for piece in _INTEGER_SUFFIX):
        if _UNSURE_INTEGER.search(fields):
            return None
        fields = fields.replace(b"i,", b",").replace(b"i\n", b"\n")
    # k=v,k=v lines into [{"k":v,"k":v},...]: the keys are the only strings, and a value that is not a
    # JSON number, true or false (.5, 1., t, 1u, NaN) fails it.
    text = fields[:-1].replace(b"=", b'":').replace(b",", b',"').replace(b"\n", b'},{"')
    try:
        values = _FIELDS.validate_json(b'[{"' + text + b"}]")
        stamps = _TIMES.validate_json(b"[" + b",".join(columns[2]) + b"]") if len(columns) == 3 else None
    except ValidationError:
        return None
    if stamps is not None and len(stamps) != len(values):  # an empty timestamp column reads as []
        return None
    # A field given twice (the C parser keeps the first, JSON the last), too many fields on a line, or a
    # field name that is not a series name as it stands (empty, or over 64 characters).
    if sum(map(len, values)) != fields.count(b"=") or max(map(len, values)) > MAX_SERIES_PER_POINT:
        return None
    if any(to_name(name) != name for name in set().union(*values)):
        return None
    batch = Batch()
    by_series: dict[bytes, list[dict[str, Any]]] = {}
    times: Iterable[float | None] = repeat(None) if stamps is None else (stamp * scale for stamp in stamps)
    # Not strict: without timestamps, times repeats None for ever.
    for series, line_values, time in zip(columns[0], values, times, strict=False):
        points = by_series.get(series)
        if points is None:
            # The first line of these tags: the C parser reads the measurement and tags (unescaping, a
            # tag key given twice refused), and every later line with the same bytes means the same.
            try:
                parsed = parse_line(series + b" x=0")
            except (LineFormatError, UnicodeDecodeError):
                return None
            channel = _channel(parsed["measurement"], parsed["tags"])
            points = by_series[series] = batch.points.setdefault(channel, [])
        points.append({"ts": now if time is None else time, "values": line_values})
    return batch


def _parse_each(body: bytes, scale: float, now: float) -> Batch:
    """Every point of ``body``, line by line through the C parser."""
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
        except UnicodeDecodeError as exc:
            raise LineError(number, f"not UTF-8 ({exc.reason} at byte {exc.start})", line) from None
        values: dict[str, float] = {}
        # Backwards: the C parser hands fields over last first; a point's series keep the order sent.
        for key, value in reversed(parsed["fields"].items()):
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
            points = channels[key] = batch.points.setdefault(_channel(parsed["measurement"], tags), [])
        points.append({"ts": now if stamp is None else stamp * scale, "values": values})
    return batch
