"""Real processes for tests: a gateway (uvicorn) on a free port, started and always stopped."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def metric(http_url: str, name: str) -> float:
    """The sample ``name`` in the gateway's ``/metrics``, summed over its labels (so a labelled counter
    such as ``pulse_messages_in_total`` reads as its total over every namespace)."""
    values = [
        float(line.rsplit(" ", 1)[1])
        for line in httpx.get(f"{http_url}/metrics", timeout=5).text.splitlines()
        if line.startswith((f"{name} ", f"{name}{{"))
    ]
    if not values:
        raise AssertionError(f"{name} not in /metrics")
    return sum(values)


def wait_until_healthy(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 20.0) -> None:
    wait_for_http(f"{url}/healthz", process, log, timeout, ok=(200, 503))


def stop_process(process: subprocess.Popen[bytes] | None, sig: int, timeout: float) -> int:
    """Send ``sig`` and wait (SIGKILL after ``timeout``); the exit code, 0 if there was no process."""
    if process is None:
        return 0
    if process.poll() is None:
        process.send_signal(sig)
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


@dataclass
class GatewayProcess:
    """``python -m gateway`` with ``PULSE_*`` settings, in its own data dir, on a free port."""

    workdir: Path
    env: Mapping[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    command_prefix: list[str] = field(default_factory=list)
    """Put before the command, such as ``taskset -c 0`` to pin the gateway to a CPU (benchmarks)."""

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"gateway-{self.port}.log"

    def start(self) -> "GatewayProcess":
        inherited = {key: value for key, value in os.environ.items() if not key.startswith("PULSE_")}
        env = {
            **inherited,
            "PULSE_DATA_DIR": str(self.workdir / "data"),
            "PULSE_HOST": "127.0.0.1",
            "PULSE_PORT": str(self.port),
            "PULSE_LOG_LEVEL": "warning",
            **self.env,
        }
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*self.command_prefix, sys.executable, "-m", "gateway"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until_healthy(self.http_url, self.process, self.log_path)
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Stop the process with ``sig`` (SIGKILL for a crash) and return its exit code."""
        code = stop_process(self.process, sig, timeout)
        self.process = None
        return code

    def restart(self, sig: int = signal.SIGTERM) -> "GatewayProcess":
        self.stop(sig)
        return self.start()

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""


class StartGateway(Protocol):
    """The ``start_gateway`` fixture: start a gateway with extra ``PULSE_*`` settings."""

    def __call__(self, env: dict[str, str] | None = None) -> GatewayProcess: ...


def wait_for_http(
    url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 30.0, ok: tuple[int, ...] = (200,)
) -> None:
    """Wait until ``url`` answers with a status in ``ok``, failing early with the log if the process dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(url, timeout=1.0).status_code in ok:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer in {timeout}s:\n{log.read_text()}")


@dataclass
class AppProcess:
    """Another program of the project (the dashboard, the simulator) as a real process, always stopped."""

    args: list[str]
    workdir: Path
    env: Mapping[str, str] = field(default_factory=dict)
    name: str = "app"
    url: str = ""
    """Where it serves HTTP, if it does."""
    process: subprocess.Popen[bytes] | None = None
    cwd: Path = ROOT
    """Where it runs (a benchmark runs another checkout's dashboard from that checkout)."""
    command_prefix: list[str] = field(default_factory=list)
    """Put before the command, such as ``taskset -c 0`` to pin it to a CPU (benchmarks)."""

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def start(self, ready_path: str | None = None) -> "AppProcess":
        """Start it; with ``ready_path``, wait until ``url + ready_path`` answers 200."""
        inherited = {key: value for key, value in os.environ.items() if not key.startswith("PULSE_")}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*self.command_prefix, sys.executable, *self.args],
                cwd=self.cwd,
                env={**inherited, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if ready_path is not None:
            wait_for_http(self.url + ready_path, self.process, self.log_path)
        return self

    def stop(self, timeout: float = 10.0) -> int:
        code = stop_process(self.process, signal.SIGTERM, timeout)
        self.process = None
        return code

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""


def dashboard_process(
    workdir: Path,
    gateway_url: str,
    env: Mapping[str, str] | None = None,
    module: str = "streamlit",
    checkout: Path = ROOT,
) -> AppProcess:
    """``streamlit run dashboard/app.py`` on a free port, fed by the gateway at ``gateway_url``; ``module``
    is what ``python -m`` runs (``tests.thread_census`` adds a thread census); ``checkout``: whose
    ``dashboard/`` and ``.streamlit/config.toml`` (another worktree's, for a benchmark's baseline)."""
    port = free_port()
    args = [
        "-m", module, "run", "dashboard/app.py",
        "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    env = {"PULSE_GATEWAY_URL": gateway_url, **(env or {})}
    return AppProcess(args, workdir, env, name="dashboard", url=f"http://127.0.0.1:{port}", cwd=checkout)
