"""What the workers of one gateway (``python -m gateway --workers N``) share on their host: each worker's
metrics and subscriber counts, so that ``/metrics`` and ``/api/channels`` on whichever worker answers
report the whole gateway.

Each worker writes a snapshot to ``<PULSE_WORKER_DIR>/<pid>.json`` every second and whenever it answers a
scrape (to a temporary file, then renamed: a reader never sees half of one). Combining follows Prometheus
client libraries' multiprocess mode: counters and the latency histogram add up over every snapshot, a dead
worker's included, so totals never go backwards when the supervisor replaces a worker; gauges and
subscriber counts add up over the live workers only (the process exists and wrote in the last few
seconds), each label value on its own. A few gauges are not amounts: ``pulse_broker_up`` and
``process_max_fds`` are the least of the live workers' (the gateway is up when all of them are; the
tightest limit is the one that bites), ``pulse_build_info``, ``pulse_event_loop_lag_seconds`` and
``process_start_time_seconds`` the greatest (the laggiest worker; the newest worker's start, so a
replaced worker shows as a restart). Another worker's share
is at most ``INTERVAL`` old.
"""

import contextlib
import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from gateway.metrics import Family, Histogram

INTERVAL = 1.0
"""Seconds between a worker's snapshots."""
FRESH = 5 * INTERVAL
"""A snapshot older than this is a worker that stopped writing: its gauges no longer count."""
LEAST_OF = frozenset({"pulse_broker_up", "process_max_fds"})
"""Gauges combined by their minimum instead of their sum."""
GREATEST_OF = frozenset({"pulse_build_info", "pulse_event_loop_lag_seconds", "process_start_time_seconds"})
"""Gauges combined by their maximum instead of their sum."""


@dataclass
class WorkerSnapshot:
    pid: int
    families: list[Family]
    latency: Histogram
    subscribers: dict[str, int]
    """Local subscribers per channel (channels without any are left out)."""
    written: float = field(default_factory=time.time)

    def to_json(self) -> str:
        return json.dumps(
            {
                "pid": self.pid,
                "written": self.written,
                "families": self.families,
                "latency": vars(self.latency),
                "subscribers": self.subscribers,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> "WorkerSnapshot":
        raw = json.loads(text)
        latency = raw["latency"]
        return cls(
            pid=raw["pid"],
            families=[Family(*family) for family in raw["families"]],
            latency=Histogram(**{**latency, "buckets": tuple(latency["buckets"])}),
            subscribers=raw["subscribers"],
            written=raw["written"],
        )

    def live(self, now: float) -> bool:
        if now - self.written > FRESH:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # exists, under another user
            return True
        return True


@dataclass
class Combined:
    """The whole gateway: every worker's snapshot combined."""

    families: list[Family]
    latency: Histogram
    subscribers: Counter[str]
    workers: int
    """Live workers."""


class WorkerBoard:
    def __init__(self, directory: Path, pid: int | None = None) -> None:
        self.directory = directory
        self.pid = os.getpid() if pid is None else pid

    def write(self, snapshot: WorkerSnapshot) -> None:
        path = self.directory / f"{snapshot.pid}.json"
        partial = path.with_suffix(".tmp")
        partial.write_text(snapshot.to_json())
        partial.replace(path)

    def snapshots(self) -> list[WorkerSnapshot]:
        found = []
        for path in self.directory.glob("*.json"):
            # A file another worker is replacing right now, or one left broken by a crash, is skipped.
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                found.append(WorkerSnapshot.from_json(path.read_text()))
        return found

    def subscribers(self, own: dict[str, int]) -> Counter[str]:
        """``own`` (this worker's subscriber counts, current) plus every other live worker's latest."""
        now = time.time()
        total: Counter[str] = Counter(own)
        for snapshot in self.snapshots():
            if snapshot.pid != self.pid and snapshot.live(now):
                total.update(snapshot.subscribers)
        return total

    def combined(self, own: WorkerSnapshot) -> Combined:
        """``own`` (written first, so it is current) with every other worker's latest snapshot."""
        self.write(own)
        return combine(self.snapshots(), own, time.time())


def combine(snapshots: list[WorkerSnapshot], own: WorkerSnapshot, now: float) -> Combined:
    live = [snapshot for snapshot in snapshots if snapshot.pid == own.pid or snapshot.live(now)]
    kinds = {family.name: family for snapshot in snapshots for family in snapshot.families}
    counted = {id(snapshot) for snapshot in live}
    totals: dict[str, dict[str, float]] = {}
    for snapshot in snapshots:
        for family in snapshot.families:
            if family.kind == "gauge" and id(snapshot) not in counted:
                continue
            samples = totals.setdefault(family.name, {})
            for key, value in family.samples.items():
                if key not in samples:
                    samples[key] = value
                elif family.name in LEAST_OF:
                    samples[key] = min(samples[key], value)
                elif family.name in GREATEST_OF:
                    samples[key] = max(samples[key], value)
                else:
                    samples[key] += value
    # The answering worker's order first, then anything only others report.
    names = [family.name for family in own.families]
    names += [name for name in kinds if name not in set(names)]
    families = [kinds[name]._replace(samples=totals.get(name, {})) for name in names]
    latency = Histogram()
    for snapshot in snapshots:
        latency.counts = [a + b for a, b in zip(latency.counts, snapshot.latency.counts, strict=True)]
        latency.total += snapshot.latency.total
        latency.count += snapshot.latency.count
    subscribers: Counter[str] = Counter()
    for snapshot in live:
        subscribers.update(snapshot.subscribers)
    return Combined(families, latency, subscribers, len(live))
