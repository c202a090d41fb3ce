"""Headless Chromium viewers of a Streamlit app, measured as the dashboard benchmarks need them.

A ``Viewer`` is one tab (one Streamlit session) with a CDP session on it that records:

- every WebSocket frame the page receives on Streamlit's ``/_stcore/stream`` socket
  (``Network.webSocketFrameReceived``): its size (binary frames arrive base64-encoded; the decoded length
  is what crossed the wire, Streamlit does not compress its socket by default) and what the
  ``ForwardMsg`` protobuf in it is;
- the renderer's main-thread time for that page (``Performance.getMetrics``: ``TaskDuration``, all
  tasks, and ``ScriptDuration``, JavaScript alone).

**Updates** are counted from the stream alone, so they mean the same for any version of the dashboard's
code: a run of the script or of a fragment that drew a chart and finished. Streamlit 1.67 ends every run
with a ``script_finished`` message: ``FINISHED_SUCCESSFULLY`` (0) for a whole-script run,
``FINISHED_FRAGMENT_RUN_SUCCESSFULLY`` (3) for a fragment run, ``FINISHED_EARLY_FOR_RERUN`` (2) for a
run cut short by another (also sent when a queued fragment run is dropped), ``FINISHED_WITH_COMPILE_ERROR``
(1). Its ``metadata.run.fragment_ids`` names the fragments the run reran, and every delta a fragment
sends carries its ``fragment_id``. The dashboard runs two fragments every second (the sidebar's status
and toasts, and the Live page's charts), so a run counts as an update when it finished with 0 or 3 and it
either sent a chart element (``CHART_ELEMENTS``) or reran a fragment that sends chart elements.

Processes' CPU time comes from ``/proc`` (utime + stime, and the same of their waited-for children).
"""

import base64
import os
import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import BrowserContext, CDPSession, Page
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

STREAM_PATH = "/_stcore/stream"
CHART_ELEMENTS = frozenset(
    {
        "plotly_chart",
        "vega_lite_chart",
        "bidi_component",
        "component_instance",
        "deck_gl_json_chart",
        "echarts_chart",
        "graphviz_chart",
    }
)
"""Element types that are charts (a v2 component, ``bidi_component``, is how the dygraphs chart travels)."""
FINISHED = frozenset({ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY})
"""``script_finished`` statuses of a run that completed (a whole-script run, a fragment run)."""
TARGET_RATE = 0.95
"""Updates per second each viewer must get at the default 1 s refresh."""
_TICKS = os.sysconf("SC_CLK_TCK")
CHROMIUM_NAMES = ("chrom",)
"""How Chromium's processes are named (``chromium``)."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One WebSocket frame from the server, as far as the benchmarks care."""

    at: float
    """CDP's monotonic clock, seconds (the clock ``Performance.getMetrics``' ``Timestamp`` is on)."""
    size: int
    kind: str
    """The ``ForwardMsg``'s type (``delta``, ``new_session``, ``script_finished``...); ``text`` for text."""
    status: int = -1
    """A ``script_finished``'s status."""
    fragments: tuple[str, ...] = ()
    """A ``new_session``'s or ``script_finished``'s run: the fragments it reran (none: the whole script)."""
    chart_fragment: str | None = None
    """A chart element's delta: the fragment that sent it ("" outside any); None for anything else."""


def parse_frame(at: float, response: dict[str, Any]) -> Frame:
    """A CDP ``webSocketFrameReceived`` response as a ``Frame``."""
    payload: str = response["payloadData"]
    if response.get("opcode") != 2:
        return Frame(at, len(payload.encode()), "text")
    data = base64.b64decode(payload)
    msg = ForwardMsg()
    msg.ParseFromString(data)
    kind = msg.WhichOneof("type") or ""
    if kind in ("new_session", "script_finished"):
        status = msg.script_finished if kind == "script_finished" else -1
        return Frame(at, len(data), kind, status, tuple(msg.metadata.run.fragment_ids))
    delta = msg.delta
    if (
        kind == "delta"
        and delta.WhichOneof("type") == "new_element"
        and delta.new_element.WhichOneof("type") in CHART_ELEMENTS
    ):
        return Frame(at, len(data), kind, chart_fragment=delta.fragment_id)
    return Frame(at, len(data), kind)


def chart_updates(frames: Sequence[Frame]) -> list[float]:
    """When each run that drew charts finished (see the module's docstring), in order."""
    chart_fragments = {f.chart_fragment for f in frames if f.chart_fragment}
    finished = []
    drew = False
    for frame in frames:
        if frame.kind == "new_session":
            drew = False
        elif frame.chart_fragment is not None:
            drew = True
        elif frame.kind == "script_finished":
            if frame.status in FINISHED and (drew or chart_fragments.intersection(frame.fragments)):
                finished.append(frame.at)
            drew = False
    return finished


@dataclass
class Viewer:
    """One tab on ``url`` with its CDP session; frames are recorded from before navigation on."""

    page: Page
    cdp: CDPSession
    frames: list[Frame] = field(default_factory=list)
    streams: set[str] = field(default_factory=set)

    @classmethod
    def open(cls, context: BrowserContext, url: str) -> "Viewer":
        page = context.new_page()
        viewer = cls(page, context.new_cdp_session(page))
        viewer.cdp.on("Network.webSocketCreated", viewer._created)
        viewer.cdp.on("Network.webSocketFrameReceived", viewer._received)
        viewer.cdp.send("Network.enable")
        viewer.cdp.send("Performance.enable")
        page.goto(url, wait_until="commit")
        return viewer

    def _created(self, event: dict[str, Any]) -> None:
        if str(event["url"]).split("?")[0].endswith(STREAM_PATH):
            self.streams.add(event["requestId"])

    def _received(self, event: dict[str, Any]) -> None:
        if event["requestId"] in self.streams:
            self.frames.append(parse_frame(float(event["timestamp"]), event["response"]))

    def metrics(self) -> dict[str, float]:
        answer = self.cdp.send("Performance.getMetrics")
        return {item["name"]: float(item["value"]) for item in answer["metrics"]}

    def updates(self) -> int:
        return len(chart_updates(self.frames))

    def close(self) -> None:
        self.page.close()


def pump(viewers: Sequence[Viewer], seconds: float) -> None:
    """Let ``seconds`` pass while Playwright delivers the CDP events (the sync API only does while called)."""
    viewers[0].page.wait_for_timeout(seconds * 1000.0)


def wait_for_first_update(viewers: Sequence[Viewer], timeout: float) -> int:
    """Until every viewer got a chart drawn, or ``timeout`` seconds; how many got none (an overloaded
    server's viewers are measured all the same: they count as getting no updates)."""
    deadline = time.monotonic() + timeout
    while (waiting := sum(viewer.updates() == 0 for viewer in viewers)) and time.monotonic() < deadline:
        pump(viewers, 0.2)
    return waiting


# --- CPU time from /proc ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Stat:
    ppid: int
    comm: str
    cpu: float
    """utime + stime + cutime + cstime, seconds."""
    kind: str
    """Chromium's ``--type=`` (``renderer``, ``gpu-process``, ``utility``...), ``browser`` for its main
    process; "" for other programs."""


def _processes() -> dict[int, _Stat]:
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
            comm = text[text.index("(") + 1 : text.rindex(")")]
            kind = ""
            if comm.startswith(CHROMIUM_NAMES):
                # Chromium rewrites its processes' titles: the arguments may be one string.
                arguments = (entry / "cmdline").read_bytes().replace(b"\0", b" ").split()
                types = [arg[len(b"--type=") :] for arg in arguments if arg.startswith(b"--type=")]
                kind = types[0].decode() if types else "browser"
        except (OSError, ValueError):
            continue  # gone meanwhile
        fields = text[text.rindex(")") + 2 :].split()
        ticks = sum(int(value) for value in fields[11:15])
        table[int(entry.name)] = _Stat(int(fields[1]), comm, ticks / _TICKS, kind)
    return table


def _tree(table: dict[int, _Stat], root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, stat in table.items():
        children.setdefault(stat.ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            found.append(pid)
            todo.extend(children.get(pid, ()))
    return found


def tree_cpu(root: int, names: Iterable[str] | None = None) -> float:
    """CPU seconds of ``root`` and its descendants so far; with ``names``, only processes whose name
    starts with one of them (``chrom`` picks Chromium's processes among this process's children)."""
    table = _processes()
    prefixes = tuple(names) if names is not None else ("",)
    return sum(table[pid].cpu for pid in _tree(table, root) if table[pid].comm.startswith(prefixes))


@dataclass(frozen=True, slots=True)
class CpuSnapshot:
    """CPU seconds so far, taken at one moment."""

    server: float
    """The server's process tree."""
    chromium: float
    """Every Chromium process this process started (through Playwright's driver)."""
    renderers: float
    """Of which the renderers (one per tab)."""
    bench: float
    """This process and Playwright's driver (node): the measuring itself."""
    busy: dict[int, float]
    """Per CPU: time not idle (user, nice, system, irq, softirq, steal)."""

    @classmethod
    def take(cls, server_pid: int) -> "CpuSnapshot":
        table = _processes()
        me = os.getpid()
        mine = [table[pid] for pid in _tree(table, me)]
        chromium = [stat for stat in mine if stat.kind]
        return cls(
            server=sum(table[pid].cpu for pid in _tree(table, server_pid)),
            chromium=sum(stat.cpu for stat in chromium),
            renderers=sum(stat.cpu for stat in chromium if stat.kind == "renderer"),
            bench=table[me].cpu + sum(stat.cpu for stat in mine if stat.comm.startswith("node")),
            busy=_cpu_busy(),
        )


def _cpu_busy() -> dict[int, float]:
    busy = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name != "cpu":
            ticks = [int(value) for value in values[:8]]
            busy[int(name[3:])] = (sum(ticks) - ticks[3] - ticks[4]) / _TICKS  # less idle and iowait
    return busy


# --- an interval -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ViewerInterval:
    seconds: float
    """The interval on this tab's clock (``Performance.getMetrics``' ``Timestamp``)."""
    updates: int
    bytes: int
    task: float
    """Main-thread seconds of this tab's renderer (``TaskDuration``)."""
    script: float
    """Of which JavaScript (``ScriptDuration``)."""


@dataclass(frozen=True, slots=True)
class Interval:
    viewers: tuple[ViewerInterval, ...]
    wall: float
    start: CpuSnapshot
    end: CpuSnapshot
    server_cpus: tuple[int, ...]
    """The CPUs the server may run on; the rest are the browsers' (with the gateway, simulator, bench)."""

    def _cores(self, cpus: Iterable[int]) -> float:
        """How many of ``cpus`` were busy, on average (0 to len(cpus))."""
        return sum(self.end.busy[cpu] - self.start.busy[cpu] for cpu in cpus) / self.wall

    def summary(self) -> "Summary":
        viewers = self.viewers
        n = len(viewers)
        updates = sum(v.updates for v in viewers)
        rates = [v.updates / v.seconds for v in viewers]
        server_cpu = self.end.server - self.start.server
        rest = [cpu for cpu in self.end.busy if cpu not in self.server_cpus]
        return Summary(
            viewers=n,
            seconds=self.wall,
            updates=updates,
            rate_min=min(rates),
            rate_median=statistics.median(rates),
            server_cores=server_cpu / self.wall,
            server_ms_per_update=server_cpu * 1000.0 / updates if updates else float("nan"),
            kb_per_update=sum(v.bytes for v in viewers) / 1000.0 / updates if updates else float("nan"),
            kb_per_second=statistics.median(v.bytes / 1000.0 / v.seconds for v in viewers),
            tab_task=statistics.median(v.task / v.seconds for v in viewers),
            tab_script=statistics.median(v.script / v.seconds for v in viewers),
            renderer_per_tab=(self.end.renderers - self.start.renderers) / self.wall / n,
            chromium_per_tab=(self.end.chromium - self.start.chromium) / self.wall / n,
            bench_cores=(self.end.bench - self.start.bench) / self.wall,
            rest_busy=self._cores(rest) / len(rest) if rest else float("nan"),
        )


@dataclass(frozen=True, slots=True)
class Summary:
    """What one interval comes to (fractions are of one core)."""

    viewers: int
    seconds: float
    updates: int
    """Chart updates, all viewers together."""
    rate_min: float
    rate_median: float
    """Updates per second per viewer: the slowest viewer's, the median viewer's."""
    server_cores: float
    server_ms_per_update: float
    kb_per_update: float
    """Kilobytes (1 000 bytes) received per update, all of the stream's frames counted."""
    kb_per_second: float
    """Per viewer, median."""
    tab_task: float
    tab_script: float
    """Median tab: its renderer's main thread busy with tasks (``TaskDuration``, wall time: it includes
    time the thread waited for a CPU), and with JavaScript (``ScriptDuration``), per second."""
    renderer_per_tab: float
    """The renderer processes' CPU time (``/proc``) divided by the tabs: what a tab costs its own process."""
    chromium_per_tab: float
    """Every Chromium process's CPU (browser, GPU, network, renderers) divided by the tabs."""
    bench_cores: float
    """This process and Playwright's driver: what measuring cost, on the browsers' CPUs."""
    rest_busy: float
    """How busy the CPUs other than the server's were (0 to 1): near 1, the browser side is the limit."""

    @property
    def ok(self) -> bool:
        return self.rate_min >= TARGET_RATE


def measure(
    viewers: Sequence[Viewer], server_pid: int, seconds: float, server_cpus: Sequence[int] = ()
) -> Interval:
    """Measure ``seconds`` of the viewers as they are; the server is ``server_pid``'s process tree, pinned
    to ``server_cpus`` (none: not pinned, every CPU counts as the browsers')."""
    first = [viewer.metrics() for viewer in viewers]
    start, wall0 = CpuSnapshot.take(server_pid), time.monotonic()
    pump(viewers, seconds)
    end, wall1 = CpuSnapshot.take(server_pid), time.monotonic()
    last = [viewer.metrics() for viewer in viewers]
    pump(viewers, 0.5)  # frames of the interval's last moments still on their way to Python
    figures = []
    for viewer, before, after in zip(viewers, first, last, strict=True):
        t0, t1 = before["Timestamp"], after["Timestamp"]
        done = [at for at in chart_updates(viewer.frames) if t0 <= at < t1]
        received = sum(frame.size for frame in viewer.frames if t0 <= frame.at < t1)
        figures.append(
            ViewerInterval(
                seconds=t1 - t0,
                updates=len(done),
                bytes=received,
                task=after["TaskDuration"] - before["TaskDuration"],
                script=after["ScriptDuration"] - before["ScriptDuration"],
            )
        )
    return Interval(tuple(figures), wall1 - wall0, start, end, tuple(server_cpus))


# --- CPUs ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CpuSplit:
    """Which CPUs the Streamlit server gets, and which the rest (browsers, gateway, simulator, this
    process). None: no pinning (one CPU, or asked not to)."""

    server: tuple[int, ...] | None
    rest: tuple[int, ...] | None

    @classmethod
    def choose(cls, pin: bool) -> "CpuSplit":
        cpus = sorted(os.sched_getaffinity(0))
        if not pin or len(cpus) < 2:
            return cls(None, None)
        return cls((cpus[0],), tuple(cpus[1:]))

    def apply_to_self(self) -> None:
        """Move this process (and so what it starts later, Chromium included) to the rest."""
        if self.rest is not None:
            os.sched_setaffinity(0, self.rest)

    def server_prefix(self) -> list[str]:
        if self.server is None:
            return []
        return ["taskset", "-c", ",".join(map(str, self.server))]

    def describe(self) -> str:
        if self.server is None:
            return "not pinned"
        return (
            f"Streamlit on CPU {','.join(map(str, self.server))}; gateway, simulator, Chromium and the "
            f"bench on CPU {','.join(map(str, self.rest or ()))}"
        )
