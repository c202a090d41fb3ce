"""Server messages into the session buffer: what each ``pub``, ``join``, ``leave`` and ``presence`` means
for the dashboard. Runs on the consumer thread; the buffer's own locks make it safe to read meanwhile.

Every payload is read with its namespace's ``shared.payloads`` model, so a publication the contract does
not allow raises ``ValidationError`` here instead of reaching a chart.
"""

from collections.abc import Iterable

from dashboard.session_buffer import ChatEntry, ChatKind, NotificationEntry, SessionBuffer
from shared.channels import Namespace
from shared.messages import Join, Leave, Presence, Pub
from shared.payloads import ChatMessage, DataPoint, Notification


def namespace_of(channel: str) -> Namespace | None:
    prefix, _, _ = channel.partition(":")
    try:
        return Namespace(prefix)
    except ValueError:
        return None


def apply_pub(buffer: SessionBuffer, pub: Pub, received_at: float, *, toast: bool = True) -> bool:
    """Store one live or replayed publication; False when it was a duplicate (or of no known namespace).

    ``toast`` says whether a notification should also pop up: history loaded on subscribe should not.
    """
    namespace = namespace_of(pub.channel)
    if namespace is Namespace.DATA:
        point = DataPoint.model_validate(pub.data)
        return buffer.append_point(
            pub.channel,
            pub.ts if point.ts is None else point.ts,
            point.values,
            received_at=received_at,
            published_at=pub.ts,
            offset=pub.offset,
            epoch=pub.epoch,
        )
    buffer.touch(received_at)
    if namespace is Namespace.CHAT:
        message = ChatMessage.model_validate(pub.data)
        entry = ChatEntry(id=message.id, sender=message.sender, text=message.text, ts=pub.ts)
        return buffer.add_chat(pub.channel, entry, offset=pub.offset, epoch=pub.epoch)
    if namespace is Namespace.NOTIFY:
        note = Notification.model_validate(pub.data)
        entry_n = NotificationEntry(pub.channel, note.level, note.title, note.body, pub.ts, note.channel)
        return buffer.add_notification(entry_n, offset=pub.offset, epoch=pub.epoch, toast=toast)
    return False


def apply_membership(buffer: SessionBuffer, event: Join | Leave, received_at: float) -> None:
    kind = ChatKind.JOIN if isinstance(event, Join) else ChatKind.LEAVE
    buffer.touch(received_at)
    buffer.add_chat(event.channel, ChatEntry(event.client_id, event.name, "", received_at, kind))


def apply_presence(buffer: SessionBuffer, presence: Presence) -> None:
    buffer.set_presence(presence.channel, {entry.client_id: entry.name for entry in presence.clients})


def apply_history(
    buffer: SessionBuffer, channel: str, publications: Iterable[Pub], received_at: float
) -> None:
    """Store a page fetched over HTTP after ``recovered: false``.

    Data points are merged in one backfill: they are older than what the socket may already have
    delivered, so the position check of a live append would drop them. Chat and notifications go through
    the normal path (they are kept in offset order), without toasts: they are the past.
    """
    if namespace_of(channel) is Namespace.DATA:
        points = []
        for pub in publications:
            point = DataPoint.model_validate(pub.data)
            points.append((pub.ts if point.ts is None else point.ts, point.values))
        buffer.backfill(channel, points)
        return
    for pub in publications:
        apply_pub(buffer, pub, received_at, toast=False)
