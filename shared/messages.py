"""Frames on ``GET /ws``: client operations, server messages, and their parsers.

A client frame is one JSON object with an ``op``; it may carry an ``id`` that the reply echoes as
``ref``. A server frame is one JSON object with a ``type``, or a JSON array of them (the gateway packs
what is pending for a client into one frame under load). ``parse_client_op`` turns any bad input into a
``ProtocolError`` carrying the error code to answer with; it never raises anything else.
"""

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic_core import from_json

from shared.channels import Channel
from shared.codes import ErrorCode

MAX_HISTORY_REQUEST = 10_000

RequestId = Annotated[int, Field(strict=True)] | Annotated[str, Field(max_length=64)]
"""An op's ``id``: an integer or a string of at most 64 characters (not a bool, not a float)."""


def _check_channel(text: str) -> str:
    Channel.parse(text)  # raises ChannelError (a ValueError), reported at loc ("channel",)
    return text


ChannelName = Annotated[str, AfterValidator(_check_channel)]
ClientId = Annotated[str, Field(min_length=1, max_length=64)]


class StreamPosition(BaseModel):
    """Where a subscriber is in a channel's stream: the last offset it saw, in which epoch."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    offset: Annotated[int, Field(strict=True, ge=0)]
    epoch: Annotated[str, Field(max_length=64)]


# --- client operations -------------------------------------------------------------------------


class _Op(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: RequestId | None = None


class AuthOp(_Op):
    op: Literal["auth"]
    token: Annotated[str, Field(min_length=1, max_length=8192)]


class SubscribeOp(_Op):
    op: Literal["subscribe"]
    channel: ChannelName
    since: StreamPosition | None = None
    history: Annotated[int, Field(strict=True, ge=0, le=MAX_HISTORY_REQUEST)] | None = None


class UnsubscribeOp(_Op):
    op: Literal["unsubscribe"]
    channel: ChannelName


class PublishOp(_Op):
    op: Literal["publish"]
    channel: ChannelName
    data: dict[str, Any]


class DirectOp(_Op):
    op: Literal["direct"]
    to: ClientId
    data: dict[str, Any]


class PresenceOp(_Op):
    op: Literal["presence"]
    channel: ChannelName


class PingOp(_Op):
    op: Literal["ping"]


ClientOp = AuthOp | SubscribeOp | UnsubscribeOp | PublishOp | DirectOp | PresenceOp | PingOp

_OPS: dict[str, type[_Op]] = {
    "auth": AuthOp,
    "subscribe": SubscribeOp,
    "unsubscribe": UnsubscribeOp,
    "publish": PublishOp,
    "direct": DirectOp,
    "presence": PresenceOp,
    "ping": PingOp,
}


class ProtocolError(Exception):
    """Bad input from a client, with the error code and the ``ref`` to answer with."""

    def __init__(self, code: ErrorCode, detail: str, ref: int | str | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.ref = ref


def unknown_op(op: object, ref: RequestId | None) -> ProtocolError:
    """The error for an ``op`` the gateway does not know, naming the ones it does."""
    known = ", ".join(_OPS)
    return ProtocolError(ErrorCode.UNKNOWN_OP, f"unknown op {str(op)[:40]!r}; known ops: {known}", ref)


def describe_validation_error(error: ValidationError, limit: int = 3) -> str:
    """A short human-readable summary: ``where: what`` for the first few problems."""
    parts = []
    for item in error.errors(include_url=False)[:limit]:
        where = ".".join(str(part) for part in item["loc"]) or "frame"
        parts.append(f"{where}: {item['msg']}")
    more = len(error.errors()) - limit
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)


_REQUEST_ID: TypeAdapter[RequestId] = TypeAdapter(RequestId)


def _ref_of(raw: dict[str, Any]) -> RequestId | None:
    """The frame's ``id`` if it follows the ``RequestId`` rule, so even an error reply can carry it."""
    try:
        return _REQUEST_ID.validate_python(raw.get("id"))
    except ValidationError:
        return None


def parse_client_op(frame: str | bytes) -> ClientOp:
    """Parse one client frame, or raise ``ProtocolError`` with the code the contract prescribes."""
    try:
        # pydantic-core's parser, not json.loads: it refuses lone surrogates (which could not be encoded
        # back into a reply) and nesting past a fixed depth, both as plain invalid JSON.
        raw = from_json(frame)
    except ValueError as exc:
        raise ProtocolError(ErrorCode.BAD_JSON, f"frame is not valid JSON: {exc}") from None
    except TypeError:
        # A str holding a lone surrogate cannot be read as UTF-8, and pydantic-core reports that as a
        # TypeError rather than a ValueError: it is still text that is not JSON, not a crash.
        raise ProtocolError(ErrorCode.BAD_JSON, "frame is not valid JSON: not valid UTF-8 text") from None
    if not isinstance(raw, dict):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "a client frame must be a JSON object with an 'op'")
    ref = _ref_of(raw)
    op = raw.get("op")
    if op is None:
        raise ProtocolError(ErrorCode.BAD_REQUEST, "missing 'op'", ref)
    model = _OPS.get(op) if isinstance(op, str) else None
    if model is None:
        raise unknown_op(op, ref)
    try:
        parsed: ClientOp = model.model_validate(raw)  # type: ignore[assignment]
    except ValidationError as exc:
        on_channel = any(err["loc"][:1] == ("channel",) for err in exc.errors())
        code = ErrorCode.BAD_CHANNEL if on_channel else ErrorCode.BAD_REQUEST
        raise ProtocolError(code, describe_validation_error(exc), ref) from None
    return parsed


# --- server messages ---------------------------------------------------------------------------


class _Msg(BaseModel):
    # Clients ignore fields they do not know, so the server may add fields without a new protocol.
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class Welcome(_Msg):
    type: Literal["welcome"] = "welcome"
    client_id: str
    protocol: int
    name: str
    """The connection's identity (token ``sub``, ``name`` query parameter, or its client_id)."""
    auth_required: bool = False
    """True when the client must still send an ``auth`` op (within the auth timeout)."""


class Authenticated(_Msg):
    type: Literal["authenticated"] = "authenticated"
    ref: RequestId | None = None
    name: str
    expires: float | None = None


class Subscribed(_Msg):
    type: Literal["subscribed"] = "subscribed"
    ref: RequestId | None = None
    channel: str
    offset: int
    epoch: str
    recovered: bool


class Unsubscribed(_Msg):
    type: Literal["unsubscribed"] = "unsubscribed"
    ref: RequestId | None = None
    channel: str


class Ack(_Msg):
    type: Literal["ack"] = "ack"
    ref: RequestId | None = None
    offset: int | None = None
    """The publication's offset; absent in the ack of a ``direct`` message."""


class Pub(_Msg):
    type: Literal["pub"] = "pub"
    channel: str
    offset: int
    epoch: str
    ts: float
    """Server clock (unix seconds) when the gateway accepted the publication."""
    data: dict[str, Any]


class DirectMessage(_Msg):
    type: Literal["direct"] = "direct"
    sender: str = Field(alias="from")
    """The sending connection's client_id (so the target can answer)."""
    name: str
    data: dict[str, Any]


class PresenceEntry(_Msg):
    client_id: str
    name: str


class Presence(_Msg):
    type: Literal["presence"] = "presence"
    ref: RequestId | None = None
    channel: str
    clients: list[PresenceEntry]


class Join(_Msg):
    type: Literal["join"] = "join"
    channel: str
    client_id: str
    name: str


class Leave(_Msg):
    type: Literal["leave"] = "leave"
    channel: str
    client_id: str
    name: str


class Pong(_Msg):
    type: Literal["pong"] = "pong"
    ref: RequestId | None = None


class Error(_Msg):
    type: Literal["error"] = "error"
    ref: RequestId | None = None
    code: ErrorCode
    detail: str


ServerMessage = Annotated[
    Welcome
    | Authenticated
    | Subscribed
    | Unsubscribed
    | Ack
    | Pub
    | DirectMessage
    | Presence
    | Join
    | Leave
    | Pong
    | Error,
    Field(discriminator="type"),
]

_SERVER_FRAME: TypeAdapter[ServerMessage | list[ServerMessage]] = TypeAdapter(
    ServerMessage | list[ServerMessage]
)


def encode(message: _Msg) -> str:
    """The JSON text of one server message (fields left as None are omitted)."""
    return message.model_dump_json(by_alias=True, exclude_none=True)


def parse_server_frame(frame: str | bytes) -> list[ServerMessage]:
    """Parse a server frame (one message or an array of them) into a list of messages."""
    parsed = _SERVER_FRAME.validate_json(frame)
    return parsed if isinstance(parsed, list) else [parsed]
