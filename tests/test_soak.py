"""Long runs: the two-minute soak that `make test` runs (``bench/soak/`` as a subprocess: gateway,
simulator, subscribers, churners, chatters and a dashboard consumer), and the soak's growth detector on
synthetic series, so that its pass cannot be vacuous."""

import math
import random
import re
import subprocess
import sys

import pytest

from bench.soak.clients import Errors, Position, check_pub
from bench.soak.growth import MIN_SAMPLES, Allowance, band_violations, detect_growth, theil_sen_slope
from tests.servers import ROOT

MIB = 1024 * 1024
RSS = Allowance(8 * MIB, 0.05)
"""The soak's RSS allowance: 8 MiB + 5 % of the level, 12 MiB at 80 MiB."""
HOUR = [60.0 * minute for minute in range(61)]
"""An hour's soak: a sample a minute."""
WARMUP = 600.0
BASE = 80 * MIB


def noisy(values: list[float], sigma: float, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    return [v + rng.gauss(0, sigma) for v in values]


def test_a_flat_series_does_not_grow() -> None:
    growth = detect_growth(HOUR, [BASE] * len(HOUR), RSS, warmup=WARMUP)
    assert not growth.grows and growth.rise == 0 and growth.samples == 51


def test_a_noisy_flat_series_with_spikes_does_not_grow() -> None:
    """GC and a noisy neighbour: 2 MiB of noise, and 40 MiB spikes, one of them in the last sample."""
    values = noisy([BASE] * len(HOUR), 2 * MIB)
    for minute in (15, 37, 60):
        values[minute] += 40 * MIB
    growth = detect_growth(HOUR, values, RSS, warmup=WARMUP)
    assert not growth.grows, growth.reason


def test_a_steady_leak_is_caught_through_noise() -> None:
    """0.5 MiB a minute (25 MiB over the 50 judged minutes) under 2 MiB of noise."""
    values = noisy([BASE + 0.5 * MIB * t / 60 for t in HOUR], 2 * MIB)
    growth = detect_growth(HOUR, values, RSS, warmup=WARMUP)
    assert growth.grows, growth.reason
    assert 20 * MIB < growth.rise < 30 * MIB


def test_the_allowance_decides_between_a_small_and_a_large_drift() -> None:
    """The same detector passes a drift well under the allowance and catches one well over it."""
    small = detect_growth(HOUR, [BASE + 0.1 * MIB * t / 60 for t in HOUR], RSS, warmup=WARMUP)
    large = detect_growth(HOUR, [BASE + 0.4 * MIB * t / 60 for t in HOUR], RSS, warmup=WARMUP)
    assert not small.grows and large.grows


def test_a_staircase_is_growth() -> None:
    """Memory that jumps 6 MiB every 10 minutes and never comes back (a pool doubling, say)."""
    values = [BASE + 6 * MIB * (t // 600) for t in HOUR]
    assert detect_growth(HOUR, values, RSS, warmup=WARMUP).grows


def test_a_ramp_that_levels_off_is_bounded() -> None:
    """A cache that fills over the first 20 judged minutes, then stays full."""
    values = noisy([BASE + 20 * MIB * min(1.0, max(0.0, (t - WARMUP) / 1200)) for t in HOUR], MIB)
    growth = detect_growth(HOUR, values, RSS, warmup=WARMUP)
    assert growth.rise > growth.allowed, "the trend alone would call it growth"
    assert not growth.grows, growth.reason


def test_growth_during_the_warmup_is_not_judged() -> None:
    values = [BASE + 50 * MIB * min(t, WARMUP) / WARMUP for t in HOUR]
    assert not detect_growth(HOUR, values, RSS, warmup=WARMUP).grows


def test_too_few_samples_never_pass() -> None:
    times = [0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0]
    growth = detect_growth(times, [BASE] * len(times), RSS, warmup=20.0)
    assert growth.grows and growth.samples == 5 < MIN_SAMPLES
    assert "only 5 samples" in growth.reason


def test_failed_reads_are_left_out() -> None:
    values = [BASE + 0.5 * MIB * t / 60 for t in HOUR]
    values[30] = math.nan
    growth = detect_growth(HOUR, values, RSS, warmup=WARMUP)
    assert growth.grows and growth.samples == 50


def test_latency_allowance_absorbs_noise_but_not_a_growing_backlog() -> None:
    latency = Allowance(0.25, 1.0)
    jittery = noisy([0.02] * len(HOUR), 0.01)
    jittery[45] = 2.0  # a stall on a shared machine
    backlog = [0.02 + 0.05 * t / 60 for t in HOUR]  # 50 ms more every minute: a queue that never drains
    assert not detect_growth(HOUR, jittery, latency, warmup=WARMUP).grows
    assert detect_growth(HOUR, backlog, latency, warmup=WARMUP).grows


def test_theil_sen_slope_ignores_outliers() -> None:
    times = [float(i) for i in range(20)]
    values = [2.0 * t for t in times]
    values[3] = values[17] = 1000.0
    assert theil_sen_slope(times, values) == pytest.approx(2.0)


def test_band_violations_after_the_warmup() -> None:
    times = [0.0, 10.0, 20.0, 30.0]
    values = [500.0, 103.0, 114.0, math.nan]
    assert band_violations(times, values, 103, 113, warmup=5.0) == [(20.0, 114.0), (30.0, values[3])]


def test_every_offset_must_arrive_once_and_in_order() -> None:
    """The subscribers' offset check: what counts as a gap, a repeat and a lost epoch."""
    errors = Errors()
    positions = {"data:cpu": Position(10, "e1")}

    def pub(offset: int, epoch: str = "e1") -> bool:
        return check_pub(positions, {"channel": "data:cpu", "offset": offset, "epoch": epoch}, errors, "t")

    assert pub(11) and pub(12) and errors.total == 0
    assert pub(15) and errors.counts == {"gap": 1}
    assert not pub(15) and not pub(13) and errors.counts["duplicate"] == 2
    assert pub(1, "e2") and errors.counts["epoch"] == 1
    check_pub(positions, {"channel": "chat:x", "offset": 1, "epoch": "e"}, errors, "t")
    assert errors.counts["order"] == 1, "a pub before its subscribed"
    assert errors.total == 5 and len(errors.examples) == 5


ROW = re.compile(
    r"^\| (\d+):(\d\d) \| [\d.]+ MiB \| \d+ \| \d+ \| \d+ \| [\d.]+ ms \| [\d,]+ \| [\d,]+ \| 0 \|$"
)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_two_minute_soak_passes() -> None:
    """`make test`'s soak: 2 minutes of gateway + simulator + 50 subscribers + churners + chatters + the
    dashboard consumer, a row every 10 s; exit 0 means no errors, no lost or repeated offset, nothing
    growing, and the gateway back to idle afterwards. (The hour's run is in docs/benchmarks.md.)"""
    command = [
        sys.executable, "-m", "bench.soak",
        "--minutes", "2", "--interval", "10", "--subscribers", "50", "--churners", "5",
    ]  # fmt: skip
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=280, check=False)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    out = result.stdout
    report = out[out.index("## Soak, 2:00") :]
    rows = [ROW.match(line) for line in report.splitlines()]
    elapsed = [int(m.group(1)) * 60 + int(m.group(2)) for m in rows if m]
    assert len(elapsed) == 13 and elapsed[-1] == 120, report  # the baseline, then one row every 10 s
    assert "Verdict: PASS" in report
    for check in ("gateway RSS", "p99 latency", "connections", "clients registered", "tasks", "errors"):
        assert re.search(rf"^\| {check} \|.*\| (ok|none)", report, re.MULTILINE), check
