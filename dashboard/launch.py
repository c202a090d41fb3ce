"""``pulse-dashboard``: the dashboard under ``streamlit run``, from an installed package, anywhere.

``streamlit run dashboard/app.py`` from the checkout reads ``.streamlit/config.toml``; an installed
package has no such file where Streamlit looks (the working directory and ``~/.streamlit``), so this
launcher hands Streamlit the same settings as flags. It binds ``PULSE_DASHBOARD_ADDRESS`` (127.0.0.1)
on ``PULSE_DASHBOARD_PORT`` (8501); any Streamlit flag given to it, ``--server.address 0.0.0.0`` say,
comes after these and wins.
"""

import sys
from pathlib import Path

from dashboard.settings import get_settings

APP = Path(__file__).with_name("app.py")

STREAMLIT_OPTIONS: dict[str, str | bool] = {
    "server.headless": True,
    # dashboard/static: the charts' library (dygraphs), loaded once per page.
    "server.enableStaticServing": True,
    # No polling of the source files for edits: an installed dashboard is not being edited.
    "server.fileWatcherType": "none",
    # A full gc.collect() after every script run cost most of the server's CPU (docs/benchmarks.md).
    "runner.postScriptGC": False,
    "browser.gatherUsageStats": False,
    "theme.base": "light",
    "theme.primaryColor": "#2563eb",
}
"""What ``.streamlit/config.toml`` sets besides the address and port (tests/test_package.py keeps the two
the same)."""


def _flag(key: str, value: str | bool | int) -> list[str]:
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return [f"--{key}", text]


def streamlit_args(extra: list[str]) -> list[str]:
    """``streamlit run``'s arguments: the app, the project's options, the bind address, then ``extra``."""
    settings = get_settings()
    args = ["run", str(APP)]
    for key, value in STREAMLIT_OPTIONS.items():
        args += _flag(key, value)
    args += _flag("server.address", settings.dashboard_address)
    args += _flag("server.port", settings.dashboard_port)
    # Streamlit's command line keeps the last value of a repeated option, so the caller's flags win.
    return args + extra


def main(argv: list[str] | None = None) -> None:
    try:
        from streamlit.web import cli as streamlit_cli
    except ModuleNotFoundError as exc:
        # A gateway-only install has the command but not Streamlit: say which extra brings it.
        hint = "install it with: pip install 'pulseboard[dashboard]'"
        raise SystemExit(f"pulse-dashboard: {exc}; {hint}") from exc
    args = streamlit_args(sys.argv[1:] if argv is None else argv)
    streamlit_cli.main(args=args, prog_name="pulse-dashboard")
