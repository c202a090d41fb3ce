"""The benchmark harness runs and reports; it never checks a timing (speed targets live in bench/)."""

import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

from tests.servers import ROOT

QUICK_ROWS = [
    *(f"append, {n} series/msg" for n in (1, 3, 8)),
    *(f"append, {n} series/msg + reader 10/s" for n in (1, 3, 8)),
    *(f"downsample {n} -> 2,000" for n in ("10,000", "100,000", "1,000,000")),
]


def run_quick(module: str, timeout: float, *options: str) -> str:
    """Run ``python -m <module> --quick [options]``; its stdout, once it exited 0."""
    result = subprocess.run(
        [sys.executable, "-m", module, "--quick", *options],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_quick_dashboard_buffers_benchmark_prints_its_table() -> None:
    """`python -m bench.dashboard_buffers --quick` exits 0 and prints machine, command and every table row."""
    out = run_quick("bench.dashboard_buffers", timeout=60)
    assert f"{os.cpu_count()} CPUs, Python {platform.python_version()}" in out
    assert f"`{sys.executable} -m bench.dashboard_buffers --quick`" in out
    assert "| Case | Input | Median | Best | Target | Notes |" in out
    rows = {
        cells[0]: cells
        for line in out.splitlines()
        if line.startswith("| ")
        for cells in [[cell.strip() for cell in line.strip().strip("|").split("|")]]
    }
    assert set(QUICK_ROWS) <= set(rows)
    assert len(rows) == len(QUICK_ROWS) + 1  # and the header
    for case in QUICK_ROWS:
        median, best = rows[case][2:4]
        assert re.fullmatch(r"[\d,.]+ (points/s|ms)", median) and re.fullmatch(r"[\d,.]+ (points/s|ms)", best)


RENDER_ROWS = [
    *(f"redraw, {n} points/series buffered" for n in ("1,000", "10,000", "100,000")),
    "ingest, parse + store (in process)",
    "ingest, end to end (gateway -> consumer thread)",
]


def test_quick_dashboard_render_benchmark_prints_its_table() -> None:
    """`python -m bench.dashboard_render --quick` runs a real gateway and consumer and prints every row."""
    out = run_quick("bench.dashboard_render", timeout=120)
    assert f"`{sys.executable} -m bench.dashboard_render --quick`" in out
    cases = [line.split("|")[1].strip() for line in out.splitlines() if line.startswith("| ")]
    assert cases == ["Case", *RENDER_ROWS]
    assert "2,000 points/trace" in out and "duplicates 0" in out


def test_quick_dashboard_history_benchmark_times_new_tabs_on_a_day() -> None:
    """`python -m bench.dashboard_history --quick` seeds a day, opens tabs in Chromium and prints both rows,
    with the resolution the tabs showed and a verdict on the 1.5 s target."""
    out = run_quick("bench.dashboard_history", timeout=240)
    assert f"`{sys.executable} -m bench.dashboard_history --quick`" in out
    rows = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith("| ")]
    assert [cells[0].strip() for cells in rows] == [
        "Case",
        "new tab on 24 h: page load -> first chart painted",
        "range read, 24 h (HTTP)",
    ]
    for cells in rows[1:]:
        assert re.fullmatch(r"[\d,.]+ ms", cells[2].strip()) and re.fullmatch(r"[\d,.]+ ms", cells[3].strip())
    assert re.search(r"<= 1,500 ms: (met|MISSED)", rows[1][4])
    assert re.search(r"resolution: \d+ s buckets from the 1s tier", rows[1][5])


def test_quick_broker_throughput_benchmark_compares_both_brokers() -> None:
    """`python -m bench.broker_throughput --quick` runs a gateway on each broker and prints the ratios."""
    out = run_quick("bench.broker_throughput", timeout=120)
    assert f"`{sys.executable} -m bench.broker_throughput --quick`" in out
    cases = [line.split("|")[1].strip() for line in out.splitlines() if line.startswith("| ")]
    assert len(cases) == 7 and sum(case.endswith("redis://") for case in cases) == 3
    assert re.search(r"\| [\d.]+x memory \|", out)


def test_quick_fanout_benchmark_measures_pulseboard_and_every_baseline() -> None:
    """`python -m bench.fanout --quick`: Pulseboard and the three baselines, every scenario, ratios."""
    out = run_quick("bench.fanout", timeout=240)
    rows = [line.split("|")[1:3] for line in out.splitlines() if line.startswith("| (")]
    servers = {server.strip() for _, server in rows}
    assert servers == {"pulseboard", "pulseboard (packing off)", "floor", "naive", "broadcast"}
    assert any("idle connections" in scenario for scenario, _ in rows)
    assert any("1 stuck" in scenario for scenario, _ in rows)
    assert re.search(r"\| [\d.]+x \|", out), "ratios to the baselines"


def test_quick_ingest_benchmark_covers_each_batch_size_on_both_brokers() -> None:
    out = run_quick("bench.ingest", timeout=120)
    rows = [line for line in out.splitlines() if line.startswith("| ingest")]
    assert len(rows) == 8, "JSON batches of 1, 100 and 1,000 on both brokers, line protocol 100 and 1,000"
    assert all(re.search(r"[\d,]+ points/s", row) for row in rows)
    assert sum(row.startswith("| ingest, line protocol, memory://") for row in rows) == 2


VIEWERS_COLUMNS = [
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
    ">= 0.95/s",
]


def test_quick_dashboard_viewers_benchmark_measures_real_tabs(tmp_path: Path) -> None:
    """`python -m bench.dashboard_viewers --quick --json PATH` runs a gateway, the simulator, Streamlit and
    1 then 2 Chromium tabs on the Live page: a row per N, the viewers per core, and figures in the JSON
    where the tabs got chart updates, bytes and server CPU."""
    figures = tmp_path / "viewers.json"
    out = run_quick("bench.dashboard_viewers", 240, "--json", str(figures))
    assert f"`{sys.executable} -m bench.dashboard_viewers --quick --json {figures}`" in out
    lines = [line for line in out.splitlines() if line.startswith("| ")]
    rows = [[cell.strip() for cell in line.split("|")[1:-1]] for line in lines]
    assert rows[0] == VIEWERS_COLUMNS
    assert [row[1] for row in rows[1:]] == ["1", "2"]
    assert all(row[0].startswith("current (") for row in rows[1:])
    assert re.search(r"viewers per core|no N held", out)
    document = json.loads(figures.read_text())
    [dashboard] = document["dashboards"]
    assert [run["viewers"] for run in dashboard["runs"]] == [1, 2]
    for run in dashboard["runs"]:
        assert run["updates"] > 0, "the tabs got chart updates"
        assert run["rate_median"] > 0 and run["kb_per_update"] > 0 and run["server_cores"] > 0
        assert run["renderer_per_tab"] > 0 and run["chromium_per_tab"] > 0


def test_quick_chart_paths_benchmark_measures_each_chart_element(tmp_path: Path) -> None:
    """`python -m bench.chart_paths --quick --json PATH` serves plotly, Vega-Lite and the dygraphs component
    on the same data to a Chromium tab each: a row per path with a first-paint time, and updates, bytes
    and CPU in the JSON."""
    figures = tmp_path / "paths.json"
    out = run_quick("bench.chart_paths", 240, "--json", str(figures))
    rows = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith("| (")]
    assert [cells[0].strip()[:3] for cells in rows] == ["(a)", "(b)", "(c)"]
    assert all(re.fullmatch(r"[\d,]+ ms \([\d,]+ ms; [\d,]+ ms\)", cells[-1].strip()) for cells in rows)
    assert "(d) uPlot: not measured" in out
    document = json.loads(figures.read_text())
    assert [path["path"] for path in document["paths"]] == ["plotly", "altair", "dygraphs"]
    for path in document["paths"]:
        [run] = path["runs"]
        assert run["updates"] > 0 and run["kb_per_update"] > 0 and run["server_ms_per_update"] > 0
        assert len(path["paints_s"]) == 1 and path["paints_s"][0] > 0


def test_quick_workers_benchmark_runs_both_gateways_on_redis() -> None:
    """`python -m bench.workers --quick` runs a 1-worker and a 2-worker gateway on a private Redis and prints
    both rows, the per-core table and the memory per idle connection."""
    out = run_quick("bench.workers", timeout=120)
    for server in ("1 worker", "2 workers"):
        assert re.search(rf"\| N=50 x 50 msg/s \| {server} \| [\d,]+ \| 100\.0 \|", out), out
        assert re.search(rf"\| {server} \| \d+ % \| [\d,]+ \|", out), out
    assert re.search(
        r"Memory per idle connection \(one worker, 100 idle connections\): [\d.]+ KB RSS each", out
    )
