"""The MQTT bridge: routes and payloads, and end to end with real parts (a private Mosquitto, a gateway,
``python -m bridge.mqtt``, a WebSocket subscriber), across a broker restart and a gateway outage."""

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import paho.mqtt.publish as mqtt_publish
import pytest

from bridge.routes import Route, RouteError, parse_routes, point_of
from tests.client import Client
from tests.mosquitto_server import MosquittoServer
from tests.servers import ROOT, GatewayProcess, stop_process
from tests.waiting import eventually


def test_routes_fill_the_channel_from_the_topic() -> None:
    routes = parse_routes("sensors/+/+=data:sensors.{1}; plant/#=data:plant.{#}")
    assert [str(route.channel_for("sensors/lab/temp")) for route in routes[:1]] == ["data:sensors.lab"]
    assert str(routes[1].channel_for("plant/line 2/press")) == "data:plant.line_2.press"
    assert routes[0].channel_for("sensors/lab") is None and routes[0].channel_for("other/lab/t") is None
    assert routes[0].channel_for("sensors/lab/t/extra") is None


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("sensors/+", "TOPIC_FILTER=data:CHANNEL"),
        ("sensors/#/x=data:a", "'#' only the last"),
        ("sensors/a+=data:a", "whole levels"),
        ("sensors/+=chat:room", "must be a data: channel"),
        ("sensors/+=data:s.{2}", "{2} but the filter has 1"),
        ("sensors/+=data:s.{#}", "needs a '#'"),
        ("", "no routes"),
    ],
)
def test_a_bad_route_says_why(text: str, why: str) -> None:
    with pytest.raises(RouteError, match=re.escape(why)):
        parse_routes(text)


def test_payloads() -> None:
    assert point_of("s/lab/temp", b"21.5").values == {"temp": 21.5}  # type: ignore[union-attr]
    assert point_of("s/lab/env", b'{"rh": 40, "ok": true, "id": "x"}').values == {"rh": 40.0, "ok": 1.0}  # type: ignore[union-attr]
    point = point_of("s/lab/env", b'{"ts": 1700000000, "values": {"t": 1}}')
    assert point is not None and point.ts == 1_700_000_000 and point.values == {"t": 1.0}
    for bad in (b"warm", b'"21"', b"{}", b'{"name": "x"}', b"\xff", b"NaN"):
        assert point_of("s/lab/x", bad) is None, bad


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[MosquittoServer]:
    server = MosquittoServer(tmp_path / "mosquitto").start()
    yield server
    server.stop()


def start_bridge(
    tmp_path: Path, mosquitto: MosquittoServer, gateway: GatewayProcess, routes: str
) -> subprocess.Popen[bytes]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PULSE_")}
    env |= {
        "PULSE_MQTT_URL": mosquitto.url,
        "PULSE_MQTT_ROUTES": routes,
        "PULSE_GATEWAY_URL": gateway.http_url,
    }
    with (tmp_path / "bridge.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "bridge.mqtt"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )


def test_mosquitto_to_gateway_to_websocket_across_restarts(
    tmp_path: Path, mosquitto: MosquittoServer
) -> None:
    (tmp_path / "gateway").mkdir()
    gateway = GatewayProcess(tmp_path / "gateway").start()
    bridge = start_bridge(tmp_path, mosquitto, gateway, "sensors/+/+=data:sensors.{1}")
    log = tmp_path / "bridge.log"
    try:
        eventually(lambda: "subscribed to 1 filter" in log.read_text(), timeout=15)
        with Client(gateway.ws_url) as subscriber:
            subscriber.subscribe("data:sensors.lab")
            mqtt_publish.single("sensors/lab/temp", "21.5", hostname="127.0.0.1", port=mosquitto.port, qos=1)
            mqtt_publish.single(
                "sensors/lab/env",
                '{"rh": 40, "temp": 21.0}',
                hostname="127.0.0.1",
                port=mosquitto.port,
                qos=1,
            )
            mqtt_publish.single("sensors/lab/label", "warm", hostname="127.0.0.1", port=mosquitto.port, qos=1)
            values = [p["data"]["values"] for p in subscriber.pubs(2, timeout=10)]
            assert values == [{"temp": 21.5}, {"rh": 40.0, "temp": 21.0}]

            mosquitto.stop()  # the bridge reconnects and subscribes again by itself
            mosquitto.start()
            eventually(lambda: log.read_text().count("subscribed to 1 filter") >= 2, timeout=30)
            mqtt_publish.single("sensors/lab/temp", "22.5", hostname="127.0.0.1", port=mosquitto.port, qos=1)
            assert subscriber.pubs(1, timeout=10)[0]["data"]["values"] == {"temp": 22.5}

        gateway.stop()  # what arrives meanwhile waits in the bridge and is published once it is back
        mqtt_publish.single("sensors/lab/temp", "23.5", hostname="127.0.0.1", port=mosquitto.port, qos=1)
        eventually(lambda: "cannot publish to the gateway" in log.read_text(), timeout=10)
        gateway.start()
        history = f"{gateway.http_url}/api/channels/data:sensors.lab/history"
        stored = eventually(lambda: httpx.get(history, timeout=5).json()["publications"], timeout=15)
        assert [p["data"]["values"] for p in stored] == [{"temp": 23.5}]
        text = log.read_text()
        assert "route: sensors/+/+ -> data:sensors.{1}" in text
        assert "sensors/lab/temp -> data:sensors.lab, series temp" in text
        assert "sensors/lab/label: dropped (its payload is not a number or JSON of numbers)" in text
        assert "the gateway answers again" in text
    finally:
        assert stop_process(bridge, 15, 10) == 0, log.read_text()
        gateway.stop()


def test_bad_routes_refuse_to_start(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PULSE_")}
    env["PULSE_MQTT_ROUTES"] = "sensors/+=chat:x"
    result = subprocess.run(
        [sys.executable, "-m", "bridge.mqtt"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2 and "must be a data: channel" in result.stderr


def test_route_objects_are_plain_values() -> None:
    assert Route.parse(" a/+ = data:x.{1} ") == Route("a/+", "data:x.{1}")
