"""The simulator: its signal generators and alerts in-process, then ``python -m simulator`` as a real
process against a real gateway, checked through the gateway's HTTP API."""

import itertools
import math
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from gateway.auth import mint_token
from shared.api import ChannelList, HistoryPage
from shared.channels import is_valid_name
from shared.payloads import ChatMessage, DataPoint, Notification
from simulator.alerts import AlertWatcher
from simulator.cli import parse_args
from simulator.signals import RandomWalk, SineNoise, Spikes
from simulator.sources import Thresholds, build_sources
from tests.servers import ROOT, GatewayProcess, free_port

SECRET = "a-test-secret-of-at-least-32-bytes"  # PyJWT warns (an error here) below 32
HOST_CHANNELS = ["data:cpu", "data:network", "data:sensors"]


# --- helpers ------------------------------------------------------------------------------------


def simulator_command(gateway_url: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "simulator", "--gateway", gateway_url, *args]


def clean_env() -> dict[str, str]:
    # The developer's own PULSE_TOKEN or PULSE_GATEWAY_URL must not leak into a test.
    return {key: value for key, value in os.environ.items() if not key.startswith("PULSE_")}


def run_simulator(gateway_url: str, *args: str, timeout: float = 15) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        simulator_command(gateway_url, *args),
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def auth_headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def reader_token() -> str:
    """A token to read back what the simulator published, from a gateway with auth on."""
    return mint_token(SECRET, "reader", ttl=60, subscribe=["*"])


def history(gateway: GatewayProcess, channel: str, token: str | None = None) -> HistoryPage:
    response = httpx.get(
        f"{gateway.http_url}/api/channels/{channel}/history",
        params={"limit": 1000},
        headers=auth_headers(token),
    )
    response.raise_for_status()
    return HistoryPage.model_validate_json(response.content)


def channel_names(gateway: GatewayProcess, token: str | None = None) -> set[str]:
    response = httpx.get(f"{gateway.http_url}/api/channels", headers=auth_headers(token))
    response.raise_for_status()
    return {info.name for info in ChannelList.model_validate_json(response.content).channels}


def data_points(page: HistoryPage) -> list[DataPoint]:
    return [DataPoint.model_validate(publication.data) for publication in page.publications]


def assert_clean_exit(result: subprocess.CompletedProcess[str], code: int) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr, result.stderr


def wait_for_text(path: Path, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in path.read_text():
            return
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in the simulator's output:\n{path.read_text()}")


# --- signals, sources and alerts, in-process ------------------------------------------------------


def sample_all(seed: int, channels: int, count: int) -> dict[str, list[dict[str, float]]]:
    sources = build_sources(channels, seed)
    return {
        str(source.channel): [source.sample(1.0 + i, 0.1).values for i in range(count)] for source in sources
    }


def test_sources_repeat_exactly_with_the_same_seed() -> None:
    """The same seed gives the same values; another seed, other values; a new channel leaves the rest."""
    first, again, other = sample_all(7, 4, 300), sample_all(7, 4, 300), sample_all(8, 4, 300)
    assert first == again
    assert first != other
    assert sample_all(7, 3, 300) == {name: first[name] for name in HOST_CHANNELS}
    assert list(first) == [*HOST_CHANNELS, "data:sim-4"]
    for points in first.values():
        for values in points:
            assert all(is_valid_name(name) and math.isfinite(value) for name, value in values.items())


def test_random_walk_stays_within_its_bounds() -> None:
    """A walk far more volatile than its range still never leaves [low, high]."""
    walk = RandomWalk(random.Random(1), 50, volatility=200, low=0, high=100)
    values = [walk.step(0.1) for _ in range(2000)]
    assert min(values) == 0
    assert max(values) == 100


def test_sine_without_noise_follows_the_wave() -> None:
    """Quarter periods of a noiseless sine land on its peak, its offset and its trough."""
    wave = SineNoise(random.Random(1), offset=10, amplitude=5, period=1.0)
    assert [wave.step(0.25) for _ in range(4)] == pytest.approx([15, 10, 5, 10], abs=1e-9)


def test_spike_jumps_then_decays() -> None:
    """A spike lifts the base by 60-140 % of its height, then falls to 1/e of that after ``decay`` s."""
    flat = SineNoise(random.Random(1), offset=0, amplitude=0, period=1.0)
    spikes = Spikes(flat, random.Random(2), per_second=1000, height=100, decay=0.5)
    peak = spikes.step(0.01)
    assert 60 <= peak <= 140
    spikes.per_second = 0
    after = [spikes.step(0.01) for _ in range(50)]
    assert after[-1] == pytest.approx(peak / math.e)


def test_alerts_fire_on_rising_crossings_only_and_sparingly() -> None:
    """Alerts come on rising crossings, with hysteresis, a per-series cooldown and a global gap."""
    watcher = AlertWatcher(cooldown=30, min_gap=5, hysteresis=0.05)
    lines = Thresholds(warning=80, error=90)

    def observe(series: str, value: float, now: float) -> Notification | None:
        return watcher.observe("data:cpu", series, value, lines, now, "%")

    assert observe("a", 50, 0) is None
    warning = observe("a", 85, 1)
    assert warning is not None
    assert warning.level == "warning"
    assert warning.title == "data:cpu a above 80%"
    assert Notification.model_validate(warning.model_dump()) == warning
    assert observe("a", 86, 2) is None  # still the same warning
    assert observe("a", 95, 3) is None  # an error, but within a's cooldown: swallowed
    assert observe("a", 50, 4) is None
    error = observe("a", 92, 40)
    assert error is not None
    assert error.level == "error"
    assert observe("b", 95, 41) is None  # another series, but within the global gap
    assert observe("b", 95, 60) is None  # the swallowed crossing is not sent late
    assert observe("c", 81, 100) is not None
    assert observe("c", 78, 101) is None  # below the line but within hysteresis: still warning
    assert observe("c", 81, 200) is None  # so this is no new crossing
    assert observe("c", 70, 201) is None
    assert observe("c", 81, 300) is not None


# --- options -------------------------------------------------------------------------------------


def test_options_come_from_env_and_dotenv_and_flags_override_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PULSE_* variables and a .env in the working directory set the defaults; a flag given wins."""
    for key in [key for key in os.environ if key.startswith("PULSE_")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(
        "PULSE_SIMULATOR_CHANNELS=7\nPULSE_TOKEN=from-dotenv\nPULSE_SIMULATOR_CHAT=false\n"
    )
    monkeypatch.setenv("PULSE_GATEWAY_URL", "http://gateway.example:9000/")
    monkeypatch.setenv("PULSE_SIMULATOR_RATE", "25")
    args = parse_args([])
    assert (args.gateway, args.rate, args.channels, args.token, args.chat) == (
        "http://gateway.example:9000",
        25.0,
        7,
        "from-dotenv",
        False,
    )
    args = parse_args(["--rate", "2", "--channels", "1", "--token", "flag", "--chat"])
    assert (args.rate, args.channels, args.token, args.chat) == (2.0, 1, "flag", True)


def test_a_bad_setting_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PULSE_SIMULATOR_BATCH", "100000")
    with pytest.raises(SystemExit) as exited:
        parse_args([])
    assert exited.value.code == 2


# --- the process against a gateway ----------------------------------------------------------------


def test_fills_data_channels_with_valid_evenly_spaced_points(gateway: GatewayProcess) -> None:
    """Every data channel gets ceil(duration * rate) valid points, 1/rate apart, and simbot says hello."""
    result = run_simulator(
        gateway.http_url, "--rate", "40", "--duration", "1.2", "--channels", "4", "--seed", "3"
    )
    assert_clean_exit(result, 0)
    assert {*HOST_CHANNELS, "data:sim-4", "chat:lobby"} <= channel_names(gateway)
    for channel in [*HOST_CHANNELS, "data:sim-4"]:
        points = data_points(history(gateway, channel))
        assert len(points) == 48, channel
        stamps = [point.ts for point in points if point.ts is not None]
        assert len(stamps) == 48, channel
        gaps = {round(later - earlier, 6) for earlier, later in itertools.pairwise(stamps)}
        assert gaps == {0.025}, channel
        assert len({frozenset(point.values) for point in points}) == 1  # every point has every series
    (greeting,) = [ChatMessage.model_validate(p.data) for p in history(gateway, "chat:lobby").publications]
    assert greeting.sender == "simbot"
    assert "data:sim-4" in greeting.text
    assert "publishing to" in result.stderr
    assert re.search(r"published \d+ .* msg/s", result.stderr), result.stderr  # a progress line
    assert "192 points" in result.stderr.splitlines()[-1]  # the summary


def test_batch_sends_that_many_points_per_request(gateway: GatewayProcess) -> None:
    """With --batch 8 the points arrive 8 per request (one server timestamp per batch), and no chat."""
    result = run_simulator(
        gateway.http_url, "--rate", "40", "--duration", "1", "--channels", "1", "--batch", "8", "--no-chat"
    )
    assert_clean_exit(result, 0)
    page = history(gateway, "data:cpu")
    assert len(page.publications) == 40
    per_request = Counter(publication.ts for publication in page.publications)
    assert sorted(per_request.values()) == [8] * 5
    assert "chat:lobby" not in channel_names(gateway)


def test_unreachable_gateway_exits_2_fast_with_one_clear_line() -> None:
    """Nothing listening at --gateway: exit 2 within seconds, one line saying so, no traceback."""
    started = time.monotonic()
    result = run_simulator(f"http://127.0.0.1:{free_port()}", "--duration", "5")
    assert time.monotonic() - started < 5
    assert_clean_exit(result, 2)
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("simulator: cannot reach the gateway at http://127.0.0.1:"), line


def test_wait_lets_it_start_before_the_gateway(tmp_path: Path) -> None:
    """With --wait the simulator keeps polling /healthz and starts once a gateway comes up there."""
    port = free_port()
    process = subprocess.Popen(
        simulator_command(f"http://127.0.0.1:{port}", "--wait", "10", "--duration", "0.3", "--no-chat"),
        cwd=ROOT,
        env=clean_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    gateway = GatewayProcess(tmp_path, port=port)
    try:
        time.sleep(0.5)
        assert process.poll() is None, "gave up before --wait was over"
        gateway.start()
        _, stderr = process.communicate(timeout=10)
    finally:
        gateway.stop()
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert "waiting up to 10s for the gateway" in stderr
    assert "9 points" in stderr.splitlines()[-1]


def test_token_publishes_to_a_gateway_with_auth_on(start_gateway: Callable[..., GatewayProcess]) -> None:
    """--token is sent as a bearer token; chat then carries the token's subject as sender."""
    gateway = start_gateway(env={"PULSE_SECRET": SECRET})
    token = mint_token(SECRET, "sim-token", ttl=60, publish=["data:*", "chat:*", "notify:*"])
    result = run_simulator(gateway.http_url, "--rate", "20", "--duration", "0.5", "--token", token)
    assert_clean_exit(result, 0)
    for channel in HOST_CHANNELS:
        assert len(data_points(history(gateway, channel, reader_token()))) == 10
    chat = history(gateway, "chat:lobby", reader_token())
    (greeting,) = [ChatMessage.model_validate(p.data) for p in chat.publications]
    assert greeting.sender == "sim-token"


def test_missing_or_refused_token_exits_3_saying_why(start_gateway: Callable[..., GatewayProcess]) -> None:
    """Auth on: no token, or one the gateway answers 401 to, ends the run at once with exit 3."""
    gateway = start_gateway(env={"PULSE_SECRET": SECRET})
    missing = run_simulator(gateway.http_url, "--duration", "5")
    assert_clean_exit(missing, 3)
    assert "requires a token" in missing.stderr
    assert "PULSE_TOKEN" in missing.stderr
    forged = mint_token("not-the-secret-but-just-as-long-!!!", "mallory", ttl=60, publish=["*"])
    refused = run_simulator(gateway.http_url, "--duration", "5", "--token", forged)
    assert_clean_exit(refused, 3)
    assert "refused the token (401: invalid token" in refused.stderr
    assert channel_names(gateway, reader_token()) == set()


def test_forbidden_channel_is_reported_once_and_counted(start_gateway: Callable[..., GatewayProcess]) -> None:
    """A 403 for every request shows the gateway's detail once, counts each as an error, exits 1."""
    gateway = start_gateway(env={"PULSE_SECRET": SECRET})
    # notify:* is allowed: a random walk that crosses a threshold raises an alert, and this test is about
    # the one forbidden data channel.
    no_data = mint_token(SECRET, "sim-chat", ttl=60, publish=["chat:*", "notify:*"])
    result = run_simulator(
        gateway.http_url,
        "--rate",
        "20",
        "--duration",
        "1",
        "--channels",
        "1",
        "--no-chat",
        "--seed",
        "7",
        "--token",
        no_data,
    )
    assert_clean_exit(result, 1)
    rejections = [line for line in result.stderr.splitlines() if "rejected" in line]
    assert len(rejections) == 1, result.stderr
    assert "data:cpu with 403: your token does not allow publishing to data:cpu" in rejections[0]
    summary = re.search(r"; (\d+) errors, (\d+) dropped$", result.stderr.splitlines()[-1])
    assert summary is not None, result.stderr
    assert summary.groups() == ("20", "20")


def test_survives_a_gateway_restart_and_stops_cleanly_on_sigint(
    gateway: GatewayProcess, tmp_path: Path
) -> None:
    """Gateway gone mid-run: errors counted, retried until it is back; SIGINT then exits 0 with a summary."""
    log_path = tmp_path / "simulator.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            simulator_command(gateway.http_url, "--rate", "20", "--no-chat"),
            cwd=ROOT,
            env=clean_env(),
            stderr=log,
            text=True,
        )
    try:
        wait_for_text(log_path, "publishing to", timeout=5)
        time.sleep(0.3)
        gateway.stop()
        wait_for_text(log_path, "cannot publish to the gateway", timeout=5)
        gateway.start()
        wait_for_text(log_path, "the gateway answers again", timeout=10)
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = log_path.read_text()
    assert code == 0, output
    assert "Traceback" not in output
    summary = output.splitlines()[-1]
    assert re.search(r"; [1-9]\d* errors, 0 dropped$", summary), summary
    # The restarted gateway (memory broker) holds what was sampled during the outage and after.
    assert len(data_points(history(gateway, "data:cpu"))) > 0
