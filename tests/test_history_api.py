"""The range API against a real gateway with the embedded store: what was published comes back, bad
ranges get clear 4xx, history and live join with no gap and no duplicate, and kill -9 keeps the day."""

import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.client import Client
from tests.servers import GatewayProcess, StartGateway
from tests.waiting import eventually

FAST = {"PULSE_HISTORY_FLUSH_INTERVAL": "0.1"}


def range_of(gateway: GatewayProcess, channel: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{gateway.http_url}/api/channels/{channel}/range", params=params, timeout=10)


def stored(gateway: GatewayProcess) -> int:
    history = httpx.get(f"{gateway.http_url}/readyz", timeout=5).json()["history"]
    return int(history["stored"]) if history["pending"] == 0 else -1


def publish(gateway: GatewayProcess, channel: str, points: list[dict[str, Any]]) -> list[int]:
    response = httpx.post(f"{gateway.http_url}/api/publish/{channel}", json=points, timeout=10)
    assert response.status_code == 200, response.text
    offsets: list[int] = response.json()["offsets"]
    return offsets


def test_published_points_come_back_with_the_position_to_resume_from(start_gateway: StartGateway) -> None:
    """Twenty points published over HTTP come back as raw samples with their own times and values, and the
    range reports the channel's newest stored offset and epoch."""
    gateway = start_gateway(env=FAST)
    now = time.time()
    points = [{"ts": now - 20 + i, "values": {"a": float(i), "b": -float(i)}} for i in range(20)]
    publish(gateway, "data:known", points)
    eventually(lambda: stored(gateway) == 40, what="40 samples stored")
    body = range_of(gateway, "data:known", start=now - 60, end=now + 1).json()
    assert body["resolution"] == {"tier": "raw", "bucket": 0.0}
    assert body["series"]["a"]["t"] == pytest.approx([point["ts"] for point in points])
    assert body["series"]["a"]["min"] == [float(i) for i in range(20)]
    assert body["series"]["b"]["max"] == [-float(i) for i in range(20)]
    with Client(gateway.ws_url) as client:
        subscribed = client.subscribe("data:known")
    assert body["position"] == {"offset": 20, "epoch": subscribed["epoch"]}
    only_a = range_of(gateway, "data:known", start=now - 60, end=now + 1, series="a").json()
    assert list(only_a["series"]) == ["a"]


@pytest.mark.parametrize(
    ("channel", "params", "status", "says"),
    [
        ("data:x", {"start": 100, "end": 50}, 400, "before"),
        ("data:x", {"start": 0, "end": 4e9}, 400, "span"),
        ("data:x", {"points": 101}, 400, "points"),
        ("data:x", {"points": 0}, 422, ""),
        ("data:x", {"start": "nan"}, 400, "finite"),
        ("data:x", {"series": "nope"}, 404, "unknown series nope"),
        ("chat:lobby", {}, 400, "data:"),
        ("data:bad name", {}, 400, "bad_channel"),
    ],
)
def test_bad_ranges_get_a_clear_4xx(
    start_gateway: StartGateway, channel: str, params: dict[str, Any], status: int, says: str
) -> None:
    """Reversed ranges, spans past the retention, too many points, unknown series and channels that are
    not data: get a 4xx naming the problem; the gateway goes on answering."""
    gateway = start_gateway(env={**FAST, "PULSE_HISTORY_MAX_POINTS": "100"})
    publish(gateway, "data:x", [{"values": {"v": 1.0}}])
    eventually(lambda: stored(gateway) == 1, what="the sample stored")
    response = range_of(gateway, channel, **params)
    assert response.status_code == status, response.text
    assert says in str(response.json()["detail"])
    assert range_of(gateway, "data:x").status_code == 200


def test_history_off_answers_404(start_gateway: StartGateway) -> None:
    """With PULSE_HISTORY_URL=none:// the range API says history is off; publishing still works."""
    gateway = start_gateway(env={"PULSE_HISTORY_URL": "none://"})
    publish(gateway, "data:x", [{"values": {"v": 1.0}}])
    response = range_of(gateway, "data:x")
    assert response.status_code == 404 and "off" in response.json()["detail"]
    assert httpx.get(f"{gateway.http_url}/readyz", timeout=5).json()["history"] is None


def test_a_range_then_live_from_its_position_has_no_gap_and_no_duplicate(start_gateway: StartGateway) -> None:
    """Points published before, during and after a range read: the read plus what a subscription from
    its position delivers hold every point exactly once."""
    gateway = start_gateway(env={"PULSE_HISTORY_FLUSH_INTERVAL": "0.3"})
    for i in range(50):
        publish(gateway, "data:join", [{"values": {"v": float(i)}}])
    body = range_of(gateway, "data:join", start=time.time() - 60, end=time.time() + 1).json()
    for i in range(50, 80):
        publish(gateway, "data:join", [{"values": {"v": float(i)}}])
    position = body["position"]
    seen = [int(v) for v in body["series"]["v"]["min"]] if body["series"] else []
    since = position or {"offset": 0, "epoch": ""}
    with Client(gateway.ws_url) as client:
        subscribed = client.subscribe("data:join", since=since)
        assert subscribed["recovered"] is True
        live = client.pubs(80 - since["offset"])
    seen += [int(pub["data"]["values"]["v"]) for pub in live]
    assert sorted(seen) == list(range(80)), seen


def test_kill_9_and_a_restart_keep_the_day(start_gateway: StartGateway) -> None:
    """A day of backdated points survives kill -9: after the restart the 24 h range holds every one, and
    the channel's new epoch goes on from there."""
    gateway = start_gateway(env=FAST)
    now = time.time()
    step = 24 * 3600 / 3000
    for first in range(0, 3000, 1000):
        publish(
            gateway,
            "data:day",
            [{"ts": now - 24 * 3600 + (first + i) * step, "values": {"v": float(i)}} for i in range(1000)],
        )
    eventually(lambda: stored(gateway) == 3000, what="3000 samples stored")
    gateway.restart(signal.SIGKILL)
    body = range_of(gateway, "data:day", start=now - 24 * 3600 - 1, end=now + 1, points=500).json()
    assert sum(body["series"]["v"]["count"]) == 3000
    assert body["resolution"]["tier"] == "1m"
    assert body["position"]["offset"] == 3000


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread niceness is Linux's")
@pytest.mark.parametrize("nice", [None, "7"])
def test_the_writer_thread_alone_runs_at_the_writer_niceness(
    start_gateway: StartGateway, nice: str | None
) -> None:
    """Only the store's writer yields the CPU (19 by default, or ``PULSE_HISTORY_WRITER_NICE``), with the
    threads it starts (DuckDB's): the event loop's thread keeps the process's niceness, and history is
    still written."""
    gateway = start_gateway(env=FAST | ({"PULSE_HISTORY_WRITER_NICE": nice} if nice else {}))
    publish(gateway, "data:nice", [{"ts": time.time(), "values": {"a": 1.0}}])
    eventually(lambda: stored(gateway) == 1, what="the sample stored")
    assert gateway.process is not None
    tasks = Path(f"/proc/{gateway.process.pid}/task")
    # Field 19 of /proc/<pid>/task/<tid>/stat is the niceness (counted after the parenthesised name).
    niceness = {
        int(task.name): int((task / "stat").read_text().rsplit(")", 1)[1].split()[16])
        for task in tasks.iterdir()
    }
    assert niceness[gateway.process.pid] == 0
    assert set(niceness.values()) == {0, int(nice or 19)}
