"""The classic WebSocket endpoints of the common tutorials, done over the same session, hub and limits.

- ``/ws/echo``: echoes each frame back (text as text, bytes as bytes; JSON is text, so it comes back as
  the same JSON). It is admitted like every endpoint (origin, token, connection caps, metrics); size and
  rate limits apply; the hub is not involved.
- ``/ws/chat/{room}?client_id=...``: plain-text chat in ``chat:<room>``. Each text frame (or
  ``{"message": ...}``) is published; every message arrives as ``{"client_id", "message", "timestamp"}``,
  and joins and leaves as the same shape with ``"system": true``.
- ``/ws/notifications``: ``notify:`` channels (``?channel=notify:x`` to pick; without it, the configured
  ``PULSE_NOTIFY_CHANNELS`` and then the most recently active, up to the subscription limit), as
  ``{"channel", "level", "title", "body", "timestamp"}``.

Chat and notifications are dialects (``gateway/dialects.py``) of the one session: the hub fans out to
them like to any ``/ws`` client. With auth on all three need an ``Authorization: Bearer`` header (they
have no ``auth`` op).
"""

import asyncio
import contextlib
import json
import time
from functools import lru_cache
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic_core import from_json

from gateway.admission import CODE_UNKNOWN, admit, deny
from gateway.broker import PublishError
from gateway.broker.base import ChannelOrder, ChannelQuery
from gateway.deps import GatewayDep
from gateway.dialects import Apply, Translated
from gateway.envelope import PUB_TYPE
from gateway.frame_limits import FrameLimitError, FrameLimits
from gateway.session.endpoint import serve
from gateway.settings import Settings
from gateway.state import Gateway
from shared.channels import Channel, ChannelError, Namespace
from shared.codes import ErrorCode
from shared.messages import ClientOp, ProtocolError, PublishOp, StreamPosition, SubscribeOp

router = APIRouter()

DISCOVER_SECONDS = 2.0
"""How often ``/ws/notifications`` looks for new ``notify:`` channels to follow."""


@lru_cache(maxsize=1024)
def _message(frame: str) -> dict[str, Any] | None:
    # Outgoing frames are the gateway's own JSON: one message each (classic dialects do not pack). The
    # hub hands every subscriber the same frame object, so the cache parses a publication once, not once
    # per classic client. Callers only read the result.
    parsed = json.loads(frame)
    return parsed if isinstance(parsed, dict) else None


def _error(message: dict[str, Any]) -> str:
    return json.dumps({"error": message.get("code"), "detail": message.get("detail")})


class ChatDialect(Translated):
    def __init__(self, room: Channel) -> None:
        self.room = str(room)

    def parse(self, text: str) -> ClientOp:
        message: object = text
        if text.lstrip().startswith("{"):
            try:
                parsed = from_json(text)
            except (ValueError, TypeError):  # TypeError: a lone surrogate, which is not UTF-8 text
                parsed = None
            if isinstance(parsed, dict):
                message = parsed.get("message")
        if not isinstance(message, str):
            raise ProtocolError(ErrorCode.BAD_REQUEST, 'send plain text or {"message": "..."}')
        return PublishOp(op="publish", channel=self.room, data={"text": message})

    def render(self, frame: str) -> str | None:
        message = _message(frame)
        if message is None:
            return None
        kind = message.get("type")
        if kind == PUB_TYPE and message.get("channel") == self.room:
            data = message["data"]
            said = {"client_id": data["sender"], "message": data["text"], "timestamp": message["ts"]}
            return json.dumps(said)
        if kind in ("join", "leave") and message.get("channel") == self.room:
            name = message["name"]
            verb = "joined" if kind == "join" else "left"
            text = f"{name} {verb} the chat"
            return json.dumps({"client_id": name, "message": text, "timestamp": time.time(), "system": True})
        if kind == "error":
            return _error(message)
        return None

    async def join(self, gateway: Gateway, apply: Apply) -> None:
        await apply(SubscribeOp(op="subscribe", channel=self.room))


class NotificationsDialect(Translated):
    def __init__(self, channels: list[str]) -> None:
        self.chosen = channels
        """The channels asked for; empty: every ``notify:`` channel, as they appear."""

    def parse(self, text: str) -> ClientOp:
        raise ProtocolError(ErrorCode.BAD_REQUEST, "this endpoint only sends; nothing to receive")

    def render(self, frame: str) -> str | None:
        message = _message(frame)
        if message is None:
            return None
        if message.get("type") == PUB_TYPE:
            data = message["data"]
            return json.dumps(
                {
                    "channel": message["channel"],
                    "level": data["level"],
                    "title": data["title"],
                    "body": data.get("body", ""),
                    "timestamp": message["ts"],
                }
            )
        if message.get("type") == "error":
            return _error(message)
        return None

    async def follow(self, gateway: Gateway, apply: Apply) -> None:
        if self.chosen:
            for channel in self.chosen:
                await apply(SubscribeOp(op="subscribe", channel=channel))
            return
        # Configured channels first, then the most recently active: publishing to many new channels
        # cannot push a configured one out. Past the subscription limit the hub's `too_large` error,
        # naming the first channel left out, tells the client once; `?channel=` picks others.
        limit = gateway.settings.max_subscriptions
        following: set[str] = set()
        for name in gateway.settings.notify_channels:
            following.add(name)
            await apply(SubscribeOp(op="subscribe", channel=name))
        query = ChannelQuery(prefix=f"{Namespace.NOTIFY}:", order=ChannelOrder.RECENT, limit=limit)
        first, told = True, False
        while True:
            with contextlib.suppress(PublishError):  # the broker is down: look again next round
                for stats in (await gateway.broker.channels(query)).channels:
                    name = stats.name
                    if name in following:
                        continue
                    if len(following) >= limit:
                        if not told:
                            told = True
                            await apply(SubscribeOp(op="subscribe", channel=name))  # refused, said once
                        break
                    following.add(name)
                    # A channel that appeared after the client connected: what it published since then
                    # (from offset 0 of its epoch) is news to the client, so it is replayed.
                    since = None if first else StreamPosition(offset=0, epoch=stats.position.epoch)
                    await apply(SubscribeOp(op="subscribe", channel=name, since=since))
                first = False
            await asyncio.sleep(DISCOVER_SECONDS)


@router.websocket("/ws/chat/{room}")
async def classic_chat(websocket: WebSocket, room: str, gateway: GatewayDep) -> None:
    try:
        channel = Channel.parse(f"{Namespace.CHAT}:{room}")
    except ChannelError as exc:
        await deny(websocket, 400, str(exc))
        return
    name = websocket.query_params.get("client_id")
    await serve(websocket, gateway, name=name, dialect=ChatDialect(channel))


@router.websocket("/ws/notifications")
async def classic_notifications(websocket: WebSocket, gateway: GatewayDep) -> None:
    chosen = websocket.query_params.getlist("channel")
    for name in chosen:
        try:
            if Channel.parse(name).namespace is not Namespace.NOTIFY:
                raise ChannelError(f"{name} is not a notify: channel")
        except ChannelError as exc:
            await deny(websocket, 400, str(exc))
            return
    await serve(websocket, gateway, name=None, dialect=NotificationsDialect(chosen))


@router.websocket("/ws/echo")
async def echo(websocket: WebSocket, gateway: GatewayDep) -> None:
    async with admit(websocket, gateway, name=None, auth_op=False) as admitted:
        if admitted is not None:
            admitted.close_code = await _echo(websocket, gateway.settings)


async def _echo(websocket: WebSocket, settings: Settings) -> int:
    """Echo frames until the connection ends; returns its close code (for the connection log)."""
    # No tolerance for rate-limited frames: echo has no error frame to say one was dropped (anything it
    # sent would read as an echo), so the first one closes with 1008.
    limits = FrameLimits(settings, tolerated=0)
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            code: int = message.get("code", CODE_UNKNOWN)
            return code
        text, data = message.get("text"), message.get("bytes")
        try:
            limits.admit(text, data)  # never False here: with no tolerance a limited frame raises
        except FrameLimitError as refused:
            await websocket.close(refused.disconnect.code, refused.disconnect.reason)
            return refused.disconnect.code
        try:
            if text is not None:
                await websocket.send_text(text)
            else:
                await websocket.send_bytes(data or b"")
        except WebSocketDisconnect as gone:
            return gone.code  # the client closed right after its message (often in the same packet)
