"""The floor: each message a client sends is framed once and written to every client's transport in a
plain loop, with no protocol engine, no queue and no checks. The third baseline of ``bench/fanout.py``:
what one ``transport.write`` per client per message costs on this machine, with nothing else.

    python -m bench.baselines.floor_server --port 8102

It speaks just enough WebSocket for the benchmark's clients (the opening handshake, unfragmented masked
text frames up to 64 KiB in, unmasked text frames out); anything else closes the connection.
"""

import argparse
import asyncio
import struct
from typing import cast

import uvloop
from websockets.utils import accept_key, apply_mask

CLIENTS: set[asyncio.Transport] = set()


def frame(payload: bytes) -> bytes:
    size = len(payload)
    if size < 126:
        return struct.pack("!BB", 0x81, size) + payload
    return struct.pack("!BBH", 0x81, 126, size) + payload


def accept_response(head: bytes) -> bytes:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-key":
            return (
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: " + accept_key(value.strip().decode()).encode() + b"\r\n\r\n"
            )
    raise ValueError("not a WebSocket handshake")


class Client(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = b""
        self.open = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass of it

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            CLIENTS.discard(self.transport)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        if not self.open:
            head, found, rest = self.buffer.partition(b"\r\n\r\n")
            if not found:
                return
            self.transport.write(accept_response(head))
            self.open = True
            self.buffer = rest
            CLIENTS.add(self.transport)
        while len(self.buffer) >= 6:
            first, second = self.buffer[0], self.buffer[1] & 0x7F
            start = 2
            if second == 126:
                second = struct.unpack_from("!H", self.buffer, 2)[0]
                start = 4
            elif second == 127 or first & 0x0F not in (0x1, 0x8):
                self.transport.close()
                return
            if len(self.buffer) < start + 4 + second:
                return
            mask = self.buffer[start : start + 4]
            body = self.buffer[start + 4 : start + 4 + second]
            self.buffer = self.buffer[start + 4 + second :]
            if first & 0x0F == 0x8:
                self.transport.close()
                return
            out = frame(apply_mask(body, mask))
            for client in CLIENTS:
                client.write(out)


async def main(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(Client, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    uvloop.run(main(parser.parse_args().port))
