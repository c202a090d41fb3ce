"""Property-based fuzzing of the wire contract in shared/: every schema round-trips, bad input fails cleanly.

Each model in ``shared/`` has a strategy that builds valid instances; ``test_every_shared_schema_is_covered``
fails when a model, dataclass or enum is added to ``shared/`` without one. The client-frame parser is fed
arbitrary text, bytes, JSON and mutated valid ops: it must answer with an op or a ``ProtocolError``, and
the code and ``ref`` must be the ones docs/protocol.md prescribes.
"""

import dataclasses
import enum
import importlib
import inspect
import json
import math
import pkgutil
import random
import re
from typing import Any, TypeGuard, get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

import shared
from gateway.classic import ChatDialect
from gateway.dialects import NATIVE
from gateway.publishing import PayloadError, parse_body, parse_one
from shared.api import (
    BrokerHealth,
    ChannelInfo,
    ChannelList,
    ErrorBody,
    Health,
    HistoryHealth,
    HistoryHole,
    HistoryPage,
    HistoryRange,
    InfluxErrorBody,
    Liveness,
    ParameterError,
    ParameterErrors,
    PublishResult,
    RangeResolution,
    Readiness,
    SeriesRange,
)
from shared.backoff import Backoff
from shared.channels import Channel, ChannelError, Namespace
from shared.codes import RECONNECT_CODES, CloseCode, ErrorCode, should_reconnect
from shared.messages import (
    MAX_HISTORY_REQUEST,
    Ack,
    Authenticated,
    AuthOp,
    ClientOp,
    DirectMessage,
    DirectOp,
    Error,
    Join,
    Leave,
    PingOp,
    Pong,
    Presence,
    PresenceEntry,
    PresenceOp,
    ProtocolError,
    Pub,
    PublishOp,
    ServerMessage,
    StreamPosition,
    Subscribed,
    SubscribeOp,
    Unsubscribed,
    UnsubscribeOp,
    Welcome,
    encode,
    parse_client_op,
    parse_server_frame,
)
from shared.payloads import (
    MAX_BODY,
    MAX_CHAT_TEXT,
    MAX_SERIES_PER_POINT,
    MAX_TITLE,
    ChatMessage,
    ChatPost,
    DataPoint,
    Notification,
    NotificationLevel,
)
from tests.strategies import CHANNELS, FINITE, FUZZ, JSON_OBJECTS, JSON_VALUES, NAMES, texts

QUICK = settings(FUZZ, max_examples=25)

# --- strategies for valid values ------------------------------------------------------------------


REQUEST_IDS = st.integers() | texts(max_size=64)
OPTIONAL_IDS = st.none() | REQUEST_IDS
POSITIONS = st.builds(StreamPosition, offset=st.integers(min_value=0), epoch=texts(max_size=64))

CLIENT_OPS: dict[type[BaseModel], st.SearchStrategy[Any]] = {
    AuthOp: st.builds(AuthOp, op=st.just("auth"), id=OPTIONAL_IDS, token=texts(1, 8192)),
    SubscribeOp: st.builds(
        SubscribeOp,
        op=st.just("subscribe"),
        id=OPTIONAL_IDS,
        channel=CHANNELS,
        since=st.none() | POSITIONS,
        history=st.none() | st.integers(0, MAX_HISTORY_REQUEST),
    ),
    UnsubscribeOp: st.builds(UnsubscribeOp, op=st.just("unsubscribe"), id=OPTIONAL_IDS, channel=CHANNELS),
    PublishOp: st.builds(
        PublishOp, op=st.just("publish"), id=OPTIONAL_IDS, channel=CHANNELS, data=JSON_OBJECTS
    ),
    DirectOp: st.builds(DirectOp, op=st.just("direct"), id=OPTIONAL_IDS, to=texts(1, 64), data=JSON_OBJECTS),
    PresenceOp: st.builds(PresenceOp, op=st.just("presence"), id=OPTIONAL_IDS, channel=CHANNELS),
    PingOp: st.builds(PingOp, op=st.just("ping"), id=OPTIONAL_IDS),
}

PRESENCE_ENTRIES = st.builds(PresenceEntry, client_id=texts(), name=texts())
PUBS = st.builds(Pub, channel=texts(), offset=st.integers(), epoch=texts(), ts=FINITE, data=JSON_OBJECTS)

SERVER_MESSAGES: dict[type[BaseModel], st.SearchStrategy[Any]] = {
    Welcome: st.builds(
        Welcome, client_id=texts(), protocol=st.integers(), name=texts(), auth_required=st.booleans()
    ),
    Authenticated: st.builds(Authenticated, ref=OPTIONAL_IDS, name=texts(), expires=st.none() | FINITE),
    Subscribed: st.builds(
        Subscribed,
        ref=OPTIONAL_IDS,
        channel=texts(),
        offset=st.integers(),
        epoch=texts(),
        recovered=st.booleans(),
    ),
    Unsubscribed: st.builds(Unsubscribed, ref=OPTIONAL_IDS, channel=texts()),
    Ack: st.builds(Ack, ref=OPTIONAL_IDS, offset=st.none() | st.integers()),
    Pub: PUBS,
    DirectMessage: st.builds(DirectMessage, sender=texts(), name=texts(), data=JSON_OBJECTS),
    Presence: st.builds(
        Presence, ref=OPTIONAL_IDS, channel=texts(), clients=st.lists(PRESENCE_ENTRIES, max_size=4)
    ),
    Join: st.builds(Join, channel=texts(), client_id=texts(), name=texts()),
    Leave: st.builds(Leave, channel=texts(), client_id=texts(), name=texts()),
    Pong: st.builds(Pong, ref=OPTIONAL_IDS),
    Error: st.builds(Error, ref=OPTIONAL_IDS, code=st.sampled_from(ErrorCode), detail=texts()),
}

SERIES_VALUES = FINITE | st.integers(-(2**53), 2**53)
CHANNEL_INFOS = st.builds(
    ChannelInfo,
    name=CHANNELS,
    offset=st.integers(min_value=0),
    epoch=texts(max_size=64),
    subscribers=st.integers(min_value=0),
    rate=st.floats(min_value=0, allow_infinity=False),
)
PARAMETER_ERRORS = st.builds(
    ParameterError, loc=st.lists(st.integers() | texts(max_size=10), max_size=3), msg=texts(), type=texts()
)
BROKER_HEALTHS = st.builds(BrokerHealth, ok=st.booleans(), backend=texts(), detail=texts())
COUNTS = st.integers(min_value=0)
TIMES = st.floats(min_value=0, allow_infinity=False)
HISTORY_HOLES = st.builds(HistoryHole, channel=CHANNELS, first=TIMES, last=TIMES, samples=COUNTS)
HISTORY_HEALTHS = st.builds(
    HistoryHealth,
    ok=st.booleans(),
    backend=texts(),
    detail=texts(),
    pending=COUNTS,
    stored=COUNTS,
    dropped=COUNTS,
    too_old=COUNTS,
    holes=st.lists(HISTORY_HOLES, max_size=2),
)
RESOLUTIONS = st.builds(RangeResolution, tier=st.sampled_from(["raw", "1s", "1m", "1h"]), bucket=TIMES)
SERIES_RANGES = st.integers(0, 4).flatmap(
    lambda n: st.builds(
        SeriesRange,
        t=st.lists(TIMES, min_size=n, max_size=n),
        min=st.lists(FINITE, min_size=n, max_size=n),
        max=st.lists(FINITE, min_size=n, max_size=n),
        mean=st.lists(FINITE, min_size=n, max_size=n),
        last=st.lists(FINITE, min_size=n, max_size=n),
        count=st.lists(COUNTS, min_size=n, max_size=n),
    )
)

# Models that travel as plain JSON bodies (HTTP, or a pub's ``data``), not as ``/ws`` frames.
JSON_MODELS: dict[type[BaseModel], st.SearchStrategy[Any]] = {
    StreamPosition: POSITIONS,
    PresenceEntry: PRESENCE_ENTRIES,
    DataPoint: st.builds(
        DataPoint,
        ts=st.none() | st.floats(min_value=0, exclude_min=True, allow_infinity=False),
        values=st.dictionaries(NAMES, SERIES_VALUES, min_size=1, max_size=MAX_SERIES_PER_POINT),
    ),
    ChatPost: st.builds(ChatPost, text=texts(1, MAX_CHAT_TEXT)),
    ChatMessage: st.builds(
        ChatMessage, id=st.uuids().map(lambda u: u.hex), sender=NAMES, text=texts(1, MAX_CHAT_TEXT)
    ),
    Notification: st.builds(
        Notification,
        level=st.sampled_from(get_args(NotificationLevel)),
        title=texts(1, MAX_TITLE),
        body=texts(0, MAX_BODY),
    ),
    PublishResult: st.builds(PublishResult, offsets=st.lists(st.integers(min_value=1), max_size=10)),
    ChannelInfo: CHANNEL_INFOS,
    ChannelList: st.builds(ChannelList, channels=st.lists(CHANNEL_INFOS, max_size=4)),
    HistoryPage: st.builds(
        HistoryPage,
        channel=CHANNELS,
        offset=st.integers(min_value=0),
        epoch=texts(max_size=64),
        recovered=st.booleans(),
        publications=st.lists(PUBS, max_size=2),
    ),
    BrokerHealth: BROKER_HEALTHS,
    Health: st.builds(
        Health,
        status=st.sampled_from(["ok", "degraded"]),
        broker=BROKER_HEALTHS,
        connections=st.integers(min_value=0),
        auth=st.booleans(),
        details=JSON_OBJECTS,
    ),
    HistoryHole: HISTORY_HOLES,
    HistoryHealth: HISTORY_HEALTHS,
    Liveness: st.builds(
        Liveness,
        status=st.sampled_from(["ok", "stalled"]),
        loop_lag=st.floats(min_value=0, allow_nan=False, allow_infinity=False),
        detail=st.text(max_size=80),
    ),
    Readiness: st.builds(
        Readiness,
        status=st.sampled_from(["ok", "degraded"]),
        broker=BROKER_HEALTHS,
        history=st.none() | HISTORY_HEALTHS,
    ),
    RangeResolution: RESOLUTIONS,
    SeriesRange: SERIES_RANGES,
    HistoryRange: st.builds(
        HistoryRange,
        channel=CHANNELS,
        start=TIMES,
        end=TIMES,
        resolution=RESOLUTIONS,
        position=st.none() | POSITIONS,
        series=st.dictionaries(NAMES, SERIES_RANGES, max_size=3),
    ),
    ErrorBody: st.builds(ErrorBody, detail=texts()),
    InfluxErrorBody: st.builds(
        InfluxErrorBody, code=texts(), message=texts(), line=st.none() | st.integers(min_value=1)
    ),
    ParameterError: PARAMETER_ERRORS,
    ParameterErrors: st.builds(ParameterErrors, detail=st.lists(PARAMETER_ERRORS, max_size=3)),
}

STRATEGIES = CLIENT_OPS | SERVER_MESSAGES | JSON_MODELS

# Bases that only share configuration: nothing on the wire is ever one of them.
ABSTRACT_BASES = {
    "shared.messages._Op",
    "shared.messages._Msg",
    "shared.payloads._Payload",
    "shared.api._Body",
}

# Schemas that are not pydantic models, with the property tests below that cover them.
OTHER_SCHEMAS: dict[type, str] = {
    Channel: "test_channel_parse_accepts_exactly_the_naming_rule",
    Namespace: "test_channel_parse_accepts_exactly_the_naming_rule",
    ErrorCode: "test_parser_answers_valid_json_as_the_contract_says",
    CloseCode: "test_should_reconnect_is_total_and_follows_the_close_code_table",
    Backoff: "test_backoff_delays_are_bounded_and_non_negative",
}


def _shared_schemas() -> set[type]:
    """Every class defined in a ``shared`` module that is a model, a dataclass or an enum."""
    found: set[type] = set()
    for info in pkgutil.iter_modules(shared.__path__):
        module = importlib.import_module(f"{shared.__name__}.{info.name}")
        for value in vars(module).values():
            if not inspect.isclass(value) or value.__module__ != module.__name__:
                continue
            if issubclass(value, BaseModel | enum.Enum) or dataclasses.is_dataclass(value):
                found.add(value)
    return found


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def test_every_shared_schema_is_covered() -> None:
    """Every model, dataclass and enum in shared/ has a strategy or a named property test here."""
    found = _shared_schemas()
    models = {cls for cls in found if issubclass(cls, BaseModel)}
    abstract = {cls for cls in models if _qualified(cls) in ABSTRACT_BASES}
    assert {_qualified(cls) for cls in abstract} == ABSTRACT_BASES
    missing = sorted(_qualified(cls) for cls in models - abstract - set(STRATEGIES))
    assert not missing, f"models in shared/ without a strategy in {__name__}: {missing}"
    others = found - models
    assert others == set(OTHER_SCHEMAS), f"schemas in shared/ without a property test: {others}"
    for test_name in OTHER_SCHEMAS.values():
        assert callable(globals().get(test_name)), test_name


def test_the_wire_unions_match_the_registries() -> None:
    """ClientOp and ServerMessage hold exactly the ops and messages given strategies here."""
    assert set(get_args(ClientOp)) == set(CLIENT_OPS)
    server_union = get_args(ServerMessage)[0]
    assert set(get_args(server_union)) == set(SERVER_MESSAGES)


# --- round trips ----------------------------------------------------------------------------------


def _by_name(models: dict[type[BaseModel], Any]) -> list[type[BaseModel]]:
    return sorted(models, key=lambda cls: cls.__name__)


@pytest.mark.parametrize("model", _by_name(CLIENT_OPS), ids=lambda cls: cls.__name__)
@QUICK
@given(data=st.data())
def test_client_ops_round_trip_through_the_parser(model: type[BaseModel], data: st.DataObject) -> None:
    """A valid op, written as the JSON a client sends, parses back to an equal op."""
    op = data.draw(CLIENT_OPS[model])
    assert parse_client_op(op.model_dump_json(exclude_none=True)) == op
    assert parse_client_op(json.dumps(op.model_dump(exclude_none=True), ensure_ascii=False)) == op


@pytest.mark.parametrize("model", _by_name(SERVER_MESSAGES), ids=lambda cls: cls.__name__)
@QUICK
@given(data=st.data())
def test_server_messages_round_trip_through_the_frame_parser(
    model: type[BaseModel], data: st.DataObject
) -> None:
    """encode() then parse_server_frame() gives back an equal message, with None fields left out."""
    message = data.draw(SERVER_MESSAGES[model])
    frame = encode(message)
    assert parse_server_frame(frame) == [message]
    assert parse_server_frame(frame.encode()) == [message]
    assert None not in json.loads(frame).values(), "fields left as None are left out"


@FUZZ
@given(messages=st.lists(st.one_of(*SERVER_MESSAGES.values()), min_size=1, max_size=4))
def test_packed_server_frames_round_trip(messages: list[ServerMessage]) -> None:
    """An array frame of encoded messages parses back to the same messages, in order."""
    frame = "[" + ",".join(encode(message) for message in messages) + "]"
    assert parse_server_frame(frame) == messages


@pytest.mark.parametrize("model", _by_name(JSON_MODELS), ids=lambda cls: cls.__name__)
@QUICK
@given(data=st.data())
def test_json_bodies_round_trip(model: type[BaseModel], data: st.DataObject) -> None:
    """Payloads, HTTP bodies and their parts survive model_dump_json and model_validate_json unchanged."""
    instance = data.draw(JSON_MODELS[model])
    assert model.model_validate_json(instance.model_dump_json(by_alias=True)) == instance
    assert model.model_validate(json.loads(instance.model_dump_json(exclude_none=True))) == instance


# --- the client-frame parser ----------------------------------------------------------------------

OP_FIELDS: dict[str, set[str]] = {
    get_args(op_model.model_fields["op"].annotation)[0]: set(op_model.model_fields) for op_model in CLIENT_OPS
}
CHANNEL_OPS = {name for name, fields in OP_FIELDS.items() if "channel" in fields}
CHANNEL_RULE = re.compile(r"(data|chat|notify):[A-Za-z0-9_.-]{1,64}")


def _is_request_id(value: object) -> bool:
    """docs/protocol.md §4.5: an integer (not a bool) or a string of at most 64 characters."""
    return type(value) is int or (type(value) is str and len(value) <= 64)


def _follows_channel_rule(value: object) -> bool:
    return isinstance(value, str) and CHANNEL_RULE.fullmatch(value) is not None


def _parse(frame: str | bytes) -> ClientOp | ProtocolError:
    """Run the gateway's parser; anything raised other than a well-formed ProtocolError fails the test."""
    outcome: ClientOp | ProtocolError
    try:
        outcome = NATIVE.parse(frame) if isinstance(frame, str) else parse_client_op(frame)
    except ProtocolError as error:
        outcome = error
    if isinstance(outcome, ProtocolError):
        assert isinstance(outcome.code, ErrorCode)
        assert outcome.ref is None or _is_request_id(outcome.ref)
        assert outcome.detail and len(outcome.detail) < 2000
    else:
        assert isinstance(outcome, get_args(ClientOp))
        # NaN or Infinity inside `data` are written back as null, so compare from the first rewrite on.
        written = outcome.model_dump_json(exclude_none=True)
        assert parse_client_op(written).model_dump_json(exclude_none=True) == written
    return outcome


def _check_contract(raw: object, outcome: ClientOp | ProtocolError) -> None:
    """docs/protocol.md §4.5, §5 and §7 for a frame that is valid JSON decoding to ``raw``."""
    if not isinstance(raw, dict):
        assert isinstance(outcome, ProtocolError)
        assert (outcome.code, outcome.ref) == (ErrorCode.BAD_REQUEST, None)
        return
    ident = raw.get("id")
    ref = ident if _is_request_id(ident) else None
    op = raw.get("op")
    if not isinstance(outcome, ProtocolError):
        assert op == outcome.op and set(raw) <= OP_FIELDS[outcome.op]
        assert ident is None or ref is not None, "an invalid id must be refused"
        assert outcome.id == ref and type(outcome.id) is type(ref)
        if outcome.op in CHANNEL_OPS:
            assert _follows_channel_rule(raw["channel"])
        return
    assert outcome.ref == ref and type(outcome.ref) is type(ref)
    if op is None:
        assert outcome.code == ErrorCode.BAD_REQUEST
    elif not isinstance(op, str) or op not in OP_FIELDS:
        assert outcome.code == ErrorCode.UNKNOWN_OP
    elif op in CHANNEL_OPS and "channel" in raw:
        bad_channel = not _follows_channel_rule(raw["channel"])
        assert outcome.code == (ErrorCode.BAD_CHANNEL if bad_channel else ErrorCode.BAD_REQUEST)
    else:
        assert outcome.code in (ErrorCode.BAD_REQUEST, ErrorCode.BAD_CHANNEL)
        if "channel" not in raw and op not in CHANNEL_OPS:
            assert outcome.code == ErrorCode.BAD_REQUEST


# Characters that make up JSON, so random text often gets past the first few bytes of the parser.
JSON_ALPHABET = st.sampled_from([*'{}[]:,"\\ \t\n0123456789.eE+-truefalsnNIity', "\\u", "op", "id"])
# Lone surrogates included: a str can hold them even though no UTF-8 frame can.
ANY_CHARACTER = st.characters(exclude_categories=()) | st.characters(categories=["Cs"])
ARBITRARY_TEXT = st.text(ANY_CHARACTER) | st.lists(JSON_ALPHABET | ANY_CHARACTER, max_size=60).map("".join)


@FUZZ
@given(frame=ARBITRARY_TEXT)
def test_parser_never_crashes_on_arbitrary_text(frame: str) -> None:
    """Any text, lone surrogates included, is an op or a ProtocolError; never another exception."""
    _parse(frame)


@FUZZ
@given(frame=st.binary(max_size=200))
def test_parser_never_crashes_on_arbitrary_bytes(frame: bytes) -> None:
    """Any bytes, invalid UTF-8 included, are an op or a ProtocolError; never another exception."""
    outcome = _parse(frame)
    try:
        frame.decode()
    except UnicodeDecodeError:
        assert isinstance(outcome, ProtocolError) and outcome.code == ErrorCode.BAD_JSON


NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf])
# Values chosen to sit on the rules' edges: ids (bool, float, 64/65 chars), history (10 000), offsets.
EDGE_VALUES = st.sampled_from(
    [None, True, False, 0, -1, 1.0, 1.5, "", "1", "x" * 64, "x" * 65, 10_000, 10_001, 2**63, -(2**63) - 1]
)
MUTANT_VALUES = (
    EDGE_VALUES
    | NON_FINITE
    | JSON_VALUES
    | CHANNELS
    | texts(max_size=80)
    | POSITIONS.map(lambda position: position.model_dump())
    | st.fixed_dictionaries({"offset": JSON_VALUES, "epoch": JSON_VALUES})
)
FIELD_NAMES = st.sampled_from(sorted(set.union(*OP_FIELDS.values()))) | texts(max_size=8)


@FUZZ
@given(raw=JSON_VALUES | st.dictionaries(FIELD_NAMES, MUTANT_VALUES, max_size=6))
def test_parser_answers_valid_json_as_the_contract_says(raw: object) -> None:
    """Valid JSON of any shape gets an op or the error code and ref docs/protocol.md prescribes."""
    outcome = _parse(json.dumps(raw))
    _check_contract(raw, outcome)


def _mutate(raw: dict[str, Any], data: st.DataObject) -> object:
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        kind = data.draw(st.sampled_from(["drop", "set", "op", "wrap"]), label="kind")
        if kind == "drop" and raw:
            raw.pop(data.draw(st.sampled_from(sorted(raw))))
        elif kind == "set":
            raw[data.draw(FIELD_NAMES)] = data.draw(MUTANT_VALUES)
        elif kind == "op":
            raw["op"] = data.draw(st.sampled_from(sorted(OP_FIELDS)) | MUTANT_VALUES)
        elif kind == "wrap" and data.draw(st.integers(0, 9)) == 0:
            return [raw]
    return raw


@FUZZ
@given(op=st.one_of(*CLIENT_OPS.values()), data=st.data())
def test_parser_answers_mutated_valid_ops_as_the_contract_says(op: BaseModel, data: st.DataObject) -> None:
    """A valid op with fields dropped, changed or added gets an op or the prescribed error."""
    raw = _mutate(op.model_dump(exclude_none=True), data)
    outcome = _parse(json.dumps(raw, ensure_ascii=data.draw(st.booleans())))
    _check_contract(raw, outcome)


@FUZZ
@given(op=st.one_of(*CLIENT_OPS.values()), data=st.data())
def test_parser_never_crashes_on_corrupted_valid_frames(op: BaseModel, data: st.DataObject) -> None:
    """A valid frame with characters inserted, deleted or cut short is an op or a ProtocolError."""
    frame = op.model_dump_json(exclude_none=True)
    for _ in range(data.draw(st.integers(1, 4), label="edits")):
        at = data.draw(st.integers(0, len(frame)), label="at")
        kind = data.draw(st.sampled_from(["insert", "delete", "replace", "cut"]), label="kind")
        piece = (
            data.draw(JSON_ALPHABET | ANY_CHARACTER, label="piece") if kind in ("insert", "replace") else ""
        )
        end = at if kind == "insert" else len(frame) if kind == "cut" else at + 1
        frame = frame[:at] + piece + frame[end:]
    _parse(frame)
    _parse(frame.encode(errors="surrogatepass"))


@QUICK
@given(op=st.sampled_from(sorted(CHANNEL_OPS)), channel=CHANNELS | ARBITRARY_TEXT | JSON_VALUES)
def test_parser_checks_every_channel_against_the_naming_rule(op: str, channel: object) -> None:
    """A channel op parses exactly when its channel follows the rule; otherwise it is bad_channel."""
    raw = {"op": op, "channel": channel, "id": 1} | ({"data": {}} if op == "publish" else {})
    outcome = _parse(json.dumps(raw, ensure_ascii=False))
    if _follows_channel_rule(channel):
        assert not isinstance(outcome, ProtocolError) and outcome.op == op
    else:
        assert isinstance(outcome, ProtocolError)
        assert outcome.code in (ErrorCode.BAD_CHANNEL, ErrorCode.BAD_JSON) and outcome.ref in (1, None)


@FUZZ
@given(
    text=texts(max_size=80) | (JSON_OBJECTS | st.fixed_dictionaries({"message": JSON_VALUES})).map(json.dumps)
)
def test_chat_dialect_turns_any_text_into_a_publish_or_bad_request(text: str) -> None:
    """/ws/chat publishes plain text or {"message": str} in its room; anything else is bad_request."""
    dialect = ChatDialect(Channel.parse("chat:room"))
    outcome: ClientOp | ProtocolError
    try:
        outcome = dialect.parse(text)
    except ProtocolError as error:
        outcome = error
    if isinstance(outcome, ProtocolError):
        assert outcome.code == ErrorCode.BAD_REQUEST
    else:
        assert isinstance(outcome, PublishOp) and outcome.channel == "chat:room"
        assert isinstance(outcome.data["text"], str)


# --- channels -------------------------------------------------------------------------------------


@FUZZ
@given(
    text=CHANNELS
    | ARBITRARY_TEXT
    | st.builds("{}:{}".format, st.sampled_from(["data", "chat", "notify", "Data", ""]), ARBITRARY_TEXT)
)
def test_channel_parse_accepts_exactly_the_naming_rule(text: str) -> None:
    """Channel.parse accepts `<data|chat|notify>:[A-Za-z0-9_.-]{1,64}`; the rest is a ChannelError."""
    outcome: Channel | ChannelError
    try:
        outcome = Channel.parse(text)
    except ChannelError as error:
        outcome = error
    if isinstance(outcome, ChannelError):
        assert not _follows_channel_rule(text)
        assert len(str(outcome)) < 300, "the reason echoes at most a short prefix of the input"
        return
    channel = outcome
    assert _follows_channel_rule(text)
    assert str(channel) == text and Channel.parse(str(channel)) == channel
    assert channel.namespace == Namespace(text.partition(":")[0])
    assert channel.durable == (channel.namespace is not Namespace.DATA)


@QUICK
@given(value=JSON_VALUES.filter(lambda value: not isinstance(value, str)))
def test_channel_parse_refuses_non_strings(value: object) -> None:
    """A channel that is not a string is a ChannelError, not a TypeError or AttributeError."""
    with pytest.raises(ChannelError):
        Channel.parse(value)  # type: ignore[arg-type]


# --- payloads -------------------------------------------------------------------------------------

# Everything a series value could be in JSON; only finite numbers other than booleans are valid.
ANY_SERIES_VALUE = SERIES_VALUES | NON_FINITE | st.booleans() | st.none() | texts(max_size=5)


def _is_finite_number(value: object) -> TypeGuard[float]:
    return type(value) in (int, float) and math.isfinite(value)  # type: ignore[arg-type]


def _validate_json(raw: object) -> DataPoint:
    return DataPoint.model_validate_json(json.dumps(raw))


def _payload_code(channel: str, data: object) -> ErrorCode | None:
    """The code the gateway answers a publish of ``data`` with (None: accepted)."""
    try:
        parse_one(Channel.parse(channel), data)  # type: ignore[arg-type]
    except PayloadError as error:
        return error.code
    return None


@FUZZ
@given(
    values=st.dictionaries(NAMES, ANY_SERIES_VALUE, min_size=1, max_size=8),
    ts=st.none() | ANY_SERIES_VALUE,
)
def test_data_points_accept_exactly_finite_numbers(values: dict[str, object], ts: object) -> None:
    """NaN, ±Infinity, strings, booleans and null are refused cleanly, in Python and as JSON text."""
    raw: dict[str, object] = {"values": values} | ({} if ts is None else {"ts": ts})
    finite = {name: float(value) for name, value in values.items() if _is_finite_number(value)}
    valid = len(finite) == len(values) and (ts is None or (_is_finite_number(ts) and ts > 0))
    for validate in (DataPoint.model_validate, _validate_json):
        if valid:
            point = validate(raw)
            assert point.values == finite
            assert all(type(value) is float for value in point.values.values())
        else:
            with pytest.raises(ValidationError):
                validate(raw)
    assert _payload_code("data:x", raw) == (None if valid else ErrorCode.BAD_REQUEST)
    body = json.dumps(raw).encode()
    assert _body_code("data:x", body) == (None if valid else ErrorCode.BAD_REQUEST)


def _body_code(channel: str, body: bytes) -> ErrorCode | None:
    try:
        parse_body(Channel.parse(channel), body)
    except PayloadError as error:
        return error.code
    return None


@QUICK
@given(count=st.integers(0, MAX_SERIES_PER_POINT + 20))
def test_series_count_limit(count: int) -> None:
    """1 to 256 series are accepted; none is bad_request, more than 256 is too_large."""
    raw = {"values": {f"s{i}": float(i) for i in range(count)}}
    expected = None if 1 <= count <= MAX_SERIES_PER_POINT else ErrorCode.BAD_REQUEST
    if count > MAX_SERIES_PER_POINT:
        expected = ErrorCode.TOO_LARGE
    assert _payload_code("data:x", raw) == expected


@QUICK
@given(
    text_length=st.integers(0, MAX_CHAT_TEXT + 50),
    title_length=st.integers(0, MAX_TITLE + 50),
    body_length=st.integers(0, MAX_BODY + 50),
    character=st.characters(exclude_categories=["Cs"]),
)
def test_text_length_limits(text_length: int, title_length: int, body_length: int, character: str) -> None:
    """Chat text, titles and bodies over their limit are too_large; an empty text or title is bad_request."""
    chat = {"text": character * text_length}
    expected = ErrorCode.BAD_REQUEST if text_length == 0 else None
    assert _payload_code("chat:x", chat) == (ErrorCode.TOO_LARGE if text_length > MAX_CHAT_TEXT else expected)
    notification = {"level": "info", "title": character * title_length, "body": character * body_length}
    too_long = title_length > MAX_TITLE or body_length > MAX_BODY
    expected = ErrorCode.BAD_REQUEST if title_length == 0 and not too_long else None
    assert _payload_code("notify:x", notification) == (ErrorCode.TOO_LARGE if too_long else expected)


@FUZZ
@given(
    channel=CHANNELS,
    data=JSON_OBJECTS
    | st.dictionaries(
        st.sampled_from(["text", "id", "sender", "level", "title", "body", "ts", "values"]), MUTANT_VALUES
    ),
)
def test_any_payload_is_accepted_or_refused_with_a_code(channel: str, data: dict[str, Any]) -> None:
    """Any publish payload is accepted or refused with a code; a chat payload with id or sender is refused."""
    code = _payload_code(channel, data)
    assert code in (None, ErrorCode.BAD_REQUEST, ErrorCode.TOO_LARGE)
    if channel.startswith("chat:") and ("id" in data or "sender" in data):
        assert code is not None


@FUZZ
@given(channel=CHANNELS, body=st.binary(max_size=100) | JSON_VALUES.map(lambda v: json.dumps(v).encode()))
def test_any_http_body_is_accepted_or_refused_with_a_code(channel: str, body: bytes) -> None:
    """An HTTP publish body of any bytes gives payloads or a PayloadError; never another exception."""
    code = _body_code(channel, body)
    assert code in (None, ErrorCode.BAD_JSON, ErrorCode.BAD_REQUEST, ErrorCode.TOO_LARGE)


@FUZZ
@given(frame=ARBITRARY_TEXT | st.binary(max_size=100) | JSON_VALUES.map(json.dumps))
def test_server_frame_parser_only_raises_validation_errors(frame: str | bytes) -> None:
    """The dashboard catches ValidationError around parse_server_frame: nothing else may escape it."""
    try:
        messages = parse_server_frame(frame)
    except ValidationError:
        return
    assert all(isinstance(message, tuple(SERVER_MESSAGES)) for message in messages)


# --- close codes and backoff ----------------------------------------------------------------------


@QUICK
@given(code=st.none() | st.sampled_from(CloseCode) | st.integers(-(2**31), 2**31))
def test_should_reconnect_is_total_and_follows_the_close_code_table(code: int | None) -> None:
    """should_reconnect answers every code: yes for a lost connection and the reconnect codes only."""
    expected = code is None or code == 1006 or code in RECONNECT_CODES
    assert should_reconnect(code) is expected
    assert not should_reconnect(CloseCode.UNAUTHORIZED)


Event = tuple[bool, float]


@FUZZ
@given(
    first=st.floats(1e-3, 10),
    cap=st.floats(1e-3, 60),
    # 40 more failures must stay below 1024: see test_backoff_survives_a_very_long_outage.
    start=st.integers(0, 1023 - 40),
    rng=st.randoms(use_true_random=False),
    events=st.lists(st.tuples(st.booleans(), st.floats(0, 100)), max_size=40),
)
def test_backoff_delays_are_bounded_and_non_negative(
    first: float, cap: float, start: int, rng: random.Random, events: list[Event]
) -> None:
    """Every delay is in [ceiling/2, ceiling] with ceiling = min(cap, first·2ⁿ); success resets the count."""
    backoff = Backoff(first=first, cap=cap, rng=rng, failures=start)
    now = 0.0
    for failed, elapsed in events:
        now += elapsed
        if not failed:
            outage = backoff.succeeded(now)
            assert outage is None or outage >= 0
            assert backoff.failures == 0 and backoff.ready(now) and not backoff.in_outage
            continue
        failures = backoff.failures
        ceiling = min(cap, first * 2.0**failures)
        delay = backoff.failed(now)
        assert 0 <= ceiling / 2 <= delay <= ceiling <= cap
        assert backoff.failures == failures + 1 and backoff.in_outage
        assert backoff.until == now + delay and backoff.ready(now + delay)


def test_backoff_survives_a_very_long_outage() -> None:
    """After 1024 failures in a row (about 25 minutes at a 2 s cap) the delay is still the cap."""
    backoff = Backoff(first=0.1, cap=2.0, failures=1024)
    assert backoff.failed(0.0) <= 2.0
