"""The broker seam: where publications get their offsets, live in history and reach the hub.

A broker owns per-channel streams (offset + epoch + bounded history), idempotency and presence. It does
not fan out to connections: it hands each publication, once, to the ``BrokerHandler`` (the hub), which
does. Backends are chosen by URL scheme in ``gateway.broker.make_broker``.

Obligations of every backend:
- offsets of a channel are 1, 2, 3, ... without gaps within an epoch, and publications reach the handler
  in offset order;
- a publication reaches the handler only after it is in history (so a subscriber that reads history
  and then goes live misses nothing);
- ``publish`` returns only once the publications are as durable as the backend promises.
"""

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any, NamedTuple, Protocol

from pydantic_core import to_json

from gateway.envelope import pub_frame
from shared.api import BrokerHealth
from shared.channels import Channel
from shared.messages import PresenceEntry, Pub, StreamPosition


class Publication(NamedTuple):
    # A NamedTuple rather than a frozen dataclass: immutable all the same, and built three times faster,
    # which counts at one per ingested point.
    channel: str
    offset: int
    epoch: str
    ts: float
    data: dict[str, Any]
    frame: str
    """The ``pub`` envelope's JSON text, built once and shared by every subscriber."""

    @classmethod
    def create(cls, channel: str, offset: int, epoch: str, ts: float, data: dict[str, Any]) -> "Publication":
        # By hand, not through the Pub model: this runs once per publication (see gateway.envelope).
        frame = pub_frame(channel, offset, epoch, ts, to_json(data).decode())
        return cls(channel, offset, epoch, ts, data, frame)

    def message(self) -> Pub:
        return Pub.model_construct(
            channel=self.channel, offset=self.offset, epoch=self.epoch, ts=self.ts, data=self.data
        )


@dataclass(frozen=True, slots=True)
class HistoryResult:
    publications: list[Publication]
    position: StreamPosition
    """The channel's latest offset and current epoch."""
    recovered: bool
    """For a ``since`` read: every publication after it is included (same epoch, still retained)."""


def missed_since(since: StreamPosition, position: StreamPosition, retained: int) -> int | None:
    """How many publications a resume from ``since`` must replay to reach ``position``; None when it
    cannot be recovered (another epoch, an offset past the latest, or more missed than ``retained``)."""
    if since.epoch != position.epoch or since.offset > position.offset:
        return None
    missed = position.offset - since.offset
    return None if missed > retained else missed


@dataclass(frozen=True, slots=True)
class ChannelStats:
    name: str
    position: StreamPosition
    rate: float
    last_published: float
    """Unix time of the channel's latest publish (0 when unknown)."""


class ChannelOrder(StrEnum):
    NAME = "name"
    """Ascending by name; the cursor is the last name of the previous page."""
    RECENT = "recent"
    """Most recently published first; the cursor counts the channels already returned."""


class CursorError(ValueError):
    """A ``cursor`` that is not one this order hands out."""


@dataclass(frozen=True, slots=True)
class ChannelQuery:
    """Which channels a listing wants: one page of at most ``limit``, in ``order``, after ``cursor``."""

    prefix: str = ""
    order: ChannelOrder = ChannelOrder.NAME
    limit: int = 100
    cursor: str | None = None
    allowed: Callable[[str], bool] | None = None
    """Only channels this accepts (a token's read patterns); None: all."""

    def skip(self) -> int:
        """For ``RECENT``: how many matching channels earlier pages returned."""
        if self.order is not ChannelOrder.RECENT or self.cursor is None:
            return 0
        if not self.cursor.isdigit() or len(self.cursor) > 9:
            raise CursorError(f"cursor {self.cursor[:20]!r} is not one of order=recent's")
        return int(self.cursor)


@dataclass(frozen=True, slots=True)
class ChannelPage:
    channels: list[ChannelStats]
    next: str | None
    """The cursor of the next page; None on the last one."""


def take_page(ordered: Iterable[str], query: ChannelQuery) -> tuple[list[str], str | None]:
    """One page of ``query`` from names in its order (for ``NAME``: sorted, starting after the cursor
    and at the prefix, so the first name past the prefix ends the scan), and the next page's cursor."""
    by_name = query.order is ChannelOrder.NAME
    prefix, allowed, skip = query.prefix, query.allowed, query.skip()
    chosen: list[str] = []
    for name in ordered:
        if not name.startswith(prefix):
            if by_name:
                break
            continue
        if allowed is not None and not allowed(name):
            continue
        if skip:
            skip -= 1
            continue
        if len(chosen) == query.limit:
            return chosen, chosen[-1] if by_name else str(query.skip() + len(chosen))
        chosen.append(name)
    return chosen, None


class ChannelLimitError(Exception):
    """A publish would create a channel past ``PULSE_MAX_CHANNELS``: nothing was published."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"{limit} channels are live, the most this gateway keeps (PULSE_MAX_CHANNELS); publish to an "
            "existing channel, or wait until idle data: channels expire"
        )


class Direct(Enum):
    """What became of a direct message."""

    QUEUED = "queued"
    """Queued to the target; across processes (``redis://``): handed to the target's process, which
    queues it or, when the target's direct budget is full, drops it (it cannot answer back)."""
    NOT_FOUND = "not_found"
    """No such connection (here, or with a shared backend, anywhere)."""
    FULL = "full"
    """The target's direct budget (``PULSE_DIRECT_QUEUE_BYTES``) is full: refused, nothing queued."""


class BrokerHandler(Protocol):
    """What a broker delivers to: the hub."""

    def on_publication(self, publication: Publication) -> None: ...

    def on_event(self, channel: str, frame: str) -> None:
        """An ephemeral message for a channel's subscribers (join/leave): no offset, no history."""

    def on_direct(self, client_id: str, frame: str) -> Direct:
        """Deliver to one connection, within its direct budget: ``QUEUED``, ``FULL`` or ``NOT_FOUND``
        (no such connection here)."""

    def on_gap(self, channel: str) -> None:
        """Publications of ``channel`` were lost before they reached this process (a shared backend
        lost data): its local subscribers must resubscribe to learn it (``recovered: false``)."""


class PublishError(Exception):
    """The broker could not do it (storage or backend failure): nothing was published, nothing read."""


Accepted = Callable[[str, str, int, Sequence[dict[str, Any]]], None]
"""Told of each publish this process accepted: channel, epoch, first offset, the stored payloads."""


class Broker(ABC):
    backend: str
    on_accepted: Accepted | None = None
    """The history recorder: called once per accepted publish, on the process that accepted it (so a
    publication is recorded once however many processes fan it out), never for an idempotent replay."""

    def _accepted(self, channel: str, epoch: str, first: int, payloads: Sequence[dict[str, Any]]) -> None:
        if self.on_accepted is not None:
            self.on_accepted(channel, epoch, first, payloads)

    @abstractmethod
    async def start(self, handler: BrokerHandler) -> None: ...

    @abstractmethod
    async def close(self) -> None:
        """Finish in-flight writes and release resources."""

    @abstractmethod
    async def publish(
        self, channel: Channel, payloads: Sequence[dict[str, Any]], *, idempotency_key: str | None = None
    ) -> list[int]:
        """Publish payloads (already validated) in order; return their offsets.

        Raises ``ChannelLimitError`` when ``channel`` is not live and ``PULSE_MAX_CHANNELS`` are. A
        repeat of ``idempotency_key`` on the same channel within the idempotency window publishes nothing
        and returns the first call's offsets.
        """

    @abstractmethod
    async def history(
        self, channel: Channel, *, since: StreamPosition | None = None, limit: int | None = None
    ) -> HistoryResult:
        """Retained publications after ``since`` (all or none), or the last ``limit`` ones."""

    async def subscribe(self, channel: Channel) -> None:  # noqa: B027 (optional hook)
        """This process has a first local subscriber of ``channel`` (a shared backend starts listening)."""

    async def unsubscribe(self, channel: Channel) -> None:  # noqa: B027 (optional hook)
        """This process's last local subscriber of ``channel`` left."""

    async def client_added(self, client_id: str) -> None:  # noqa: B027 (optional hook)
        """A connection opened here (a shared backend records where, for direct messages)."""

    async def client_removed(self, client_id: str) -> None:  # noqa: B027 (optional hook)
        """A connection here closed."""

    @abstractmethod
    async def publish_event(self, channel: Channel, frame: str) -> None: ...

    @abstractmethod
    async def send_direct(self, client_id: str, frame: str) -> Direct:
        """Deliver ``frame`` to the connection ``client_id``, in this process or (a shared backend) in
        the one that holds it; the target's budget is applied where the target lives."""

    @abstractmethod
    async def presence_add(self, channel: Channel, entry: PresenceEntry) -> None: ...

    @abstractmethod
    async def presence_remove(self, channel: Channel, client_id: str) -> None: ...

    @abstractmethod
    async def presence(self, channel: Channel) -> list[PresenceEntry]: ...

    @abstractmethod
    async def channels(self, query: ChannelQuery) -> ChannelPage:
        """One page of the live channels; raises ``CursorError`` for a cursor it did not hand out."""

    @abstractmethod
    def health(self) -> BrokerHealth: ...
