"""Counters for ``/metrics`` (Prometheus text format).

Plain integers and dicts on one object: the event loop is single-threaded, so an increment needs no
lock, and counting a fan-out is one addition per publication, not one per delivery. Nothing is
formatted until a scrape (``gateway.scrape``), which turns these into ``Family`` values: plain data, so
that the workers of one gateway can share them (``gateway.worker_board``) before they are rendered.

Naming follows Prometheus': one family per name, ``_total`` only on counters, base units in the name
(``_seconds``, ``_bytes``; the outbox counts ``_characters``, which is what it measures).
"""

import importlib.metadata
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Literal, NamedTuple

from prometheus_client.metrics_core import Metric

from shared.channels import Namespace
from shared.codes import CloseCode, ErrorCode

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)

Kind = Literal["counter", "gauge"]


@dataclass
class Histogram:
    buckets: tuple[float, ...] = LATENCY_BUCKETS
    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    total: float = 0.0
    count: int = 0

    def observe(self, value: float) -> None:
        for index, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[index] += 1
                break
        else:
            self.counts[-1] += 1
        self.total += value
        self.count += 1


class Family(NamedTuple):
    """One metric family: its samples keyed by the value of its one label (``""`` when it has none).

    One label at most keeps a family plain JSON for the worker board; no family here needs two."""

    name: str
    """As exposed: a counter's ends in ``_total``."""
    kind: Kind
    help: str
    samples: dict[str, float]
    label: str = ""


def single(name: str, kind: Kind, help: str, value: float) -> Family:
    """A family of one unlabelled sample."""
    return Family(name, kind, help, {"": value})


def _per(keys: type[Namespace] | type[ErrorCode] | type[CloseCode]) -> dict[str | int, int]:
    # Every known label value starts at 0, so a series exists (and rate() works) before its first event.
    return dict.fromkeys(keys, 0)


@dataclass
class Metrics:
    connections_total: int = 0
    connections_open: int = 0
    direct_writes_total: int = 0
    """Connections whose frames were written straight to the transport (see gateway.transport.writers)."""
    messages_in: dict[str | int, int] = field(default_factory=lambda: _per(Namespace))
    """Publications accepted (HTTP, line protocol and WebSocket), per namespace."""
    messages_out: dict[str | int, int] = field(default_factory=lambda: _per(Namespace))
    """Messages queued to subscribers (one per subscriber per publication), per namespace."""
    messages_dropped: int = 0
    """Messages discarded with a slow consumer's outbox."""
    slow_disconnects: int = 0
    disconnects: dict[str | int, int] = field(default_factory=lambda: _per(CloseCode))
    """WebSocket connections the gateway closed, per close code."""
    client_errors: dict[str | int, int] = field(default_factory=lambda: _per(ErrorCode))
    """Error frames sent to clients, per error code."""
    direct_refused: int = 0
    """Direct messages a target's direct budget refused (or, from another process, dropped)."""
    http_publish_limited: int = 0
    """HTTP publishes answered 429 (the identity's points per second used up)."""
    publish_latency: Histogram = field(default_factory=Histogram)
    """Seconds from receiving a publish request to its publications being queued to subscribers."""

    def families(self) -> list[Family]:
        """Every counter and gauge kept here, as families."""
        return [
            single(
                "pulse_connections_total",
                "counter",
                "WebSocket connections accepted since the process started.",
                self.connections_total,
            ),
            single(
                "pulse_connections_open",
                "gauge",
                "WebSocket connections open now.",
                self.connections_open,
            ),
            single(
                "pulse_direct_write_connections_total",
                "counter",
                "WebSocket connections whose frames were written straight to the socket (the gateway's "
                "own WebSocket protocol, no compression).",
                self.direct_writes_total,
            ),
            _labelled(
                "pulse_messages_in_total",
                "Publications accepted (HTTP, line protocol and WebSocket), by channel namespace.",
                "namespace",
                self.messages_in,
            ),
            _labelled(
                "pulse_messages_out_total",
                "Messages queued to subscribers (one per subscriber per publication), by channel namespace.",
                "namespace",
                self.messages_out,
            ),
            single(
                "pulse_messages_dropped_total",
                "counter",
                "Messages discarded with the outbox of a connection closed as a slow consumer.",
                self.messages_dropped,
            ),
            single(
                "pulse_slow_disconnects_total",
                "counter",
                "Connections closed as slow consumers (close code 4001).",
                self.slow_disconnects,
            ),
            _labelled(
                "pulse_disconnects_total",
                "WebSocket connections the gateway closed, by close code (those a client closed are "
                "not counted).",
                "code",
                self.disconnects,
            ),
            _labelled(
                "pulse_client_errors_total",
                "Error frames sent to WebSocket clients, by error code.",
                "code",
                self.client_errors,
            ),
            single(
                "pulse_direct_refused_total",
                "counter",
                "Direct messages refused or dropped because the target's direct budget was full.",
                self.direct_refused,
            ),
            single(
                "pulse_http_publish_limited_total",
                "counter",
                "HTTP publishes answered 429 because the identity's publish rate was used up.",
                self.http_publish_limited,
            ),
        ]


def _labelled(name: str, help: str, label: str, counts: dict[str | int, int]) -> Family:
    return Family(name, "counter", help, {str(key): value for key, value in counts.items()}, label)


def from_collector(metrics: list[Metric]) -> list[Family]:
    """Families of a prometheus-client collector's output (``ProcessCollector``, ``GCCollector``)."""
    families = []
    for metric in metrics:
        if metric.type not in ("counter", "gauge"):
            continue
        kind: Kind = "counter" if metric.type == "counter" else "gauge"
        samples: dict[str, float] = {}
        label = ""
        for sample in metric.samples:
            if sample.name.endswith("_created"):
                continue
            (label, value), *more = sample.labels.items() or [("", "")]
            assert not more, f"{metric.name} has more than one label"
            samples[value] = sample.value
        name = f"{metric.name}_total" if kind == "counter" else metric.name
        families.append(Family(name, kind, metric.documentation, samples, label))
    return families


@cache
def build_version() -> str:
    """This gateway's version: the installed package's, else the source checkout's ``pyproject.toml``
    (``python -m gateway`` from a clone is not installed), else ``unknown``."""
    try:
        return importlib.metadata.version("pulseboard")
    except importlib.metadata.PackageNotFoundError:
        pass
    try:
        project = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
        return str(project["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"
