"""Pulseboard's WebSocket gateway.

The data path, one module per step:
``api_http`` / ``session`` (publish in) -> ``publishing`` (validate, enrich) -> ``broker`` (offsets,
history, durability) -> ``hub`` (fan-out to subscribers) -> ``outbox`` (per-connection bounded queue and
sender task) -> the WebSocket.
"""
