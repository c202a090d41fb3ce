"""The gateway's HTTP API as publishers use it: a health check and ``POST /api/publish/{channel}``.

``publish`` never raises for what the network or the gateway does; it answers with one of three
outcomes, so the run loop decides what each means (retry, report, give up) in one place:

- ``Published``: the gateway stored the payloads.
- ``Rejected``: a 4xx; sending the same payloads again would fail the same way.
- ``Failed``: a transport error, a 5xx or a 429 (rate limited); the same request may succeed later.

``GatewayAPI`` (httpx, blocking) and ``AsyncGatewayAPI`` (asyncio) differ only in how they wait: both
build their requests with the same functions and read the answers with the same functions, so the two
can never disagree on what an answer means.
"""

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

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


_Client = TypeVar("_Client", httpx.Client, httpx.AsyncClient)
_Health = TypeVar("_Health")
_Outcome = TypeVar("_Outcome")


def _client_options(base_url: str, token: str | None) -> dict[str, Any]:
    return {
        "base_url": base_url.rstrip("/"),
        "headers": {"Authorization": f"Bearer {token}"} if token else {},
        "timeout": httpx.Timeout(REQUEST_TIMEOUT, connect=CONNECT_TIMEOUT),
    }


def _health_of(response: httpx.Response) -> Health:
    if response.status_code not in (200, 503):
        raise GatewayUnreachableError(
            f"GET /healthz answered {response.status_code} {response.reason_phrase}"
        )
    try:
        return Health.model_validate_json(response.content)
    except ValidationError:
        raise GatewayUnreachableError("GET /healthz did not answer like a Pulseboard gateway") from None


def _publish_request(
    client: httpx.Client | httpx.AsyncClient,
    channel: Channel,
    payloads: Sequence[BaseModel],
    idempotency_key: str,
    params: Mapping[str, str] | None,
) -> httpx.Request:
    return client.build_request(
        "POST",
        f"/api/publish/{channel}",
        json=[payload.model_dump(exclude_none=True) for payload in payloads],
        params=params,
        headers={"Idempotency-Key": idempotency_key},
    )


def _outcome_of(response: httpx.Response) -> Outcome:
    if response.status_code == 429:
        # Rate limited: the same payloads are welcome a little later, so this is no rejection.
        return Failed(f"HTTP 429: {error_detail(response)}")
    if 400 <= response.status_code < 500:
        return Rejected(response.status_code, error_detail(response))
    if response.status_code != 200:
        return Failed(f"HTTP {response.status_code}: {error_detail(response)}")
    try:
        return Published(PublishResult.model_validate_json(response.content).offsets)
    except ValidationError:
        return Failed("HTTP 200 without a valid PublishResult body")


class _GatewayClient(Generic[_Client, _Health, _Outcome], ABC):
    """The API once, over either httpx client: subclasses only say how a request is sent and waited for
    (``_Health`` and ``_Outcome`` are the answers, or awaitables of them)."""

    def __init__(self, base_url: str, client: _Client) -> None:
        self.base_url = base_url.rstrip("/")
        self._client: _Client = client

    def health(self) -> _Health:
        """The gateway's health (``ok`` or ``degraded``), or ``GatewayUnreachableError`` saying why not."""
        return self._send_health(self._client.build_request("GET", "/healthz"))

    def publish(
        self,
        channel: Channel,
        payloads: Sequence[BaseModel],
        *,
        idempotency_key: str,
        params: Mapping[str, str] | None = None,
    ) -> _Outcome:
        """Publish ``payloads`` in one request; a retry with the same key publishes them at most once."""
        return self._send_publish(_publish_request(self._client, channel, payloads, idempotency_key, params))

    @abstractmethod
    def _send_health(self, request: httpx.Request) -> _Health: ...

    @abstractmethod
    def _send_publish(self, request: httpx.Request) -> _Outcome: ...


class GatewayAPI(_GatewayClient[httpx.Client, Health, Outcome]):
    """The blocking client (httpx's client is thread-safe, so threads may share one)."""

    def __init__(self, base_url: str, token: str | None = None) -> None:
        super().__init__(base_url, httpx.Client(**_client_options(base_url, token)))

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "GatewayAPI":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send_health(self, request: httpx.Request) -> Health:
        try:
            response = self._client.send(request)
        except httpx.RequestError as exc:
            raise GatewayUnreachableError(_describe(exc)) from None
        return _health_of(response)

    def _send_publish(self, request: httpx.Request) -> Outcome:
        try:
            response = self._client.send(request)
        except httpx.RequestError as exc:
            return Failed(_describe(exc))
        return _outcome_of(response)


class AsyncGatewayAPI(_GatewayClient[httpx.AsyncClient, Awaitable[Health], Awaitable[Outcome]]):
    """``GatewayAPI`` for asyncio: the same requests and outcomes, awaited."""

    def __init__(self, base_url: str, token: str | None = None) -> None:
        super().__init__(base_url, httpx.AsyncClient(**_client_options(base_url, token)))

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> "AsyncGatewayAPI":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _send_health(self, request: httpx.Request) -> Health:
        try:
            response = await self._client.send(request)
        except httpx.RequestError as exc:
            raise GatewayUnreachableError(_describe(exc)) from None
        return _health_of(response)

    async def _send_publish(self, request: httpx.Request) -> Outcome:
        try:
            response = await self._client.send(request)
        except httpx.RequestError as exc:
            return Failed(_describe(exc))
        return _outcome_of(response)
