"""The session's parts on their own: the op table, the ``Disconnect`` value and the connection state."""

import asyncio
import json
from dataclasses import FrozenInstanceError
from typing import Any, Literal, cast, get_args

import pytest
from pydantic import BaseModel

from gateway.admission import Seat
from gateway.auth import OPEN
from gateway.broker.memory import MemoryBroker
from gateway.disconnect import Disconnect
from gateway.hub import Connection, Hub
from gateway.metrics import Metrics
from gateway.outbox import Outbox
from gateway.session.close import ClosePolicy
from gateway.session.ops import HANDLERS, Ops
from gateway.session.state import ConnectionState, StateError, advance
from gateway.settings import Settings
from gateway.state import Gateway
from shared.codes import CloseCode
from shared.messages import ClientOp, PingOp, SubscribeOp

# --- the op table ------------------------------------------------------------------------------


class ShoutOp(BaseModel):
    """An op the parser would refuse, handed to the table as a dialect could."""

    op: Literal["shout"] = "shout"
    id: int | None = None


class RecordingSink:
    def __init__(self) -> None:
        self.frames: list[str] = []

    def writable(self) -> bool:
        return True

    def write_one(self, text: str) -> None:
        self.frames.append(text)

    def write_now(self, texts: list[str]) -> None:
        self.frames += texts


def answers(ops: list[Any], *, authenticated: bool = True) -> list[dict[str, Any]]:
    """What an ``/ws`` client gets for ``ops``, applied in order through the op table (auth off)."""

    async def run() -> list[dict[str, Any]]:
        settings = Settings(_env_file=None)
        broker = MemoryBroker(history_size=10, history_ttl=60, store=None)
        metrics = Metrics()
        hub = Hub(broker, metrics, direct_queue_bytes=1024)
        await broker.start(hub)
        gateway = Gateway(settings=settings, broker=broker, hub=hub, metrics=metrics)
        sink = RecordingSink()
        outbox = Outbox(1 << 16, batch=False, on_overflow=lambda: None, direct=sink)
        policy = ClosePolicy("c1")
        if authenticated:
            policy.authenticated(None)
        grant = OPEN if authenticated else None
        connection = Connection("c1", "c1", outbox)
        table = Ops(gateway, connection, policy, seat=Seat(gateway, None), grant=grant)
        for op in ops:
            await table.apply(op)
        await asyncio.sleep(0)
        await broker.close()
        return [json.loads(frame) for frame in sink.frames]

    return asyncio.run(run())


def test_every_client_op_has_a_handler_in_the_table() -> None:
    assert set(HANDLERS) == set(get_args(ClientOp))


def test_an_op_without_a_handler_gets_the_documented_unknown_op_error() -> None:
    """docs/protocol.md: ``unknown_op`` when ``op`` is not one of the known ops, with the op's id as ref."""
    (reply,) = answers([ShoutOp(id=7)])
    assert reply["type"] == "error" and reply["code"] == "unknown_op" and reply["ref"] == 7
    assert reply["detail"].startswith("unknown op 'shout'; known ops: auth, subscribe")


def test_ops_are_answered_in_order_by_their_handlers() -> None:
    replies = answers([PingOp(op="ping", id=1), SubscribeOp(op="subscribe", channel="data:x", id=2)])
    assert [(reply["type"], reply.get("ref")) for reply in replies] == [("pong", 1), ("subscribed", 2)]


def test_before_authentication_only_auth_and_ping_are_answered() -> None:
    replies = answers(
        [PingOp(op="ping", id=1), SubscribeOp(op="subscribe", channel="data:x", id=2)], authenticated=False
    )
    assert replies[0]["type"] == "pong"
    assert (replies[1]["type"], replies[1]["code"], replies[1]["ref"]) == ("error", "forbidden", 2)


# --- Disconnect ----------------------------------------------------------------------------------


def test_a_disconnect_is_a_frozen_value_compared_by_code_and_reason() -> None:
    assert Disconnect(CloseCode.SLOW_CONSUMER, "slow consumer") == Disconnect.SLOW_CONSUMER
    with pytest.raises(FrozenInstanceError):
        cast(Any, Disconnect.SLOW_CONSUMER).code = CloseCode.NORMAL


def test_the_common_disconnects_carry_their_close_codes() -> None:
    assert Disconnect.AUTH_TIMEOUT.code == Disconnect.TOKEN_EXPIRED.code == CloseCode.UNAUTHORIZED
    assert Disconnect.unauthorized("bad signature") == Disconnect(CloseCode.UNAUTHORIZED, "bad signature")
    assert Disconnect.RATE_LIMIT.code == CloseCode.POLICY_VIOLATION
    assert Disconnect.message_too_big(10) == Disconnect(CloseCode.MESSAGE_TOO_BIG, "message over 10 bytes")
    assert Disconnect.stream_lost("data:x").code == CloseCode.TRY_AGAIN_LATER


def test_a_disconnects_reason_is_cut_to_fit_a_close_frame() -> None:
    reason = Disconnect.try_again_later("é" * 200).reason
    assert len(reason.encode()) <= 123 and reason.endswith("...")


# --- connection state ----------------------------------------------------------------------------


def test_the_connection_state_moves_forward_only() -> None:
    state = advance(ConnectionState.CONNECTING, ConnectionState.OPEN)
    state = advance(state, ConnectionState.CLOSING)
    assert advance(state, ConnectionState.CLOSED) is ConnectionState.CLOSED
    for current, to in [
        (ConnectionState.OPEN, ConnectionState.CONNECTING),
        (ConnectionState.CLOSING, ConnectionState.OPEN),
        (ConnectionState.CLOSED, ConnectionState.CLOSING),
    ]:
        with pytest.raises(StateError):
            advance(current, to)


def test_the_first_disconnect_decided_wins_and_a_closed_session_takes_none() -> None:
    async def run() -> tuple[list[ConnectionState], Disconnect]:
        policy = ClosePolicy("c1")
        seen = [policy.state]
        policy.authenticated(None)
        seen.append(policy.state)
        policy.end(Disconnect.SLOW_CONSUMER)
        policy.end(Disconnect.TOKEN_EXPIRED)
        seen.append(policy.state)
        policy.finished()
        policy.end(Disconnect.RATE_LIMIT)
        seen.append(policy.state)
        return seen, policy.decided.result()

    seen, decided = asyncio.run(run())
    assert seen == [
        ConnectionState.CONNECTING,
        ConnectionState.OPEN,
        ConnectionState.CLOSING,
        ConnectionState.CLOSED,
    ]
    assert decided == Disconnect.SLOW_CONSUMER


def test_an_unauthenticated_session_is_closed_when_the_auth_timeout_passes() -> None:
    async def run() -> Disconnect:
        policy = ClosePolicy("c1")
        policy.wait_for_auth(0.01)
        return await asyncio.wait_for(policy.decided, 2)

    assert asyncio.run(run()) == Disconnect.AUTH_TIMEOUT
