"""Headless Chromium for tests: Debian's ``chromium`` driven by Playwright with ``executable_path``.

Playwright never downloads a browser here (``playwright install`` cannot reach its servers); ``make
test`` installs Debian's package when it is missing. The ``browser`` fixture is in ``conftest.py``.
"""

import re
import shutil

from dashboard.markup import WORD_JOINER

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


def shown_as(text: str) -> re.Pattern[str]:
    """Matches ``text`` as the dashboard shows publisher text (an accessible name, say): an invisible word
    joiner may stand before each ``:``, ``@`` and ``.`` (``dashboard.markup.escape_markdown``)."""
    parts = (f"{WORD_JOINER}?{re.escape(char)}" if char in ":@." else re.escape(char) for char in text)
    return re.compile("^" + "".join(parts) + "$")
