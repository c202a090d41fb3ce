"""The per-session consumer: one thread, its own asyncio loop, one WebSocket to the gateway's ``/ws``.

It writes everything it receives into the session's ``SessionBuffer`` and never touches Streamlit
(``st.*`` and ``st.session_state`` belong to the script thread). The script reads the buffer, and talks to
the consumer only through the thread-safe methods here: ``stop``, ``publish``, ``join_room``, ``watch``,
``find_channels`` and ``refused``.

Connection lifecycle (docs/protocol.md §11):

- connect, read ``welcome``, subscribe to every wanted channel at once: with ``since`` where the buffer
  has a position (resume), else with ``history`` (first load);
- every ``discover_interval`` seconds, read ``/api/channels`` and ``/healthz``: new ``data:`` and
  ``notify:`` channels are subscribed, and the answers feed the operator view;

Which channels (a rule that publishing to many new channels cannot beat): the configured ones
(``PULSE_DASHBOARD_CHANNELS``, and the rooms) on every connection, whether or not they exist yet; then
the most recently active ``data:`` and ``notify:`` channels, asking the gateway for no more than
``MAX_AUTO_CHANNELS``; then any channel the user picks (``watch``). A subscription the gateway refuses
is never dropped silently: ``refused`` says which and why.
- ``recovered: false`` marks a ``data:`` channel's gap and reloads it over HTTP (``dashboard.recovery``);
- on a close, reconnect with jittered exponential backoff (``shared.backoff``) unless the close code says
  not to (``shared.codes.should_reconnect``); 4401 stops the consumer and the status says why.
"""

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from itertools import count

import httpx
from pydantic import BaseModel, ValidationError

from dashboard.ingest import apply_membership, apply_presence, apply_pub, namespace_of
from dashboard.recovery import fill_gap
from dashboard.session_buffer import ConnectionState, GatewayOverview, SessionBuffer
from dashboard.settings import DashboardSettings
from pulseboard.connection import (
    Connected,
    Connection,
    ConnectionStoppedError,
    Disconnected,
    Event,
    Gap,
    Refused,
)
from pulseboard.link import NotConnectedError
from pulseboard.loop_thread import LoopClosedError, LoopThread
from shared.api import ChannelList, Health
from shared.backoff import Backoff
from shared.channels import Channel, Namespace
from shared.codes import CloseCode
from shared.messages import Join, Leave, Presence, PresenceOp, Pub, Subscribed

log = logging.getLogger(__name__)

MAX_AUTO_CHANNELS = 100
"""Discovered channels subscribed at most, besides configured and picked ones (the gateway allows 128
subscriptions per connection: the rest is room for the user's picks)."""
AUTO_NAMESPACES = (Namespace.DATA, Namespace.NOTIFY)

_serial = count(1)


class SendTimeoutError(Exception):
    """The gateway did not acknowledge in time; the message may or may not have been published."""


class ConsumerStoppedError(Exception):
    """The consumer will not connect again (released, or stopped by a close code such as 4401)."""


@dataclass(frozen=True, slots=True)
class ConsumerConfig:
    ws_url: str
    http_url: str
    token: str | None = None
    name: str = "dashboard"
    rooms: tuple[str, ...] = ("chat:lobby",)
    channels: tuple[str, ...] = ()
    """``data:``/``notify:`` channels subscribed first, on every connection (``PULSE_DASHBOARD_CHANNELS``)."""
    history: int = 1000
    """Publications loaded when a ``data:`` channel is first subscribed."""
    chat_history: int = 100
    """Messages loaded when a room (or a ``notify:`` channel) is first subscribed."""
    discover_interval: float = 5.0
    backoff_first: float = 0.5
    backoff_cap: float = 10.0

    @classmethod
    def from_settings(cls, settings: DashboardSettings) -> "ConsumerConfig":
        return cls(
            ws_url=settings.ws_url,
            http_url=settings.gateway_url,
            token=settings.token_value,
            name=settings.dashboard_name,
            rooms=tuple(settings.dashboard_rooms),
            channels=tuple(settings.dashboard_channels),
            history=settings.dashboard_history,
            chat_history=settings.dashboard_chat_history,
            discover_interval=settings.dashboard_discover_interval,
        )

    def history_for(self, channel: str) -> int:
        return self.history if namespace_of(channel) is Namespace.DATA else self.chat_history


class Consumer:
    """Feeds one ``SessionBuffer`` from the gateway on a thread of its own. Create, ``start``, ``stop``."""

    def __init__(self, buffer: SessionBuffer, config: ConsumerConfig) -> None:
        self.buffer = buffer
        self.config = config
        self.connection = Connection(
            config.ws_url,
            self._on_event,
            (*config.rooms, *config.channels),
            token=config.token,
            name=config.name,
            history=config.history_for,
            backoff=Backoff(first=config.backoff_first, cap=config.backoff_cap),
            open_timeout=5.0,
        )
        self._thread = LoopThread(self._main, name=f"pulse-consumer-{next(_serial)}")
        self._discovered: set[str] = set()
        """The channels discovery chose (at most ``MAX_AUTO_CHANNELS``)."""
        self._refused: dict[str, str] = {}
        """Configured or picked channels the gateway refused, with its reason (read from any thread)."""
        self._declined: set[str] = set()
        """Discovered channels the gateway refused: discovery does not choose them again."""
        self._replay_until: dict[str, tuple[int, str]] = {}
        """Per channel, the last offset of the history replayed on its first subscribe: notifications
        published before this session opened are the past, logged but not popped up as toasts."""
        self._opened_at = time.time()
        self._http: httpx.AsyncClient | None = None

    # -- any thread -------------------------------------------------------------------------------

    @property
    def thread_name(self) -> str:
        return self._thread.name

    def start(self) -> "Consumer":
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the thread to close its connection and end. Never blocks: safe from Streamlit's loop."""
        self._thread.stop()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end (tests and shutdown only); True when it has."""
        return self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def connected(self) -> bool:
        return self.connection.connected

    def publish(self, channel: str, payload: BaseModel, timeout: float) -> int:
        """Publish over the session's socket and wait for the ack; return the publication's offset.

        Called from the script thread. Raises ``NotConnectedError`` at once when there is no connection,
        ``RequestRejectedError`` when the gateway refuses the payload, ``SendTimeoutError`` after
        ``timeout`` seconds without an answer.
        """
        if not self.connection.connected:
            raise NotConnectedError(self._why_not_connected())
        try:
            return self._thread.run(
                self.connection.publish(channel, payload.model_dump(exclude_none=True)), timeout
            )
        except LoopClosedError:
            raise NotConnectedError("the dashboard's connection has been shut down") from None
        except TimeoutError:
            raise SendTimeoutError(
                f"the gateway did not acknowledge within {timeout:g} s; it may not have been published"
            ) from None

    def join_room(self, room: str) -> None:
        """Subscribe to a ``chat:`` room on this and every later connection (history loads on join)."""
        if Channel.parse(room).namespace is not Namespace.CHAT:
            raise ValueError(f"{room!r} is not a chat: channel")
        self._on_loop(self.connection.subscribe, room)

    def watch(self, channel: str) -> None:
        """Subscribe to a ``data:`` or ``notify:`` channel the user picked, now and on every later
        connection; if the gateway refuses, ``refused`` says why."""
        if Channel.parse(channel).namespace not in AUTO_NAMESPACES:
            raise ValueError(f"{channel!r} is not a data: or notify: channel")
        self._on_loop(self._pick, channel)

    def _on_loop(self, function: Callable[[str], None], channel: str) -> None:
        try:
            self._thread.call(function, channel)
        except LoopClosedError:
            raise ConsumerStoppedError("the dashboard's connection has been shut down") from None

    def refused(self) -> dict[str, str]:
        """Channels wanted but refused by the gateway (subscription limit, token), with the reason."""
        return dict(self._refused)

    def find_channels(self, prefix: str, limit: int, timeout: float) -> list[str]:
        """Names of live channels starting with ``prefix`` (at most ``limit``, by name), from the gateway.

        Called from the script thread; raises ``NotConnectedError`` when the gateway cannot answer.
        """
        try:
            return self._thread.run(self._find(prefix, limit), timeout)
        except LoopClosedError:
            raise NotConnectedError("the dashboard's connection has been shut down") from None
        except TimeoutError:
            raise NotConnectedError(f"the gateway did not answer within {timeout:g} s") from None

    async def _find(self, prefix: str, limit: int) -> list[str]:
        http = self._http
        if http is None:
            raise NotConnectedError(self._why_not_connected())
        try:
            body = await self._get(http, "/api/channels", (200,), {"prefix": prefix, "limit": limit})
            return [info.name for info in ChannelList.model_validate_json(body).channels]
        except (httpx.HTTPError, ValidationError, _HTTPStatusError) as exc:
            raise NotConnectedError(f"could not list channels: {exc}") from None

    def _why_not_connected(self) -> str:
        status = self.buffer.connection()
        if status.state is ConnectionState.STOPPED:
            return f"not connected to the gateway: {status.last_error or 'stopped'}"
        detail = f" ({status.last_error})" if status.last_error else ""
        return f"not connected to the gateway: {status.state}, attempt {status.attempt}{detail}"

    # -- the consumer thread ----------------------------------------------------------------------

    async def _main(self) -> None:
        headers = {"Authorization": f"Bearer {self.config.token}"} if self.config.token else {}
        self.buffer.set_connection(ConnectionState.CONNECTING)
        try:
            async with httpx.AsyncClient(
                base_url=self.config.http_url, headers=headers, timeout=httpx.Timeout(5.0), trust_env=False
            ) as http:
                self._http = http
                async with asyncio.TaskGroup() as tasks:
                    discovery = tasks.create_task(self._discover_forever(http))
                    await self.connection.run()
                    discovery.cancel()
        except* ConnectionStoppedError as stopped:
            self.buffer.set_connection(ConnectionState.STOPPED, error=_stopped_because(stopped.exceptions[0]))
        except* asyncio.CancelledError:
            self.buffer.set_connection(ConnectionState.STOPPED, error="released")
        except* Exception:
            log.exception("the dashboard consumer failed")
            self.buffer.set_connection(ConnectionState.STOPPED, error="internal error (see the log)")

    # -- subscriptions ----------------------------------------------------------------------------

    def _pick(self, channel: str) -> None:
        self._refused.pop(channel, None)
        self._declined.discard(channel)
        self.connection.subscribe(channel)

    async def _discover_forever(self, http: httpx.AsyncClient) -> None:
        while True:
            await self._discover(http)
            await asyncio.sleep(self.config.discover_interval)

    async def _discover(self, http: httpx.AsyncClient) -> None:
        """Read the channel list and health: subscribe to new data and notify channels; feed the overview."""
        previous = self.buffer.overview()
        # Only what is shown and chosen from: the most recently active channels, not the whole list.
        params: dict[str, str | int] = {"order": "recent", "limit": MAX_AUTO_CHANNELS}
        try:
            listing = ChannelList.model_validate_json(await self._get(http, "/api/channels", (200,), params))
            health = Health.model_validate_json(await self._get(http, "/healthz", (200, 503)))
        except (httpx.HTTPError, ValidationError, _HTTPStatusError) as exc:
            self.buffer.set_overview(
                GatewayOverview(
                    channels=previous.channels if previous else (),
                    health=previous.health if previous else None,
                    fetched_at=previous.fetched_at if previous else time.time(),
                    error=f"{type(exc).__name__}: {exc}"[:300],
                )
            )
            return
        self.buffer.set_overview(GatewayOverview(tuple(listing.channels), health, time.time()))
        active = [info.name for info in listing.channels]
        taken = {*self.connection.wanted, *self._declined}
        for name in choose_discovered(active, taken, MAX_AUTO_CHANNELS - len(self._discovered)):
            self._discovered.add(name)
            self.connection.subscribe(name)

    @staticmethod
    async def _get(
        http: httpx.AsyncClient, path: str, ok: tuple[int, ...], params: dict[str, str | int] | None = None
    ) -> bytes:
        response = await http.get(path, params=params)
        if response.status_code not in ok:
            raise _HTTPStatusError(f"GET {path} answered {response.status_code}")
        return response.content

    # -- what the connection says -----------------------------------------------------------------

    async def _on_event(self, event: Event) -> None:
        received_at = time.time()
        match event:
            case Pub():
                self._on_pub(event, received_at)
            case Subscribed(channel=channel, offset=offset, epoch=epoch):
                self._replay_until.setdefault(channel, (offset, epoch))
                if namespace_of(channel) is Namespace.CHAT:
                    await self.connection.send(PresenceOp(op="presence", channel=channel))
            case Gap():
                await self._on_gap(event, received_at)
            case Join() | Leave():
                apply_membership(self.buffer, event, received_at)
            case Presence():
                apply_presence(self.buffer, event)
            case Refused(channel=channel, code=code, detail=detail):
                if channel in self._discovered:
                    self._discovered.discard(channel)
                    self._declined.add(channel)  # not asked for by the user: not chosen again
                else:
                    self._refused[channel] = f"{code}: {detail}"
                log.warning("gateway refused %s: %s %s", channel, code, detail)
            case Connected(client_id=client_id, name=name):
                self.buffer.set_connection(ConnectionState.CONNECTED)
                log.info("connected to %s as %s (%s)", self.config.ws_url, name, client_id)
            case Disconnected(reason=reason, failures=failures):
                self.buffer.set_connection(ConnectionState.RECONNECTING, attempt=failures, error=reason)

    def _on_pub(self, pub: Pub, received_at: float) -> None:
        replayed = self._replay_until.get(pub.channel)
        live = replayed is None or replayed[1] != pub.epoch or pub.offset > replayed[0]
        # A channel found by discovery after the session opened replays its first notifications as
        # history: they are still news to this user.
        toast = live or pub.ts >= self._opened_at
        try:
            apply_pub(self.buffer, pub, received_at, toast=toast)
        except ValidationError as exc:
            log.warning("dropped a publication on %s that does not follow the contract: %s", pub.channel, exc)

    async def _on_gap(self, gap: Gap, received_at: float) -> None:
        """Nothing was replayed: read what the socket missed over HTTP (``dashboard.recovery``)."""
        http = self._http
        is_data = namespace_of(gap.channel) is Namespace.DATA
        if is_data:
            self.buffer.channel(gap.channel).mark_gap(received_at)
        if http is None:
            return
        complete = await fill_gap(
            http,
            self.buffer,
            gap.channel,
            gap.since,
            gap.position,
            limit=max(self.config.history_for(gap.channel), 1),
            received_at=received_at,
        )
        if complete and is_data:
            self.buffer.channel(gap.channel).clear_gap()


def _stopped_because(stopped: BaseException) -> str:
    """What the status line says when the gateway told the consumer not to reconnect."""
    if isinstance(stopped, ConnectionStoppedError) and stopped.code in (CloseCode.UNAUTHORIZED, 401, 403):
        return f"unauthorized ({stopped}): set a valid PULSE_TOKEN and restart the dashboard"
    return f"the gateway closed the connection: {stopped}"


class _HTTPStatusError(Exception):
    pass


def choose_discovered(active: Iterable[str], wanted: Collection[str], room: int) -> list[str]:
    """Of ``active`` (most recently active first), the ``data:`` and ``notify:`` channels not yet
    ``wanted``, at most ``room`` of them: what discovery subscribes to. Configured channels are in
    ``wanted`` from the start, so no number of other channels can take their place."""
    chosen: list[str] = []
    for name in active:
        if len(chosen) >= room:
            break
        if name not in wanted and name not in chosen and namespace_of(name) in AUTO_NAMESPACES:
            chosen.append(name)
    return chosen
