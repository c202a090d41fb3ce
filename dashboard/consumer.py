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
import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import Collection, Coroutine, Iterable
from dataclasses import dataclass
from itertools import count
from typing import Any, TypeVar
from urllib.parse import urlencode

import httpx
from pydantic import BaseModel, ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from dashboard.ingest import apply_membership, apply_presence, apply_pub, namespace_of
from dashboard.link import Link, NotConnectedError
from dashboard.recovery import fill_gap
from dashboard.session_buffer import ConnectionState, GatewayOverview, SessionBuffer
from dashboard.settings import DashboardSettings
from shared.api import ChannelList, Health
from shared.backoff import Backoff
from shared.channels import Channel, Namespace
from shared.codes import CloseCode, should_reconnect
from shared.messages import (
    Ack,
    Error,
    Join,
    Leave,
    Presence,
    PresenceOp,
    Pub,
    PublishOp,
    ServerMessage,
    StreamPosition,
    Subscribed,
    SubscribeOp,
    Welcome,
    parse_server_frame,
)

log = logging.getLogger(__name__)

STABLE_AFTER = 5.0
"""Seconds a connection must stay up before the backoff starts again from its first delay: a gateway that
accepts and then closes at once must not get a reconnect storm."""
T = TypeVar("T")
CLOSE_TIMEOUT = 0.5
"""Seconds to wait for the gateway's close frame when stopping: a released session frees its thread fast."""
MAX_FRAME_BYTES = 16 * 1024 * 1024
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


class _StopConsumerError(Exception):
    """Raised on the loop when the consumer must not reconnect; the message is shown to the user."""


class Consumer:
    """Feeds one ``SessionBuffer`` from the gateway on a thread of its own. Create, ``start``, ``stop``."""

    def __init__(self, buffer: SessionBuffer, config: ConsumerConfig) -> None:
        self.buffer = buffer
        self.config = config
        # Created here, run on the thread: ``stop`` can schedule onto it even before the thread started.
        self._loop = asyncio.new_event_loop()
        self._stop_requested = asyncio.Event()
        self._thread = threading.Thread(target=self._run, name=f"pulse-consumer-{next(_serial)}", daemon=True)
        self._wanted: dict[str, None] = dict.fromkeys((*config.rooms, *config.channels))
        """Channels to be subscribed on every connection, in order (a dict as an ordered set)."""
        self._discovered: set[str] = set()
        """The channels of ``_wanted`` that discovery chose (at most ``MAX_AUTO_CHANNELS``)."""
        self._refused: dict[str, str] = {}
        """Configured or picked channels the gateway refused, with its reason (read from any thread)."""
        self._declined: set[str] = set()
        """Discovered channels the gateway refused: discovery does not choose them again."""
        self._link: Link | None = None
        self._resuming: dict[str, StreamPosition] = {}
        """Channels subscribed with ``since`` on this connection, until their ``subscribed`` arrives."""
        self._replay_until: dict[str, tuple[int, str]] = {}
        """Per channel, the last offset of the history replayed on subscribe: notifications published
        before this session opened are the past, logged but not popped up as toasts."""
        self._opened_at = time.time()
        self._subscribe_refs: dict[int, str] = {}
        self._last_error = ""
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
        # A closed loop raises RuntimeError: the thread has already ended.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._stop_requested.set)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end (tests and shutdown only); True when it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def connected(self) -> bool:
        return self._link is not None

    def publish(self, channel: str, payload: BaseModel, timeout: float) -> int:
        """Publish over the session's socket and wait for the ack; return the publication's offset.

        Called from the script thread. Raises ``NotConnectedError`` at once when there is no connection,
        ``RequestRejectedError`` when the gateway refuses the payload, ``SendTimeoutError`` after
        ``timeout`` seconds without an answer.
        """
        if self._link is None:
            raise NotConnectedError(self._why_not_connected())
        op = PublishOp(op="publish", channel=channel, data=payload.model_dump(exclude_none=True))
        try:
            return self._on_loop(self._publish(op), timeout)
        except TimeoutError:
            raise SendTimeoutError(
                f"the gateway did not acknowledge within {timeout:g} s; it may not have been published"
            ) from None

    def _on_loop(self, work: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run ``work`` on the consumer's loop and wait for it, from the script thread; ``TimeoutError``
        after ``timeout`` seconds (``work`` is cancelled)."""
        try:
            future = asyncio.run_coroutine_threadsafe(work, self._loop)
        except RuntimeError:
            work.close()
            raise NotConnectedError("the dashboard's connection has been shut down") from None
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    def join_room(self, room: str) -> None:
        """Subscribe to a ``chat:`` room on this and every later connection (history loads on join)."""
        if Channel.parse(room).namespace is not Namespace.CHAT:
            raise ValueError(f"{room!r} is not a chat: channel")
        try:
            self._loop.call_soon_threadsafe(self._want, room)
        except RuntimeError:
            raise ConsumerStoppedError("the dashboard's connection has been shut down") from None

    def watch(self, channel: str) -> None:
        """Subscribe to a ``data:`` or ``notify:`` channel the user picked, now and on every later
        connection; if the gateway refuses, ``refused`` says why."""
        if Channel.parse(channel).namespace not in AUTO_NAMESPACES:
            raise ValueError(f"{channel!r} is not a data: or notify: channel")
        try:
            self._loop.call_soon_threadsafe(self._pick, channel)
        except RuntimeError:
            raise ConsumerStoppedError("the dashboard's connection has been shut down") from None

    def refused(self) -> dict[str, str]:
        """Channels wanted but refused by the gateway (subscription limit, token), with the reason."""
        return dict(self._refused)

    def find_channels(self, prefix: str, limit: int, timeout: float) -> list[str]:
        """Names of live channels starting with ``prefix`` (at most ``limit``, by name), from the gateway.

        Called from the script thread; raises ``NotConnectedError`` when the gateway cannot answer.
        """
        try:
            return self._on_loop(self._find(prefix, limit), timeout)
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

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        except Exception:
            log.exception("the dashboard consumer failed")
            self.buffer.set_connection(ConnectionState.STOPPED, error="internal error (see the log)")
        finally:
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    async def _main(self) -> None:
        headers = {"Authorization": f"Bearer {self.config.token}"} if self.config.token else {}
        async with httpx.AsyncClient(
            base_url=self.config.http_url, headers=headers, timeout=httpx.Timeout(5.0), trust_env=False
        ) as http:
            self._http = http
            stop = asyncio.ensure_future(self._stop_requested.wait())
            work = asyncio.ensure_future(self._connect_forever(http))
            await asyncio.wait({stop, work}, return_when=asyncio.FIRST_COMPLETED)
            for task in (stop, work):
                task.cancel()
            await asyncio.gather(stop, work, return_exceptions=True)
        if self._stop_requested.is_set():
            self.buffer.set_connection(ConnectionState.STOPPED, error="released")

    async def _connect_forever(self, http: httpx.AsyncClient) -> None:
        backoff = Backoff(first=self.config.backoff_first, cap=self.config.backoff_cap)
        headers = {"Authorization": f"Bearer {self.config.token}"} if self.config.token else {}
        url = self.config.ws_url
        if not self.config.token:
            url = f"{url}?{urlencode({'name': self.config.name})}"
        while True:
            state = ConnectionState.CONNECTING if backoff.failures == 0 else ConnectionState.RECONNECTING
            self.buffer.set_connection(state, attempt=backoff.failures, error=self._last_error)
            opened_at = time.monotonic()
            error = ""
            try:
                async with connect(
                    url,
                    additional_headers=headers,
                    proxy=None,
                    open_timeout=5.0,
                    close_timeout=CLOSE_TIMEOUT,
                    max_size=MAX_FRAME_BYTES,
                    compression=None,
                ) as ws:
                    with contextlib.suppress(ConnectionClosed):
                        await self._serve(ws, http)
                    error = self._check_close(ws)
            except _StopConsumerError as exc:
                self.buffer.set_connection(ConnectionState.STOPPED, error=str(exc))
                return
            except InvalidStatus as exc:
                error = f"the gateway refused the WebSocket: HTTP {exc.response.status_code}"
            except (OSError, TimeoutError, InvalidHandshake) as exc:
                error = f"{type(exc).__name__}: {exc}".rstrip(": ")
            if time.monotonic() - opened_at >= STABLE_AFTER:
                backoff.succeeded(time.monotonic())
            delay = backoff.failed(time.monotonic())
            self._last_error = error
            self.buffer.set_connection(ConnectionState.RECONNECTING, attempt=backoff.failures, error=error)
            log.info("gateway connection lost (%s); reconnecting in %.2f s", error, delay)
            await asyncio.sleep(delay)

    def _check_close(self, ws: ClientConnection) -> str:
        """What the close means: raises ``_StopConsumerError`` when we must not reconnect, else the reason."""
        code, reason = ws.close_code, ws.close_reason or ""
        if code == CloseCode.UNAUTHORIZED:
            why = f"4401 {reason}".strip()
            raise _StopConsumerError(f"unauthorized ({why}): set a valid PULSE_TOKEN and reload")
        if code is not None and not should_reconnect(code):
            raise _StopConsumerError(f"the gateway closed the connection: {code} {reason}".strip())
        return f"closed: {code} {reason}".strip() if code is not None else "connection lost"

    async def _serve(self, ws: ClientConnection, http: httpx.AsyncClient) -> None:
        welcome = self._welcome(await ws.recv())
        if welcome.auth_required:
            raise _StopConsumerError("the gateway requires a token: set PULSE_TOKEN and reload")
        link = Link(ws, welcome.client_id, welcome.name)
        self._resuming.clear()
        self._subscribe_refs.clear()
        self._link = link
        self.buffer.set_connection(ConnectionState.CONNECTED)
        log.info("connected to %s as %s (%s)", self.config.ws_url, welcome.name, welcome.client_id)
        discovery = asyncio.ensure_future(self._discover_forever(http, link))
        try:
            positions = self.buffer.positions()
            for channel in list(self._wanted):
                await self._subscribe(link, channel, positions.get(channel))
            async for frame in ws:
                received_at = time.time()
                try:
                    messages = parse_server_frame(frame)
                except ValidationError as exc:
                    log.warning("dropped a frame that does not follow the protocol: %s", exc.errors()[:1])
                    continue
                for message in messages:
                    await self._handle(link, http, message, received_at)
        finally:
            self._link = None
            link.close("the connection to the gateway was lost before the reply")
            discovery.cancel()

    @staticmethod
    def _welcome(frame: str | bytes) -> Welcome:
        messages = parse_server_frame(frame)
        if len(messages) != 1 or not isinstance(messages[0], Welcome):
            raise _StopConsumerError("the server did not greet with a Pulseboard welcome: is the URL right?")
        return messages[0]

    # -- subscriptions ----------------------------------------------------------------------------

    def _pick(self, channel: str) -> None:
        self._refused.pop(channel, None)
        self._declined.discard(channel)
        self._want(channel)

    def _want(self, channel: str) -> None:
        if channel in self._wanted:
            return
        self._wanted[channel] = None
        link = self._link
        if link is not None:
            self._loop.create_task(self._subscribe(link, channel, None))

    async def _subscribe(self, link: Link, channel: str, since: StreamPosition | None) -> None:
        namespace = namespace_of(channel)
        if since is not None:
            op = SubscribeOp(op="subscribe", channel=channel, since=since)
            self._resuming[channel] = since
        else:
            history = self.config.history if namespace is Namespace.DATA else self.config.chat_history
            op = SubscribeOp(op="subscribe", channel=channel, history=history)
        try:
            self._subscribe_refs[await link.send(op)] = channel
            if namespace is Namespace.CHAT:
                await link.send(PresenceOp(op="presence", channel=channel))
        except NotConnectedError:
            pass  # the reconnect resubscribes

    async def _discover_forever(self, http: httpx.AsyncClient, link: Link) -> None:
        while True:
            await self._discover(http, link)
            await asyncio.sleep(self.config.discover_interval)

    async def _discover(self, http: httpx.AsyncClient, link: Link) -> None:
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
        taken = self._wanted.keys() | self._declined
        for name in choose_discovered(active, taken, MAX_AUTO_CHANNELS - len(self._discovered)):
            self._discovered.add(name)
            self._wanted[name] = None
            await self._subscribe(link, name, None)

    @staticmethod
    async def _get(
        http: httpx.AsyncClient, path: str, ok: tuple[int, ...], params: dict[str, str | int] | None = None
    ) -> bytes:
        response = await http.get(path, params=params)
        if response.status_code not in ok:
            raise _HTTPStatusError(f"GET {path} answered {response.status_code}")
        return response.content

    # -- messages ---------------------------------------------------------------------------------

    async def _handle(
        self, link: Link, http: httpx.AsyncClient, message: ServerMessage, received_at: float
    ) -> None:
        if isinstance(message, Pub):
            self._on_pub(message, received_at)
        elif isinstance(message, Subscribed):
            await self._on_subscribed(http, message, received_at)
        elif isinstance(message, Join | Leave):
            apply_membership(self.buffer, message, received_at)
        elif isinstance(message, Presence):
            apply_presence(self.buffer, message)
            link.resolve(message)
        elif isinstance(message, Error):
            if not link.resolve(message):
                channel = self._subscribe_refs.pop(message.ref, "") if isinstance(message.ref, int) else ""
                if channel:
                    self._wanted.pop(channel, None)
                    if channel in self._discovered:
                        self._discovered.discard(channel)
                        self._declined.add(channel)  # not asked for by the user: not chosen again
                    else:
                        self._refused[channel] = f"{message.code}: {message.detail}"
                where = channel or "a request"
                log.warning("gateway error %s on %s: %s", message.code, where, message.detail)
        else:
            link.resolve(message)

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

    async def _on_subscribed(
        self, http: httpx.AsyncClient, subscribed: Subscribed, received_at: float
    ) -> None:
        if isinstance(subscribed.ref, int):
            self._subscribe_refs.pop(subscribed.ref, None)
        channel = subscribed.channel
        since = self._resuming.pop(channel, None)
        if since is None:
            self._replay_until[channel] = (subscribed.offset, subscribed.epoch)
            return
        if subscribed.recovered:
            return
        is_data = namespace_of(channel) is Namespace.DATA
        if is_data:
            self.buffer.channel(channel).mark_gap(received_at)
        log.info("%s: not recovered from %s (now %s); reloading history", channel, since, subscribed.epoch)
        limit = self.config.history if is_data else self.config.chat_history
        complete = await fill_gap(
            http, self.buffer, since, subscribed, limit=max(limit, 1), received_at=received_at
        )
        if complete and is_data:
            self.buffer.channel(channel).clear_gap()

    async def _publish(self, op: PublishOp) -> int:
        link = self._link
        if link is None:
            raise NotConnectedError(self._why_not_connected())
        reply = await link.request(op)
        if not isinstance(reply, Ack) or reply.offset is None:
            raise NotConnectedError(f"unexpected reply to publish: {reply.type}")
        return reply.offset


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
