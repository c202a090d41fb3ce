"""Pulseboard's release version, read once: from the installed distribution, else from ``pyproject.toml``.

Running from a checkout without installing the project (``make run``, the tests) finds no distribution,
so the version then comes from the ``pyproject.toml`` next to the packages; that file is the one place it
is written.
"""

import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

DISTRIBUTION = "pulseboard"
UNKNOWN = "0+unknown"
_PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def read_version() -> str:
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        pass
    try:
        project = tomllib.loads(_PYPROJECT.read_text(encoding="utf-8")).get("project", {})
    except (OSError, tomllib.TOMLDecodeError):
        return UNKNOWN
    found = project.get("version") if isinstance(project, dict) else None
    return found if isinstance(found, str) else UNKNOWN


VERSION = read_version()
