"""A TCP proxy that loses answers on purpose, to test what a client does when a response never comes.

It forwards each connection to the gateway, but on the first ``drop`` connections it waits for the
gateway's answer to begin and then closes the client's side without relaying it: the gateway has done
the work (stored the batch), the client hears only a dropped connection. That is the failure idempotency
keys exist for, and unlike stopping the gateway it cannot be told apart from a lost network.
"""

import contextlib
import socket
import threading
from types import TracebackType

CHUNK = 65536


def _close(sock: socket.socket) -> None:
    # shutdown, not only close: a thread blocked in recv on this socket wakes up only on shutdown (and
    # one already disconnected raises, which is fine).
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def _pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        while chunk := source.recv(CHUNK):
            target.sendall(chunk)
        target.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # the other direction closed both sockets


class AnswerDroppingProxy:
    def __init__(self, upstream_port: int, *, drop: int) -> None:
        self._upstream_port = upstream_port
        self._drops_left = drop
        self.dropped = 0
        """Answers the gateway gave and the client never got."""
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, name="proxy-accept", daemon=True)

    @property
    def url(self) -> str:
        port: int = self._listener.getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __enter__(self) -> "AnswerDroppingProxy":
        self._accepting.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        _close(self._listener)
        with self._lock:
            for sock in self._sockets:
                _close(sock)
        self._accepting.join(5)
        for thread in self._threads:
            thread.join(5)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # the listener was closed
            upstream = socket.create_connection(("127.0.0.1", self._upstream_port))
            with self._lock:
                self._sockets += [client, upstream]
            for target, args in ((_pipe, (client, upstream)), (self._answer, (upstream, client))):
                thread = threading.Thread(target=target, args=args, daemon=True)
                thread.start()
                self._threads.append(thread)

    def _answer(self, upstream: socket.socket, client: socket.socket) -> None:
        """Relay the gateway's answers, or drop the first one and the connection with it."""
        first = True
        try:
            while chunk := upstream.recv(CHUNK):
                if first and self._take_drop():
                    _close(client)
                    _close(upstream)
                    return
                first = False
                client.sendall(chunk)
            client.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the client went away

    def _take_drop(self) -> bool:
        with self._lock:
            if self._drops_left <= 0:
                return False
            self._drops_left -= 1
            self.dropped += 1
            return True
