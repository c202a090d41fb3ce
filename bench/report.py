"""What every benchmark prints: a markdown table of rows, the machine it ran on, and test inputs."""

import math
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dashboard.arrays import FloatArray


@dataclass(frozen=True)
class Row:
    case: str
    size: str
    median: str
    best: str
    target: str
    notes: str


def table(rows: Sequence[Row]) -> str:
    header = ("Case", "Input", "Median", "Best", "Target", "Notes")
    lines = ["| " + " | ".join(header) + " |", "|---|---|--:|--:|---|---|"]
    lines += [f"| {r.case} | {r.size} | {r.median} | {r.best} | {r.target} | {r.notes} |" for r in rows]
    return "\n".join(lines)


def machine() -> str:
    return (
        f"{os.cpu_count()} CPUs, Python {platform.python_version()} ({platform.python_implementation()}), "
        f"numpy {np.__version__}, {platform.system()} {platform.machine()}"
    )


def random_walk(count: int) -> tuple[FloatArray, FloatArray]:
    rng = np.random.default_rng(count)
    ts = 1_700_000_000.0 + np.arange(count, dtype=np.float64) * 0.1
    values = rng.standard_normal(count)
    np.cumsum(values, out=values)
    return ts, values


def print_report(
    title: str, *, quick: bool, command: str, notes: Sequence[str], began: float, body: str
) -> None:
    """Print a benchmark's markdown report: title, command, machine, notes, total time, then ``body``."""
    suffix = " (quick: checks the harness, not the speed)" if quick else ""
    print(f"## {title}{suffix}")
    print()
    print(f"- Command: `{command}`")
    print(f"- Machine: {machine()}")
    for note in notes:
        print(f"- {note}")
    print(f"- Total time: {time.perf_counter() - began:.1f} s")
    print()
    print(body)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[bool]) -> str:
    """A markdown table with free columns; ``numeric`` right-aligns a column (one flag per column)."""
    if len(numeric) != len(header):
        raise ValueError(f"{len(header)} columns but {len(numeric)} alignment flags")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("--:" if n else "---" for n in numeric) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def percent(fraction: float) -> str:
    """A fraction as a percentage for a report's tables; "n/a" for NaN (nothing measured)."""
    return "n/a" if math.isnan(fraction) else f"{fraction * 100:.1f} %"
