"""Several worker processes on one port (``python -m gateway --workers N``).

uvicorn's supervisor does the process work: it binds the port once and hands the socket to every worker
(the kernel spreads new connections over those waiting in ``accept``), and starts a new worker when one
dies. What the gateway adds: it refuses the settings under which workers could not act as one gateway,
and gives them a directory to share their metrics through (``gateway.worker_board``).
"""

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from gateway.settings import Settings


def workers_problem(settings: Settings, workers: int) -> str | None:
    """Why ``workers`` processes cannot serve with ``settings``; None when they can."""
    if workers <= 1:
        return None
    if urlsplit(settings.broker_url).scheme == "memory":
        return (
            f"{workers} workers need a shared broker: with PULSE_BROKER_URL=memory:// each worker would "
            "have channels of its own, and clients on different workers would not see each other's "
            "messages. Set PULSE_BROKER_URL=redis://HOST:6379/0 (see 'Scaling out' in the README), or run "
            "one worker (PULSE_WORKERS=1)."
        )
    if urlsplit(settings.history_url).scheme == "duckdb":
        return (
            f"{workers} workers cannot share PULSE_HISTORY_URL={settings.history_url}: the DuckDB file "
            "belongs to one process. Set PULSE_HISTORY_URL=postgresql://USER:PASSWORD@HOST:5432/DB (shared "
            "range history) or PULSE_HISTORY_URL=none:// (no range history)."
        )
    return None


@contextlib.contextmanager
def worker_dir(settings: Settings, workers: int) -> Iterator[Path | None]:
    """The directory the workers share their metrics through (``PULSE_WORKER_DIR``, inherited by every
    worker), made for this run unless the settings name one; None for a single process."""
    if workers <= 1:
        yield None
        return
    if settings.worker_dir is not None:
        settings.worker_dir.mkdir(parents=True, exist_ok=True)
        for stale in settings.worker_dir.glob("*.json"):
            stale.unlink()  # an earlier run's counters would otherwise be added to this one's
        yield settings.worker_dir
        return
    directory = Path(tempfile.mkdtemp(prefix="pulse-workers-"))
    os.environ["PULSE_WORKER_DIR"] = str(directory)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)
