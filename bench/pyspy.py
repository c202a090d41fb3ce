"""Where a benchmarked server's CPU time goes: ``py-spy record`` on it, summed up by function and package.

py-spy is not a requirement (``pip install py-spy==0.4.0``); the benchmarks that take ``--profile DIR``
look for it beside the running Python, then on ``PATH``. It samples without pausing the process
(``--nonblocking``) and only threads that are running (py-spy's default), 100 times a second, into
py-spy's raw format (one collapsed stack and its sample count per line).
"""

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench.report import markdown_table

RATE = 100
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def find() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def record(pid: int, seconds: float, output: Path) -> subprocess.Popen[bytes]:
    """Start sampling ``pid`` (and its subprocesses) for ``seconds`` into ``output``."""
    program = find()
    if program is None:
        raise RuntimeError("py-spy not found: pip install py-spy==0.4.0")
    return subprocess.Popen(
        [
            program, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
            "--rate", str(RATE), "--format", "raw", "--nonblocking", "--subprocesses",
            "--output", str(output),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _where(file: str) -> str:
    """A frame's file as a short module path: ``streamlit/runtime/app_session.py``, ``dashboard/chart.py``."""
    for marker in ("site-packages/", "lib/python3.11/"):
        if marker in file:
            return file.split(marker, 1)[1]
    parts = Path(file).parts
    for anchor in ("dashboard", "bench", "shared", "gateway"):
        if anchor in parts:
            return "/".join(parts[parts.index(anchor) :])
    return file


def _package(where: str) -> str:
    first = where.split("/", 1)[0]
    return first.removesuffix(".py") if "/" in where or where.endswith(".py") else where


def _frames(stack: str) -> list[tuple[str, str]]:
    frames = []
    for frame in stack.split(";"):
        match = _FRAME.match(frame)
        if match is not None:
            where = _where(match["file"])
            frames.append((f"{match['function']} ({where})", _package(where)))
    return frames


def summarize(path: Path, top: int = 12) -> str:
    """The samples in ``path`` (py-spy's raw format): the functions most often on top of a stack (self),
    and the share of samples whose stack went through each package (inclusive) or ended in it (self)."""
    own: Counter[str] = Counter()
    package_self: Counter[str] = Counter()
    package_total: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = _frames(stack)
        if not frames:
            continue
        total += count
        own[frames[-1][0]] += count
        package_self[frames[-1][1]] += count
        for package in {package for _, package in frames}:
            package_total[package] += count
    if not total:
        return f"(no samples in {path.name})"

    def share(count: int) -> str:
        return f"{count * 100 / total:.1f} %"

    functions = markdown_table(
        ("Function (self time)", "Samples"),
        [(name, share(n)) for name, n in own.most_common(top)],
        (False, True),
    )
    packages = markdown_table(
        ("Package", "Stacks through it", "Self"),
        [(name, share(n), share(package_self[name])) for name, n in package_total.most_common(top)],
        (False, True, True),
    )
    return f"{total:,} samples ({total / RATE:,.1f} s of CPU)\n\n{functions}\n\n{packages}"
