"""Backdated history for dashboard tests and benchmarks: written straight into the embedded store's file
(``history.duckdb`` under a gateway's ``PULSE_DATA_DIR``) before the gateway starts on it.

The samples are a slow sine with a little noise and one spike, so an envelope that lost a spike shows.
They are stored under their own epoch: the gateway starts a new one, and range reads report the seeded
position until the gateway stores publications of its own.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gateway.history.base import SampleBatch
from gateway.history.embedded import EmbeddedStore
from gateway.history.tiers import MICROS, build_tiers
from gateway.settings import Settings

SEED_EPOCH = "seeded"
SPIKE = 1000.0
BATCH = 100_000
"""Samples per store write."""


@dataclass(frozen=True, slots=True)
class Seeded:
    channel: str
    series: tuple[str, ...]
    start: float
    end: float
    """Unix seconds of the first sample, and just after the last."""
    rate: float
    spike_at: float
    """When the one spike (``SPIKE``, in the first series) is."""

    @property
    def publications(self) -> int:
        return round((self.end - self.start) * self.rate)


def seed_history(
    data_dir: Path,
    channel: str,
    *,
    seconds: float,
    rate: float,
    end: float,
    series: tuple[str, ...] = ("v",),
) -> Seeded:
    """Store ``seconds`` of ``rate`` publications/s on ``channel`` ending at ``end``, as a gateway with
    the default tiers would have, in ``data_dir/history.duckdb``."""
    defaults = Settings.model_fields
    tiers = build_tiers(
        raw=float(defaults["history_raw_retention"].default),
        second=float(defaults["history_1s_retention"].default),
        minute=float(defaults["history_1m_retention"].default),
        hour=float(defaults["history_1h_retention"].default),
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    count = round(seconds * rate)
    step = round(MICROS / rate)
    last = round(end * MICROS) - step
    times = last - step * np.arange(count - 1, -1, -1, dtype=np.int64)
    rng = np.random.default_rng(11)
    phase = np.arange(count) / (rate * 600.0)
    columns = [
        np.round(50 + 20 * np.sin(phase + index) + rng.normal(0, 1, count), 3) for index in range(len(series))
    ]
    spike = count // 3
    columns[0][spike] = SPIKE
    store = EmbeddedStore(data_dir / "history.duckdb", tiers)
    store.open()
    try:
        per_batch = max(1, BATCH // len(series))
        for first in range(0, count, per_batch):
            batch = SampleBatch()
            for index in range(first, min(count, first + per_batch)):
                point = {name: float(column[index]) for name, column in zip(series, columns, strict=True)}
                batch.add(channel, SEED_EPOCH, index + 1, int(times[index]), point)
            store.write(batch)
    finally:
        store.close()
    return Seeded(channel, series, times[0] / MICROS, (last + step) / MICROS, rate, times[spike] / MICROS)
