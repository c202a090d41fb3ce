"""The distribution's parts that need no build: every console script names a function, and the dashboard
launcher passes the checkout's Streamlit settings. That the wheel builds, installs outside the checkout
and serves is ``make package-check`` (scripts/package_check.py), a step of its own in CI."""

import importlib
import tomllib
from collections.abc import Iterator

import pytest

from dashboard import launch
from dashboard.settings import get_settings
from tests.servers import ROOT

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


@pytest.fixture
def fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """The dashboard's settings read again from an environment without the launcher's variables."""
    for name in ("PULSE_DASHBOARD_ADDRESS", "PULSE_DASHBOARD_PORT"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def flag_value(args: list[str], key: str) -> str:
    """The value Streamlit takes for ``--key``: the last one given."""
    values = [args[i + 1] for i, arg in enumerate(args) if arg == f"--{key}"]
    assert values, f"--{key} not passed"
    return values[-1]


def test_console_scripts_name_callables() -> None:
    """Every console script in pyproject.toml points at a function that exists."""
    for name, target in PROJECT["project"]["scripts"].items():
        module, _, function = target.partition(":")
        assert callable(getattr(importlib.import_module(module), function)), name


@pytest.mark.usefixtures("fresh_settings")
def test_launcher_passes_the_checkout_streamlit_config() -> None:
    """pulse-dashboard hands Streamlit every setting of .streamlit/config.toml, loopback included."""
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    args = launch.streamlit_args([])
    assert args[:2] == ["run", str(launch.APP)]
    for section, options in config.items():
        for option, value in options.items():
            expected = str(value).lower() if isinstance(value, bool) else str(value)
            assert flag_value(args, f"{section}.{option}") == expected, f"{section}.{option}"
    assert flag_value(args, "server.address") == "127.0.0.1"


def test_launcher_address_setting_and_caller_flags(fresh_settings: pytest.MonkeyPatch) -> None:
    """PULSE_DASHBOARD_ADDRESS sets the bind address; a Streamlit flag given to the launcher wins."""
    fresh_settings.setenv("PULSE_DASHBOARD_ADDRESS", "0.0.0.0")
    assert flag_value(launch.streamlit_args([]), "server.address") == "0.0.0.0"
    args = launch.streamlit_args(["--server.address", "::1", "--server.port", "9000"])
    assert flag_value(args, "server.address") == "::1"
    assert flag_value(args, "server.port") == "9000"
