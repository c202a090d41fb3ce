"""The Pulseboard client package: what programs that talk to a gateway share.

- ``connection``: the WebSocket protocol client, once: reconnect with backoff, resume exactly with
  ``since``, report a ``Gap`` when the gateway cannot replay and a ``Refused`` channel, requests with
  replies (publish with an ack); every event goes to a callback. The dashboard's per-session consumer
  and the Streamlit connection's feed run on it;
- ``subscriber``: the same as an iteration: ``Subscriber`` (asyncio) and ``SyncSubscriber`` (blocking,
  the connection on a thread of its own, ``loop_thread``);
- ``feed`` and ``st_connection``: live buffers of ``data:`` channels for a Streamlit app;
- ``history``: read a ``data:`` channel's stored range (what fills a gap);
- ``publisher``: publish from your own program over HTTP (``Publisher`` for threads,
  ``AsyncPublisher`` for asyncio): batched per channel, retried with backoff under one idempotency key
  per batch, so a retry never publishes twice; refused batches reported (the MQTT bridge uses it);
- ``gateway_api`` (sync and asyncio) and ``outbox`` (a channel's queue, its batch on the way and the one
  send step): what ``publisher`` is built on, and what the simulator's own single-threaded loop uses.
"""
