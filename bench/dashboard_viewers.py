"""How many viewers one Streamlit server holds: the dashboard issue's capacity targets (1 to 3).

Run from the repository root::

    python -m bench.dashboard_viewers                 # 1, 2, 3, 5 ... 40 viewers, beside 977a310's dashboard
    python -m bench.dashboard_viewers --baseline REF  # beside another commit's dashboard
    python -m bench.dashboard_viewers --quick         # 1 and 2 viewers, a few seconds each, no baseline:
                                                      # checks the harness, not the speed

What runs: a real gateway (``python -m gateway``) whose history holds the last few minutes of the
simulator's three channels (written into its store before it starts, so a chart has a full 5-minute window
from the first second), the simulator publishing its defaults (3 channels of 3 series at 10 points/s, its
chat bot), and for each viewer count N a fresh ``streamlit run dashboard/app.py`` on its own port with N
tabs of one headless Chromium (Debian's ``chromium``) on the Live page at the default refresh (1 s, the
5-minute window). A fresh server per N: a closed tab's session would otherwise live on for a while, with
its consumer thread. With ``--baseline REF`` (the default outside ``--quick``: 977a310, the last commit
whose Live page drew ``st.plotly_chart``, on which the issue's figures were measured), REF is checked out
into a temporary ``git worktree`` and its dashboard is measured the same way against the same gateway,
simulator and browser, alternating with the checkout's own dashboard at each N (baseline first at the
first N, current first at the next, ...) so that the machine's noise falls on both. A dashboard stops
at the first N where a viewer got fewer than 0.95 updates/s.

What it measures over an interval, once the tabs have drawn their charts and run a while
(``bench.streamlit_probe`` has the details):

- **Updates** each viewer got per second: the runs of the script or of a fragment that drew the charts
  and finished, read from the ``ForwardMsg`` messages on the page's ``/_stcore/stream`` socket. The
  slowest viewer's rate decides whether N "held" (>= 0.95/s).
- **Server CPU** (utime + stime of the Streamlit process and its children, from ``/proc``): per
  viewer-update (all of the server's CPU time divided by all the viewers' updates, so the sidebar's
  fragment and the consumer threads are in it) and as a fraction of one core.
- **Bytes** to each browser: every frame the page received on that socket (binary frames counted
  decoded), per viewer-update and per second (kilobytes of 1 000 bytes).
- **Browser CPU** per tab: the renderer's main thread for that page (``Performance.getMetrics``:
  ``TaskDuration``, and the JavaScript part, ``ScriptDuration``) as a fraction of one core, and all of
  Chromium's processes (browser, GPU, network, renderers, from ``/proc``) divided by the tabs.

By default (two or more CPUs) the Streamlit server is pinned to the first CPU and everything else
(gateway, simulator, Chromium, this process) to the others (``--no-pin``: no pinning), so the server's core
is its own and a server-bound limit shows as such. When Chromium's CPUs are busy (the table's "Chromium
busy" near 100 %) the browsers, not the server, are what stopped the updates.

**Viewers per core**: the largest N at which every viewer got >= 0.95 updates/s, divided by the server
CPU (in cores) it used at that N. This is "N / CPU fraction" taken at the largest N that held, not at
every N, because a per-N figure from an N that did not hold credits the server with viewers it did not
serve. At that N each viewer gets about one update a second, so the figure is also 1 / (server CPU
seconds per viewer-update): when the server used less than a core there (the N list ended, or the
browsers' CPUs ran out first) it is an extrapolation of the measured cost to a full core, and the report
says what stopped the count. A Streamlit server runs its scripts under one GIL, so one process cannot use
much more than one core whatever the cores: the figure is also about what one server process holds.

Targets (the dashboard issue): viewers per core >= 10x the baseline's, measured side by side; bytes per
viewer-update <= 1/10 of the baseline's; browser CPU per open Live tab <= 10 % of a core (stretch 5 %).
"""

import argparse
import json
import math
import shlex
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from playwright.sync_api import Browser, sync_playwright

from bench import pyspy
from bench.checkout import baseline_checkout, describe_checkout
from bench.report import machine, markdown_table, percent, print_report
from bench.streamlit_probe import (
    TARGET_RATE,
    CpuSplit,
    Summary,
    Viewer,
    measure,
    pump,
    wait_for_first_update,
)
from simulator.sources import build_sources
from tests.browser import CHROMIUM, CHROMIUM_FLAGS
from tests.history_seed import seed_history
from tests.servers import ROOT, AppProcess, GatewayProcess, dashboard_process

DEFAULT_BASELINE = "977a310"
"""The last commit whose Live page used ``st.plotly_chart``; the issue's figures were measured on it."""
SIMULATOR_RATE = 10.0
"""The simulator's default points/s per channel (what the seeded history imitates)."""
SEEDED_SECONDS = 6 * 60.0
"""History written before the gateway starts: more than the Live page's default 5-minute window."""
VIEWPORT = {"width": 1400, "height": 1000}
VIEWERS_PER_CORE_TARGET = 10.0
BYTES_TARGET = 0.1
BROWSER_TARGET, BROWSER_STRETCH = 0.10, 0.05


DASHBOARD_PARTS = ("dashboard", "shared", ".streamlit")
"""The folders whose uncommitted changes a variant's label mentions."""


@dataclass(frozen=True)
class Config:
    viewers: tuple[int, ...]
    warmup: float
    """Seconds between every tab having drawn its charts and the interval's start."""
    seconds: float
    """The measured interval."""
    stop: bool = True
    """Stop a dashboard at the first N that did not hold (``--quick`` runs every N: it checks the harness)."""
    profile: Path | None = None
    """Where ``py-spy record`` writes each server's samples over the measured interval (None: no py-spy)."""


FULL = Config(viewers=(1, 2, 3, 5, 10, 20, 40), warmup=10.0, seconds=30.0)
QUICK = Config(viewers=(1, 2), warmup=2.0, seconds=4.0, stop=False)


@dataclass(frozen=True)
class Variant:
    name: str
    """``current`` or ``baseline``."""
    label: str
    """What the report calls it: ``current (9602a1a)``, ``baseline (977a310)``."""
    checkout: Path
    options: tuple[tuple[str, str], ...] = ()
    """Streamlit options given to ``streamlit run`` (``--runner.postScriptGC false``)."""


@dataclass
class Result:
    variant: Variant
    runs: list[Summary] = field(default_factory=list)

    @property
    def stopped(self) -> bool:
        """A run did not hold: larger N are not measured."""
        return any(not run.ok for run in self.runs)

    def held(self) -> Summary | None:
        """The run with the most viewers that all got >= 0.95 updates/s."""
        good = [run for run in self.runs if run.ok]
        return max(good, key=lambda run: run.viewers) if good else None

    def viewers_per_core(self) -> float | None:
        held = self.held()
        return held.viewers / held.server_cores if held is not None and held.server_cores > 0 else None

    def limit(self) -> str:
        """What stopped the count, in words."""
        failed = [run for run in self.runs if not run.ok]
        if not failed:
            return f"none reached: every N up to {max(run.viewers for run in self.runs)} held"
        run = failed[0]
        where = f"at N={run.viewers}: slowest viewer {run.rate_min:.2f}/s"
        if run.server_cores >= 0.85:
            return f"the server's core, {where} (server {run.server_cores * 100:.0f} % of a core)"
        if run.rest_busy >= 0.85:
            return f"the browsers' CPUs, {where} (they were {run.rest_busy * 100:.0f} % busy)"
        return (
            f"neither side saturated, {where} (server {run.server_cores * 100:.0f} % of a core, "
            f"browsers' CPUs {run.rest_busy * 100:.0f} % busy)"
        )


@contextmanager
def live_stack(workdir: Path) -> Iterator[GatewayProcess]:
    """A gateway with the simulator's channels' last minutes in its history, and the simulator running."""
    end = time.time()
    for source in build_sources(3):
        names = tuple(series.name for series in source.series)
        seed_history(
            workdir / "data",
            str(source.channel),
            seconds=SEEDED_SECONDS,
            rate=SIMULATOR_RATE,
            end=end,
            series=names,
        )
    gateway = GatewayProcess(workdir).start()
    simulator: AppProcess | None = None
    try:
        simulator = AppProcess(
            ["-m", "simulator", "--gateway", gateway.http_url, "--wait", "10"], workdir, name="simulator"
        ).start()
        yield gateway
    finally:
        if simulator is not None:
            simulator.stop()
        gateway.stop()


def run_once(
    variant: Variant,
    viewers: int,
    config: Config,
    gateway: GatewayProcess,
    browser: Browser,
    workdir: Path,
    split: CpuSplit,
) -> Summary:
    """A fresh Streamlit server of ``variant`` with ``viewers`` tabs on the Live page, measured."""
    dashboard = dashboard_process(
        workdir, gateway.http_url, {"PULSE_DASHBOARD_REFRESH": "1"}, checkout=variant.checkout
    )
    dashboard.name = f"dashboard-{variant.name}-{viewers}"
    dashboard.args += [item for key, value in variant.options for item in (f"--{key}", value)]
    dashboard.command_prefix = split.server_prefix()
    dashboard.start(ready_path="/_stcore/health")
    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    try:
        assert dashboard.process is not None
        tabs = [Viewer.open(context, dashboard.url) for _ in range(viewers)]
        waiting = wait_for_first_update(tabs, timeout=30.0 + 3.0 * viewers)
        if waiting:
            print(f"{waiting} of {viewers} tabs drew no chart in time", file=sys.stderr, flush=True)
        pump(tabs, config.warmup)
        spy = None
        if config.profile is not None:
            output = config.profile / f"{variant.name}-{viewers}.txt"
            spy = pyspy.record(dashboard.process.pid, config.seconds, output)
        try:
            return measure(tabs, dashboard.process.pid, config.seconds, split.server or ()).summary()
        finally:
            if spy is not None:
                spy.wait(timeout=60)
    finally:
        context.close()
        dashboard.stop()


def run(config: Config, variants: Sequence[Variant], split: CpuSplit) -> list[Result]:
    results = [Result(variant) for variant in variants]
    with tempfile.TemporaryDirectory(prefix="pulse-viewers-") as tmp, live_stack(Path(tmp)) as gateway:
        split.apply_to_self()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            try:
                for index, viewers in enumerate(config.viewers):
                    order = results if index % 2 == 0 else results[::-1]
                    for result in order:
                        if config.stop and result.stopped:
                            continue
                        summary = run_once(
                            result.variant, viewers, config, gateway, browser, Path(tmp), split
                        )
                        result.runs.append(summary)
                        print(
                            f"{result.variant.label}, {viewers} viewers: {summary.rate_min:.2f}/s slowest, "
                            f"server {summary.server_cores * 100:.0f} % of a core",
                            file=sys.stderr,
                            flush=True,
                        )
                    if config.stop and all(result.stopped for result in results):
                        break
            finally:
                browser.close()
    return results


def _num(value: float, digits: int = 1) -> str:
    return "n/a" if math.isnan(value) else f"{value:,.{digits}f}"


def runs_table(results: Sequence[Result]) -> str:
    header = (
        "Dashboard",
        "Viewers",
        "Updates/s per viewer, min / median",
        "Server CPU per viewer-update",
        "Server CPU",
        "KB per viewer-update",
        "KB/s per viewer",
        "Renderer CPU per tab",
        "All Chromium per tab",
        "Tab main thread (JS)",
        "Browsers' CPUs busy (bench)",
        f">= {TARGET_RATE}/s",
    )
    numeric = (False, *(True,) * 10, False)
    rows = []
    for result in results:
        for run in result.runs:
            rows.append(
                (
                    result.variant.label,
                    str(run.viewers),
                    f"{run.rate_min:.2f} / {run.rate_median:.2f}",
                    f"{_num(run.server_ms_per_update)} ms",
                    percent(run.server_cores),
                    _num(run.kb_per_update),
                    _num(run.kb_per_second),
                    percent(run.renderer_per_tab),
                    percent(run.chromium_per_tab),
                    f"{percent(run.tab_task)} ({percent(run.tab_script)})",
                    f"{percent(run.rest_busy)} ({percent(run.bench_cores)})",
                    "held" if run.ok else "**no**",
                )
            )
    return markdown_table(header, rows, numeric)


def _ratio(current: float, baseline: float) -> str:
    if math.isnan(current) or math.isnan(baseline) or baseline == 0:
        return "n/a"
    return f"{current / baseline:.2f}x"


def ratios_table(current: Result, baseline: Result) -> str:
    header = (
        "Viewers",
        "Server CPU per viewer-update",
        "Server CPU",
        "KB per viewer-update",
        "Updates/s, slowest viewer",
        "Renderer CPU per tab",
        "All Chromium per tab",
    )
    rows = []
    by_n = {run.viewers: run for run in baseline.runs}
    for run in current.runs:
        base = by_n.get(run.viewers)
        if base is None:
            continue
        rows.append(
            (
                str(run.viewers),
                _ratio(run.server_ms_per_update, base.server_ms_per_update),
                _ratio(run.server_cores, base.server_cores),
                _ratio(run.kb_per_update, base.kb_per_update),
                _ratio(run.rate_min, base.rate_min),
                _ratio(run.renderer_per_tab, base.renderer_per_tab),
                _ratio(run.chromium_per_tab, base.chromium_per_tab),
            )
        )
    return markdown_table(header, rows, (True,) * len(header))


def capacity_lines(results: Sequence[Result]) -> list[str]:
    lines = []
    for result in results:
        held, per_core = result.held(), result.viewers_per_core()
        if held is None or per_core is None:
            lines.append(f"- {result.variant.label}: no N held; limit: {result.limit()}.")
            continue
        lines.append(
            f"- {result.variant.label}: **{per_core:.1f} viewers per core** ({held.viewers} viewers held on "
            f"{held.server_cores * 100:.0f} % of a core); limit: {result.limit()}."
        )
    return lines


def targets_lines(current: Result, baseline: Result) -> list[str]:
    """The issue's targets 1 to 3, against this run's baseline (the issue means the plotly-era dashboard)."""
    lines = [
        "",
        f"The dashboard issue's targets, {current.variant.label} against {baseline.variant.label}:",
        "",
    ]
    mine, theirs = current.viewers_per_core(), baseline.viewers_per_core()
    if mine is not None and theirs is not None:
        ratio = mine / theirs
        verdict = "met" if ratio >= VIEWERS_PER_CORE_TARGET else "**missed**"
        lines.append(f"- Target 1, viewers per core >= 10x the baseline's: {ratio:.2f}x, {verdict}.")
    shared = {run.viewers for run in baseline.runs} & {run.viewers for run in current.runs}
    if shared:
        n = min(shared)
        base = next(run for run in baseline.runs if run.viewers == n)
        run = next(run for run in current.runs if run.viewers == n)
        ratio = run.kb_per_update / base.kb_per_update
        verdict = "met" if ratio <= BYTES_TARGET else "**missed**"
        lines.append(
            f"- Target 2, bytes per viewer-update <= 1/10 of the baseline's (N={n}): {ratio:.2f}x, {verdict}."
        )
    held = [run for run in current.runs if run.ok]
    if held:
        worst = max(held, key=lambda run: run.renderer_per_tab)
        verdict = (
            "met, stretch met"
            if worst.renderer_per_tab <= BROWSER_STRETCH
            else "met"
            if worst.renderer_per_tab <= BROWSER_TARGET
            else "**missed**"
        )
        lines.append(
            f"- Target 3, browser CPU per Live tab <= 10 % of a core (stretch 5 %): the tab's renderer "
            f"{worst.renderer_per_tab * 100:.1f} % at N={worst.viewers} (the highest of the N that held; "
            f"all of Chromium per tab there {worst.chromium_per_tab * 100:.1f} %), {verdict}."
        )
    return lines


def profile_lines(folder: Path, results: Sequence[Result]) -> list[str]:
    lines = []
    for result in results:
        for summary in result.runs:
            samples = folder / f"{result.variant.name}-{summary.viewers}.txt"
            found = pyspy.summarize(samples) if samples.exists() else "(no samples)"
            lines += [
                "",
                f"Server CPU by py-spy, {result.variant.label}, {summary.viewers} viewers ({samples}):",
                "",
                found,
            ]
    return lines


def report_json(path: Path, command: str, config: Config, split: CpuSplit, results: Sequence[Result]) -> None:
    document = {
        "benchmark": "dashboard_viewers",
        "command": command,
        "machine": machine(),
        "pinning": split.describe(),
        "config": {**asdict(config), "profile": str(config.profile) if config.profile else None},
        "target_rate": TARGET_RATE,
        "dashboards": [
            {
                "name": result.variant.name,
                "label": result.variant.label,
                "runs": [{**asdict(run), "ok": run.ok} for run in result.runs],
                "viewers_per_core": result.viewers_per_core(),
                "held_viewers": held.viewers if (held := result.held()) else None,
                "limit": result.limit(),
            }
            for result in results
        ],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.dashboard_viewers",
        description="Viewers per core of the dashboard's Streamlit server, with real Chromium viewers.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="1 and 2 viewers, seconds each: checks the harness"
    )
    parser.add_argument(
        "--baseline",
        metavar="REF",
        help=f"a git ref whose dashboard is measured alongside (default {DEFAULT_BASELINE}; "
        "none with --quick)",
    )
    parser.add_argument("--no-baseline", action="store_true", help="measure the checkout's dashboard alone")
    parser.add_argument("--viewers", type=int, nargs="+", metavar="N", help="viewer counts, in order")
    parser.add_argument("--seconds", type=float, help="the measured interval per run")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the server to a CPU of its own")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="run py-spy on each server over its measured interval, samples into DIR, summary printed "
        "(py-spy slows the server a little: profile in a run of its own)",
    )
    parser.add_argument(
        "--streamlit-option",
        action="append",
        metavar="KEY=VALUE",
        help="a Streamlit option for the current dashboard's server only, such as runner.postScriptGC=false "
        "(with --baseline HEAD: that option's effect, side by side)",
    )
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(arguments)
    config = QUICK if args.quick else FULL
    if args.viewers:
        config = replace(config, viewers=tuple(args.viewers))
    if args.seconds:
        config = replace(config, seconds=args.seconds)
    if args.profile:
        if pyspy.find() is None:
            parser.error("--profile needs py-spy (pip install py-spy==0.4.0)")
        args.profile.mkdir(parents=True, exist_ok=True)
        config = replace(config, profile=args.profile)
    ref = None if args.no_baseline else args.baseline or (None if args.quick else DEFAULT_BASELINE)
    split = CpuSplit.choose(pin=not args.no_pin)
    command = shlex.join([sys.executable, "-m", "bench.dashboard_viewers", *arguments])
    began = time.perf_counter()
    options = tuple(_option(parser, text) for text in args.streamlit_option or ())
    shown = "".join(f", --{key} {value}" for key, value in options)
    current = Variant(
        "current", f"current ({describe_checkout(ROOT, *DASHBOARD_PARTS)}{shown})", ROOT, options
    )
    with contextmanager(_maybe_baseline)(ref) as baseline:
        variants = [current] if baseline is None else [baseline, current]
        results = run(config, variants, split)
    notes = [
        f"Load: the simulator's defaults (3 channels x 3 series at {SIMULATOR_RATE:g} points/s, chat bot), "
        f"{SEEDED_SECONDS / 60:g} min of history written before the gateway started; Live page, 5-minute "
        "window, refresh 1 s",
        f"Per N: a fresh Streamlit server, the tabs opened one by one, {config.warmup:g} s after every tab "
        f"drew its charts, then {config.seconds:g} s measured; CPUs: {split.describe()}",
        "Updates: finished script or fragment runs that drew charts, from the ForwardMsg stream; KB = 1,000 "
        "bytes of WebSocket frames received; CPU as a fraction of one core",
    ]
    body = [runs_table(results)]
    if len(results) == 2:
        baseline_result, current_result = results
        body += ["", "Current / baseline at each N:", "", ratios_table(current_result, baseline_result)]
    body += ["", *capacity_lines(results)]
    if len(results) == 2:
        body += targets_lines(results[1], results[0])
    if config.profile is not None:
        body += profile_lines(config.profile, results)
    print_report(
        "Dashboard: viewers per core",
        quick=args.quick,
        command=command,
        notes=notes,
        began=began,
        body="\n".join(body),
    )
    if args.json:
        report_json(args.json, command, config, split, results)
    return 0


def _option(parser: argparse.ArgumentParser, text: str) -> tuple[str, str]:
    key, equals, value = text.partition("=")
    if not equals or not key:
        parser.error(f"--streamlit-option wants KEY=VALUE, got {text!r}")
    return key, value


def _maybe_baseline(ref: str | None) -> Iterator[Variant | None]:
    if ref is None:
        yield None
        return
    with baseline_checkout(ref) as path:
        yield Variant("baseline", f"baseline ({describe_checkout(path, *DASHBOARD_PARTS)})", path)


if __name__ == "__main__":
    sys.exit(main())
