"""Every builder of the ``pub`` envelope writes the shared model's bytes, and only publications are
recognised as such.

The model (``shared.messages.Pub`` through ``encode``) is what clients parse and docs/protocol.md
describes; the gateway writes the same JSON by hand, in Python (``gateway.envelope.pub_frame``, used by
every ``Publication``) and in the Redis broker's publish script.
"""

import asyncio
from typing import Any
from unittest.mock import patch

import redis
from hypothesis import example, given, settings
from hypothesis import strategies as st

import gateway.broker.redis as redis_broker
from gateway.broker.base import Publication
from gateway.broker.redis import RedisBroker
from gateway.envelope import PUB_TYPE, is_pub
from shared.channels import Channel
from shared.messages import Join, Leave, Pub, encode, parse_server_frame
from tests.strategies import CHANNELS, FINITE, FUZZ, JSON_OBJECTS, NAMES

OFFSETS = st.integers(min_value=0)
LUA_OFFSETS = st.integers(min_value=1, max_value=10**14 - 1)
"""The script's offsets are Lua numbers, which it writes exactly below 10^14 (``%.14g``): far beyond
any channel's life (three years at a million publications a second)."""
REPR_DIFFERS = 1e-7
"""A ts that ``repr`` writes otherwise than the model (``1e-07``); random floats seldom hit such."""
EPOCHS = NAMES
"""Epochs follow the name rules (the gateway makes them with ``secrets.token_hex``)."""


def model_bytes(channel: str, offset: int, epoch: str, ts: float, data: dict[str, Any]) -> str:
    return encode(Pub(channel=channel, offset=offset, epoch=epoch, ts=ts, data=data))


@FUZZ
@given(channel=CHANNELS, offset=OFFSETS, epoch=EPOCHS, ts=FINITE, data=JSON_OBJECTS)
@example(channel="data:x", offset=1, epoch="e", ts=REPR_DIFFERS, data={})
def test_a_publication_is_the_models_bytes(
    channel: str, offset: int, epoch: str, ts: float, data: dict[str, Any]
) -> None:
    expected = model_bytes(channel, offset, epoch, ts, data)
    publication = Publication.create(channel, offset, epoch, ts, data)
    assert publication.frame == expected
    assert encode(publication.message()) == expected
    assert parse_server_frame(publication.frame) == [Pub.model_validate_json(expected)]


@FUZZ
@given(
    message=st.builds(Pub, channel=CHANNELS, offset=OFFSETS, epoch=EPOCHS, ts=FINITE, data=JSON_OBJECTS)
    | st.builds(Join, channel=CHANNELS, client_id=NAMES, name=NAMES)
    | st.builds(Leave, channel=CHANNELS, client_id=NAMES, name=NAMES)
)
def test_only_publications_are_recognised(message: Pub | Join | Leave) -> None:
    # Join and leave are the other messages a channel's live stream carries.
    assert is_pub(encode(message)) == (message.type == PUB_TYPE)


class _FrozenClock:
    """Stands in for the ``time`` module in the Redis broker: its wall clock is the publication's ts."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


def test_the_redis_script_writes_the_models_bytes(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    pubsub = client.pubsub()  # type: ignore[no-untyped-call]
    pubsub.psubscribe(redis_broker._live("*"))
    confirmation = pubsub.get_message(timeout=5)
    assert confirmation is not None and confirmation["type"] == "psubscribe"

    @settings(FUZZ, max_examples=50)
    @given(channel=CHANNELS, offset=LUA_OFFSETS, epoch=EPOCHS, ts=FINITE, data=JSON_OBJECTS)
    @example(channel="data:x", offset=1, epoch="e", ts=REPR_DIFFERS, data={})
    def published_as_the_model(
        channel: str, offset: int, epoch: str, ts: float, data: dict[str, Any]
    ) -> None:
        # The channel is placed where the publish gets this offset in this epoch.
        client.delete(redis_broker._stream(channel))
        client.hset(redis_broker._meta(channel), mapping={"epoch": epoch, "top": offset - 1})
        asyncio.run(publish(channel, ts, data))
        message = pubsub.get_message(timeout=5)
        assert message is not None, "the script published nothing"
        assert message["data"].decode() == model_bytes(channel, offset, epoch, ts, data)

    async def publish(channel: str, ts: float, data: dict[str, Any]) -> None:
        broker = RedisBroker(redis_url, history_size=10, history_ttl=60)
        try:
            with patch.object(redis_broker, "time", _FrozenClock(ts)):
                await broker.publish(Channel.parse(channel), [data])
        finally:
            await broker.close()

    try:
        published_as_the_model()
    finally:
        pubsub.close()
        client.close()
