"""The Pulseboard client package: what programs that talk to a gateway share.

- ``subscriber``: follow channels over ``/ws`` (asyncio): reconnect with backoff, resume exactly with
  ``since``, report a ``Gap`` when the gateway cannot replay, publish with an ack;
- ``history``: read a ``data:`` channel's stored range (what fills a gap);
- ``publisher``: publish from your own program over HTTP (``Publisher`` for threads,
  ``AsyncPublisher`` for asyncio): batched per channel, retried with backoff under one idempotency key
  per batch, so a retry never publishes twice; refused batches reported (the MQTT bridge uses it);
- ``gateway_api`` (sync and asyncio) and ``outbox`` (a channel's queue, its batch on the way and the one
  send step): what ``publisher`` is built on, and what the simulator's own single-threaded loop uses.
"""
