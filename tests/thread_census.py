"""``python -m tests.thread_census run dashboard/app.py ...``: ``python -m streamlit`` with a census of its
threads by name, for tests that bound them.

Python 3.11 gives threads no OS-level name (``/proc/PID/task/*/comm`` reads ``python`` for every one), so
on SIGUSR1 this process writes ``{thread name: count}`` from ``threading.enumerate()`` as JSON to
``$THREAD_CENSUS_PATH``. Nothing else differs from ``python -m streamlit``.
"""

import json
import os
import signal
import sys
import threading
from collections import Counter
from pathlib import Path
from types import FrameType

CENSUS_PATH_ENV = "THREAD_CENSUS_PATH"


def write_census(signum: int, frame: FrameType | None) -> None:
    """Replace the census file in one step, so a reader never sees half of it."""
    path = Path(os.environ[CENSUS_PATH_ENV])
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(Counter(thread.name for thread in threading.enumerate())))
    partial.replace(path)


if __name__ == "__main__":
    from streamlit.web.cli import main

    signal.signal(signal.SIGUSR1, write_census)
    sys.exit(main(prog_name="streamlit"))
