"""Pulseboard's wire contract (protocol v1), shared by the gateway, the dashboard and the simulator.

Every message that crosses a socket or an HTTP body is defined exactly once here:

- ``channels``: channel names and their namespaces (``data:``, ``chat:``, ``notify:``).
- ``codes``: error codes carried in error frames, and WebSocket close codes.
- ``payloads``: what a publication carries in each namespace.
- ``messages``: client operations and server frames on ``/ws``, with their parsers.
- ``api``: request and response bodies of the HTTP API.

``docs/protocol.md`` is the prose version of this package; the two must agree.
"""

PROTOCOL_VERSION = 1
