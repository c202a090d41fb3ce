"""What one dashboard session holds in memory: data channels, chat, notifications, presence, resume
positions and connection status. The consumer thread writes it, the Streamlit script reads it.

Obligations:

- **Bounded.** Each data channel is a ``ChannelBuffer`` (``dashboard.channel_buffer`` states its bounds;
  the data worst case is ``channels x max_series x max_points x 16`` bytes). Chat keeps ``chat_maxlen``
  entries per room, notifications ``notify_maxlen`` (log and not-yet-shown queue alike); ``remove``
  forgets a channel and its memory.
- **Thread-safe.** Any thread may call any method. Each data channel has its own lock, in its
  ``ChannelBuffer`` (the data hot path never waits for chat or status); chat, notifications, presence,
  the positions of non-data channels and the connection status share this object's one lock. Locks are
  held only to copy data in or out.
- **Duplicate-free.** Chat messages and notifications that carry ``(offset, epoch)`` are dropped when they
  are not above the last position seen for their channel in that epoch (docs/protocol.md §11, rule 6),
  by the same rule as data points.

No Streamlit here: the consumer thread and benchmarks use this module as it is.
"""

import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from functools import partial

from dashboard.arrays import FloatArray, empty_trace
from dashboard.channel_buffer import DEFAULT_MAX_POINTS, DEFAULT_MAX_SERIES, ChannelBuffer, Clock
from dashboard.positions import is_replay
from dashboard.stats import DEFAULT_RATE_WINDOW
from shared.api import ChannelInfo as ChannelSummary
from shared.api import Health
from shared.messages import StreamPosition
from shared.payloads import NotificationLevel

DEFAULT_CHAT_MAXLEN = 1000
DEFAULT_NOTIFY_MAXLEN = 500


class ChatKind(StrEnum):
    MESSAGE = "message"
    JOIN = "join"
    LEAVE = "leave"


@dataclass(frozen=True, slots=True)
class ChatEntry:
    """One line of a room's log."""

    id: str
    """The message id; for a join or leave, the ``client_id`` that joined or left."""
    sender: str
    """The sender's identity; for a join or leave, the client's name."""
    text: str
    ts: float
    kind: ChatKind = ChatKind.MESSAGE


@dataclass(frozen=True, slots=True)
class NotificationEntry:
    channel: str
    level: NotificationLevel
    title: str
    body: str
    ts: float
    about: str | None = None
    """The ``data:`` channel the notification names, marked on that channel's chart."""


class ConnectionState(StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class ConnectionStatus:
    state: ConnectionState
    attempt: int
    """Consecutive failed attempts; 0 once connected."""
    last_error: str
    changed_at: float
    """When ``state`` was last set."""
    last_message_at: float | None
    """When the last message arrived: the dashboard shows "stale since" this when it is old."""


@dataclass(frozen=True, slots=True)
class GatewayOverview:
    """What the consumer last read from ``/api/channels`` and ``/healthz``: the operator view."""

    channels: tuple[ChannelSummary, ...]
    health: Health | None
    fetched_at: float
    error: str = ""
    """Why the last look failed ("" when it worked); ``channels`` and ``health`` are then older."""


_DATA_PREFIX = "data:"


class SessionBuffer:
    """Everything one dashboard session holds (the object kept in ``st.session_state``).

    Data channels each have their own ``ChannelBuffer`` and lock; chat, notifications, presence, the
    positions of non-data channels and the connection status share this object's lock. Rooms and
    channels are keyed by full channel name (``chat:lobby``) and exist as long as the consumer feeds them
    or until ``remove``.
    """

    def __init__(
        self,
        *,
        max_points: int = DEFAULT_MAX_POINTS,
        max_age: float | None = None,
        max_series: int = DEFAULT_MAX_SERIES,
        rate_window: float = DEFAULT_RATE_WINDOW,
        chat_maxlen: int = DEFAULT_CHAT_MAXLEN,
        notify_maxlen: int = DEFAULT_NOTIFY_MAXLEN,
        clock: Clock = time.time,
    ) -> None:
        self._new_channel = partial(
            ChannelBuffer,
            max_points=max_points,
            max_age=max_age,
            max_series=max_series,
            rate_window=rate_window,
            clock=clock,
        )
        # Bad bounds fail here, in the script, rather than at the first point on the consumer thread.
        self._new_channel("")
        self.key = uuid.uuid4().hex
        """Names this buffer (and the one consumer feeding it) in the session's resource cache."""
        self._clock = clock
        self._lock = threading.Lock()
        self._channels: dict[str, ChannelBuffer] = {}
        self._positions: dict[str, tuple[int, str]] = {}
        self._chat_maxlen = chat_maxlen
        self._chat: dict[str, deque[ChatEntry]] = {}
        self._presence: dict[str, dict[str, str]] = {}
        self._notifications: deque[NotificationEntry] = deque(maxlen=notify_maxlen)
        # Bounded too: with no browser tab running the script, nobody drains it.
        self._pending: deque[NotificationEntry] = deque(maxlen=notify_maxlen)
        self._status = ConnectionStatus(ConnectionState.CONNECTING, 0, "", clock(), None)
        # Written on every message without the lock: one float attribute store is atomic, and taking the
        # session lock per data point would make the chat and status readers contend with the hot path.
        self._last_message_at: float | None = None
        self._overview: GatewayOverview | None = None

    # -- data channels ----------------------------------------------------------------------------

    def channel(self, name: str) -> ChannelBuffer:
        """The buffer of data channel ``name``, created on first use."""
        # Lock-free lookup first: a dict read is atomic, and this runs for every data point. Creation
        # takes the lock and looks again, so two threads never make two buffers for one channel.
        buffer = self._channels.get(name)
        if buffer is None:
            with self._lock:
                buffer = self._channels.get(name)
                if buffer is None:
                    buffer = self._channels[name] = self._new_channel(name)
        return buffer

    def find(self, name: str) -> ChannelBuffer | None:
        """The buffer of data channel ``name`` if something created it; a read never creates one."""
        return self._channels.get(name)

    def channels(self) -> list[str]:
        """Data channels that have a buffer, sorted."""
        with self._lock:
            return sorted(self._channels)

    def remove(self, name: str) -> None:
        """Forget a channel (data buffer, chat log, presence, position): its memory goes with it."""
        with self._lock:
            self._channels.pop(name, None)
            self._chat.pop(name, None)
            self._presence.pop(name, None)
            self._positions.pop(name, None)

    def append_point(
        self,
        channel: str,
        ts: float,
        values: Mapping[str, float],
        *,
        received_at: float | None = None,
        published_at: float | None = None,
        offset: int | None = None,
        epoch: str | None = None,
    ) -> bool:
        """``ChannelBuffer.append`` on ``channel``'s buffer: called once per data ``pub``."""
        if received_at is not None:
            self._last_message_at = received_at
        return self.channel(channel).append(
            ts, values, received_at=received_at, published_at=published_at, offset=offset, epoch=epoch
        )

    def backfill(self, channel: str, points: Iterable[tuple[float, Mapping[str, float]]]) -> None:
        """``ChannelBuffer.backfill`` on ``channel``'s buffer: a history page fetched over HTTP."""
        self.channel(channel).backfill(points)

    def snapshot(
        self, channel: str, series: str, since_ts: float | None = None
    ) -> tuple[FloatArray, FloatArray]:
        """``ChannelBuffer.snapshot`` of one series; empty arrays while the channel or series is unknown."""
        # Not `channel()`: a read must not create a buffer for a channel nobody feeds.
        buffer = self.find(channel)
        return empty_trace() if buffer is None else buffer.snapshot(series, since_ts)

    # -- positions (resume) -----------------------------------------------------------------------

    def set_position(self, channel: str, offset: int, epoch: str) -> None:
        """Record the position a ``subscribed`` reply or a history page reached, in any namespace."""
        if channel.startswith(_DATA_PREFIX):
            self.channel(channel).set_position(offset, epoch)
            return
        with self._lock:
            self._positions[channel] = (offset, epoch)

    def positions(self) -> dict[str, StreamPosition]:
        """The last position of every channel that has one: what to resubscribe with after a reconnect."""
        with self._lock:
            others = dict(self._positions)
            buffers = list(self._channels.values())
        result = {
            name: StreamPosition(offset=offset, epoch=epoch) for name, (offset, epoch) in others.items()
        }
        for buffer in buffers:
            position = buffer.position
            if position is not None:
                result[buffer.name] = position
        return result

    def _accept(self, channel: str, offset: int | None, epoch: str | None) -> bool:
        # Called with the lock held: is (offset, epoch) new for a chat or notify channel? Records it if so.
        if offset is None or epoch is None:
            return True
        last = self._positions.get(channel)
        if last is not None and is_replay(offset, epoch, *last):
            return False
        self._positions[channel] = (offset, epoch)
        return True

    # -- chat and presence ------------------------------------------------------------------------

    def add_chat(
        self, room: str, entry: ChatEntry, *, offset: int | None = None, epoch: str | None = None
    ) -> bool:
        """Log a message, join or leave in ``room`` (joins and leaves also update presence).

        Messages carry the ``pub``'s offset and epoch; a duplicate is not logged and returns False.
        """
        if entry.kind is not ChatKind.MESSAGE:
            # join and leave have no offset (docs/protocol.md §5).
            offset = epoch = None
        with self._lock:
            if not self._accept(room, offset, epoch):
                return False
            log = self._chat.get(room)
            if log is None:
                log = self._chat[room] = deque(maxlen=self._chat_maxlen)
            log.append(entry)
            if entry.kind is ChatKind.JOIN:
                self._presence.setdefault(room, {})[entry.id] = entry.sender
            elif entry.kind is ChatKind.LEAVE:
                self._presence.get(room, {}).pop(entry.id, None)
            return True

    def chat_log(self, room: str) -> list[ChatEntry]:
        """The retained entries of ``room``, oldest first."""
        with self._lock:
            log = self._chat.get(room)
            return [] if log is None else list(log)

    def set_presence(self, room: str, clients: Mapping[str, str]) -> None:
        """Replace ``room``'s presence (``client_id`` to name) from a ``presence`` reply."""
        with self._lock:
            self._presence[room] = dict(clients)

    def presence(self, room: str) -> dict[str, str]:
        with self._lock:
            return dict(self._presence.get(room, {}))

    # -- notifications ----------------------------------------------------------------------------

    def add_notification(
        self,
        entry: NotificationEntry,
        *,
        offset: int | None = None,
        epoch: str | None = None,
        toast: bool = True,
    ) -> bool:
        """Log a notification and, with ``toast``, queue it for the script to show once.

        Pass ``toast=False`` for history loaded at subscribe time: it belongs in the log, not on screen.
        A duplicate by offset is not logged and returns False.
        """
        with self._lock:
            if not self._accept(entry.channel, offset, epoch):
                return False
            self._notifications.append(entry)
            if toast:
                self._pending.append(entry)
            return True

    def notifications(self) -> list[NotificationEntry]:
        """The retained notifications, oldest first."""
        with self._lock:
            return list(self._notifications)

    def take_new_notifications(self) -> list[NotificationEntry]:
        """The notifications not shown yet, oldest first; each is returned by exactly one call."""
        with self._lock:
            taken = list(self._pending)
            self._pending.clear()
        return taken

    # -- connection status ------------------------------------------------------------------------

    def set_connection(self, state: ConnectionState, *, attempt: int = 0, error: str = "") -> None:
        """Record the consumer's state, its consecutive failed attempts and the last error text."""
        with self._lock:
            self._status = ConnectionStatus(state, attempt, error, self._clock(), None)

    def touch(self, received_at: float | None = None) -> None:
        """A message other than a data point arrived (data points do this themselves)."""
        self._last_message_at = self._clock() if received_at is None else received_at

    def connection(self) -> ConnectionStatus:
        with self._lock:
            status = self._status
        return replace(status, last_message_at=self._last_message_at)

    # -- gateway overview -------------------------------------------------------------------------

    def set_overview(self, overview: GatewayOverview) -> None:
        with self._lock:
            self._overview = overview

    def overview(self) -> GatewayOverview | None:
        with self._lock:
            return self._overview
