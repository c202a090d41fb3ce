"""``python -m simulator``: options, the start-up check, signal handling and the exit code."""

import argparse
import signal
import sys
import time
from collections.abc import Callable
from types import FrameType

from pydantic import ValidationError

from pulseboard.gateway_api import GatewayAPI, GatewayUnreachableError
from shared.api import MAX_BATCH, Health
from simulator.progress import Progress
from simulator.run import AuthRefusedError, RunConfig, Simulation
from simulator.settings import SimulatorSettings

EXIT_OK = 0
EXIT_INCOMPLETE = 1
"""Some payloads were never published: rejected (4xx), dropped in an outage, or unsent at the end."""
EXIT_UNREACHABLE = 2
"""No gateway answered ``GET /healthz`` at start (argparse also exits 2 on bad options)."""
EXIT_AUTH = 3
"""The gateway requires a token and none was given, or it answered 401 to the one given."""
EXIT_INTERRUPTED = 130
"""A second Ctrl-C: stopped at once, without sending what was left."""

HEALTH_RETRY_DELAY = 0.25
"""Seconds between health checks while ``--wait`` lasts."""
TOKEN_HINT = "mint one with: python -m gateway.tokens simbot --publish 'data:*' 'chat:*' 'notify:*'"


class StopRequest:
    """The first SIGINT or SIGTERM asks the run loop to finish (flush, summary); a second one interrupts.

    SIGTERM counts because process managers (honcho, systemd, docker) stop the simulator with it.
    """

    def __init__(self) -> None:
        self.requested = False

    def __call__(self) -> bool:
        return self.requested

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def install(self) -> None:
        signal.signal(signal.SIGINT, self._handle)
        signal.signal(signal.SIGTERM, self._handle)


def _number(kind: Callable[[str], float], low: float, high: float = float("inf")) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low:g} and {high:g}, got {text}")
        return value

    return parse


def _gateway_url(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"must be an http:// or https:// URL, got {text!r}")
    return text.rstrip("/")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The options: each flag's default from ``SimulatorSettings`` (environment, ``.env``)."""
    parser = argparse.ArgumentParser(
        prog="python -m simulator",
        description="Publish simulated data, chat and alerts to a Pulseboard gateway over HTTP.",
        epilog="Exit codes: 0 all published, 1 some payloads not published, 2 gateway unreachable at start "
        "(or bad options), 3 token missing or refused, 130 interrupted twice.",
    )
    try:
        settings = SimulatorSettings()
    except ValidationError as exc:
        # A bad PULSE_* value is a usage error (exit 2), like a bad flag.
        parser.error(f"invalid setting in the environment or .env: {exc}")
    parser.add_argument(
        "--gateway",
        type=_gateway_url,
        default=settings.gateway_url,
        help="the gateway's base URL (default: $PULSE_GATEWAY_URL, %(default)s)",
    )
    parser.add_argument(
        "--rate",
        type=_number(float, 0.01),
        default=settings.simulator_rate,
        help="data points per second per channel ($PULSE_SIMULATOR_RATE, %(default)g)",
    )
    parser.add_argument(
        "--channels",
        type=_number(int, 1, 1000),
        default=settings.simulator_channels,
        help="data channels to fill ($PULSE_SIMULATOR_CHANNELS, %(default)d)",
    )
    parser.add_argument(
        "--duration",
        type=_number(float, 0),
        default=settings.simulator_duration,
        help="seconds to run; 0 runs until Ctrl-C ($PULSE_SIMULATOR_DURATION, %(default)g)",
    )
    parser.add_argument(
        "--batch",
        type=_number(int, 1, MAX_BATCH),
        default=settings.simulator_batch,
        help="data points per request per channel ($PULSE_SIMULATOR_BATCH, %(default)d)",
    )
    parser.add_argument(
        "--token",
        default=settings.token_value,
        help="bearer token for a gateway with auth on (default: $PULSE_TOKEN)",
    )
    parser.add_argument(
        "--chat",
        action=argparse.BooleanOptionalAction,
        default=settings.simulator_chat,
        help="let a bot post to chat:lobby every few seconds ($PULSE_SIMULATOR_CHAT, %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=settings.simulator_seed,
        help="seed for reproducible data ($PULSE_SIMULATOR_SEED)",
    )
    parser.add_argument(
        "--wait",
        type=_number(float, 0),
        default=settings.simulator_wait,
        help="seconds to keep trying GET /healthz before giving up, for starting next to the gateway "
        "($PULSE_SIMULATOR_WAIT, %(default)g)",
    )
    return parser.parse_args(argv)


def _describe_run(args: argparse.Namespace) -> str:
    batching = f" in batches of {args.batch}" if args.batch > 1 else ""
    chat = "chat bot on" if args.chat else "chat bot off"
    until = f"for {args.duration:g}s" if args.duration else "until Ctrl-C"
    return (
        f"publishing to {args.gateway}: {args.channels} data channels at {args.rate:g} points/s{batching}, "
        f"{chat}, {until}"
    )


def _wait_for_gateway(api: GatewayAPI, wait: float, progress: Progress, stop: Callable[[], bool]) -> Health:
    """The gateway's health, trying for up to ``wait`` seconds; ``GatewayUnreachableError`` after that."""
    deadline = time.monotonic() + wait
    announced = False
    while True:
        try:
            return api.health()
        except GatewayUnreachableError:
            if time.monotonic() + HEALTH_RETRY_DELAY > deadline or stop():
                raise
            if not announced:
                progress.message(f"waiting up to {wait:g}s for the gateway at {api.base_url}")
                announced = True
            time.sleep(HEALTH_RETRY_DELAY)


def run(args: argparse.Namespace, progress: Progress, stop: Callable[[], bool]) -> int:
    with GatewayAPI(args.gateway, args.token) as api:
        try:
            health = _wait_for_gateway(api, args.wait, progress, stop)
        except GatewayUnreachableError as exc:
            progress.message(
                f"cannot reach the gateway at {args.gateway}: {exc} "
                "(is it running? set --gateway or PULSE_GATEWAY_URL)"
            )
            return EXIT_UNREACHABLE
        if health.auth and not args.token:
            progress.message(
                f"the gateway at {args.gateway} requires a token (auth is on): "
                f"pass --token or set PULSE_TOKEN ({TOKEN_HINT})"
            )
            return EXIT_AUTH
        if health.status != "ok":
            progress.message(f"the gateway is degraded ({health.broker.detail}); publishing anyway")
        progress.message(_describe_run(args))
        config = RunConfig(
            rate=args.rate,
            channels=args.channels,
            duration=args.duration,
            batch=args.batch,
            chat=args.chat,
            seed=args.seed,
        )
        simulation = Simulation(config, api, progress, stop)
        try:
            stats = simulation.run()
        except AuthRefusedError as exc:
            progress.message(
                f"the gateway refused the token (401: {exc}); pass a valid --token ({TOKEN_HINT})"
            )
            progress.finish(simulation.stats, time.monotonic())
            return EXIT_AUTH
        except KeyboardInterrupt:
            progress.message("interrupted; what was left unsent is lost")
            progress.finish(simulation.stats, time.monotonic())
            return EXIT_INTERRUPTED
        progress.finish(stats, time.monotonic())
        return EXIT_INCOMPLETE if stats.dropped else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop = StopRequest()
    stop.install()
    progress = Progress(sys.stderr)
    try:
        return run(args, progress, stop)
    except KeyboardInterrupt:
        # A second Ctrl-C before the run loop started (say, during a slow health check).
        progress.message("interrupted")
        return EXIT_INTERRUPTED
