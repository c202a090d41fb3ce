"""What the simulator measures: ``data:`` channels, their series, and the thresholds that raise alerts.

The first three channels imitate a host (``data:cpu``, ``data:network``, ``data:sensors``); any further
ones (``--channels 5``) are generic ``data:sim-4``, ``data:sim-5``, ... with a wave, a walk and a spiky
series each. With a seed, every series draws from its own generator seeded by the run seed and its name,
so adding a channel does not change the values of the others.
"""

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from shared.channels import Channel, Namespace
from shared.payloads import DataPoint
from simulator.signals import RandomWalk, Signal, SineNoise, Spikes

RngFactory = Callable[[str], random.Random]
"""Gives the random generator of one series from its ``channel/series`` key."""


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Upper alert lines: a value at or above ``warning`` (``error``) is a warning (error)."""

    warning: float
    error: float


@dataclass
class Series:
    name: str
    signal: Signal
    low: float = -math.inf
    high: float = math.inf
    digits: int = 2
    """Decimals kept: real gauges have a resolution, and short numbers keep the JSON small."""
    unit: str = ""
    thresholds: Thresholds | None = None

    def sample(self, dt: float) -> float:
        return round(min(self.high, max(self.low, self.signal.step(dt))), self.digits)


@dataclass
class DataSource:
    """One ``data:`` channel: its series are sampled together into one data point."""

    channel: Channel
    series: list[Series]
    latest: dict[str, float] = field(default_factory=dict)
    """The last value of each series (the chat bot talks about them)."""

    def sample(self, ts: float, dt: float) -> DataPoint:
        self.latest = {series.name: series.sample(dt) for series in self.series}
        return DataPoint(ts=ts, values=self.latest)


def _cpu(rng: RngFactory) -> list[Series]:
    return [
        Series(
            "user",
            Spikes(
                RandomWalk(rng("cpu/user"), 35, volatility=6, low=0, high=100), rng("cpu/user+"), 0.03, 45
            ),
            low=0,
            high=100,
            digits=1,
            unit="%",
            thresholds=Thresholds(warning=85, error=95),
        ),
        Series(
            "system",
            SineNoise(rng("cpu/system"), offset=12, amplitude=6, period=40, noise=1.5),
            low=0,
            high=100,
            digits=1,
            unit="%",
        ),
        Series(
            "iowait",
            Spikes(RandomWalk(rng("cpu/iowait"), 2, volatility=1, low=0), rng("cpu/iowait+"), 0.05, 20),
            low=0,
            high=100,
            digits=1,
            unit="%",
            thresholds=Thresholds(warning=25, error=40),
        ),
    ]


def _network(rng: RngFactory) -> list[Series]:
    return [
        Series(
            "rx_mbps",
            SineNoise(rng("network/rx_mbps"), offset=120, amplitude=60, period=60, noise=8),
            low=0,
            unit=" Mbit/s",
        ),
        Series("tx_mbps", RandomWalk(rng("network/tx_mbps"), 40, volatility=5, low=0), low=0, unit=" Mbit/s"),
        Series(
            "latency_ms",
            Spikes(
                RandomWalk(rng("network/latency_ms"), 18, volatility=2, low=1),
                rng("network/latency_ms+"),
                per_second=0.04,
                height=150,
            ),
            low=0,
            digits=1,
            unit=" ms",
            thresholds=Thresholds(warning=100, error=200),
        ),
    ]


def _sensors(rng: RngFactory) -> list[Series]:
    return [
        Series(
            "temperature_c",
            SineNoise(rng("sensors/temperature_c"), offset=21.5, amplitude=3, period=120, noise=0.15),
            unit=" °C",
            thresholds=Thresholds(warning=24.5, error=26),
        ),
        Series(
            "humidity_pct",
            RandomWalk(rng("sensors/humidity_pct"), 45, volatility=1.5),
            low=0,
            high=100,
            digits=1,
            unit="%",
        ),
        Series(
            "pressure_hpa",
            RandomWalk(rng("sensors/pressure_hpa"), 1013, volatility=0.3, reversion=0.02),
            digits=1,
            unit=" hPa",
        ),
    ]


def _generic(name: str, rng: RngFactory) -> list[Series]:
    shape = rng(f"{name}/shape")
    return [
        Series(
            "wave",
            SineNoise(
                rng(f"{name}/wave"),
                offset=50,
                amplitude=30,
                period=shape.uniform(10, 60),
                noise=3,
                phase=shape.uniform(0, 2 * math.pi),
            ),
        ),
        Series("walk", RandomWalk(rng(f"{name}/walk"), 50, volatility=4, low=0, high=100), low=0, high=100),
        Series(
            "spiky",
            Spikes(
                RandomWalk(rng(f"{name}/spiky"), 20, volatility=3, low=0), rng(f"{name}/spiky+"), 0.05, 80
            ),
            low=0,
            thresholds=Thresholds(warning=70, error=100),
        ),
    ]


_HOST_CHANNELS: list[tuple[str, Callable[[RngFactory], list[Series]]]] = [
    ("cpu", _cpu),
    ("network", _network),
    ("sensors", _sensors),
]


def rng_factory(seed: int | None) -> RngFactory:
    """Seeded: one reproducible generator per series key. Unseeded: fresh OS entropy for each."""
    if seed is None:
        return lambda key: random.Random()
    return lambda key: random.Random(f"{seed}/{key}")


def build_sources(count: int, seed: int | None = None) -> list[DataSource]:
    """The first ``count`` data channels: the host-like ones first, then ``sim-4``, ``sim-5``, ..."""
    rng = rng_factory(seed)
    sources = []
    for index in range(count):
        if index < len(_HOST_CHANNELS):
            name, make_series = _HOST_CHANNELS[index]
            series = make_series(rng)
        else:
            name = f"sim-{index + 1}"
            series = _generic(name, rng)
        sources.append(DataSource(Channel(Namespace.DATA, name), series))
    return sources
