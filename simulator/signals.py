"""Signal generators: the shapes a simulated series takes, produced one sample at a time.

Every generator owns its ``random.Random``, so a seeded run is reproducible however the samples of
different series interleave. Each ``step(dt)`` advances ``dt`` seconds of simulated time and scales its
randomness to it, so a series looks the same at 1 or at 100 points per second.
"""

import math
import random
from dataclasses import dataclass, field
from typing import Protocol


class Signal(Protocol):
    def step(self, dt: float) -> float:
        """Advance ``dt`` seconds and return the new value."""
        ...


@dataclass
class RandomWalk:
    """A mean-reverting random walk (Ornstein-Uhlenbeck) kept within ``[low, high]``.

    Pure random walks wander off forever; the pull towards ``mean`` keeps a long run looking like a real
    gauge that fluctuates around its usual level.
    """

    rng: random.Random
    start: float
    volatility: float
    """Standard deviation of the change over one second."""
    reversion: float = 0.1
    """Fraction of the distance to ``mean`` recovered per second."""
    mean: float | None = None
    """Where the walk is pulled to; ``start`` when None."""
    low: float = -math.inf
    high: float = math.inf
    value: float = field(init=False)

    def __post_init__(self) -> None:
        self.value = self.start

    def step(self, dt: float) -> float:
        target = self.start if self.mean is None else self.mean
        drift = self.reversion * (target - self.value) * dt
        shock = self.rng.gauss(0.0, self.volatility * math.sqrt(dt))
        self.value = min(self.high, max(self.low, self.value + drift + shock))
        return self.value


@dataclass
class SineNoise:
    """A sine wave with gaussian noise: daily cycles, load patterns, anything periodic."""

    rng: random.Random
    offset: float
    amplitude: float
    period: float
    """Seconds per cycle."""
    noise: float = 0.0
    """Standard deviation of the noise added to each sample."""
    phase: float = 0.0
    """Radians; lets several waves of one chart peak at different times."""
    elapsed: float = field(default=0.0, init=False)

    def step(self, dt: float) -> float:
        self.elapsed += dt
        wave = math.sin(2 * math.pi * self.elapsed / self.period + self.phase)
        return self.offset + self.amplitude * wave + self.rng.gauss(0.0, self.noise)


@dataclass
class Spikes:
    """Adds occasional spikes to ``base``: a sudden jump that decays over ``decay`` seconds.

    A spike that lasts a little (rather than one sample) stays visible in a chart at any rate and can
    cross an alert threshold for long enough to look like a real incident.
    """

    base: Signal
    rng: random.Random
    per_second: float
    """Expected spikes per second."""
    height: float
    """Typical spike height; each spike is 60 to 140 % of it."""
    decay: float = 0.5
    """Seconds for a spike to fall to 1/e of its height."""
    level: float = field(default=0.0, init=False)

    def step(self, dt: float) -> float:
        self.level *= math.exp(-dt / self.decay)
        # A Bernoulli draw per sample approximates a Poisson process while per_second * dt is small.
        if self.rng.random() < self.per_second * dt:
            self.level += self.height * self.rng.uniform(0.6, 1.4)
        return self.base.step(dt) + self.level
