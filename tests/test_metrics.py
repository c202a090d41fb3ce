"""``/metrics`` follows Prometheus' conventions (one family per name, HELP and TYPE on each, ``_total``
only on counters, help that says more than the name), carries build info and the process and GC
collectors, and its labelled counters count by namespace, error code and close code."""

import httpx
import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import ConnectionClosed

from gateway.auth import mint_token
from tests.client import Client
from tests.servers import GatewayProcess, StartGateway
from tests.waiting import eventually

SECRET = "test-secret-with-enough-bytes-for-hs256"

PROCESS_FAMILIES = {
    "process_cpu_seconds",
    "process_resident_memory_bytes",
    "process_open_fds",
    "process_max_fds",
    "process_start_time_seconds",
    "python_gc_collections",
}


def scrape(gateway: GatewayProcess) -> str:
    response = httpx.get(f"{gateway.http_url}/metrics", timeout=5)
    response.raise_for_status()
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return response.text


def assert_conventional(text: str) -> dict[str, Metric]:
    """Every check a Prometheus server or promtool makes of names, plus ours on help texts."""
    families = list(text_string_to_metric_families(text))
    names = [family.name for family in families]
    assert len(names) == len(set(names)), (
        f"duplicate families: {sorted(n for n in names if names.count(n) > 1)}"
    )
    for name in names:  # the parser makes a family of a sample with no TYPE line, as "unknown"
        assert f"# HELP {name}" in text or f"# HELP {name}_total" in text, f"{name} has no HELP"
    for family in families:
        assert family.type in ("counter", "gauge", "histogram"), (family.name, family.type)
        assert family.documentation.strip(), f"{family.name}: empty help"
        assert family.documentation.rstrip(".").lower() not in (
            family.name.replace("_", " "),
            family.name,
        ), f"{family.name}: help repeats the name"
        for sample in family.samples:
            if family.type == "counter":
                assert sample.name == f"{family.name}_total", sample.name
            else:
                assert not sample.name.endswith("_total"), f"{sample.name} is a {family.type}"
        if family.name.endswith("_bytes"):
            assert family.name.startswith("process_"), f"{family.name}: the gateway counts no bytes there"
    return {family.name: family for family in families}


def test_exposition_follows_prometheus_conventions(gateway: GatewayProcess) -> None:
    """The parser reads every family; names, types and help texts follow the conventions."""
    families = assert_conventional(scrape(gateway))
    assert families["pulse_connections_open"].type == "gauge"
    assert families["pulse_connections"].type == "counter"  # pulse_connections_total
    assert "pulse_outbox_pending_characters" in families
    assert not PROCESS_FAMILIES - set(families), "process and GC collectors missing"
    build = families["pulse_build_info"].samples
    assert len(build) == 1 and build[0].value == 1 and build[0].labels["version"]


@pytest.fixture
def secured(start_gateway: StartGateway) -> GatewayProcess:
    return start_gateway(env={"PULSE_SECRET": SECRET, "PULSE_AUTH_TIMEOUT": "0.5"})


def labelled(gateway: GatewayProcess, family: str, **labels: str) -> float:
    for parsed in text_string_to_metric_families(scrape(gateway)):
        for sample in parsed.samples:
            if sample.name == family and sample.labels == labels:
                return sample.value
    raise AssertionError(f"{family}{labels} not in /metrics")


def test_labelled_counters_count_codes_and_namespaces(secured: GatewayProcess) -> None:
    """A bad frame counts under its error code, 4401 closes under their close code (from the handshake and
    from the session), and publications under their namespace."""
    assert labelled(secured, "pulse_client_errors_total", code="bad_json") == 0
    token = mint_token(SECRET, "alice", ttl=60, publish=["chat:*"])
    with Client(secured.ws_url, additional_headers={"Authorization": f"Bearer {token}"}) as client:
        client.ws.send("{not json")
        client.expect("error", code="bad_json")
        client.request({"op": "publish", "channel": "chat:lobby", "data": {"text": "hi"}})
    with pytest.raises(ConnectionClosed):  # refused at the handshake
        Client(secured.ws_url, additional_headers={"Authorization": "Bearer nonsense"})
    with Client(secured.ws_url) as client, pytest.raises(ConnectionClosed):  # never authenticates
        client.recv(timeout=5)
    assert labelled(secured, "pulse_client_errors_total", code="bad_json") == 1
    assert labelled(secured, "pulse_messages_in_total", namespace="chat") == 1
    assert labelled(secured, "pulse_messages_in_total", namespace="data") == 0
    eventually(lambda: labelled(secured, "pulse_disconnects_total", code="4401") == 2, timeout=5)
    assert labelled(secured, "pulse_disconnects_total", code="4001") == 0


@pytest.mark.slow
def test_two_workers_sum_to_a_conventional_exposition(two_workers: GatewayProcess) -> None:
    """Combined over two workers, the exposition still parses, one family per name, labels kept apart."""
    families = assert_conventional(scrape(two_workers))
    assert families["pulse_workers"].samples[0].value == 2
    assert len(families["pulse_build_info"].samples) == 1
    assert families["pulse_build_info"].samples[0].value == 1
    assert len(families["python_gc_collections"].samples) == 3  # one per generation, summed
    assert families["process_open_fds"].samples[0].value > 0
    httpx.post(f"{two_workers.http_url}/api/publish/data:cpu", json={"values": {"u": 1.0}}, timeout=5)
    # The worker that took the publish shares its counts once a second; either may answer the scrape.
    eventually(
        lambda: labelled(two_workers, "pulse_messages_in_total", namespace="data") == 1,
        what="the publish counted in the gateway's total",
    )
