"""A small test client over the real ``websockets`` sync client, speaking protocol v1."""

import json
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from websockets.sync.client import ClientConnection, connect


class Client:
    """Sends ops as dicts; receives server messages one by one (array frames are flattened)."""

    def __init__(self, url: str, **connect_args: Any) -> None:
        connect_args.setdefault("open_timeout", 5)
        connect_args.setdefault("proxy", None)
        connect_args.setdefault("legacy", True)  # a plain connection we close ourselves
        self.ws: ClientConnection = connect(url, **connect_args)
        self._backlog: deque[dict[str, Any]] = deque()
        self._next_id = 0
        self.welcome = self.recv()
        assert self.welcome["type"] == "welcome", self.welcome

    @property
    def client_id(self) -> str:
        return str(self.welcome["client_id"])

    def close(self) -> None:
        self.ws.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, op: dict[str, Any]) -> int | str:
        """Send an op with a fresh id (unless it has one); return the id."""
        if "id" not in op:
            self._next_id += 1
            op = {**op, "id": self._next_id}
        self.ws.send(json.dumps(op))
        ref: int | str = op["id"]
        return ref

    def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        if not self._backlog:
            frame = json.loads(self.ws.recv(timeout=timeout))
            self._backlog.extend(frame if isinstance(frame, list) else [frame])
        return self._backlog.popleft()

    def expect(self, type_: str, timeout: float = 5.0, **fields: Any) -> dict[str, Any]:
        """Receive until a message of ``type_`` with ``fields`` arrives; fail on anything else unexpected."""
        deadline = time.monotonic() + timeout
        skipped = []
        while True:
            message = self.recv(timeout=max(0.01, deadline - time.monotonic()))
            if message["type"] == type_ and all(message.get(k) == v for k, v in fields.items()):
                return message
            if message["type"] in ("join", "leave") and type_ not in ("join", "leave"):
                skipped.append(message)
                continue
            raise AssertionError(f"expected {type_} {fields}, got {message} (skipped {skipped})")

    def request(self, op: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
        """Send an op and return its reply; messages that came first stay queued for ``recv``, in order."""
        ref = self.send(op)
        deadline = time.monotonic() + timeout
        passed_over: list[dict[str, Any]] = []
        try:
            while True:
                message = self.recv(timeout=max(0.01, deadline - time.monotonic()))
                if message.get("ref") == ref:
                    return message
                passed_over.append(message)
        finally:
            self._backlog.extendleft(reversed(passed_over))

    def subscribe(self, channel: str, **args: Any) -> dict[str, Any]:
        reply = self.request({"op": "subscribe", "channel": channel, **args})
        assert reply["type"] == "subscribed", reply
        return reply

    def pubs(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """The next ``count`` pub messages (other messages are skipped)."""
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(found) < count:
            message = self.recv(timeout=max(0.01, deadline - time.monotonic()))
            if message["type"] == "pub":
                found.append(message)
        return found

    def nothing_for(self, seconds: float) -> None:
        """Assert no message arrives for ``seconds``."""
        try:
            message = self.recv(timeout=seconds)
        except TimeoutError:
            return
        raise AssertionError(f"expected silence, got {message}")


@contextmanager
def plain(url: str, **args: Any) -> Iterator[ClientConnection]:
    """A bare ``websockets`` connection, for endpoints that do not speak the protocol (classic ones)."""
    with connect(url, open_timeout=5, proxy=None, **args) as ws:
        yield ws
