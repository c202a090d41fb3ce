"""The verdict and the report: the checks on the samples (trends, bands, errors, back to idle) and the
report printed at the end."""

import math
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass

from bench.report import markdown_table, print_report
from bench.soak.channels import HISTORY
from bench.soak.growth import MIN_SAMPLES, Allowance, Growth, band_violations, detect_growth
from bench.soak.run import (
    MIB,
    ROW_HEADER,
    ROW_NUMERIC,
    Options,
    Outcome,
    clock,
    number,
    options_channels,
    row_cells,
)

RSS_ALLOWANCE_MIB = 8.0
RSS_ALLOWANCE_RELATIVE = 0.05
LATENCY_ALLOWANCE_S = 0.25
LATENCY_ALLOWANCE_RELATIVE = 1.0
TASK_SLACK = 8
"""Tasks that come and go besides the WebSocket connections' own: in-flight HTTP requests (the
simulator's publishes, the consumer's discovery, this ``/metrics`` read) and closes being finished."""


@dataclass(frozen=True)
class Check:
    name: str
    samples: str
    median: str
    peak: str
    allowed: str
    result: str
    ok: bool


def trend_check(name: str, growth: Growth, unit: Callable[[float], str]) -> Check:
    if math.isnan(growth.level):
        return Check(name, str(growth.samples), "-", "-", "-", growth.reason, False)
    verdict = "GROWS" if growth.grows else "ok"
    result = f"{verdict}: trend rise {unit(growth.rise)}, late rise {unit(growth.late_rise)}"
    allowed = f"rise <= {unit(growth.allowed)}"
    return Check(
        name, str(growth.samples), unit(growth.level), unit(growth.peak), allowed, result, not growth.grows
    )


def band_check(
    name: str, outcome: Outcome, values: list[float], low: float, high: float, warmup: float
) -> Check:
    times = [s.elapsed for s in outcome.samples]
    kept = [v for t, v in zip(times, values, strict=True) if t >= warmup and not math.isnan(v)]
    outside = band_violations(times, values, low, high, warmup=warmup)
    enough = len(kept) >= MIN_SAMPLES
    if not enough:
        result = f"only {len(kept)} samples after the warm-up, {MIN_SAMPLES} needed"
    elif outside:
        result = "OUTSIDE at " + ", ".join(f"{clock(t)} ({number(v)})" for t, v in outside[:5])
    else:
        result = "ok"
    return Check(
        name,
        str(len(kept)),
        number(statistics.median(kept)) if kept else "-",
        number(max(kept)) if kept else "-",
        f"{low:,.0f} .. {high:,.0f}",
        result,
        enough and not outside,
    )


def checks(options: Options, outcome: Outcome) -> list[Check]:
    samples = outcome.samples
    times = [s.elapsed for s in samples]
    warmup = options.warmup
    rss = detect_growth(
        times,
        [s.rss for s in samples],
        Allowance(RSS_ALLOWANCE_MIB * MIB, RSS_ALLOWANCE_RELATIVE),
        warmup=warmup,
    )
    latency = detect_growth(
        times,
        [s.p99 for s in samples],
        Allowance(LATENCY_ALLOWANCE_S, LATENCY_ALLOWANCE_RELATIVE),
        warmup=warmup,
    )
    stable, churners = outcome.stable, options.churners
    per_connection = 0.0 if math.isnan(outcome.tasks_per_connection) else outcome.tasks_per_connection
    task_low = outcome.loaded_tasks - TASK_SLACK
    task_high = outcome.loaded_tasks + math.ceil(per_connection * churners) + TASK_SLACK
    result = [
        trend_check("gateway RSS", rss, lambda v: f"{v / MIB:.1f} MiB"),
        trend_check("p99 latency", latency, lambda v: f"{v * 1000:.1f} ms"),
        band_check(
            "connections", outcome, [s.connections for s in samples], stable, stable + churners, warmup
        ),
        band_check(
            "clients registered", outcome, [s.registered for s in samples], stable, stable + churners, warmup
        ),
        band_check("tasks", outcome, [s.tasks for s in samples], task_low, task_high, warmup),
    ]
    total = outcome.errors.total
    breakdown = ", ".join(f"{kind} {n:,}" for kind, n in sorted(outcome.errors.counts.items()))
    result.append(Check("errors", "whole run", "-", f"{total:,}", "0", f"{breakdown or 'none'}", total == 0))
    result.append(
        Check(
            "idle again after the run",
            "end",
            "-",
            "-",
            f"connections 0, tasks <= {number(outcome.idle_tasks)}",
            outcome.settled or "NOT back to idle",
            bool(outcome.settled),
        )
    )
    if outcome.interrupted_at is not None:
        result.append(
            Check(
                "complete",
                "-",
                "-",
                "-",
                clock(options.seconds),
                f"interrupted at {clock(outcome.interrupted_at)}",
                False,
            )
        )
    return result


def report(options: Options, outcome: Outcome, command: str) -> bool:
    results = checks(options, outcome)
    passed = all(c.ok for c in results)
    activity = outcome.activity
    published = ", ".join(f"{name} {offset:,}" for name, offset in sorted(outcome.final_offsets.items()))
    notes = [
        f"Load: simulator {options.channels} data channels at {options.rate:g} points/s each (+ chat bot, "
        f"alerts); {options.subscribers} subscribers x {len(options_channels(options))} channels; "
        f"{options.churners} churners ({activity.churn_cycles:,} connect/subscribe/disconnect cycles, "
        f"resuming with since); {options.chatters} chatters ({activity.chats:,} chat publishes over the "
        f"WebSocket); 1 dashboard consumer thread; broker {options.broker}://",
        f"History prefilled to {HISTORY} per channel; final offsets: {published or '-'}",
        f"Every {options.interval:g} s; trends and bands judged after a {options.warmup:g} s warm-up; "
        f"RSS may rise {RSS_ALLOWANCE_MIB:g} MiB + {RSS_ALLOWANCE_RELATIVE:.0%}, p99 latency "
        f"{LATENCY_ALLOWANCE_S * 1000:g} ms + {LATENCY_ALLOWANCE_RELATIVE:.0%}; tasks: "
        f"{number(outcome.tasks_per_connection, '.2f')} per connection, band from the first sample "
        f"+/- {TASK_SLACK}",
    ]
    rows = markdown_table(ROW_HEADER, [row_cells(s) for s in outcome.samples], ROW_NUMERIC)
    summary = markdown_table(
        ("check", "samples", "median", "max", "allowed", "result"),
        [[c.name, c.samples, c.median, c.peak, c.allowed, c.result] for c in results],
        (False, True, True, True, False, False),
    )
    verdict = "PASS" if passed else "FAIL: " + "; ".join(f"{c.name}: {c.result}" for c in results if not c.ok)
    body = f"{rows}\n\n{summary}\n\nVerdict: {verdict}"
    if outcome.errors.examples:
        body += "\n\nFirst errors:\n" + "\n".join(f"- {e}" for e in outcome.errors.examples)
    print()
    print_report(
        f"Soak, {clock(options.seconds)}",
        quick=False,
        command=command,
        notes=notes,
        began=outcome.began,
        body=body,
    )
    if not passed:
        print(f"soak FAILED: {verdict.removeprefix('FAIL: ')}", file=sys.stderr)
    return passed
