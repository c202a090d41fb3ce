"""The Pulseboard client package: what programs that talk to a gateway share.

- ``subscriber``: follow channels over ``/ws`` (asyncio): reconnect with backoff, resume exactly with
  ``since``, report a ``Gap`` when the gateway cannot replay, publish with an ack;
- ``history``: read a ``data:`` channel's stored range (what fills a gap);
- ``gateway_api`` and ``outbox``: publish over HTTP in batches, each keeping its idempotency key until
  the gateway answers, so a retry never publishes twice (the simulator and the MQTT bridge use them).
"""
