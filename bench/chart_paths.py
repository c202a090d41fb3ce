"""Which chart element for a live time-series chart: the candidates side by side on identical data.

Run from the repository root::

    python -m bench.chart_paths              # 1 and 5 viewers per path, 5 new tabs timed per path
    python -m bench.chart_paths --uplot DIR  # also uPlot, from DIR/uPlot.iife.min.js (and uPlot.min.css)
    python -m bench.chart_paths --quick      # 1 viewer, seconds each: checks the harness, not the speed

Each path is a minimal Streamlit app (``bench.chart_app``, written per path into a temporary folder with a
``static/`` folder beside it) holding one chart of 3 series x 3 000 points that slides by 10 points a
second, redrawn by ``st.fragment(run_every=1)``: (a) ``st.plotly_chart`` with a plotly figure, (b) Vega-Lite
through ``st.altair_chart``, (c) the dashboard's dygraphs v2 component (``dashboard.chart``), and (d) uPlot
in a v2 component when its script is given (no Debian or PyPI package ships uPlot; see ``--uplot``). No
gateway: the data is a function of the clock, the same in every session and every path.

For each path, on a fresh ``streamlit run`` with N tabs of headless Chromium (``bench.streamlit_probe``):
server CPU per update (the Streamlit process, ``/proc``), bytes per update (the frames of Streamlit's
socket), updates per second per tab, browser CPU per tab (the renderer processes' CPU from ``/proc``
divided by the tabs, all of Chromium's the same way, and the tab's main thread from
``Performance.getMetrics``), and separately the time from a new tab's navigation start to the chart first
painted (after one warm-up tab: the browser's cache is shared by the tabs, as between a user's). The
server is pinned to the first CPU and everything else to the others unless ``--no-pin``; the paths take
turns in a different order at each N, so that the machine's noise falls on all of them.
"""

import argparse
import json
import math
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from playwright.sync_api import Browser, BrowserContext, sync_playwright

from bench.chart_app import PATHS, POINTS, RATE, SERIES
from bench.report import machine, markdown_table, percent, print_report
from bench.streamlit_probe import CpuSplit, Summary, Viewer, measure, pump, wait_for_first_update
from tests.browser import CHROMIUM, CHROMIUM_FLAGS
from tests.servers import ROOT, AppProcess, free_port

STATIC = ROOT / "dashboard" / "static"
UPLOT_FILES = ("uPlot.iife.min.js", "uPlot.min.css")
VIEWPORT = {"width": 1400, "height": 1000}

PAINTED_JS = {
    # performance.now() (ms since navigation start) once the chart has drawn its lines, else 0.
    "plotly": """() => {
        const line = document.querySelector('.js-plotly-plot .scatterlayer path.js-line');
        return line && (line.getAttribute('d') || '').length > 100 ? performance.now() : 0;
    }""",
    # Streamlit's Vega-Lite draws SVG: a line mark's path.
    "altair": """() => {
        const line = document.querySelector('[data-testid="stVegaLiteChart"] .mark-line path');
        return line && (line.getAttribute('d') || '').length > 100 ? performance.now() : 0;
    }""",
    "dygraphs": """() => {
        const chart = document.querySelector('.pulse-chart');
        return chart && chart.graph && Number(chart.dataset.points) > 0 ? performance.now() : 0;
    }""",
    "uplot": """() => {
        const chart = document.querySelector('.bench-uplot');
        return chart && chart.plot && Number(chart.dataset.points) > 0 ? performance.now() : 0;
    }""",
}
LABELS = {
    "plotly": "(a) st.plotly_chart (plotly)",
    "altair": "(b) st.altair_chart (Vega-Lite)",
    "dygraphs": "(c) dygraphs v2 component",
    "uplot": "(d) uPlot v2 component",
}


@dataclass(frozen=True)
class Config:
    viewers: tuple[int, ...]
    warmup: float
    seconds: float
    tabs: int
    """New tabs timed to first paint per path, after a warm-up tab."""
    options: tuple[tuple[str, str], ...] = ()
    """Streamlit options given to every path's ``streamlit run`` (``--runner.postScriptGC false``)."""


FULL = Config(viewers=(1, 5), warmup=8.0, seconds=20.0, tabs=5)
QUICK = Config(viewers=(1,), warmup=2.0, seconds=4.0, tabs=1)


@dataclass
class PathResult:
    path: str
    runs: list[Summary] = field(default_factory=list)
    paint_warmup: float = math.nan
    paints: list[float] = field(default_factory=list)
    """Seconds from navigation start to the chart painted, one per timed tab."""


def write_app(folder: Path, path: str, uplot: Path | None) -> Path:
    """The app for ``path`` in ``folder/path``, with the scripts it serves in ``static/`` beside it."""
    home = folder / path
    static = home / "static"
    static.mkdir(parents=True)
    if path == "dygraphs":
        for item in STATIC.iterdir():
            if item.suffix in (".js", ".css"):
                shutil.copy(item, static / item.name)
    if path == "uplot":
        assert uplot is not None
        for name in UPLOT_FILES:
            if (uplot / name).exists():
                shutil.copy(uplot / name, static / name)
    app = home / "app.py"
    app.write_text(
        f"import sys\nsys.path.insert(0, {str(ROOT)!r})\nfrom bench.chart_app import run\nrun({path!r})\n"
    )
    return app


def start_app(app: Path, workdir: Path, split: CpuSplit, label: str, config: Config) -> AppProcess:
    port = free_port()
    args = [
        "-m", "streamlit", "run", str(app),
        "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
        "--server.enableStaticServing", "true", "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    args += [item for key, value in config.options for item in (f"--{key}", value)]
    process = AppProcess(args, workdir, name=label, url=f"http://127.0.0.1:{port}")
    process.command_prefix = split.server_prefix()
    return process.start(ready_path="/_stcore/health")


def measure_viewers(
    browser: Browser, app: Path, path: str, viewers: int, config: Config, workdir: Path, split: CpuSplit
) -> Summary:
    server = start_app(app, workdir, split, f"{path}-{viewers}", config)
    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    try:
        assert server.process is not None
        tabs = [Viewer.open(context, server.url) for _ in range(viewers)]
        waiting = wait_for_first_update(tabs, timeout=30.0 + 3.0 * viewers)
        if waiting:
            print(f"{waiting} of {viewers} tabs drew no chart in time", file=sys.stderr, flush=True)
        pump(tabs, config.warmup)
        return measure(tabs, server.process.pid, config.seconds, split.server or ()).summary()
    finally:
        context.close()
        server.stop()


def painted_in(context: BrowserContext, url: str, path: str) -> float:
    """Seconds from a new tab's navigation start to its chart painted."""
    page = context.new_page()
    try:
        page.goto(url, wait_until="commit")
        handle = page.wait_for_function(PAINTED_JS[path], polling="raf", timeout=60_000)
        return float(handle.json_value()) / 1000.0
    finally:
        page.close()


def time_paints(
    browser: Browser, app: Path, result: PathResult, config: Config, workdir: Path, split: CpuSplit
) -> None:
    server = start_app(app, workdir, split, f"{result.path}-paint", config)
    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    try:
        result.paint_warmup = painted_in(context, server.url, result.path)
        result.paints = [painted_in(context, server.url, result.path) for _ in range(config.tabs)]
    finally:
        context.close()
        server.stop()


def run(config: Config, paths: Sequence[str], uplot: Path | None, split: CpuSplit) -> list[PathResult]:
    results = [PathResult(path) for path in paths]
    split.apply_to_self()
    with tempfile.TemporaryDirectory(prefix="pulse-chart-paths-") as tmp, sync_playwright() as playwright:
        folder = Path(tmp)
        apps = {path: write_app(folder, path, uplot) for path in paths}
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            for index, viewers in enumerate(config.viewers):
                shift = index % len(results)
                for result in results[shift:] + results[:shift]:
                    summary = measure_viewers(
                        browser, apps[result.path], result.path, viewers, config, folder, split
                    )
                    result.runs.append(summary)
                    print(
                        f"{result.path}, {viewers} viewers: {summary.rate_min:.2f}/s slowest, server "
                        f"{summary.server_ms_per_update:.1f} ms per update",
                        file=sys.stderr,
                        flush=True,
                    )
            for result in results[::-1]:
                time_paints(browser, apps[result.path], result, config, folder, split)
        finally:
            browser.close()
    return results


def _ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:,.0f} ms"


def results_table(results: Sequence[PathResult]) -> str:
    header = (
        "Path",
        "Viewers",
        "Updates/s per tab, min / median",
        "Server CPU per update",
        "Server CPU",
        "KB per update",
        "Renderer CPU per tab",
        "All Chromium per tab",
        "Tab main thread (JS)",
        "New tab to chart painted, median (best; warm-up)",
    )
    rows = []
    for result in results:
        paint = (
            f"{_ms(statistics.median(result.paints))} ({_ms(min(result.paints))}; {_ms(result.paint_warmup)})"
            if result.paints
            else "n/a"
        )
        for number, run in enumerate(result.runs):
            rows.append(
                (
                    LABELS[result.path],
                    str(run.viewers),
                    f"{run.rate_min:.2f} / {run.rate_median:.2f}",
                    f"{run.server_ms_per_update:,.1f} ms",
                    percent(run.server_cores),
                    f"{run.kb_per_update:,.1f}",
                    percent(run.renderer_per_tab),
                    percent(run.chromium_per_tab),
                    f"{percent(run.tab_task)} ({percent(run.tab_script)})",
                    paint if number == 0 else "",
                )
            )
    return markdown_table(header, rows, (False, *(True,) * 9))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.chart_paths", description="Candidate chart elements for a live chart, compared."
    )
    parser.add_argument("--quick", action="store_true", help="1 viewer, seconds each: checks the harness")
    parser.add_argument(
        "--uplot",
        type=Path,
        metavar="DIR",
        help="a folder with uPlot's uPlot.iife.min.js (and uPlot.min.css): adds path (d)",
    )
    parser.add_argument("--paths", nargs="+", choices=PATHS, help="only these paths")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the server to a CPU of its own")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON")
    parser.add_argument(
        "--streamlit-option",
        action="append",
        metavar="KEY=VALUE",
        help="a Streamlit option for every path's server, such as runner.postScriptGC=false",
    )
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(arguments)
    config = QUICK if args.quick else FULL
    options = []
    for text in args.streamlit_option or ():
        key, equals, value = text.partition("=")
        if not equals or not key:
            parser.error(f"--streamlit-option wants KEY=VALUE, got {text!r}")
        options.append((key, value))
    config = replace(config, options=tuple(options))
    if args.uplot is not None and not (args.uplot / UPLOT_FILES[0]).exists():
        parser.error(f"no {UPLOT_FILES[0]} in {args.uplot}")
    paths = list(args.paths or [path for path in PATHS if path != "uplot" or args.uplot is not None])
    if "uplot" in paths and args.uplot is None:
        parser.error("the uplot path needs --uplot DIR")
    split = CpuSplit.choose(pin=not args.no_pin)
    command = shlex.join([sys.executable, "-m", "bench.chart_paths", *arguments])
    began = time.perf_counter()
    results = run(config, paths, args.uplot, split)
    notes = [
        f"Data: {len(SERIES)} series x {POINTS:,} points, sliding by {RATE:g} points/s, redrawn by "
        "st.fragment(run_every=1); one chart per app, nothing else on the page",
        f"Per path and N: a fresh Streamlit server, {config.warmup:g} s after every tab drew its chart, then "
        f"{config.seconds:g} s measured; {config.tabs} new tabs timed to first paint after a warm-up tab; "
        f"CPUs: {split.describe()}",
        "Streamlit options: "
        + (", ".join(f"--{key} {value}" for key, value in config.options) or "the defaults"),
        "Updates: finished fragment runs that drew the chart (ForwardMsg stream); KB = 1,000 bytes of "
        "WebSocket frames received; CPU as a fraction of one core",
    ]
    if args.uplot is None:
        notes.append(
            "(d) uPlot: not measured; no Debian or PyPI package ships uPlot's script (pass --uplot DIR with "
            "uPlot.iife.min.js to add it)"
        )
    print_report(
        "Chart paths for a live chart",
        quick=args.quick,
        command=command,
        notes=notes,
        began=began,
        body=results_table(results),
    )
    if args.json:
        document = {
            "benchmark": "chart_paths",
            "command": command,
            "machine": machine(),
            "pinning": split.describe(),
            "config": asdict(config),
            "paths": [
                {
                    "path": result.path,
                    "label": LABELS[result.path],
                    "runs": [{**asdict(run), "ok": run.ok} for run in result.runs],
                    "paint_warmup_s": result.paint_warmup,
                    "paints_s": result.paints,
                }
                for result in results
            ],
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
