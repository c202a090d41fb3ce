"""The gateway's logs against a real ``python -m gateway``: JSON lines for its records and uvicorn's, one
connection id and client address on a connection's events, and a user's ``--log-config`` in charge."""

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect
from websockets.typing import Origin

from tests.servers import ROOT, StartGateway, free_port, stop_process, wait_until_healthy


def records(log: str) -> list[dict[str, Any]]:
    """Every line of ``log`` as a JSON object (fails on the first line that is not one)."""
    return [json.loads(line) for line in log.splitlines() if line]


def test_json_lines_carry_a_connections_id_and_address(start_gateway: StartGateway) -> None:
    """With PULSE_LOG_FORMAT=json every line of the gateway's output (uvicorn's too) is one JSON object;
    a connection's open and close carry the id its welcome gave and its address, a refusal its status."""
    gateway = start_gateway(env={"PULSE_LOG_FORMAT": "json", "PULSE_LOG_LEVEL": "debug"})
    with connect(gateway.ws_url, compression=None) as client:
        client_id = json.loads(client.recv(timeout=5))["client_id"]
        host, port = client.local_address[:2]
    with pytest.raises(InvalidStatus), connect(gateway.ws_url, origin=Origin("https://evil.example")):
        pass
    gateway.stop()

    lines = records(gateway.log())
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    assert all(line["time"].endswith("+00:00") for line in lines)
    assert any(line["logger"] == "uvicorn.error" for line in lines)
    assert any(line["logger"] == "gateway" and line["message"].startswith("gateway ready") for line in lines)
    events = [line for line in lines if line.get("conn_id") == client_id]
    assert [event["message"] for event in events] == ["connection open", "connection closed: 1000"]
    assert {event["client"] for event in events} == {f"{host}:{port}"}
    assert events[-1]["code"] == 1000
    refused = [line for line in lines if line["message"].startswith("connection refused")]
    assert len(refused) == 1 and refused[0]["status"] == 403 and refused[0]["conn_id"] != client_id


def test_a_log_config_file_governs_the_gateways_loggers(tmp_path: Path) -> None:
    """``python -m gateway --log-config FILE`` hands the file to uvicorn; the ``gateway`` loggers propagate,
    so a handler on the root logger alone gets their lines, in the file's format."""
    user_log = tmp_path / "user.log"
    config = {
        "version": 1,
        "formatters": {"mine": {"format": "MINE %(name)s %(levelname)s %(message)s"}},
        "handlers": {
            "file": {"class": "logging.FileHandler", "filename": str(user_log), "formatter": "mine"}
        },
        "root": {"handlers": ["file"], "level": "DEBUG"},
    }
    config_path = tmp_path / "logging.json"
    config_path.write_text(json.dumps(config))
    port, output = free_port(), tmp_path / "gateway.out"
    env = {"PULSE_PORT": str(port), "PULSE_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"}
    with output.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "--log-config", str(config_path)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}", process, output)
        with connect(f"ws://127.0.0.1:{port}/ws", compression=None) as client:
            client_id = json.loads(client.recv(timeout=5))["client_id"]
    finally:
        stop_process(process, signal.SIGTERM, 15)
    mine = user_log.read_text()
    assert "MINE gateway INFO gateway ready: broker memory://" in mine
    assert "MINE gateway.connections DEBUG connection open" in mine
    assert client_id not in output.read_text() and "gateway ready" not in output.read_text()
