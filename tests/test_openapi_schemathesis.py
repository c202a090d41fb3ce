"""Schemathesis against a live gateway's ``/openapi.json``: no 5xx, no undocumented status, type or body.

Each test starts a real gateway (``python -m gateway``) and runs schemathesis' engine (examples, coverage
and fuzzing phases, what ``st run`` does) over every operation of the schema the gateway serves. With auth
on, the run is repeated per identity (none, a reader, a writer) so 401, 403 and 200 are all exercised.

The engine rather than ``schemathesis.pytest.from_fixture``: in schemathesis 4.32.5 that loader reads
``Function._nodeid``, which pytest 9 no longer has.
"""

import secrets
from collections import defaultdict
from dataclasses import dataclass, field

import httpx
import pytest
import schemathesis
from schemathesis.engine import Status, events, from_schema

from gateway.auth import mint_token
from tests.servers import GatewayProcess, StartGateway

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
)
MAX_EXAMPLES = 30
"""Fuzzing examples per operation and run; the coverage phase adds its boundary cases on top."""
SEED = 15
MAX_BODY_BYTES = 1024
"""The smallest limit the gateway takes, so that generated batches also reach the 413 path."""

PUBLISH = "POST /api/publish/{channel}"
CHANNELS = "GET /api/channels"
HISTORY = "GET /api/channels/{channel}/history"
HEALTH = "GET /healthz"
METRICS = "GET /metrics"
RANGE = "GET /api/channels/{channel}/range"
READY = "GET /readyz"
WRITE_V2 = "POST /api/v2/write"
WRITE_V1 = "POST /write"
LIVE = "GET /livez"
OPERATIONS = {PUBLISH, CHANNELS, HISTORY, HEALTH, LIVE, METRICS, RANGE, READY, WRITE_V2, WRITE_V1}


@dataclass
class Outcome:
    """What a schemathesis run saw: statuses per operation, and every failed check or engine error."""

    statuses: defaultdict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    failures: list[str] = field(default_factory=list)

    def check(self, expected: dict[str, set[int]]) -> None:
        """Fail on any failed check (each with a curl to replay it) or if a status in ``expected`` never came.

        The second part keeps the test from passing vacuously: a schema whose requests never get past
        validation would have nothing to fail on.
        """
        if self.failures:
            pytest.fail("\n\n".join(self.failures), pytrace=False)
        assert set(self.statuses) == OPERATIONS, "operations schemathesis did not call"
        unseen = {label: codes - self.statuses[label] for label, codes in expected.items()}
        assert not {label: codes for label, codes in unseen.items() if codes}, "statuses never reached"


def run_schemathesis(gateway: GatewayProcess, headers: dict[str, str] | None = None) -> Outcome:
    """Run schemathesis against the gateway's live schema; ``headers`` are sent on every request."""
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "workers": 1,
            # Timed on the client: on a loaded CI machine it fails runs that found nothing wrong.
            "suppress-health-check": ["too_slow"],
            "headers": headers or {},
            "generation": {
                "mode": "all",
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                # No example database: a CI run must not depend on what an earlier run found.
                "database": "none",
            },
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
            # The API has no links between operations, so there is nothing stateful to test.
            "phases": {"stateful": {"enabled": False}},
        }
    )
    schema = schemathesis.openapi.from_url(f"{gateway.http_url}/openapi.json", config=config)
    outcome = Outcome()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            recorder = event.recorder
            for interaction in recorder.interactions.values():
                if interaction.response is not None:
                    outcome.statuses[recorder.label].add(interaction.response.status_code)
            for nodes in recorder.checks.values():
                for node in nodes:
                    if node.status is Status.SUCCESS:
                        continue
                    where = f"{recorder.label} [{event.phase.name}] {node.name}"
                    info = node.failure_info
                    if info is None:
                        outcome.failures.append(f"{where}: {node.status}")
                    else:
                        outcome.failures.append(
                            f"{where}: {info.failure.title}\n{info.failure.message}\n{info.code_sample}"
                        )
            if event.status is Status.ERROR:
                outcome.failures.append(f"{recorder.label} [{event.phase.name}]: the scenario errored")
        elif isinstance(event, events.NonFatalError):
            outcome.failures.append(f"{event.label}: {event.info.format()}")
        elif isinstance(event, events.FatalError):
            raise event.exception
        elif isinstance(event, events.EngineFinished):
            outcome.failures.extend(f"{failure.title}\n{failure.message}" for failure in event.failures)
    return outcome


def test_open_gateway_conforms_to_its_schema(start_gateway: StartGateway) -> None:
    """With auth off, no generated request gets a 5xx or anything the schema does not document."""
    gateway = start_gateway(env={"PULSE_MAX_BODY_BYTES": str(MAX_BODY_BYTES)})
    run_schemathesis(gateway).check(
        {
            PUBLISH: {200, 400, 413, 422},
            CHANNELS: {200},
            HISTORY: {200, 400, 422},
            HEALTH: {200},
            LIVE: {200},
            METRICS: {200},
            RANGE: {200, 400, 422},
            READY: {200},
            WRITE_V2: {204, 400},
            WRITE_V1: {204, 400},
        }
    )


SECRET = secrets.token_urlsafe(32)
IDENTITIES: dict[str, tuple[dict[str, list[str]] | None, dict[str, set[int]]]] = {
    # Whatever Authorization header schemathesis makes up (or none): never a valid token.
    "anonymous": (
        None,
        {
            PUBLISH: {401},
            CHANNELS: {401},
            HISTORY: {401},
            RANGE: {401},
            HEALTH: {200},
            LIVE: {200},
            METRICS: {200},
            WRITE_V2: {401},
            WRITE_V1: {401},
        },
    ),
    "reader": (
        {"subscribe": ["data:*"], "publish": []},
        {PUBLISH: {403}, CHANNELS: {200}, HISTORY: {200, 403}, RANGE: {200, 403}},
    ),
    "writer": ({"subscribe": ["*"], "publish": ["*"]}, {PUBLISH: {200, 413, 422}, HISTORY: {200}}),
}


@pytest.mark.parametrize("identity", IDENTITIES)
def test_gateway_with_auth_conforms_to_its_schema(start_gateway: StartGateway, identity: str) -> None:
    """With auth on, each identity's 401s, 403s and successes are all documented, and none is a 5xx."""
    gateway = start_gateway(env={"PULSE_SECRET": SECRET, "PULSE_MAX_BODY_BYTES": str(MAX_BODY_BYTES)})
    channels, expected = IDENTITIES[identity]
    headers = None
    if channels is not None:
        token = mint_token(SECRET, identity, ttl=600, **channels)
        headers = {"Authorization": f"Bearer {token}"}
    run_schemathesis(gateway, headers).check(expected)


def test_a_channel_with_a_slash_or_newline_gets_the_documented_400(gateway: GatewayProcess) -> None:
    """A `/` or a newline in a channel (which Starlette's `:path` does not match) is a bad channel
    (400), not a 404."""
    responses = [
        httpx.post(f"{gateway.http_url}/api/publish/chat:a%2Fb", json={"text": "hi"}),
        httpx.post(f"{gateway.http_url}/api/publish/chat:lobby/", json={"text": "hi"}),
        httpx.post(f"{gateway.http_url}/api/publish/chat:a%0Ab", json={"text": "hi"}),
        httpx.get(f"{gateway.http_url}/api/channels/chat:a/b/history"),
        httpx.get(f"{gateway.http_url}/api/channels/chat:a%0Ab/history"),
    ]
    for response in responses:
        assert response.status_code == 400, response.text
        assert response.json()["detail"].startswith("bad_channel:")
