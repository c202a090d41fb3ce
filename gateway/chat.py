"""Chat rooms (``chat:`` channels): who joins and leaves is announced in the room itself.

A membership hook (``gateway.session.membership``) registered for the chat namespace: every subscriber
of the room, ``/ws`` or the classic chat endpoint, gets ``join`` and ``leave`` events, through the broker
like a publication so that every gateway's subscribers hear them.
"""

from gateway.broker import Broker
from gateway.hub import Connection
from shared.channels import Channel
from shared.messages import Join, Leave, encode


class ChatAnnouncements:
    def __init__(self, broker: Broker) -> None:
        self._broker = broker

    async def joined(self, channel: Channel, member: Connection) -> None:
        joined = Join(channel=str(channel), client_id=member.client_id, name=member.name)
        await self._broker.publish_event(channel, encode(joined))

    async def left(self, channel: Channel, member: Connection) -> None:
        left = Leave(channel=str(channel), client_id=member.client_id, name=member.name)
        await self._broker.publish_event(channel, encode(left))
