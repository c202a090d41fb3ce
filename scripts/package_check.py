"""Build the wheel and run it the way a user would: installed in a fresh venv, away from the checkout.

``make package-check`` (and CI, and ``tests/test_package.py``) runs this. It needs only the standard
library and the machine's pip configuration (index, cache), and it checks:

1. ``pip wheel`` builds from the listed packages alone (a copy of them, so nothing else in the checkout
   can leak in and no build folder is left in it);
2. the core install (no extras, pinned by ``requirements.txt``) has no Streamlit or pandas, and from a
   working directory outside the checkout ``pulse-gateway`` serves: a message published over HTTP
   arrives over a WebSocket (the installed ``pulseboard`` client), ``pulse-simulator`` publishes to it,
   ``pulse-token`` runs, and ``pulse-dashboard``/``pulse-mqtt-bridge`` name the extra they lack;
3. with ``[dashboard,mqtt]`` added, ``pulse-dashboard`` serves its health check and static files on
   127.0.0.1 only, and ``pulse-mqtt-bridge --help`` runs.

Exit status 0 when all of it holds; otherwise 1, with what failed and the logs of the processes.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 60.0
"""Seconds a server has to answer after it starts (a busy 2-core CI machine, imports from a cold venv)."""

# Run by the venv's python: the installed client package subscribes (with history, so the order of
# subscribe and publish does not matter) and prints the first publication's data.
SUBSCRIBE = """
import json, queue, sys, time
from pulseboard.subscriber import Pub, SyncSubscriber
url, channel, deadline = sys.argv[1], sys.argv[2], time.monotonic() + float(sys.argv[3])
with SyncSubscriber(url, [channel], history=10) as feed:
    print("subscribing", flush=True)
    while (left := deadline - time.monotonic()) > 0:
        try:
            event = feed.get(timeout=left)
        except queue.Empty:
            break
        if isinstance(event, Pub):
            print(json.dumps(event.data), flush=True)
            sys.exit(0)
sys.exit(1)
"""

WHERE_FROM = "import gateway, pulseboard; print(gateway.__file__); print(pulseboard.__file__)"
NOT_INSTALLED = "import importlib.util as u; print([m for m in ('streamlit', 'pandas') if u.find_spec(m)])"


class CheckError(Exception):
    """One expectation did not hold; the message says which."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without anything that could point Python at the checkout or at another venv."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME") and not key.startswith("PULSE_")
    }
    env.update(extra)
    return env


def run(cmd: Sequence[str | Path], cwd: Path, env: dict[str, str], timeout: float = 600) -> str:
    """Run ``cmd``; its output, or ``CheckError`` with that output when it fails."""
    shown = " ".join(str(part) for part in cmd)
    print(f"package-check: {shown}", flush=True)
    result = subprocess.run(
        [str(part) for part in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise CheckError(f"{shown} exited {result.returncode}:\n{result.stdout}{result.stderr}")
    return result.stdout


def build_wheel(work: Path) -> Path:
    """The wheel, built from a copy of what pyproject.toml lists (its packages, the README)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    tops = sorted({name.split(".")[0] for name in project["tool"]["setuptools"]["packages"]})
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for top in tops:
        shutil.copytree(ROOT / top, source / top, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dist = work / "dist"
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", dist, source], work, clean_env())
    (wheel,) = dist.glob("pulseboard-*.whl")
    return wheel


def http(url: str, data: bytes | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    headers = {"content-type": "application/json"} if data is not None else {}
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status: int = response.status
            return status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_for(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Until ``url`` answers 200; ``CheckError`` if the process exits or the time runs out."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise CheckError(f"exited {process.returncode} before {url} answered:\n{log.read_text()}")
        try:
            if http(url, timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise CheckError(f"{url} did not answer 200 within {START_TIMEOUT:.0f} s:\n{log.read_text()}")


def start(cmd: Sequence[str | Path], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    print(f"package-check: {' '.join(str(part) for part in cmd)} (in {cwd})", flush=True)
    with log.open("wb") as out:
        return subprocess.Popen([str(part) for part in cmd], cwd=cwd, env=env, stdout=out, stderr=out)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def check_core(venv: Path, home: Path) -> None:
    """The core install: the gateway serves, the client receives, the simulator publishes."""
    bin_dir = venv / "bin"
    env = clean_env()
    where = run([bin_dir / "python", "-c", WHERE_FROM], home, env).split()
    if not all(Path(path).is_relative_to(venv) for path in where):
        raise CheckError(f"imported from outside the venv: {where}")
    leaked = run([bin_dir / "python", "-c", NOT_INSTALLED], home, env).strip()
    if leaked != "[]":
        raise CheckError(f"the core install brought in {leaked}")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = home / "gateway.log"
    gateway_env = clean_env(PULSE_PORT=str(port), PULSE_DATA_DIR=str(home / "data"))
    gateway = start([bin_dir / "pulse-gateway"], home, gateway_env, log)
    try:
        wait_for(f"{url}/readyz", gateway, log)
        channel = "data:package-check"
        subscriber = subprocess.Popen(
            [bin_dir / "python", "-c", SUBSCRIBE, f"ws://127.0.0.1:{port}/ws", channel, "30"],
            cwd=home,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert subscriber.stdout is not None
        first = subscriber.stdout.readline()
        if first.strip() != "subscribing":
            subscriber.kill()
            raise CheckError(f"the subscriber did not start: {first}{subscriber.stdout.read()}")
        body = json.dumps({"values": {"installed": 1.5}}).encode()
        status, answer = http(f"{url}/api/publish/{channel}", body)
        if status != 200:
            subscriber.kill()
            raise CheckError(f"publish answered {status}: {answer!r}")
        out, _ = subscriber.communicate(timeout=60)
        if subscriber.returncode != 0 or json.loads(out)["values"] != {"installed": 1.5}:
            raise CheckError(f"the subscriber got no publication (exit {subscriber.returncode}): {out}")
        print(f"package-check: published over HTTP, received over the WebSocket: {out.strip()}", flush=True)
        run([bin_dir / "pulse-simulator", "--gateway", url, "--duration", "1", "--no-chat"], home, env, 60)
        status, answer = http(f"{url}/api/channels/data:cpu/history?limit=1")
        if status != 200 or not json.loads(answer)["publications"]:
            raise CheckError(f"pulse-simulator published nothing to data:cpu: {status} {answer!r}")
    finally:
        stop(gateway)
    run([bin_dir / "pulse-token", "--new-secret"], home, env)
    for command, extra in (("pulse-dashboard", "dashboard"), ("pulse-mqtt-bridge", "mqtt")):
        result = subprocess.run([bin_dir / command], cwd=home, env=env, capture_output=True, text=True)
        if result.returncode == 0 or f"pulseboard[{extra}]" not in result.stderr:
            raise CheckError(f"{command} without its extra: {result.returncode} {result.stderr}")


def non_loopback_address() -> str | None:
    """An address of this machine other than loopback, to show the dashboard is not listening there."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            # No packet is sent: connecting a UDP socket only picks the outgoing interface.
            sock.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address: str = sock.getsockname()[0]
    return None if address.startswith("127.") else address


def check_dashboard(venv: Path, home: Path) -> None:
    """With the extras: the dashboard serves on loopback only, with its static files; the bridge runs."""
    bin_dir = venv / "bin"
    port = free_port()
    log = home / "dashboard.log"
    dashboard = start([bin_dir / "pulse-dashboard"], home, clean_env(PULSE_DASHBOARD_PORT=str(port)), log)
    try:
        wait_for(f"http://127.0.0.1:{port}/_stcore/health", dashboard, log)
        status, script = http(f"http://127.0.0.1:{port}/app/static/pulse_chart.js")
        if status != 200 or not script:
            raise CheckError(f"the dashboard's static files are not served: {status}")
        address = non_loopback_address()
        if address is not None:
            try:
                socket.create_connection((address, port), timeout=2).close()
            except OSError:
                pass
            else:
                raise CheckError(f"the dashboard listens on {address}, not only on 127.0.0.1")
    finally:
        stop(dashboard)
    run([bin_dir / "pulse-mqtt-bridge", "--help"], home, clean_env())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/package_check.py", description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder and say where")
    parser.add_argument("--core-only", action="store_true", help="skip the [dashboard,mqtt] install")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="pulse-package-check-"))
    try:
        wheel = build_wheel(work)
        venv = work / "venv"
        home = work / "home"
        home.mkdir()
        env = clean_env()
        # The versions CI tested (requirements.txt); no byte-compiling of what the check never imports.
        pip: list[str | Path] = [venv / "bin" / "python", "-m", "pip", "install", "--quiet", "--no-compile"]
        pip += ["-c", ROOT / "requirements.txt"]
        run([sys.executable, "-m", "venv", venv], home, env)
        run([*pip, wheel], home, env)
        check_core(venv, home)
        if not args.core_only:
            run([*pip, f"{wheel}[dashboard,mqtt]"], home, env)
            check_dashboard(venv, home)
    except (CheckError, subprocess.TimeoutExpired) as exc:
        print(f"package-check: FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"package-check: kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"package-check: ok ({wheel.name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
