"""The Redis broker on a real Redis Cluster, under faults: a master failed over during a publish burst
(its replica lacking the last writes) gives subscribers an exact resume or ``recovered: false``, never a
silent hole; and a subscribe storm through a small connection pool waits for connections instead of
failing. (The protocol, resume and scale-out suites also run on the Cluster: ``redis_cluster`` marker.)"""

import asyncio
import json
import signal
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.client import Client
from tests.redis_cluster import RedisCluster
from tests.servers import GatewayProcess
from tests.waiting import eventually

pytestmark = pytest.mark.slow

CHANNELS = ["data:f0", "data:f1", "data:f2", "data:f3"]


@dataclass
class Subscriber:
    """A WebSocket subscriber that resumes after every close, keeping all it received and each resume's
    answer, so the test can tell a reported discontinuity from a silent one."""

    url: str
    channel: str
    stop: threading.Event = field(default_factory=threading.Event)
    ready: threading.Event = field(default_factory=threading.Event)
    events: list[tuple[str, Any]] = field(default_factory=list)
    """In order: ("pub", (epoch, offset, the payload's n)) and ("resumed", subscribed reply)."""

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                with Client(self.url) as client:
                    self._follow(client)
            except (ConnectionClosed, OSError, TimeoutError, AssertionError):
                time.sleep(0.05)  # closed (1013), or the gateway was unreachable: resume again

    def _follow(self, client: Client) -> None:
        last = next((value for kind, value in reversed(self.events) if kind == "pub"), None)
        args = {"since": {"epoch": last[0], "offset": last[1]}} if last else {}
        reply = client.subscribe(self.channel, **args)
        self.ready.set()
        if last:
            self.events.append(("resumed", reply))
        while not self.stop.is_set():
            try:
                message = client.recv(timeout=0.2)
            except TimeoutError:
                continue
            if message["type"] == "pub":
                n = message["data"]["values"]["n"]
                self.events.append(("pub", (message["epoch"], message["offset"], n)))

    def check(self, truth: dict[tuple[str, int], float]) -> int:
        """Assert every step is the next offset of the same epoch, or comes after a resume that said so
        (``recovered: true`` and contiguous, or ``recovered: false``), and that each (epoch, offset)
        received is the publication the stream holds there now (``truth``): an offset handed out twice
        in one epoch looks contiguous but hides what it replaced. Return how many resumes were told."""
        told = 0
        previous: tuple[str, int, float] | None = None
        reported = False
        for kind, value in self.events:
            if kind == "resumed":
                reported = value["recovered"] is False
                told += reported
                continue
            epoch, offset, n = value
            if previous is not None and (epoch, offset) != (previous[0], previous[1] + 1):
                assert reported, f"{self.channel}: silent hole from {previous} to {value}"
            stored = truth.get((epoch, offset), n)
            assert stored == n, f"{self.channel}: ({epoch}, {offset}) was {n} here, {stored} in the stream"
            previous, reported = value, False
        return told


def publish(gateway: GatewayProcess, channel: str, n: int) -> bool:
    try:
        response = httpx.post(
            f"{gateway.http_url}/api/publish/{channel}", json=[{"values": {"n": float(n)}}], timeout=5
        )
    except httpx.HTTPError:
        return False
    return response.status_code == 200


@pytest.fixture
def shared_url(redis_cluster_url: str) -> str:
    """``pair``'s gateways share the Cluster."""
    return redis_cluster_url


def test_a_master_failed_over_with_writes_its_replica_lacks_leaves_no_silent_hole(
    tmp_path: Path,
    redis_cluster: RedisCluster,
    redis_cluster_url: str,
    pair: tuple[GatewayProcess, GatewayProcess],
) -> None:
    """The replica of the master that owns ``data:f0`` is stopped and cut off, the master takes more
    publications (subscribers get them), then dies and the replica takes over without them. While the
    subscribers' gateways are frozen (so their listeners cannot notice first), a third gateway publishes
    on the new master, which hands out the same offsets again: without a new epoch, the listeners would
    drop them as already delivered and resumes would "recover" them. Every subscriber's stream must stay
    contiguous within an epoch, hold what the stream holds, and every jump must come with
    ``recovered: false``."""
    a, b = pair
    c = GatewayProcess(tmp_path / "c", env={"PULSE_BROKER_URL": redis_cluster_url})
    c.workdir.mkdir()
    c.start()
    master = redis_cluster.owner_of("pulse:{data:f0}:meta")
    replica = redis_cluster.replica_of(master)
    subscribers = [Subscriber(gateway.ws_url, channel) for channel in CHANNELS for gateway in (a, b)]
    threads = [threading.Thread(target=s.run) for s in subscribers]
    stop = threading.Event()
    counts = dict.fromkeys(CHANNELS, 0)

    def keep_publishing(gateway: GatewayProcess, channels: list[str]) -> None:
        while not stop.is_set():
            for channel in channels:
                if publish(gateway, channel, counts[channel]):
                    counts[channel] += 1
            time.sleep(0.01)

    publishers = [
        threading.Thread(target=keep_publishing, args=(gateway, CHANNELS[i::2]))
        for i, gateway in enumerate((a, b))
    ]
    try:
        for thread in threads:
            thread.start()
        eventually(lambda: all(s.ready.is_set() for s in subscribers), timeout=10, what="subscribed")
        for thread in publishers:
            thread.start()
        eventually(lambda: counts["data:f0"] > 20, timeout=20, what="a first burst")

        replica.process.send_signal(signal.SIGSTOP)  # type: ignore[union-attr]
        with master.client() as client:
            client.execute_command("CLIENT", "KILL", "TYPE", "replica")
        before = counts["data:f0"]
        eventually(lambda: counts["data:f0"] > before + 20, timeout=20, what="writes only the master has")
        lost = max(offset for s in subscribers if s.channel == "data:f0" for _, offset, _ in _pubs(s))
        frozen = [gateway.process for gateway in pair if gateway.process is not None]
        for process in frozen:
            process.send_signal(signal.SIGSTOP)
        try:
            master.stop(signal.SIGKILL)
            replica.process.send_signal(signal.SIGCONT)  # type: ignore[union-attr]
            with replica.client() as client:
                client.execute_command("CLUSTER", "FAILOVER", "TAKEOVER")
            eventually(lambda: replica.info("replication").get("role") == "master", what="the takeover")
            for n in range(10_000, 10_000 + 2 * lost):  # past every offset the subscribers have
                eventually(partial(publish, c, "data:f0", n), timeout=20, what="a publish on the new master")
        finally:
            for process in frozen:
                process.send_signal(signal.SIGCONT)

        after = counts["data:f0"]
        eventually(lambda: counts["data:f0"] > after + 30, timeout=30, what="publishing on the new master")
        eventually(
            lambda: all(any(after + 10 < n < 10_000 for *_, n in _pubs(s)) for s in subscribers),
            timeout=30,
            what="the subscribers to get publications made after the takeover",
        )
        stop.set()
        for thread in publishers:
            thread.join()
        time.sleep(1)
    finally:
        stop.set()
        for subscriber in subscribers:
            subscriber.stop.set()
        for thread in threads:
            if thread.is_alive():
                thread.join()
        if replica.process is not None:
            replica.process.send_signal(signal.SIGCONT)
        if master.process is None:
            master.start()  # rejoins (its nodes.conf) as the new master's replica: three masters again
        c.stop()
        redis_cluster.wait_healthy()

    for subscriber in subscribers:
        told = subscriber.check(stored(a, subscriber.channel))
        if subscriber.channel == "data:f0":
            assert told >= 1, "the writes the new master lacks were reported"
            offsets = [offset for _, offset, _ in _pubs(subscriber)]
            assert max(offsets) > lost, "the stream went on after the failover"


def _pubs(subscriber: Subscriber) -> list[tuple[str, int, float]]:
    return [value for kind, value in list(subscriber.events) if kind == "pub"]


def stored(gateway: GatewayProcess, channel: str) -> dict[tuple[str, int], float]:
    """What the channel's stream holds: (epoch, offset) -> the payload's n."""
    page = httpx.get(f"{gateway.http_url}/api/channels/{channel}/history?limit=1000", timeout=10).json()
    return {(pub["epoch"], pub["offset"]): pub["data"]["values"]["n"] for pub in page["publications"]}


@pytest.mark.parametrize("shared", ["redis", "cluster"])
def test_a_subscribe_storm_through_a_small_pool_waits_and_every_subscribe_succeeds(
    tmp_path: Path, request: pytest.FixtureRequest, shared: str
) -> None:
    """300 clients subscribe at once through 3 Redis connections: each gets ``subscribed`` with its
    history (redis-py's pools refused past their limit: ``unavailable: Too many connections``)."""
    url: str = request.getfixturevalue("redis_url" if shared == "redis" else "redis_cluster_url")
    gateway = GatewayProcess(
        tmp_path, env={"PULSE_BROKER_URL": url, "PULSE_REDIS_MAX_CONNECTIONS": "3"}
    ).start()
    try:
        for index in range(10):
            assert publish(gateway, f"data:s{index}", index)

        async def one(index: int) -> str:
            async with connect(gateway.ws_url, open_timeout=30, proxy=None) as ws:
                await ws.recv()  # welcome
                op = {"op": "subscribe", "id": 1, "channel": f"data:s{index % 10}", "history": 1}
                await ws.send(json.dumps(op))
                while True:
                    frame = json.loads(await asyncio.wait_for(ws.recv(), 30))
                    for message in frame if isinstance(frame, list) else [frame]:
                        if message.get("ref") == 1:
                            return str(message["type"]) if message["type"] != "error" else str(message)

        async def storm() -> list[str]:
            return await asyncio.gather(*(one(index) for index in range(300)))

        answers = asyncio.run(storm())
        assert answers == ["subscribed"] * 300, [a for a in answers if a != "subscribed"][:3]
    finally:
        gateway.stop()
