"""Cost of a dashboard redraw and of the consumer's ingest. Speed targets live here, never in timed tests.

Run from the repository root::

    python -m bench.dashboard_render           # full sizes, about a minute
    python -m bench.dashboard_render --quick   # small sizes, a few seconds: checks the harness, not the speed

What it measures, side by side in one run (these machines are shared and noisy: read the ratios):

- **Redraw.** What the Live page's fragment does per channel and update: copy the window out of the
  buffer (``take_panel``, no stored range: the live part alone), build the chart's data (``chart_data``:
  peak-preserving downsampling to at most 2 000 points per series, one shared time axis), and serialise
  it as JSON, as the chart component's data travels. Time and bytes per update for 1k, 100k and 1M
  buffered points per series (3 series), next to the naive chart (every point) for comparison.
- **Ingest, in process.** Frames packed as the gateway packs them (JSON arrays of ``pub``), parsed with
  ``shared.messages.parse_server_frame`` and stored with ``dashboard.ingest.apply_pub``: the consumer
  thread's whole per-message path without the socket.
- **Ingest, end to end.** A real gateway (``python -m gateway``), the real ``Consumer`` thread, and an HTTP
  publisher sending ``--rate`` points/s (default 20 000) for a few seconds: the rate the consumer stored,
  the largest backlog (published but not yet stored) and how long it took to drain after the last post.

Targets (the dashboard issue): a 1M-point buffer redraws about as cheaply as a 1k one, never more than
2 000 points per trace; the consumer keeps up with 20 000 points/s without a growing backlog.
"""

import argparse
import json
import shlex
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx

from bench.report import Row, print_report, random_walk, table
from dashboard.chart import chart_data
from dashboard.consumer import Consumer, ConsumerConfig
from dashboard.ingest import apply_pub
from dashboard.panel import Panel, take_panel
from dashboard.session_buffer import ConnectionState, SessionBuffer
from dashboard.windows import TimeRange
from shared.messages import Pub, parse_server_frame
from tests.servers import GatewayProcess

CHANNEL = "data:bench"
SERIES = ("a", "b", "c")
INGEST_TARGET = 20_000.0
PACK = 100
"""Publications per frame in the in-process ingest case (the gateway packs up to ~256 KiB)."""
BATCH = 1000
"""Payloads per HTTP publish in the end-to-end case (the gateway's MAX_BATCH)."""


@dataclass(frozen=True)
class Config:
    buffer_sizes: tuple[int, ...]
    redraws: int
    ingest_messages: int
    e2e_seconds: float
    naive_limit: int
    """Buffered points per series above which the naive figure is not built (it takes seconds)."""


FULL = Config(
    buffer_sizes=(1_000, 100_000, 1_000_000),
    redraws=15,
    ingest_messages=200_000,
    e2e_seconds=10.0,
    naive_limit=1_000_000,
)
QUICK = Config(
    buffer_sizes=(1_000, 10_000, 100_000),
    redraws=3,
    ingest_messages=5_000,
    e2e_seconds=2.0,
    naive_limit=10_000,
)


def filled_buffer(points: int) -> SessionBuffer:
    buffer = SessionBuffer(max_points=points)
    channel = buffer.channel(CHANNEL)
    ts, values = random_walk(points)
    ts = ts - ts[-1] + time.time()  # the newest point is now: the whole buffer is inside "all retained"
    for offset, name in enumerate(SERIES):
        channel.extend(name, ts, values + offset * 10.0)
    return buffer


def naive_json(panel: Panel) -> str:
    """The tutorial way: every point of every series, on every update."""
    return json.dumps(
        {trace.series: [(trace.ts * 1000).tolist(), trace.values.tolist()] for trace in panel.traces}
    )


def redraw_case(config: Config, points: int, baseline: list[float]) -> Row:
    buffer = filled_buffer(points)
    times: list[float] = []
    size = 0
    for _ in range(config.redraws):
        began = time.perf_counter()
        now = time.time()
        panel = take_panel(buffer.find(CHANNEL), CHANNEL, None, TimeRange(0.0, now + 1), None, now)
        data = chart_data(panel)
        text = json.dumps(data)
        times.append(time.perf_counter() - began)
        size = len(text.encode())
    shown = max(sum(value is not None for value in series["mid"]) for series in data["series"])
    median, best = statistics.median(times), min(times)
    if not baseline:
        baseline.append(median)
    ratio = median / baseline[0]
    notes = [
        f"{size / 1024:,.0f} KiB per update",
        f"{shown:,} points/series sent",
        f"{ratio:.1f}x the 1k redraw",
    ]
    if points <= config.naive_limit:
        began = time.perf_counter()
        naive = naive_json(panel)
        naive_time = time.perf_counter() - began
        notes.append(f"naive: {naive_time * 1000:,.0f} ms, {len(naive.encode()) / 1024:,.0f} KiB")
    met = shown <= 2000 and (points < 1_000_000 or ratio <= 3.0)
    return Row(
        case=f"redraw, {points:,} points/series buffered",
        size=f"{len(SERIES)} series x {points:,}",
        median=f"{median * 1000:.1f} ms",
        best=f"{best * 1000:.1f} ms",
        target="<= 2,000 points/trace"
        + ("; 1M within 3x of 1k" if points >= 1_000_000 else "")
        + f": {'met' if met else 'MISSED'}",
        notes="; ".join(notes),
    )


def packed_frames(messages: int) -> list[str]:
    now = time.time()
    frames = []
    for start in range(0, messages, PACK):
        pubs = [
            Pub(
                channel=CHANNEL,
                offset=offset + 1,
                epoch="bench",
                ts=now + offset * 1e-5,
                data={"ts": now + offset * 1e-5, "values": {name: float(offset) for name in SERIES}},
            ).model_dump_json()
            for offset in range(start, min(messages, start + PACK))
        ]
        frames.append("[" + ",".join(pubs) + "]")
    return frames


def ingest_case(config: Config) -> Row:
    frames = packed_frames(config.ingest_messages)
    rates = []
    for _ in range(3):
        buffer = SessionBuffer()
        began = time.perf_counter()
        for frame in frames:
            received_at = time.time()
            for message in parse_server_frame(frame):
                if isinstance(message, Pub):
                    apply_pub(buffer, message, received_at)
        elapsed = time.perf_counter() - began
        if buffer.channel(CHANNEL).info().messages != config.ingest_messages:
            raise RuntimeError("the ingest lost messages")
        rates.append(config.ingest_messages / elapsed)
    median, best = statistics.median(rates), max(rates)
    return Row(
        case="ingest, parse + store (in process)",
        size=f"{config.ingest_messages:,} pubs x {len(SERIES)} series, {PACK}/frame",
        median=f"{median:,.0f} msgs/s",
        best=f"{best:,.0f} msgs/s",
        target=f">= {INGEST_TARGET:,.0f}/s: {'met' if median >= INGEST_TARGET else 'MISSED'}",
        notes=f"{median * len(SERIES):,.0f} values/s; 3 runs",
    )


def end_to_end_case(config: Config, rate: float) -> Row:
    with tempfile.TemporaryDirectory() as workdir:
        gateway = GatewayProcess(Path(workdir), env={"PULSE_HISTORY_SIZE": "1000"}).start()
        try:
            return _end_to_end(gateway, config, rate)
        finally:
            gateway.stop()


def _end_to_end(gateway: GatewayProcess, config: Config, rate: float) -> Row:
    http = httpx.Client(base_url=gateway.http_url, timeout=10.0)
    http.post(f"/api/publish/{CHANNEL}", json=[{"values": {"v": 0.0}}]).raise_for_status()
    buffer = SessionBuffer(max_points=1_000_000)
    consumer = Consumer(
        buffer,
        ConsumerConfig(
            ws_url=gateway.ws_url, http_url=gateway.http_url, rooms=(), history=1, discover_interval=0.2
        ),
    ).start()
    try:
        deadline = time.monotonic() + 10
        channel = buffer.channel(CHANNEL)
        while buffer.connection().state is not ConnectionState.CONNECTED or not channel.retained("v"):
            if time.monotonic() > deadline:
                raise RuntimeError("the consumer did not subscribe")
            time.sleep(0.05)

        def stored() -> int:
            return channel.info().messages

        start_count = stored()
        sent = 0
        backlog_max = 0
        samples: list[int] = []
        stop = threading.Event()

        def watch() -> None:
            nonlocal backlog_max
            while not stop.wait(0.25):
                backlog = sent - (stored() - start_count)
                samples.append(backlog)
                backlog_max = max(backlog_max, backlog)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        began = time.monotonic()
        total = int(rate * config.e2e_seconds)
        while sent < total:
            due = began + sent / rate
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            count = min(BATCH, total - sent)
            now = time.time()
            body = [{"ts": now, "values": {"v": float(sent + i)}} for i in range(count)]
            http.post(f"/api/publish/{CHANNEL}", json=body).raise_for_status()
            sent += count
        publish_seconds = time.monotonic() - began
        last_post = time.monotonic()
        while stored() - start_count < total:
            if time.monotonic() - last_post > 30:
                raise RuntimeError(f"the consumer stored {stored() - start_count} of {total}")
            time.sleep(0.01)
        drain = time.monotonic() - last_post
        stop.set()
        watcher.join()
        received_seconds = time.monotonic() - began
    finally:
        consumer.stop()
        consumer.join(5)
        http.close()
    info = buffer.channel(CHANNEL).info()
    achieved = total / received_seconds
    second_half = samples[len(samples) // 2 :] or [0]
    first_half = samples[: len(samples) // 2] or [0]
    # Growing: the second half's backlog averages over twice the first half's (a steady state does not).
    growing = len(samples) > 4 and statistics.mean(second_half) > 2 * max(1.0, statistics.mean(first_half))
    met = achieved >= 0.9 * rate and not growing
    return Row(
        case="ingest, end to end (gateway -> consumer thread)",
        size=f"{total:,} points over HTTP at {rate:,.0f}/s target",
        median=f"{achieved:,.0f} points/s",
        best=f"{total / publish_seconds:,.0f} points/s published",
        target=f">= {rate:,.0f}/s, no growing backlog: {'met' if met else 'MISSED'}",
        notes=(
            f"max backlog {backlog_max:,} points; drained {drain * 1000:,.0f} ms after the last post; "
            f"duplicates {info.duplicates}; backlog {'grew' if growing else 'did not grow'}"
        ),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.dashboard_render", description="Cost of a dashboard redraw and of ingest."
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: checks the harness works")
    parser.add_argument("--rate", type=float, default=None, help="points/s for the end-to-end case (20000)")
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(arguments)
    config = QUICK if args.quick else FULL
    rate = args.rate if args.rate is not None else (2_000.0 if args.quick else INGEST_TARGET)
    command = shlex.join([sys.executable, "-m", "bench.dashboard_render", *arguments])

    baseline: list[float] = []
    cases: list[Callable[[], Row]] = [
        partial(redraw_case, config, points, baseline) for points in config.buffer_sizes
    ]
    cases += [partial(ingest_case, config), partial(end_to_end_case, config, rate)]
    began = time.perf_counter()
    rows = [case() for case in cases]

    notes = [
        "Redraw: take_panel (everything buffered) + chart_data + json.dumps, median and best of "
        f"{config.redraws}; the naive chart (all points as lists) is built once for comparison.",
    ]
    print_report(
        "Dashboard render and ingest benchmark",
        quick=args.quick,
        command=command,
        notes=notes,
        began=began,
        body=table(rows),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
