"""Soak: the whole stack under steady load for a long time; fails if anything grows without bound.

Run from the repository root::

    python -m bench.soak --minutes 60 --subscribers 100               # one row a minute
    python -m bench.soak --minutes 2 --subscribers 50 --interval 10   # the soak `make test` runs
    python -m bench.soak --minutes 60 --broker redis                  # on a private redis-server

Everything is real: a gateway (``python -m gateway``), the simulator (``python -m simulator``) posting
over HTTP at a steady rate, and, in this process, N subscribers (every simulator channel, ``chat:lobby``,
``chat:soak``, ``notify:alerts``), churners that connect, subscribe (resuming with ``since``) and
disconnect every few seconds, chatters publishing to ``chat:soak`` over the WebSocket, and one dashboard
``Consumer`` thread with its ``SessionBuffer``.

Every interval it prints a row: elapsed time, the gateway's RSS, open connections, asyncio tasks and
registered clients (``/metrics``), the p99 publish-to-receive latency over the interval (from each
``pub``'s server ``ts``), messages delivered to the subscribers and stored by the consumer, and errors.
Errors are: an offset missed, repeated or out of order on any subscriber or churner, a resume that did not
recover, an unexpected close, an error frame, a failed HTTP request (``/metrics``, the simulator's
publishes), a chat publish not acknowledged, the consumer reconnecting, stalling or logging a warning.

It passes when there were no errors and nothing grows without bound (see ``growth.detect_growth``
and ``growth.band_violations``): after a warm-up, the gateway's RSS and the p99 latency show no
sustained rise, and connections, registered clients and tasks stay in the band the clients explain. At
the end every subscriber must have received every offset exactly once, and the gateway must return to
its idle connection and task counts once the clients are gone. Exit code 0 on a pass, 1 otherwise.

The modules: ``growth`` (the growth detector, pure functions), ``clients`` (counting what the clients
see, and the subscribers, churners, chatters and the consumer's checks), ``gateway`` (its ``/metrics``
gauges, the simulator's failed publishes, the history prefill), ``channels`` (the channels, the seed and
the history size), ``run`` (the options, the samples and ``Soak``), ``verdict`` (the checks and the
report) and ``__main__`` (the command line).
"""
