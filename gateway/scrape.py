"""What ``/metrics`` reports: this process's counters and gauges, combined with the other workers' when
the gateway runs several (``gateway.worker_board``)."""

import asyncio
import logging
import os

from gateway.metrics import Family, render, resident_memory
from gateway.state import Gateway
from gateway.transport.stats import stats as transport_stats
from gateway.worker_board import INTERVAL, WorkerSnapshot

log = logging.getLogger(__name__)


def _families(gateway: Gateway) -> list[Family]:
    hub = gateway.hub
    gauges = {
        "pulse_outbox_pending_bytes": float(sum(c.outbox.pending for c in hub.connections)),
        "pulse_broker_up": 1.0 if gateway.broker.health().ok else 0.0,
        "pulse_tasks": float(len(asyncio.all_tasks())),
        "pulse_clients_registered": float(sum(1 for _ in hub.connections)),
        "process_resident_memory_bytes": float(resident_memory()),
    }
    transport = transport_stats
    counters = {
        "pulse_handshake_timeouts_total": float(transport.timeouts),
        "pulse_handshake_oversized_total": float(transport.oversized),
        "pulse_handshake_bad_upgrades_total": float(transport.bad_upgrades),
        "pulse_transport_portable_connections_total": float(transport.portable_connections),
        "pulse_transport_missing_capabilities_total": float(transport.missing_capabilities),
    }
    return gateway.metrics.families(gauges, counters)


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
    workers = Family("pulse_workers", "gauge", "Worker processes of this gateway running.", combined.workers)
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
