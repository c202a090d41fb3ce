"""``python -m gateway --workers 2`` on a real Redis is one gateway: clients on different workers see each
other's publications in order, presence and direct messages cross workers, ``/metrics`` and
``/api/channels`` count both workers, and a worker killed with SIGKILL loses no acknowledged chat: the
supervisor replaces it and its clients resume on a live worker."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.client import Client
from tests.process_sockets import children, command_line, holder
from tests.servers import ROOT, GatewayProcess, metric
from tests.waiting import eventually

pytestmark = pytest.mark.slow


@pytest.fixture
def gateway(two_workers: GatewayProcess) -> GatewayProcess:
    return two_workers


def workers_of(gateway: GatewayProcess) -> list[int]:
    """The supervisor's worker processes (not multiprocessing's resource tracker, also its child)."""
    assert gateway.process is not None
    return [pid for pid in children(gateway.process.pid) if b"spawn_main" in command_line(pid)]


def worker_holding(gateway: GatewayProcess, client: Client) -> int | None:
    client_port = client.ws.socket.getsockname()[1]
    return holder(workers_of(gateway), gateway.port, client_port)


def one_on_each_worker(gateway: GatewayProcess, url: str) -> dict[int, Client]:
    """A client on each worker: connections are opened until both workers hold one (the kernel hands
    each to whichever worker accepts first), the spares closed."""
    placed: dict[int, Client] = {}
    spares = []
    for _ in range(60):
        client = Client(url)
        worker = worker_holding(gateway, client)
        if worker is not None and worker not in placed:
            placed[worker] = client
        else:
            spares.append(client)
        if len(placed) == 2:
            break
    for spare in spares:
        spare.close()
    assert len(placed) == 2, f"60 connections all went to {list(placed)}"
    return placed


def test_memory_broker_or_duckdb_history_with_two_workers_refuse_to_start(tmp_path: Path) -> None:
    def start(**env: str) -> subprocess.CompletedProcess[str]:
        inherited = {key: value for key, value in os.environ.items() if not key.startswith("PULSE_")}
        return subprocess.run(
            [sys.executable, "-m", "gateway", "--workers", "2"],
            cwd=ROOT,
            env={**inherited, "PULSE_DATA_DIR": str(tmp_path), **env},
            capture_output=True,
            text=True,
            timeout=30,
        )

    memory = start(PULSE_BROKER_URL="memory://")
    assert memory.returncode == 2
    assert "2 workers need a shared broker" in memory.stderr
    assert "Set PULSE_BROKER_URL=redis://HOST:6379/0" in memory.stderr
    duckdb = start(PULSE_BROKER_URL="redis://127.0.0.1:1/0")
    assert duckdb.returncode == 2
    assert "Set PULSE_HISTORY_URL=postgresql://" in duckdb.stderr and "none://" in duckdb.stderr


def test_workers_act_as_one_gateway(gateway: GatewayProcess) -> None:
    placed = one_on_each_worker(gateway, gateway.ws_url)
    ann, ben = placed.values()
    try:
        for client in (ann, ben):
            client.subscribe("chat:lobby")
        for author, client in (("ann", ann), ("ben", ben)):
            for i in range(5):
                reply = client.request(
                    {"op": "publish", "channel": "chat:lobby", "data": {"text": f"{author}{i}"}}
                )
                assert reply["type"] == "ack", reply
        expected = [f"ann{i}" for i in range(5)] + [f"ben{i}" for i in range(5)]
        for client in (ann, ben):
            seen = client.pubs(10)
            assert [p["offset"] for p in seen] == list(range(1, 11))
            assert [p["data"]["text"] for p in seen] == expected

        presence = ann.request({"op": "presence", "channel": "chat:lobby"})
        assert {c["client_id"] for c in presence["clients"]} == {ann.client_id, ben.client_id}
        assert ann.request({"op": "direct", "to": ben.client_id, "data": {"text": "psst"}})["type"] == "ack"
        assert ben.expect("direct")["data"] == {"text": "psst"}

        def subscribers() -> int:
            listed = httpx.get(
                f"{gateway.http_url}/api/channels", params={"prefix": "chat:"}, timeout=5
            ).json()
            return int(listed["channels"][0]["subscribers"])

        eventually(lambda: subscribers() == 2, timeout=5)  # whichever worker answers
        eventually(lambda: metric(gateway.http_url, "pulse_connections_open") == 2, timeout=5)
        assert metric(gateway.http_url, "pulse_messages_in_total") == 10
        assert metric(gateway.http_url, "pulse_broker_up") == 1
    finally:
        ann.close()
        ben.close()


def test_a_killed_worker_loses_no_acknowledged_chat_and_its_clients_resume_on_another(
    gateway: GatewayProcess,
) -> None:
    placed = one_on_each_worker(gateway, gateway.ws_url)
    (doomed_pid, doomed), (_, survivor) = placed.items()
    try:
        for client in (doomed, survivor):
            client.subscribe("chat:room")
        for i in range(20):
            reply = doomed.request({"op": "publish", "channel": "chat:room", "data": {"text": f"m{i}"}})
            assert reply["type"] == "ack", reply
        seen = doomed.pubs(20)
        assert [p["offset"] for p in survivor.pubs(20)] == list(range(1, 21))
        eventually(lambda: metric(gateway.http_url, "pulse_messages_in_total") == 20, timeout=5)

        os.kill(doomed_pid, signal.SIGKILL)
        with pytest.raises(ConnectionClosed):
            doomed.recv(timeout=10)
        for i in range(20, 25):
            assert (
                survivor.request({"op": "publish", "channel": "chat:room", "data": {"text": f"m{i}"}})["type"]
                == "ack"
            )

        with Client(gateway.ws_url) as moved:  # to the survivor or to the replacement: either resumes
            reply = moved.subscribe(
                "chat:room", since={"offset": seen[-1]["offset"], "epoch": seen[-1]["epoch"]}
            )
            assert reply["recovered"] is True
            assert [p["data"]["text"] for p in moved.pubs(5)] == [f"m{i}" for i in range(20, 25)]
        history = httpx.get(f"{gateway.http_url}/api/channels/chat:room/history", timeout=5).json()
        assert [p["data"]["text"] for p in history["publications"]] == [f"m{i}" for i in range(25)]

        def replaced() -> bool:
            workers = workers_of(gateway)
            return len(workers) == 2 and doomed_pid not in workers

        try:
            eventually(replaced, timeout=20)
        except AssertionError:
            raise AssertionError(
                f"no replacement for {doomed_pid}: {workers_of(gateway)}\n{gateway.log()}"
            ) from None
        eventually(lambda: metric(gateway.http_url, "pulse_workers") == 2, timeout=20)
        # The dead worker's counters stay in the sum: totals never go backwards.
        assert metric(gateway.http_url, "pulse_messages_in_total") == 25
    finally:
        doomed.close()
        survivor.close()
