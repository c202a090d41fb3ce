"""One WebSocket session, from the accept to the close, in the order a frame meets its parts.

``endpoint`` (admit, then run; ``/ws`` served ahead of routing) -> ``session`` (the lifecycle: read,
send, close) -> ``ops`` (one handler per client op, looked up in a table) -> ``subscriptions`` (checks,
replies, presence and membership hooks around the hub) -> ``close`` (when and with which
``Disconnect`` a session ends) and ``state`` (the connection state). Dialect differences live in the
dialect object (``gateway.dialects``), not here.

Nothing is imported here, so the hub and the gateway state can import single modules of this package.
"""
