"""The README's examples, run as written against a real gateway: every Python block that talks to
``127.0.0.1:8000`` and every ``curl`` command, with the address swapped for the test gateway's.

A block that no longer runs (a renamed import, an endpoint that moved) fails here, not for a reader.
"""

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import GatewayProcess
from tests.waiting import eventually

ROOT = Path(__file__).resolve().parent.parent
ADDRESS = re.compile(r"(?:127\.0\.0\.1|localhost):8000")
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.DOTALL)


def blocks(language: str) -> list[tuple[int, str]]:
    readme = (ROOT / "README.md").read_text()
    return [
        (readme[: found.start()].count("\n") + 1, found.group(2))
        for found in BLOCK.finditer(readme)
        if found.group(1) == language and ADDRESS.search(found.group(2))
    ]


def python_examples() -> list[tuple[int, str]]:
    # Streamlit apps run under ``streamlit run`` (tests/test_streamlit_connection.py runs the example app).
    return [(line, code) for line, code in blocks("python") if "import streamlit" not in code]


def curl_commands() -> list[tuple[int, str]]:
    found = []
    for line, code in blocks("sh"):
        joined = code.replace("\\\n", " ")
        found += [(line, command) for command in joined.splitlines() if command.strip().startswith("curl ")]
    return found


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    process = GatewayProcess(tmp_path_factory.mktemp("readme")).start()
    # What the simulator would have published by the time a reader tries the range examples.
    httpx.post(f"{process.http_url}/api/publish/data:cpu", json={"values": {"user": 1.0}}).raise_for_status()
    eventually(
        lambda: httpx.get(f"{process.http_url}/api/channels/data:cpu/range?series=user").is_success,
        what="the point stored",
    )
    yield process
    process.stop()


def run(command: list[str], gateway: GatewayProcess) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_the_readme_has_the_examples_this_file_runs() -> None:
    assert len(python_examples()) >= 4
    assert len(curl_commands()) >= 5


@pytest.mark.parametrize(("line", "code"), python_examples(), ids=lambda value: str(value)[:20])
def test_a_python_example_runs_as_written(gateway: GatewayProcess, line: int, code: str) -> None:
    address = gateway.http_url.removeprefix("http://")
    done = run([sys.executable, "-c", ADDRESS.sub(address, code)], gateway)
    assert done.returncode == 0, f"README.md line {line}:\n{done.stdout}\n{done.stderr}"


@pytest.mark.parametrize(("line", "command"), curl_commands(), ids=lambda value: str(value)[:30])
def test_a_curl_command_gets_a_success_answer(gateway: GatewayProcess, line: int, command: str) -> None:
    address = gateway.http_url.removeprefix("http://")
    strict = ADDRESS.sub(address, command).replace("curl -s ", "curl -sS --fail-with-body ", 1)
    done = run(["bash", "-o", "pipefail", "-c", strict], gateway)
    assert done.returncode == 0, f"README.md line {line}: {command}\n{done.stdout}\n{done.stderr}"
