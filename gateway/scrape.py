"""What ``/metrics`` reports: this process's counters and gauges, combined with the other workers' when
the gateway runs several (``gateway.worker_board``), rendered by prometheus-client's text exposition."""

import asyncio
import logging
import os
from collections.abc import Iterable

from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.gc_collector import GCCollector
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry

from gateway.metrics import Family, Histogram, build_version, from_collector, single
from gateway.state import Gateway
from gateway.transport.stats import stats as transport_stats
from gateway.worker_board import INTERVAL, WorkerSnapshot

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
"""The classic text format (what ``generate_latest`` writes), which every Prometheus version reads."""

# Read at scrape time only; a registry of their own keeps them out of prometheus-client's global one.
_PROCESS = ProcessCollector(registry=None)
_GC = GCCollector(registry=CollectorRegistry(auto_describe=False))


def _families(gateway: Gateway) -> list[Family]:
    hub = gateway.hub
    transport = transport_stats
    return [
        *gateway.metrics.families(),
        single(
            "pulse_outbox_pending_characters",
            "gauge",
            "Characters of frames waiting in connections' outboxes (direct messages included); "
            "PULSE_CLIENT_QUEUE_BYTES bounds each connection's share.",
            sum(connection.outbox.pending for connection in hub.connections),
        ),
        single(
            "pulse_broker_up",
            "gauge",
            "1 while the broker's last operation succeeded, else 0 (with workers: the lowest).",
            1 if gateway.broker.health().ok else 0,
        ),
        single("pulse_tasks", "gauge", "asyncio tasks in the process.", len(asyncio.all_tasks())),
        single(
            "pulse_event_loop_lag_seconds",
            "gauge",
            "How late the event loop ran the liveness watchdog's latest timer (with workers: the most).",
            gateway.watchdog.lag,
        ),
        single(
            "pulse_clients_registered",
            "gauge",
            "Connections registered in the hub (should equal pulse_connections_open at rest).",
            sum(1 for _ in hub.connections),
        ),
        single(
            "pulse_handshake_timeouts_total",
            "counter",
            "HTTP connections answered 408 or dropped: request head or body not complete in time.",
            transport.timeouts,
        ),
        single(
            "pulse_handshake_oversized_total",
            "counter",
            "Request heads over PULSE_MAX_HEADER_BYTES, answered 431.",
            transport.oversized,
        ),
        single(
            "pulse_handshake_bad_upgrades_total",
            "counter",
            "WebSocket upgrade requests the WebSocket protocol could not parse or accept.",
            transport.bad_upgrades,
        ),
        single(
            "pulse_transport_portable_connections_total",
            "counter",
            "WebSocket connections written through ASGI: the server underneath offered no direct writes.",
            transport.portable_connections,
        ),
        single(
            "pulse_transport_missing_capabilities_total",
            "counter",
            "Capabilities of the server underneath found missing, each switching a feature to its "
            "portable path.",
            transport.missing_capabilities,
        ),
        Family(
            "pulse_build_info",
            "gauge",
            "Always 1; the gateway's version as a label.",
            {build_version(): 1},
            "version",
        ),
        *from_collector(list(_PROCESS.collect())),
        *from_collector(list(_GC.collect())),
    ]


class _Exposition(Collector):
    """One scrape's families as prometheus-client metrics, for its text exposition."""

    def __init__(self, families: list[Family], latency: Histogram) -> None:
        self._families = families
        self._latency = latency

    def collect(self) -> Iterable[Metric]:
        for family in self._families:
            labels = [family.label] if family.label else None
            metric: CounterMetricFamily | GaugeMetricFamily
            if family.kind == "counter":
                # prometheus-client adds the "_total" suffix itself.
                metric = CounterMetricFamily(family.name, family.help, labels=labels)
            else:
                metric = GaugeMetricFamily(family.name, family.help, labels=labels)
            for value, sample in family.samples.items():
                metric.add_metric([value] if labels else [], sample)
            yield metric
        yield _histogram(self._latency)


def _histogram(latency: Histogram) -> HistogramMetricFamily:
    buckets: list[tuple[str, float]] = []
    cumulative = 0
    for bound, count in zip(latency.buckets, latency.counts, strict=False):
        cumulative += count
        buckets.append((str(bound), cumulative))
    buckets.append(("+Inf", latency.count))
    return HistogramMetricFamily(
        "pulse_publish_latency_seconds",
        "Seconds from receiving a publish request to its publications being queued to subscribers.",
        buckets=buckets,
        sum_value=latency.total,
    )


def render(families: list[Family], latency: Histogram) -> str:
    """The Prometheus text format of ``families`` and the publish latency histogram."""
    return generate_latest(_Exposition(families, latency)).decode()


def local_snapshot(gateway: Gateway) -> WorkerSnapshot:
    return WorkerSnapshot(
        pid=os.getpid(),
        families=_families(gateway),
        latency=gateway.metrics.publish_latency,
        subscribers=gateway.hub.subscriber_counts(),
    )


def metrics_text(gateway: Gateway) -> str:
    board = gateway.board
    if board is None:
        return render(_families(gateway), gateway.metrics.publish_latency)
    combined = board.combined(local_snapshot(gateway))
    workers = single("pulse_workers", "gauge", "Worker processes of this gateway running.", combined.workers)
    return render([*combined.families, workers], combined.latency)


def subscriber_counts(gateway: Gateway) -> dict[str, int]:
    """Subscribers per channel on every worker of this gateway (this process alone without workers):
    this worker's counted now, the others' from their latest snapshots; no metrics are gathered."""
    own = gateway.hub.subscriber_counts()
    board = gateway.board
    return own if board is None else dict(board.subscribers(own))


async def share_snapshots(gateway: Gateway) -> None:
    """Keep this worker's snapshot on the board current, for scrapes answered by the other workers."""
    board = gateway.board
    assert board is not None
    while True:
        try:
            board.write(local_snapshot(gateway))
        except OSError as exc:
            log.warning("worker board %s: %s", board.directory, exc)
        await asyncio.sleep(INTERVAL)
