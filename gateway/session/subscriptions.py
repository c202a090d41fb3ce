"""Subscribing a connection to a channel, as the protocol sees it, around the hub's fan-out.

The checks (already subscribed, too many subscriptions, ``since`` with ``history``) and their error
frames, the ``subscribed`` and ``unsubscribed`` replies, presence, and the namespace's membership hook
(chat's join and leave) are here; the hub only keeps who is subscribed and hands out frames.
"""

from collections.abc import Mapping

from gateway.broker import Broker, PublishError
from gateway.hub import Connection, Hub
from gateway.session.membership import MembershipHook
from shared.channels import Channel, Namespace
from shared.codes import ErrorCode
from shared.messages import ProtocolError, RequestId, StreamPosition, Subscribed, Unsubscribed, encode


class Subscriptions:
    def __init__(
        self,
        hub: Hub,
        broker: Broker,
        *,
        max_per_connection: int,
        membership: Mapping[Namespace, MembershipHook],
    ) -> None:
        self._hub = hub
        self._broker = broker
        self._max_per_connection = max_per_connection
        self._membership = membership

    async def subscribe(
        self,
        connection: Connection,
        channel: Channel,
        *,
        since: StreamPosition | None = None,
        history: int | None = None,
        ref: RequestId | None = None,
    ) -> None:
        """Subscribe, reply ``subscribed`` (then the replay), and announce the member; raises
        ``ProtocolError`` with the error frame's code when the subscription is refused."""
        name = str(channel)
        if name in connection.channels:
            raise ProtocolError(ErrorCode.BAD_REQUEST, f"already subscribed to {name}", ref)
        if len(connection.channels) >= self._max_per_connection:
            raise ProtocolError(
                ErrorCode.TOO_LARGE,
                f"at most {self._max_per_connection} subscriptions per connection: {name} is not subscribed",
                ref,
            )
        if since is not None and history is not None:
            raise ProtocolError(ErrorCode.BAD_REQUEST, "give either 'since' or 'history', not both", ref)
        try:
            joining = await self._hub.join(connection, channel, since=since, history=history or 0)
        except PublishError as exc:
            raise ProtocolError(ErrorCode.UNAVAILABLE, f"cannot subscribe now: {exc}", ref) from None
        if joining is None:
            return  # unsubscribed or disconnected while history was read
        position = joining.position
        reply = Subscribed(
            ref=ref, channel=name, offset=position.offset, epoch=position.epoch, recovered=joining.recovered
        )
        if not self._hub.go_live(joining, encode(reply)):
            return
        await self._broker.presence_add(channel, connection.presence)
        hook = self._membership.get(channel.namespace)
        if hook is not None:
            await hook.joined(channel, connection)

    async def unsubscribe(self, connection: Connection, channel: Channel, *, ref: RequestId | None) -> None:
        name = str(channel)
        if name not in connection.channels:
            raise ProtocolError(ErrorCode.BAD_REQUEST, f"not subscribed to {name}", ref)
        if await self._hub.leave(connection, channel):
            await self._left(connection, channel)
        connection.outbox.put(encode(Unsubscribed(ref=ref, channel=name)))

    async def remove(self, connection: Connection) -> None:
        """Forget a closed connection: its subscriptions, its presence, and tell the rooms it left.
        Idempotent, as ``Hub.remove`` is."""
        for channel in await self._hub.remove(connection):
            await self._left(connection, channel)

    async def _left(self, connection: Connection, channel: Channel) -> None:
        await self._broker.presence_remove(channel, connection.client_id)
        hook = self._membership.get(channel.namespace)
        if hook is not None:
            await hook.left(channel, connection)
