"""The Streamlit connection in the example app (``examples/streamlit_live.py``), run by Streamlit's
``AppTest`` against a real gateway: points published after the app opened show in its chart, and its chat
box posts to the room."""

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from streamlit.testing.v1 import AppTest

from tests.servers import ROOT, GatewayProcess

APP = ROOT / "examples" / "streamlit_live.py"


@pytest.fixture
def gateway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GatewayProcess]:
    process = GatewayProcess(tmp_path).start()
    # AppTest runs the app in this process: the connection reads these like a deployed app would.
    monkeypatch.setenv("PULSE_GATEWAY_URL", process.http_url)
    monkeypatch.setenv("PULSE_EXAMPLE_CHANNEL", "data:demo")
    yield process
    process.stop()


def test_the_example_app_charts_live_points_and_sends_chat(gateway: GatewayProcess) -> None:
    app = AppTest.from_file(str(APP), default_timeout=30)
    app.run()
    assert not app.exception
    assert app.metric[0].value == "0"
    time.sleep(1.0)  # the connection's feed subscribes in the background
    now = time.time()
    points = [{"ts": now + i, "values": {"load": float(i)}} for i in range(5)]
    httpx.post(f"{gateway.http_url}/api/publish/data:demo", json=points, timeout=5).raise_for_status()
    deadline = time.monotonic() + 15
    while app.metric[0].value != "5" and time.monotonic() < deadline:
        time.sleep(0.2)
        app.run()
    assert app.metric[0].value == "5"
    assert len(app.get("vega_lite_chart")) == 1, "the line chart is drawn"

    app.text_input[1].input("hello from the example")
    app.button[0].click()
    app.run()
    assert app.success[0].value.startswith("sent as #")
    history = httpx.get(f"{gateway.http_url}/api/channels/chat:lobby/history", timeout=5).json()
    message = history["publications"][-1]["data"]
    assert message["text"] == "hello from the example" and message["sender"] == "example"
