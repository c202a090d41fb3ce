"""A baseline commit beside the working tree: benchmarks that compare the current code with an earlier
commit start the earlier one from a temporary ``git worktree`` in the same run."""

import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.servers import ROOT


def git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def describe_checkout(path: Path, *parts: str) -> str:
    """The commit checked out at ``path``, and whether ``parts`` (folders) have uncommitted changes."""
    commit = git("rev-parse", "--short", "HEAD", cwd=path)
    dirty = git("status", "--porcelain", "--", *parts, cwd=path) if parts else ""
    return commit + (" with uncommitted changes" if dirty else "")


@contextmanager
def baseline_checkout(ref: str) -> Iterator[Path]:
    """``ref`` checked out in a temporary ``git worktree`` (removed afterwards, whatever happens)."""
    with tempfile.TemporaryDirectory(prefix="pulse-baseline-") as parent:
        path = Path(parent) / "checkout"
        git("worktree", "add", "--detach", "--quiet", str(path), ref)
        try:
            yield path
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, check=False)
            subprocess.run(["git", "worktree", "prune"], cwd=ROOT, check=False)
