"""Turn what a publisher sent into what the broker stores: validate per namespace, then enrich.

Shared by ``POST /api/publish/{channel}`` and the WebSocket ``publish`` op, so both accept exactly the
same payloads and produce exactly the same publications.
"""

import time
import uuid
from typing import Any

from pydantic import TypeAdapter, ValidationError
from pydantic_core import from_json

from shared.api import MAX_BATCH
from shared.channels import Channel, Namespace
from shared.codes import ErrorCode
from shared.messages import describe_validation_error
from shared.payloads import INPUT_MODELS, ChatPost, DataPoint, Notification

_LENGTH_ERRORS = {"string_too_long", "too_long"}

_ONE: dict[Namespace, TypeAdapter[Any]] = {ns: TypeAdapter(model) for ns, model in INPUT_MODELS.items()}
_MANY: dict[Namespace, TypeAdapter[list[Any]]] = {
    ns: TypeAdapter(list[model])  # type: ignore[valid-type]
    for ns, model in INPUT_MODELS.items()
}


class PayloadError(Exception):
    def __init__(self, code: ErrorCode, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def _payload_error(exc: ValidationError) -> PayloadError:
    too_long = any(err["type"] in _LENGTH_ERRORS for err in exc.errors())
    code = ErrorCode.TOO_LARGE if too_long else ErrorCode.BAD_REQUEST
    return PayloadError(code, describe_validation_error(exc))


def parse_one(channel: Channel, data: dict[str, Any]) -> Any:
    """Validate one payload (already decoded JSON) for ``channel``'s namespace."""
    try:
        return _ONE[channel.namespace].validate_python(data)
    except ValidationError as exc:
        raise _payload_error(exc) from None


def parse_body(channel: Channel, body: bytes) -> list[Any]:
    """Validate an HTTP publish body: one payload object or a JSON array of at most ``MAX_BATCH``."""
    try:
        decoded = from_json(body)
    except ValueError as exc:
        raise PayloadError(ErrorCode.BAD_JSON, f"body is not valid JSON: {exc}") from None
    # Count before validating: refusing a 190 000-item body must not cost a second of the event loop.
    if isinstance(decoded, list):
        if not decoded:
            raise PayloadError(ErrorCode.BAD_REQUEST, "empty batch: send at least one payload")
        if len(decoded) > MAX_BATCH:
            raise PayloadError(ErrorCode.TOO_LARGE, f"batch of {len(decoded)} payloads; at most {MAX_BATCH}")
    # The body's own shape picks the validator: a union of one-or-many would try both on a bad payload
    # and cost more on a good one.
    try:
        if isinstance(decoded, list):
            return _MANY[channel.namespace].validate_python(decoded)
        return [_ONE[channel.namespace].validate_python(decoded)]
    except ValidationError as exc:
        raise _payload_error(exc) from None


def enrich(payloads: list[Any], *, sender: str) -> list[dict[str, Any]]:
    """The stored form: data points get the server clock when they have none, chat gets id and sender."""
    now = time.time()
    stored: list[dict[str, Any]] = []
    for payload in payloads:
        if isinstance(payload, DataPoint):
            stored.append({"ts": payload.ts if payload.ts is not None else now, "values": payload.values})
        elif isinstance(payload, ChatPost):
            stored.append({"id": uuid.uuid4().hex, "sender": sender, "text": payload.text})
        elif isinstance(payload, Notification):
            stored.append(payload.model_dump(exclude_none=True))  # `channel` only when it names one
        else:
            raise TypeError(f"not a payload model: {type(payload).__name__}")
    return stored
