"""Several gateway processes on one real Redis, or one real Redis Cluster, behave as one gateway: delivery
across processes, resume on another process, contiguous offsets under concurrent publishers, presence and
direct messages across processes, and the faults: Redis killed and restarted, one gateway stopped."""

import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.client import Client
from tests.redis_server import RedisServer
from tests.servers import GatewayProcess
from tests.waiting import eventually

pytestmark = pytest.mark.slow


def publish(gateway: GatewayProcess, channel: str, payloads: list[dict[str, object]]) -> list[int]:
    response = httpx.post(f"{gateway.http_url}/api/publish/{channel}", json=payloads, timeout=10)
    response.raise_for_status()
    offsets: list[int] = response.json()["offsets"]
    return offsets


def values(count: int, start: int = 0) -> list[dict[str, object]]:
    return [{"values": {"n": float(start + i)}} for i in range(count)]


def test_published_on_b_is_delivered_on_a_in_order(pair: tuple[GatewayProcess, GatewayProcess]) -> None:
    a, b = pair
    with Client(a.ws_url) as on_a, Client(b.ws_url) as on_b:
        on_a.subscribe("data:x")
        assert publish(b, "data:x", values(50)) == list(range(1, 51))
        on_b.request({"op": "publish", "channel": "data:x", "data": {"values": {"n": 50.0}}})
        received = on_a.pubs(51)
        assert [p["offset"] for p in received] == list(range(1, 52))
        assert [p["data"]["values"]["n"] for p in received] == [float(i) for i in range(51)]
        assert len({p["epoch"] for p in received}) == 1
    listed = {c["name"]: c for c in httpx.get(f"{a.http_url}/api/channels", timeout=5).json()["channels"]}
    assert listed["data:x"]["offset"] == 51 and listed["data:x"]["rate"] > 0, "read from the stream on A"


def test_resume_on_the_other_process_recovers_exactly(pair: tuple[GatewayProcess, GatewayProcess]) -> None:
    a, b = pair
    publish(a, "chat:room", [{"text": f"m{i}"} for i in range(5)])
    with Client(a.ws_url) as first:
        reply = first.subscribe("chat:room", history=5)
        seen = first.pubs(5)
        assert reply["offset"] == 5 and [p["offset"] for p in seen] == [1, 2, 3, 4, 5]
    publish(b, "chat:room", [{"text": f"m{i}"} for i in range(5, 12)])
    with Client(b.ws_url) as again:
        reply = again.subscribe("chat:room", since={"offset": 5, "epoch": seen[-1]["epoch"]})
        assert reply["recovered"] is True and reply["offset"] == 12
        missed = again.pubs(7)
        assert [p["offset"] for p in missed] == list(range(6, 13))
        assert [p["data"]["text"] for p in missed] == [f"m{i}" for i in range(5, 12)]
        again.expect("join", client_id=again.client_id)  # its own join, after the replay
        again.nothing_for(0.3)
    history = httpx.get(f"{a.http_url}/api/channels/chat:room/history?since=10&epoch={reply['epoch']}").json()
    assert history["recovered"] is True and [p["offset"] for p in history["publications"]] == [11, 12]


def test_concurrent_publishers_on_both_processes_get_contiguous_offsets(
    pair: tuple[GatewayProcess, GatewayProcess],
) -> None:
    a, b = pair
    per_thread, batch = 20, 10
    offsets: list[int] = []
    lock = threading.Lock()

    def publisher(gateway: GatewayProcess, tag: int) -> None:
        for round_ in range(per_thread):
            got = publish(gateway, "data:busy", values(batch, tag * 10_000 + round_ * batch))
            assert got == list(range(got[0], got[0] + batch)), "a batch's offsets are consecutive"
            with lock:
                offsets.extend(got)

    with Client(a.ws_url) as on_a, Client(b.ws_url) as on_b:
        on_a.subscribe("data:busy")
        on_b.subscribe("data:busy")
        threads = [threading.Thread(target=publisher, args=(g, i)) for i, g in enumerate((a, b, a, b))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        total = len(threads) * per_thread * batch
        assert sorted(offsets) == list(range(1, total + 1)), "unique and contiguous across processes"
        for client in (on_a, on_b):
            received = client.pubs(total, timeout=20)
            assert [p["offset"] for p in received] == list(range(1, total + 1)), "each once, in order"


def test_presence_and_direct_messages_cross_processes(pair: tuple[GatewayProcess, GatewayProcess]) -> None:
    a, b = pair
    with Client(f"{a.ws_url}?name=ann") as ann, Client(f"{b.ws_url}?name=ben") as ben:
        ann.subscribe("chat:lobby")
        ann.expect("join", name="ann")  # its own
        ben.subscribe("chat:lobby")
        joined = ann.expect("join", name="ben")
        assert joined["client_id"] == ben.client_id
        presence = ann.request({"op": "presence", "channel": "chat:lobby"})
        assert {c["name"] for c in presence["clients"]} == {"ann", "ben"}
        assert ann.request({"op": "direct", "to": ben.client_id, "data": {"text": "psst"}})["type"] == "ack"
        direct = ben.expect("direct")
        assert direct["from"] == ann.client_id and direct["data"] == {"text": "psst"}
        missing = ann.request({"op": "direct", "to": "nobody-here", "data": {}})
        assert missing["type"] == "error" and missing["code"] == "not_found"
    with Client(f"{b.ws_url}?name=cy") as cy:  # both left: presence is empty again, on either process
        assert cy.request({"op": "presence", "channel": "chat:lobby"})["clients"] == []


def test_idempotency_keys_work_across_processes(pair: tuple[GatewayProcess, GatewayProcess]) -> None:
    a, b = pair
    headers = {"Idempotency-Key": "batch-42"}
    first = httpx.post(f"{a.http_url}/api/publish/data:idem", json=values(3), headers=headers, timeout=5)
    retry = httpx.post(f"{b.http_url}/api/publish/data:idem", json=values(3), headers=headers, timeout=5)
    assert first.json()["offsets"] == retry.json()["offsets"] == [1, 2, 3]
    assert httpx.get(f"{b.http_url}/api/channels").json()["channels"][0]["offset"] == 3


def test_sigterm_on_one_gateway_its_clients_resume_on_the_other(
    pair: tuple[GatewayProcess, GatewayProcess],
) -> None:
    a, b = pair
    with Client(a.ws_url) as client:
        client.subscribe("data:move")
        publish(b, "data:move", values(3))
        seen = client.pubs(3)
        a.stop(signal.SIGTERM)
        with pytest.raises(ConnectionClosed) as closed:
            client.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
    publish(b, "data:move", values(4, start=3))
    with Client(b.ws_url) as moved:
        reply = moved.subscribe("data:move", since={"offset": 3, "epoch": seen[-1]["epoch"]})
        assert reply["recovered"] is True
        assert [p["offset"] for p in moved.pubs(4)] == [4, 5, 6, 7]


@pytest.mark.parametrize("persistent", [True, False], ids=["aof", "no-persistence"])
def test_redis_killed_and_restarted_the_gateway_recovers_without_a_silent_hole(
    tmp_path: Path, persistent: bool
) -> None:
    """With AOF, Redis comes back with its streams: no gap at all. Without persistence it comes back
    empty: the client is closed with 1013 and its resume says ``recovered: false``."""
    redis_server = RedisServer(tmp_path / "redis", appendonly=persistent).start()
    gateway = GatewayProcess(tmp_path, env={"PULSE_BROKER_URL": redis_server.url}).start()
    stop = threading.Event()
    sent: list[int] = []

    def keep_publishing() -> None:
        n = 0
        while not stop.is_set():
            try:
                sent.extend(publish(gateway, "data:live", values(1, n)))
                n += 1
            except httpx.HTTPError:
                pass  # 503 while Redis is down: the publisher retries
            time.sleep(0.02)

    publisher = threading.Thread(target=keep_publishing)
    try:
        with Client(gateway.ws_url) as client:
            client.subscribe("data:live")
            publisher.start()
            received = client.pubs(20, timeout=10)

            redis_server.stop(signal.SIGKILL)
            degraded = eventually(
                lambda: httpx.get(f"{gateway.http_url}/healthz", timeout=5).status_code == 503, what="503"
            )
            assert degraded
            started = time.monotonic()
            down = httpx.post(f"{gateway.http_url}/api/publish/data:live", json=values(1), timeout=10)
            assert down.status_code == 503 and time.monotonic() - started < 5, "fails fast, clearly"

            redis_server.start()
            eventually(
                lambda: httpx.get(f"{gateway.http_url}/healthz", timeout=5).status_code == 200,
                timeout=20,
                what="healthy again",
            )
            count_after_restart = len(sent)
            eventually(lambda: len(sent) > count_after_restart + 10, timeout=20, what="publishing again")
            stop.set()
            publisher.join()

            # Everything the client got is contiguous within each epoch; if the epoch changed, the client
            # was told (1013, then `recovered: false` on resume), never left with a silent hole.
            close_code = None
            try:
                while True:
                    received.extend(client.pubs(1, timeout=1.5))
            except TimeoutError:
                pass
            except ConnectionClosed as exc:
                close_code = exc.rcvd.code if exc.rcvd is not None else -1
            told = close_code is not None
            assert close_code in (None, 1013), close_code
            if not persistent:
                assert close_code == 1013, "the lost stream must be reported to the subscriber"
        by_epoch: dict[str, list[int]] = {}
        for pub in received:
            by_epoch.setdefault(pub["epoch"], []).append(pub["offset"])
        for offsets in by_epoch.values():
            assert offsets == list(range(offsets[0], offsets[0] + len(offsets))), "no hole within an epoch"
        if len(by_epoch) > 1 or told:
            last = received[-1]
            with Client(gateway.ws_url) as again:
                reply = again.subscribe("data:live", since={"offset": last["offset"], "epoch": last["epoch"]})
                assert reply["recovered"] in (True, False)
                if reply["epoch"] != last["epoch"]:
                    assert reply["recovered"] is False, "a lost stream is reported, not hidden"
    finally:
        stop.set()
        if publisher.is_alive():
            publisher.join()
        gateway.stop()
        redis_server.stop()


def test_a_redis_that_restarted_empty_never_lets_a_resume_recover_the_new_life_as_the_old(
    tmp_path: Path,
) -> None:
    """Redis without persistence is killed after offsets 1-3 and comes back empty; the first publish
    after it (before the gateway's listener has reconnected) writes five. Offsets 1-5 again in the old
    epoch would let a resume from offset 3 "recover" 4 and 5 and silently skip the new 1-3: the stream
    must start in a new epoch, the resume must say ``recovered: false`` and the live subscriber hear 1013."""
    redis_server = RedisServer(tmp_path / "redis", appendonly=False).start()
    gateway = GatewayProcess(tmp_path, env={"PULSE_BROKER_URL": redis_server.url}).start()
    try:
        with Client(gateway.ws_url) as live:
            live.subscribe("data:life")
            assert publish(gateway, "data:life", values(3)) == [1, 2, 3]
            before = live.pubs(3)
            epoch = before[-1]["epoch"]

            redis_server.stop(signal.SIGKILL)
            eventually(
                lambda: httpx.get(f"{gateway.http_url}/healthz", timeout=5).status_code == 503, what="503"
            )
            redis_server.start()

            def published() -> bool:
                try:
                    return publish(gateway, "data:life", values(5, 100)) == [1, 2, 3, 4, 5]
                except httpx.HTTPError:
                    return False

            eventually(published, timeout=20, what="the first publish after the restart")
            with Client(gateway.ws_url) as again:
                reply = again.subscribe("data:life", since={"offset": 3, "epoch": epoch})
                assert reply["epoch"] != epoch, "a stream that started again starts in a new epoch"
                assert reply["recovered"] is False
            with pytest.raises(ConnectionClosed) as closed:
                live.pubs(5, timeout=20)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
    finally:
        gateway.stop()
        redis_server.stop()
