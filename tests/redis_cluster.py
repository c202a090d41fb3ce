"""A private Redis Cluster for tests: 3 masters and 3 replicas on free loopback ports, each node a
``redis-server --cluster-enabled yes`` in its own temp dir, created with ``redis-cli --cluster create``,
always stopped.

``start`` returns once every node says ``cluster_state:ok`` and every replica is in sync with its
master, so a test's first write is replicated like any later one. ``failover`` promotes a replica by
force (its master may still hold writes the replica never got: the case the broker must survive).
"""

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tests.servers import free_port, stop_process

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
NODES = 6
BUS_OFFSET = 10_000
"""A node's cluster bus listens on its port + 10000, so the port must be at most 55535 and both free."""


def free_cluster_port() -> int:
    while True:
        port = free_port()
        if port + BUS_OFFSET > 65535:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + BUS_OFFSET))
            except OSError:
                continue
        return port


@dataclass
class ClusterNode:
    workdir: Path
    port: int = field(default_factory=free_cluster_port)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [
            REDIS_SERVER,
            "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir),
            "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", "2000", "--repl-diskless-sync-delay", "0",
            "--save", "", "--appendonly", "no",
        ]  # fmt: skip
        with (self.workdir / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5)

    def info(self, section: str) -> dict[str, object]:
        with self.client() as client:
            info: dict[str, object] = client.info(section)
        return info

    def cluster_state(self) -> str:
        with self.client() as client:
            info = client.execute_command("CLUSTER INFO")  # parsed into a dict by redis-py
        return str(info.get("cluster_state"))

    def stop(self, sig: int = signal.SIGTERM) -> None:
        stop_process(self.process, sig, 10)
        self.process = None

    def log(self) -> str:
        path = self.workdir / "redis.log"
        return path.read_text() if path.exists() else ""


@dataclass
class RedisCluster:
    workdir: Path
    nodes: list[ClusterNode] = field(default_factory=list)

    @property
    def url(self) -> str:
        seeds = ",".join(f"127.0.0.1:{node.port}" for node in self.nodes[:3])
        return f"redis+cluster://{seeds}/"

    def start(self) -> "RedisCluster":
        self.nodes = [ClusterNode(self.workdir / f"node{i}") for i in range(NODES)]
        try:
            for node in self.nodes:
                node.start()
            self._wait(lambda: all(_pings(node) for node in self.nodes), "the nodes to start")
            addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
            subprocess.run(
                [REDIS_CLI, "--cluster", "create", *addresses, "--cluster-replicas", "1", "--cluster-yes"],
                check=True,
                capture_output=True,
                timeout=60,
            )
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Until every node sees the cluster ok, there are 3 masters, and each replica is in sync."""
        self._wait(self._healthy, "the cluster to be ok with 3 synced replicas", timeout)

    def _healthy(self) -> bool:
        try:
            if any(node.cluster_state() != "ok" for node in self.nodes):
                return False
            roles = [node.info("replication") for node in self.nodes]
        except redis.RedisError:
            return False
        masters = [info for info in roles if info.get("role") == "master"]
        replicas = [info for info in roles if info.get("role") == "slave"]
        if len(masters) != 3 or len(replicas) != 3:
            return False
        if any(info.get("master_link_status") != "up" for info in replicas):
            return False
        offsets = {info["master_repl_offset"] for info in masters}
        return all(info.get("slave_repl_offset") in offsets for info in replicas)

    def masters(self) -> list[ClusterNode]:
        return [node for node in self.nodes if node.info("replication").get("role") == "master"]

    def replica_of(self, master: ClusterNode) -> ClusterNode:
        for node in self.nodes:
            info = node.info("replication")
            if info.get("role") == "slave" and int(str(info.get("master_port", 0))) == master.port:
                return node
        raise LookupError(f"no replica of {master.port}")

    def owner_of(self, key: str) -> ClusterNode:
        with self.nodes[0].client() as client:
            slot = int(client.execute_command("CLUSTER KEYSLOT", key))
            shards = client.execute_command("CLUSTER SLOTS")
        for start, end, master, *_ in shards:
            if start <= slot <= end:
                return next(node for node in self.nodes if node.port == int(master[1]))
        raise LookupError(f"no owner of slot {slot}")

    def failover(self, master: ClusterNode) -> ClusterNode:
        """Promote ``master``'s replica by force (no hand-over of the last writes); return it."""
        replica = self.replica_of(master)
        with replica.client() as client:
            client.execute_command("CLUSTER FAILOVER", "FORCE")
        self._wait(lambda: replica.info("replication").get("role") == "master", "the replica's promotion")
        return replica

    def flush(self) -> None:
        for node in self.masters():
            with node.client() as client:
                client.flushall()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def logs(self) -> str:
        return "\n".join(f"--- node {node.port}\n{node.log()[-2000:]}" for node in self.nodes)

    def _wait(self, check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}:\n{self.logs()}")
            time.sleep(0.1)


def _pings(node: ClusterNode) -> bool:
    try:
        with node.client() as client:
            return bool(client.ping())
    except redis.ConnectionError:
        return False
