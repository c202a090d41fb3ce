"""A plain ``websockets`` server using ``broadcast()``: every message a client sends goes to every
connected client, without awaiting any of them. The second baseline of ``bench/fanout.py``.

    python -m bench.baselines.broadcast_server --port 8101
"""

import argparse
import asyncio

from websockets.asyncio.server import ServerConnection, broadcast, serve

CONNECTIONS: set[ServerConnection] = set()


async def handler(websocket: ServerConnection) -> None:
    CONNECTIONS.add(websocket)
    try:
        async for message in websocket:
            broadcast(CONNECTIONS, message)
    finally:
        CONNECTIONS.discard(websocket)


async def main(port: int) -> None:
    async with serve(handler, "127.0.0.1", port, compression=None, max_queue=None) as server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(main(parser.parse_args().port))
