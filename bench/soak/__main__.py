"""The entry point, ``python -m bench.soak``: the options, then a gateway (on a private redis-server with
``--broker redis``) and the simulator around the run, and the report."""

import argparse
import shlex
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import uvloop

from bench.soak.channels import HISTORY, SEED
from bench.soak.gateway import prefill
from bench.soak.growth import default_warmup
from bench.soak.run import ROW_HEADER, ROW_NUMERIC, Options, Soak, clock
from bench.soak.verdict import report
from tests.redis_server import RedisServer
from tests.servers import AppProcess, GatewayProcess


def parse_args(argv: Sequence[str]) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak",
        description="Gateway + simulator + subscribers + dashboard consumer for a while; fails if anything "
        "grows without bound.",
    )
    parser.add_argument("--minutes", type=float, default=60.0, help="how long to run (60)")
    parser.add_argument("--subscribers", type=int, default=100, help="steady WebSocket subscribers (100)")
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between rows (60)")
    parser.add_argument(
        "--warmup",
        type=float,
        default=None,
        help="seconds before trends are judged (20%% of the run, at least 2 intervals, at most 600)",
    )
    parser.add_argument("--churners", type=int, default=10, help="clients that keep reconnecting (10)")
    parser.add_argument("--chatters", type=int, default=2, help="clients publishing chat (2)")
    parser.add_argument("--rate", type=float, default=10.0, help="simulator points/s per channel (10)")
    parser.add_argument("--channels", type=int, default=3, help="simulator data channels (3)")
    parser.add_argument("--broker", choices=("memory", "redis"), default="memory", help="gateway broker")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.interval <= 0 or args.subscribers < 1:
        parser.error("--minutes and --interval must be positive, --subscribers at least 1")
    seconds = args.minutes * 60
    warmup = default_warmup(seconds, args.interval) if args.warmup is None else args.warmup
    return Options(
        args.minutes,
        args.subscribers,
        args.interval,
        warmup,
        args.churners,
        args.chatters,
        args.rate,
        args.channels,
        args.broker,
    )


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    options = parse_args(arguments)
    command = shlex.join([sys.executable, "-m", "bench.soak", *arguments])
    print(f"soak: {clock(options.seconds)}, a row every {options.interval:g} s", flush=True)
    print("| " + " | ".join(ROW_HEADER) + " |", flush=True)
    print("|" + "|".join("--:" if n else "---" for n in ROW_NUMERIC) + "|", flush=True)
    with tempfile.TemporaryDirectory(prefix="pulse-soak-") as temp:
        root = Path(temp)
        redis_server = RedisServer(root / "redis").start() if options.broker == "redis" else None
        gateway: GatewayProcess | None = None
        simulator: AppProcess | None = None
        try:
            env = {
                "PULSE_BROKER_URL": redis_server.url if redis_server else "memory://",
                "PULSE_HISTORY_SIZE": str(HISTORY),
                # The prefill posts every channel's history at once, from one address.
                "PULSE_HTTP_PUBLISH_RATE": "0",
            }
            gateway = GatewayProcess(root, env=env).start()
            prefill(gateway.http_url, options.channels)
            simulator_args = [
                "-m",
                "simulator",
                "--gateway",
                gateway.http_url,
                "--rate",
                f"{options.rate:g}",
                "--channels",
                str(options.channels),
                "--seed",
                str(SEED),
                "--wait",
                "10",
            ]
            simulator = AppProcess(simulator_args, root, name="simulator")
            soak = Soak(options, gateway, simulator)
            outcome = uvloop.run(soak.run())
            passed = report(options, outcome, command)
            if not passed:
                for name, text in (("gateway", gateway.log()), ("simulator", simulator.log())):
                    tail = "\n".join(text.splitlines()[-30:])
                    print(f"--- the last lines of the {name}'s log:\n{tail}", file=sys.stderr)
            return 0 if passed else 1
        finally:
            if simulator is not None:
                simulator.stop()
            if gateway is not None:
                gateway.stop()
            if redis_server is not None:
                redis_server.stop()


if __name__ == "__main__":
    sys.exit(main())
