"""Direct messages are bounded per sending identity and per target, outside the slow-consumer limit: a
flood of them is refused to its senders (``rate_limited``/``too_large``) and never disconnects the target,
which keeps receiving its channels. With ``redis://`` the target's budget holds across processes too."""

import socket
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.client import Client
from tests.servers import GatewayProcess, StartGateway, metric
from tests.waiting import eventually

pytestmark = pytest.mark.both_brokers

BIG = {"text": "x" * 63_000}
"""A direct message's data just under the 64 KiB client frame limit."""


class Reader(threading.Thread):
    """Reads everything a client gets, as a live client does, until stopped: pub offsets, directs, a close."""

    def __init__(self, client: Client) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.offsets: list[int] = []
        self.directs = 0
        self.closed: ConnectionClosed | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                message = self.client.recv(timeout=0.1)
            except TimeoutError:
                continue
            except ConnectionClosed as exc:
                self.closed = exc
                return
            if message["type"] == "pub":
                self.offsets.append(message["offset"])
            elif message["type"] == "direct":
                self.directs += 1

    def caught_up(self, offsets: list[int], directs: float) -> bool:
        """It got exactly these pubs and this many directs, or it was closed (no use waiting then)."""
        return self.closed is not None or (self.offsets == offsets and self.directs == directs)

    def finish(self) -> None:
        self.stop.set()
        self.join(10)


def send_directs(sender: Client, to: str, count: int) -> Counter[str]:
    """Send ``count`` big direct messages at once; how they were answered (``ack`` or the error code)."""
    for _ in range(count):
        sender.send({"op": "direct", "to": to, "data": BIG})
    outcomes: Counter[str] = Counter()
    for _ in range(count):  # replies come in op order, and a sender gets nothing else
        reply = sender.recv(timeout=30)
        outcomes["ack" if reply["type"] == "ack" else reply["code"]] += 1
    return outcomes


def publish(http: httpx.Client, gateway: GatewayProcess, channel: str) -> int:
    response = http.post(f"{gateway.http_url}/api/publish/{channel}", json={"values": {"v": 1.0}})
    response.raise_for_status()
    offset: int = response.json()["offsets"][0]
    return offset


def test_one_user_flooding_directs_cannot_disconnect_a_reading_victim(gateway: GatewayProcess) -> None:
    """Four connections of one user flood 63 KB directs at a reading victim: they get rate_limited, the
    victim stays connected, gets every acked direct and every pub of its channel."""
    with Client(gateway.ws_url) as victim, httpx.Client() as http:
        victim.subscribe("data:feed")
        reader = Reader(victim)
        reader.start()
        senders = [Client(f"{gateway.ws_url}?name=mallory") for _ in range(4)]
        try:
            with ThreadPoolExecutor(len(senders)) as pool:
                floods = [pool.submit(send_directs, sender, victim.client_id, 30) for sender in senders]
                published = [publish(http, gateway, "data:feed")]
                while not all(flood.done() for flood in floods):
                    published.append(publish(http, gateway, "data:feed"))
                outcomes = sum((flood.result() for flood in floods), Counter[str]())
        finally:
            for sender in senders:
                sender.close()
        published.append(publish(http, gateway, "data:feed"))
        assert set(outcomes) <= {"ack", "rate_limited"}, outcomes
        assert outcomes["rate_limited"] > 0 and outcomes["ack"] > 0, outcomes
        eventually(lambda: reader.caught_up(published, outcomes["ack"]))
        reader.finish()
        assert reader.closed is None, f"the victim was closed: {reader.closed}"
        assert reader.offsets == published and reader.directs == outcomes["ack"]
        assert victim.request({"op": "ping"})["type"] == "pong"
    assert metric(gateway.http_url, "pulse_slow_disconnects_total") == 0


def test_a_direct_over_the_budget_is_too_large(start_gateway: StartGateway) -> None:
    """A direct message bigger than PULSE_DIRECT_BURST can never be sent: too_large, and nothing arrives."""
    gateway = start_gateway(env={"PULSE_DIRECT_BURST": "16384"})
    with Client(gateway.ws_url) as sender, Client(gateway.ws_url) as target:
        refused = sender.request({"op": "direct", "to": target.client_id, "data": BIG})
        assert refused["type"] == "error" and refused["code"] == "too_large", refused
        small = sender.request({"op": "direct", "to": target.client_id, "data": {"text": "hi"}})
        assert small["type"] == "ack"
        assert target.expect("direct")["data"] == {"text": "hi"}


def stuck_client(gateway: GatewayProcess) -> Client:
    """A client that stops reading after one frame, with a small socket receive buffer (no kernel slack)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", gateway.port))
    return Client(gateway.ws_url, sock=sock, max_queue=1)


def test_many_senders_fill_only_the_targets_direct_budget(start_gateway: StartGateway) -> None:
    """24 identities send a 63 KB direct each to a target that does not read: past its direct budget they
    get rate_limited; the target is not closed, and when it reads it gets the acked directs and its pubs."""
    gateway = start_gateway(env={"PULSE_SOCKET_SEND_BUFFER": "4096"})
    with stuck_client(gateway) as victim, httpx.Client() as http:
        victim.subscribe("data:feed")
        outcomes: Counter[str] = Counter()
        published = [publish(http, gateway, "data:feed")]
        for index in range(24):
            with Client(f"{gateway.ws_url}?name=sender{index}") as sender:
                outcomes += send_directs(sender, victim.client_id, 1)
        published.append(publish(http, gateway, "data:feed"))
        assert set(outcomes) <= {"ack", "rate_limited"}, outcomes
        assert outcomes["rate_limited"] > 0, outcomes
        assert metric(gateway.http_url, "pulse_direct_refused_total") == outcomes["rate_limited"]
        reader = Reader(victim)
        reader.start()
        eventually(lambda: reader.caught_up(published, outcomes["ack"]))
        reader.finish()
        assert reader.closed is None, f"the victim was closed: {reader.closed}"
        assert victim.request({"op": "ping"})["type"] == "pong"
        with Client(f"{gateway.ws_url}?name=late") as late:  # what was read left the budget
            assert send_directs(late, victim.client_id, 1) == {"ack": 1}


@pytest.mark.slow
def test_across_processes_the_target_budget_holds_where_the_target_lives(
    tmp_path: Path, redis_url: str
) -> None:
    """With redis, directs from another process that pass the target's budget are dropped where the target
    lives (counted there), never closing it; senders are still rate limited per identity where they are."""
    env = {"PULSE_BROKER_URL": redis_url, "PULSE_SOCKET_SEND_BUFFER": "4096"}
    here, there = (GatewayProcess(tmp_path / name, env=env) for name in ("here", "there"))
    try:
        for process in (here, there):
            process.workdir.mkdir()
            process.start()
        with stuck_client(there) as victim:
            outcomes: Counter[str] = Counter()
            for index in range(24):
                with Client(f"{here.ws_url}?name=sender{index}") as sender:
                    outcomes += send_directs(sender, victim.client_id, 1)
            assert outcomes == {"ack": 24}, (
                "acked when redis took them: the target's refusal cannot come back"
            )
            with Client(f"{here.ws_url}?name=greedy") as greedy:
                greedy_outcomes = send_directs(greedy, victim.client_id, 6)
            assert greedy_outcomes["rate_limited"] > 0 and set(greedy_outcomes) <= {"ack", "rate_limited"}
            acked = outcomes["ack"] + greedy_outcomes["ack"]
            assert eventually(lambda: metric(there.http_url, "pulse_direct_refused_total")) > 0
            reader = Reader(victim)
            reader.start()
            eventually(
                lambda: reader.caught_up([], acked - metric(there.http_url, "pulse_direct_refused_total"))
            )
            reader.finish()
            assert reader.closed is None, f"the victim was closed: {reader.closed}"
            assert victim.request({"op": "ping"})["type"] == "pong"
    finally:
        for process in (here, there):
            process.stop()
