"""Headless Chromium for tests: Debian's ``chromium`` driven by Playwright with ``executable_path``.

Playwright never downloads a browser here (``playwright install`` cannot reach its servers); ``make
test`` installs Debian's package when it is missing. The ``browser`` fixture is in ``conftest.py``.
"""

import shutil

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
