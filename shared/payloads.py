"""What a publication carries (the envelope's ``data``), one model per namespace.

Publishers send the *input* form; the gateway validates it and stores the *published* form, which is
what subscribers and history readers get back:

- ``data:``   ``DataPoint``: ``ts`` filled by the server when missing.
- ``chat:``   ``ChatPost`` in, ``ChatMessage`` out: the gateway adds ``id`` and ``sender``.
- ``notify:`` ``Notification`` in and out.
"""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from shared.channels import NAME_PATTERN, DataChannelName, Namespace

MAX_SERIES_PER_POINT = 256
MAX_CHAT_TEXT = 2000
MAX_TITLE = 200
MAX_BODY = 2000

FiniteNumber = Annotated[float, Field(strict=True, allow_inf_nan=False)]
"""A JSON number that is neither NaN nor infinite; strings and booleans are refused."""

SeriesName = Annotated[str, StringConstraints(pattern=f"^{NAME_PATTERN}$")]
Timestamp = Annotated[float, Field(strict=True, allow_inf_nan=False, gt=0)]


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataPoint(_Payload):
    ts: Timestamp | None = None
    """Unix seconds when the value was measured; the gateway fills its own clock when absent."""
    values: Annotated[dict[SeriesName, FiniteNumber], Field(min_length=1, max_length=MAX_SERIES_PER_POINT)]


class ChatPost(_Payload):
    text: Annotated[str, Field(min_length=1, max_length=MAX_CHAT_TEXT)]


class ChatMessage(_Payload):
    id: str
    sender: str
    """The publishing connection's identity, set by the gateway, never taken from the payload."""
    text: str


NotificationLevel = Literal["info", "warning", "error"]


class Notification(_Payload):
    level: NotificationLevel
    title: Annotated[str, Field(min_length=1, max_length=MAX_TITLE)]
    body: Annotated[str, Field(max_length=MAX_BODY)] = ""
    channel: DataChannelName | None = None
    """The ``data:`` channel it is about, if any: the dashboard marks it on that channel's chart."""


INPUT_MODELS: dict[Namespace, type[_Payload]] = {
    Namespace.DATA: DataPoint,
    Namespace.CHAT: ChatPost,
    Namespace.NOTIFY: Notification,
}
"""The model a publisher's payload must satisfy, per namespace."""

PUBLISHED_MODELS: dict[Namespace, type[_Payload]] = {
    Namespace.DATA: DataPoint,
    Namespace.CHAT: ChatMessage,
    Namespace.NOTIFY: Notification,
}
"""The model of ``data`` in a ``pub`` envelope, per namespace."""


def parse_published(namespace: Namespace, data: dict[str, Any]) -> _Payload:
    """Read a received envelope's ``data`` as its namespace's published model."""
    return PUBLISHED_MODELS[namespace].model_validate(data)
