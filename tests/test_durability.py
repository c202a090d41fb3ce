"""Chat and notifications survive a crash; data channels say honestly that their history is gone."""

import signal
import sqlite3
import threading
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from gateway.broker import Publication
from gateway.store import DurableStore, StoredKey
from tests.client import Client
from tests.servers import GatewayProcess, StartGateway


def test_acknowledged_chat_survives_kill_9(gateway: GatewayProcess) -> None:
    """Every acknowledged chat message is there after kill -9 and restart, with the same offsets and epoch."""
    acknowledged: dict[int, str] = {}
    stop = threading.Event()

    def chat_burst() -> None:
        with Client(f"{gateway.ws_url}?name=writer") as writer:
            index = 0
            while not stop.is_set():
                text = f"message {index}"
                try:
                    reply = writer.request({"op": "publish", "channel": "chat:ops", "data": {"text": text}})
                except (ConnectionClosed, TimeoutError, OSError):
                    return
                if reply["type"] == "ack":
                    acknowledged[reply["offset"]] = text
                index += 1

    writer = threading.Thread(target=chat_burst)
    writer.start()
    while len(acknowledged) < 200:
        stop.wait(0.01)
    epoch_before = httpx.get(f"{gateway.http_url}/api/channels/chat:ops/history?limit=1").json()["epoch"]
    gateway.stop(signal.SIGKILL)
    stop.set()
    writer.join()
    gateway.start()

    page = httpx.get(f"{gateway.http_url}/api/channels/chat:ops/history", params={"limit": 1000}).json()
    stored = {p["offset"]: p["data"]["text"] for p in page["publications"]}
    assert page["epoch"] == epoch_before
    assert acknowledged.items() <= stored.items()
    assert sorted(stored) == list(range(1, len(stored) + 1))
    assert all(p["data"]["sender"] == "writer" for p in page["publications"])


def test_chat_resumes_across_a_restart_and_data_reports_a_new_epoch(gateway: GatewayProcess) -> None:
    """After a restart, chat resumes with recovered=true; a data channel answers recovered=false."""
    with Client(gateway.ws_url) as client:
        chat = client.subscribe("chat:r")
        data = client.subscribe("data:r")
        client.request({"op": "publish", "channel": "chat:r", "data": {"text": "before"}})
        client.request({"op": "publish", "channel": "data:r", "data": {"values": {"v": 1}}})
    gateway.restart()
    httpx.post(f"{gateway.http_url}/api/publish/chat:r", json={"text": "after"}).raise_for_status()
    with Client(gateway.ws_url) as client:
        resumed = client.subscribe("chat:r", since={"offset": 1, "epoch": chat["epoch"]})
        assert resumed["recovered"] is True and resumed["epoch"] == chat["epoch"]
        assert [p["data"]["text"] for p in client.pubs(1)] == ["after"]
        lost = client.subscribe("data:r", since={"offset": 1, "epoch": data["epoch"]})
        assert lost["recovered"] is False and lost["epoch"] != data["epoch"]


def test_sigterm_closes_clients_with_1012(start_gateway: StartGateway) -> None:
    """A graceful shutdown tells every client 1012 (server restarting: reconnect and resume)."""
    gateway = start_gateway(env={"PULSE_LOG_LEVEL": "info"})
    client = Client(gateway.ws_url)
    client.subscribe("data:z")
    # uvicorn re-raises the signal it handled once shutdown is complete, so the exit status is -SIGTERM.
    assert gateway.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
    assert "gateway stopped" in gateway.log()
    with pytest.raises(ConnectionClosed) as closed:
        client.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
    client.close()


def test_storage_failure_is_reported_and_recovers(gateway: GatewayProcess) -> None:
    """While another process holds the SQLite write lock, chat publishes fail clearly and health degrades."""
    database = gateway.workdir / "data" / "pulseboard.db"
    with Client(gateway.ws_url) as client:
        client.subscribe("chat:locked")
        assert (
            client.request({"op": "publish", "channel": "chat:locked", "data": {"text": "one"}})["offset"]
            == 1
        )
        blocker = sqlite3.connect(database, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            failed = client.request({"op": "publish", "channel": "chat:locked", "data": {"text": "two"}})
            assert failed["type"] == "error" and failed["code"] == "unavailable"
            http = httpx.post(f"{gateway.http_url}/api/publish/chat:locked", json={"text": "three"})
            assert http.status_code == 503 and "not published" in http.json()["detail"]
            assert httpx.get(f"{gateway.http_url}/healthz").status_code == 503
            data = client.request({"op": "publish", "channel": "data:free", "data": {"values": {"v": 1}}})
            assert data["type"] == "ack"
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        again = client.request({"op": "publish", "channel": "chat:locked", "data": {"text": "four"}})
        assert again["type"] == "ack" and again["offset"] == 2
        assert [p["data"]["text"] for p in client.pubs(2)] == ["one", "four"]
    assert httpx.get(f"{gateway.http_url}/healthz").status_code == 200


def test_store_trims_to_history_size_and_keeps_offsets(tmp_path: Path) -> None:
    """Maintenance trims each written channel to the newest `keep` rows; a reload continues the offsets."""
    store = DurableStore(tmp_path / "p.db", keep=3)
    store.open()
    publications = [Publication.create("chat:t", n, store.epoch, 1.0, {"n": n}) for n in range(1, 11)]
    store.append(publications[:6])
    store.append(publications[6:])
    store.maintain()
    assert [item.offset for item in store.load()["chat:t"]] == [8, 9, 10]
    store.close()
    reopened = DurableStore(tmp_path / "p.db", keep=3)
    reopened.open()
    assert reopened.epoch == store.epoch
    assert [item.data["n"] for item in reopened.load()["chat:t"]] == [8, 9, 10]
    reopened.close()


@pytest.mark.parametrize("broker_url", ["memory", "redis"], indirect=True)
def test_idempotent_retry_after_kill_9_gets_the_first_offsets(gateway: GatewayProcess) -> None:
    """A chat or notify batch retried with its Idempotency-Key after kill -9 and restart is not redone."""
    batches = {
        "chat:orders": [{"text": f"line {n}"} for n in range(5)],
        "notify:ops": [{"level": "info", "title": f"alert {n}"} for n in range(5)],
    }
    headers = {"Idempotency-Key": "batch-7"}
    for channel, batch in batches.items():
        sent = httpx.post(f"{gateway.http_url}/api/publish/{channel}", json=batch, headers=headers)
        assert sent.json() == {"offsets": [1, 2, 3, 4, 5]}
    gateway.stop(signal.SIGKILL)
    gateway.start()
    for channel, batch in batches.items():
        url = f"{gateway.http_url}/api/publish/{channel}"
        assert httpx.post(url, json=batch, headers=headers).json() == {"offsets": [1, 2, 3, 4, 5]}
        fresh = httpx.post(url, json=batch[0], headers={"Idempotency-Key": "batch-8"})
        assert fresh.json() == {"offsets": [6]}
        page = httpx.get(f"{gateway.http_url}/api/channels/{channel}/history", params={"limit": 100}).json()
        assert [p["offset"] for p in page["publications"]] == [1, 2, 3, 4, 5, 6]


def test_stored_idempotency_keys_expire_and_are_pruned(tmp_path: Path) -> None:
    """A key stored with its publications is loaded until it expires, and maintenance deletes it after."""
    store = DurableStore(tmp_path / "p.db", keep=10)
    store.open()
    publications = [Publication.create("chat:k", n, store.epoch, 1.0, {"n": n}) for n in (1, 2)]
    store.append(publications, StoredKey("chat:k", "alice\x00k1", range(1, 3), expires=100.0))
    assert store.load_keys(now=99.0, limit=10) == [StoredKey("chat:k", "alice\x00k1", range(1, 3), 100.0)]
    assert store.load_keys(now=100.0, limit=10) == []
    store.maintain(now=99.0)
    assert len(store.load_keys(now=0.0, limit=10)) == 1
    store.maintain(now=100.0)
    assert store.load_keys(now=0.0, limit=10) == []
    assert [item.offset for item in store.load()["chat:k"]] == [1, 2]
    store.close()
