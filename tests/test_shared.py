"""The wire contract in shared/: channel names, payload rules, client-op parsing, server frames."""

import pytest
from pydantic import ValidationError

from gateway.settings import Settings, redacted
from shared.channels import Channel, ChannelError, Namespace
from shared.codes import CloseCode, ErrorCode, should_reconnect
from shared.messages import (
    ProtocolError,
    Pub,
    PublishOp,
    SubscribeOp,
    encode,
    parse_client_op,
    parse_server_frame,
)
from shared.payloads import ChatPost, DataPoint, Notification


@pytest.mark.parametrize(
    "name", ["data:cpu", "chat:lobby", "notify:alerts", "data:a.b-c_9", "data:" + "x" * 64]
)
def test_valid_channels_parse(name: str) -> None:
    """Names in the three namespaces matching [A-Za-z0-9_.-]{1,64} parse and print back unchanged."""
    assert str(Channel.parse(name)) == name


@pytest.mark.parametrize(
    "name",
    ["", "data:", "cpu", "data:../x", "data:a b", "data:a\x00", "data:" + "x" * 65, "other:x", "data:é"],
)
def test_invalid_channels_are_refused(name: str) -> None:
    """Empty, too long, path-like, control characters and unknown namespaces are ChannelErrors."""
    with pytest.raises(ChannelError):
        Channel.parse(name)


def test_durable_namespaces() -> None:
    """chat: and notify: are durable; data: is not."""
    assert Channel.parse("chat:x").durable and Channel.parse("notify:x").durable
    assert not Channel(Namespace.DATA, "x").durable


@pytest.mark.parametrize(
    "values", [{}, {"a": "1"}, {"a": True}, {"a": None}, {"bad name": 1}, {f"s{i}": 1 for i in range(257)}]
)
def test_data_point_refuses_bad_values(values: dict[str, object]) -> None:
    """Values must be 1..256 finite numbers keyed by series names; strings, bools and null are refused."""
    with pytest.raises(ValidationError):
        DataPoint.model_validate({"values": values})


def test_payload_limits() -> None:
    """Chat text is 1..2000 characters; notification levels are info, warning or error."""
    ChatPost(text="x" * 2000)
    with pytest.raises(ValidationError):
        ChatPost(text="")
    with pytest.raises(ValidationError):
        ChatPost(text="x" * 2001)
    with pytest.raises(ValidationError):
        Notification.model_validate({"level": "fatal", "title": "t"})


def test_client_op_parsing() -> None:
    """Ops parse into their models; ids are ints or strings, never bools or floats."""
    op = parse_client_op(
        '{"op": "subscribe", "channel": "data:x", "since": {"offset": 3, "epoch": "e"}, "id": 1}'
    )
    assert isinstance(op, SubscribeOp) and op.since is not None and op.since.offset == 3
    assert isinstance(parse_client_op('{"op": "publish", "channel": "chat:x", "data": {}}'), PublishOp)
    for bad_id in ("true", "1.5", "[1]"):
        with pytest.raises(ProtocolError) as error:
            parse_client_op('{"op": "ping", "id": ' + bad_id + "}")
        assert error.value.code == ErrorCode.BAD_REQUEST


def test_deeply_nested_json_is_bad_json_not_a_crash() -> None:
    """Nesting deep enough to exhaust the parser's recursion is reported as bad_json."""
    with pytest.raises(ProtocolError) as error:
        parse_client_op("[" * 100_000 + "]" * 100_000)
    assert error.value.code in (ErrorCode.BAD_JSON, ErrorCode.BAD_REQUEST)


def test_server_frames_round_trip_single_and_array() -> None:
    """A server frame is one message or an array; both parse to a list, unknown fields are ignored."""
    pub = Pub(channel="data:x", offset=1, epoch="e", ts=1.0, data={"ts": 1.0, "values": {"a": 1.0}})
    assert parse_server_frame(encode(pub)) == [pub]
    both = parse_server_frame("[" + encode(pub) + ',{"type": "pong", "new_field": 1}]')
    assert [message.type for message in both] == ["pub", "pong"]


def test_reconnect_policy_follows_close_codes() -> None:
    """Reconnect after a lost connection, 1012 and 4001; never after 4401, 1008 or 1009."""
    assert should_reconnect(None) and should_reconnect(1006)
    assert should_reconnect(CloseCode.SERVER_RESTART) and should_reconnect(CloseCode.SLOW_CONSUMER)
    for code in (CloseCode.UNAUTHORIZED, CloseCode.POLICY_VIOLATION, CloseCode.MESSAGE_TOO_BIG):
        assert not should_reconnect(code)


def test_settings_refuse_a_weak_secret() -> None:
    """PULSE_SECRET shorter than 32 bytes is refused at startup; origins are split on commas."""
    with pytest.raises(ValidationError, match="at least 32 bytes"):
        Settings(secret="short")
    settings = Settings(allowed_origins="http://a.example, http://b.example/")
    assert settings.allowed_origins == ["http://a.example", "http://b.example"]


def test_broker_urls_are_logged_without_their_password() -> None:
    assert redacted("redis://:s3cret@redis.internal:6380/0") == "redis://:***@redis.internal:6380/0"
    assert redacted("redis://app:pw@h/1") == "redis://app:***@h/1"
    assert redacted("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert redacted("memory://") == "memory://"
