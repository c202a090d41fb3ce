"""The gateway's HTTP API as publishers use it: a health check and ``POST /api/publish/{channel}``.

``publish`` never raises for what the network or the gateway does; it answers with one of three
outcomes, so the run loop decides what each means (retry, report, give up) in one place:

- ``Published``: the gateway stored the payloads.
- ``Rejected``: a 4xx; sending the same payloads again would fail the same way.
- ``Failed``: a transport error or a 5xx; the same request may succeed later.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import httpx
from pydantic import BaseModel, ValidationError

from shared.api import ErrorBody, Health, PublishResult
from shared.channels import Channel

CONNECT_TIMEOUT = 3.0
REQUEST_TIMEOUT = 10.0


class GatewayUnreachableError(Exception):
    """``/healthz`` did not answer like a Pulseboard gateway."""


@dataclass(frozen=True, slots=True)
class Published:
    offsets: list[int]


@dataclass(frozen=True, slots=True)
class Rejected:
    status: int
    detail: str


@dataclass(frozen=True, slots=True)
class Failed:
    reason: str


Outcome = Published | Rejected | Failed


def _describe(exc: httpx.RequestError) -> str:
    # Some httpx errors have an empty message; the class name still says what happened.
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def error_detail(response: httpx.Response) -> str:
    """What a gateway's error answer says: its ``detail``, else the start of its text."""
    try:
        return ErrorBody.model_validate_json(response.content).detail
    except ValidationError:
        # Not the documented {"detail": "..."} (a proxy's page, or FastAPI's list of validation errors).
        return response.text.strip()[:300] or response.reason_phrase


class GatewayAPI:
    def __init__(self, base_url: str, token: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(REQUEST_TIMEOUT, connect=CONNECT_TIMEOUT),
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "GatewayAPI":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def health(self) -> Health:
        """The gateway's health (``ok`` or ``degraded``), or ``GatewayUnreachableError`` saying why not."""
        try:
            response = self._client.get("/healthz")
        except httpx.RequestError as exc:
            raise GatewayUnreachableError(_describe(exc)) from None
        if response.status_code not in (200, 503):
            raise GatewayUnreachableError(
                f"GET /healthz answered {response.status_code} {response.reason_phrase}"
            )
        try:
            return Health.model_validate_json(response.content)
        except ValidationError:
            raise GatewayUnreachableError("GET /healthz did not answer like a Pulseboard gateway") from None

    def publish(
        self,
        channel: Channel,
        payloads: Sequence[BaseModel],
        *,
        idempotency_key: str,
        params: Mapping[str, str] | None = None,
    ) -> Outcome:
        """Publish ``payloads`` in one request; a retry with the same key publishes them at most once."""
        body = [payload.model_dump(exclude_none=True) for payload in payloads]
        try:
            response = self._client.post(
                f"/api/publish/{channel}",
                json=body,
                params=params,
                headers={"Idempotency-Key": idempotency_key},
            )
        except httpx.RequestError as exc:
            return Failed(_describe(exc))
        if 400 <= response.status_code < 500:
            return Rejected(response.status_code, error_detail(response))
        if response.status_code != 200:
            return Failed(f"HTTP {response.status_code}: {error_detail(response)}")
        try:
            return Published(PublishResult.model_validate_json(response.content).offsets)
        except ValidationError:
            return Failed("HTTP 200 without a valid PublishResult body")
