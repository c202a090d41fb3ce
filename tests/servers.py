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


def wait_until_healthy(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gateway exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code in (200, 503):
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"gateway did not come up in {timeout}s:\n{log.read_text()}")


@dataclass
class GatewayProcess:
    """``python -m gateway`` with ``PULSE_*`` settings, in its own data dir, on a free port."""

    workdir: Path
    env: Mapping[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

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
                [sys.executable, "-m", "gateway"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        wait_until_healthy(self.http_url, self.process, self.log_path)
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Stop the process with ``sig`` (SIGKILL for a crash) and return its exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
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
