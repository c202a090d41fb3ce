"""Counters for ``/metrics`` (Prometheus text format).

Plain integer attributes on one object: the event loop is single-threaded, so an increment needs no
lock, and counting a fan-out is one addition per publication, not one per delivery.
"""

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


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
    """One metric family with a single unlabelled sample."""

    name: str
    kind: str
    help: str
    value: float


@dataclass
class Metrics:
    connections_total: int = 0
    connections_open: int = 0
    direct_writes_total: int = 0
    """Connections whose frames were written straight to the transport (see gateway.transport.writers)."""
    messages_in: int = 0
    """Publications accepted (HTTP and WebSocket)."""
    messages_out: int = 0
    """Messages queued to subscribers (one per subscriber per publication)."""
    messages_dropped: int = 0
    """Messages discarded with a slow consumer's outbox."""
    slow_disconnects: int = 0
    client_errors: int = 0
    """Error frames sent to clients."""
    direct_refused: int = 0
    """Direct messages a target's direct budget refused (or, from another process, dropped)."""
    http_publish_limited: int = 0
    """HTTP publishes answered 429 (the identity's points per second used up)."""
    publish_latency: Histogram = field(default_factory=Histogram)
    """Seconds from receiving a publish request to its publications being queued to subscribers."""

    def families(self, extra_gauges: dict[str, float], extra_counters: dict[str, float]) -> list[Family]:
        """Every sample this process reports, the core counters first."""
        return [
            Family(
                "pulse_connections_total",
                "counter",
                "WebSocket connections accepted.",
                self.connections_total,
            ),
            Family("pulse_connections", "gauge", "WebSocket connections open.", self.connections_open),
            Family(
                "pulse_direct_write_connections_total",
                "counter",
                "Connections written straight to the socket (the gateway's WebSocket protocol, no "
                "compression).",
                self.direct_writes_total,
            ),
            Family("pulse_messages_in_total", "counter", "Publications accepted.", self.messages_in),
            Family(
                "pulse_messages_out_total", "counter", "Messages queued to subscribers.", self.messages_out
            ),
            Family(
                "pulse_messages_dropped_total",
                "counter",
                "Messages dropped with slow consumers.",
                self.messages_dropped,
            ),
            Family(
                "pulse_slow_disconnects_total",
                "counter",
                "Connections closed as slow consumers (4001).",
                self.slow_disconnects,
            ),
            Family(
                "pulse_client_errors_total", "counter", "Error frames sent to clients.", self.client_errors
            ),
            Family(
                "pulse_direct_refused_total",
                "counter",
                "Direct messages refused or dropped: the target's direct budget was full.",
                self.direct_refused,
            ),
            Family(
                "pulse_http_publish_limited_total",
                "counter",
                "HTTP publishes answered 429: the identity's publish rate was used up.",
                self.http_publish_limited,
            ),
            *(
                Family(name, "gauge", name.replace("_", " ") + ".", value)
                for name, value in extra_gauges.items()
            ),
            *(
                Family(name, "counter", name.replace("_", " ") + ".", value)
                for name, value in extra_counters.items()
            ),
        ]


def render(families: list[Family], latency: Histogram) -> str:
    """The Prometheus text format of ``families`` and the publish latency histogram."""
    lines: list[str] = []
    for family in families:
        lines.extend(
            (
                f"# HELP {family.name} {family.help}",
                f"# TYPE {family.name} {family.kind}",
                f"{family.name} {family.value}",
            )
        )
    name = "pulse_publish_latency_seconds"
    lines.extend((f"# HELP {name} Publish handling time.", f"# TYPE {name} histogram"))
    cumulative = 0
    for bound, count in zip(latency.buckets, latency.counts, strict=False):
        cumulative += count
        lines.append(f'{name}_bucket{{le="{bound}"}} {cumulative}')
    lines.append(f'{name}_bucket{{le="+Inf"}} {latency.count}')
    lines.append(f"{name}_sum {latency.total}")
    lines.append(f"{name}_count {latency.count}")
    return "\n".join(lines) + "\n"


def resident_memory() -> int:
    """This process's RSS in bytes (Linux ``/proc``; 0 where that is not available)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")
