"""The data simulator: publishes realistic test data to a Pulseboard gateway over its HTTP API.

``python -m simulator`` fills ``data:cpu``, ``data:network`` and ``data:sensors`` (``--channels N`` adds
``data:sim-4``, ...) with random walks, sine waves with noise and occasional spikes; a bot posts to
``chat:lobby`` every few seconds (``--no-chat`` silences it); a series crossing its warning or error line
raises a notification on ``notify:alerts``, rate-limited. Payloads are built with ``shared.payloads``
and answers read with ``shared.api``, the same definitions the gateway uses.

Behaviour towards the gateway:

- At start it checks ``GET /healthz`` (for up to ``--wait`` seconds, so it can start next to the gateway
  under honcho). No answer: one line on stderr, exit 2. Auth on and no token: one
  line saying how to get one, exit 3.
- A 401 at any time (bad or expired token) is fatal: the gateway's detail on one line, a summary, exit 3.
  Retrying with the same token could never succeed.
- Any other 4xx (403: the token does not allow that channel; 413, 422: a payload refused): the detail is
  printed once per distinct answer, the request counts as an error, its payloads are dropped, the run
  goes on; the exit code is then 1.
- A transport error or a 5xx: counted, one line when the outage starts and one when it ends, retries
  with exponential backoff (same idempotency key, so nothing is published twice). Points sampled
  meanwhile are kept up to 10 s per channel; older ones are dropped (exit code 1).
- Progress (published, rate, errors, dropped) goes to stderr once a second; Ctrl-C or SIGTERM stops it,
  sends what is queued and prints a summary. Exit 0 when every payload was published.

Modules: ``signals`` (the generators), ``sources`` (channels and series), ``alerts``, ``chatbot``,
``progress`` (stderr), ``run`` (the loop) and ``cli`` (options, exit codes); the HTTP publishing
(``gateway_api``, and ``outbox`` for batches, backlog and the send step) is the ``pulseboard`` client
package's.
"""
