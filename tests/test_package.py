"""The distribution's parts that need no build: every console script names a function, and the dashboard
launcher passes the checkout's Streamlit settings. That the wheel builds, installs outside the checkout
and serves is ``make package-check`` (scripts/package_check.py), a step of its own in CI."""

import importlib
import ipaddress
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from dashboard import launch
from dashboard.settings import get_settings
from tests.servers import ROOT, AppProcess, free_port

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


def listening_addresses(port: int) -> set[str]:
    """The local addresses with a TCP socket listening on ``port`` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            address, _, hex_port = fields[1].partition(":")
            if fields[3] == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(str(ipaddress.ip_address(kernel_order(address))))
    return found


def kernel_order(address: str) -> bytes:
    """An address as /proc/net prints it (32-bit words in host order, little-endian here) as bytes."""
    words = [bytes.fromhex(address[i : i + 8])[::-1] for i in range(0, len(address), 8)]
    return b"".join(words)


def test_the_dashboard_listens_on_loopback_only_as_make_run_starts_it(tmp_path: Path) -> None:
    """The Procfile's command (no address flag): .streamlit/config.toml keeps it off other interfaces."""
    command = (ROOT / "Procfile").read_text().split("dashboard:", 1)[1].splitlines()[0].split()
    assert command[:2] == ["python", "-m"]
    port = free_port()
    dashboard = AppProcess(
        [*command[1:], "--server.port", str(port)], tmp_path, name="dashboard", url=f"http://127.0.0.1:{port}"
    ).start(ready_path="/_stcore/health")
    try:
        assert listening_addresses(port) == {"127.0.0.1"}
    finally:
        dashboard.stop()
