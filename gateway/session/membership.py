"""Hooks told when a connection's subscription to a channel turns live, and when it ends.

The hub does not know what joining a channel means to anyone; a namespace that cares registers a hook
(``Gateway.membership``), as chat does to announce joins and leaves in the room (``gateway.chat``).
"""

from typing import Protocol

from gateway.hub import Connection
from shared.channels import Channel


class MembershipHook(Protocol):
    async def joined(self, channel: Channel, member: Connection) -> None:
        """``member`` is now subscribed live to ``channel`` (its reply and history already queued)."""

    async def left(self, channel: Channel, member: Connection) -> None:
        """``member``'s live subscription to ``channel`` ended: it unsubscribed or disconnected."""
