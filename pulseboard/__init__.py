"""The Pulseboard client package: what programs that talk to a gateway share.

So far the HTTP side: ``gateway_api`` (health and ``POST /api/publish`` answered as outcomes:
published, rejected, failed) and ``outbox`` (a channel's payloads batched, bounded, each batch keeping
its idempotency key until the gateway answers, so a retry never publishes twice). The simulator and the
MQTT bridge publish through them.
"""
