"""Channel names: ``<namespace>:<name>`` with namespace ``data``, ``chat`` or ``notify``."""

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator

NAME_PATTERN = r"[A-Za-z0-9_.-]{1,64}"
"""Also the rule for series names and ``name`` identities."""

_NAME_RE = re.compile(NAME_PATTERN)
_NOT_NAME = re.compile(r"[^A-Za-z0-9_.-]")
MAX_NAME = 64


class Namespace(StrEnum):
    DATA = "data"
    """Time series: data points, may live in memory only."""
    CHAT = "chat"
    """Chat rooms: durable (SQLite or Redis), with presence and join/leave events."""
    NOTIFY = "notify"
    """Notifications: durable, shown as toasts and banners."""


DURABLE_NAMESPACES = frozenset({Namespace.CHAT, Namespace.NOTIFY})


class ChannelError(ValueError):
    """A channel name that does not follow the contract."""


@dataclass(frozen=True, slots=True)
class Channel:
    namespace: Namespace
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}:{self.name}"

    @property
    def durable(self) -> bool:
        return self.namespace in DURABLE_NAMESPACES

    @classmethod
    def parse(cls, text: str) -> "Channel":
        """Parse ``text`` or raise ``ChannelError`` saying what is wrong with it."""
        if not isinstance(text, str):
            raise ChannelError("channel must be a string")
        namespace, sep, name = text.partition(":")
        if not sep:
            raise ChannelError(f"channel {text[:80]!r} has no namespace; use data:, chat: or notify:")
        try:
            ns = Namespace(namespace)
        except ValueError:
            raise ChannelError(f"unknown namespace {namespace[:80]!r}; use data:, chat: or notify:") from None
        if not is_valid_name(name):
            raise ChannelError(f"channel name must match {NAME_PATTERN}, got {name[:80]!r}")
        return cls(ns, name)


def is_valid_name(name: str) -> bool:
    return _NAME_RE.fullmatch(name) is not None


def to_name(text: str) -> str:
    """``text`` made a valid channel or series name, for names that come from elsewhere (InfluxDB
    measurements and tags, MQTT topics): characters a name cannot hold become ``_``, and a name longer
    than 64 characters keeps its first 55 and ends with ``-`` and 8 hex digits of its hash, so two long
    names stay apart."""
    name = _NOT_NAME.sub("_", text) or "_"
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.blake2b(text.encode(), digest_size=4).hexdigest()
    return f"{name[: MAX_NAME - 9]}-{digest}"


def split_list(value: object) -> object:
    """A comma-separated setting (``"a, b"``) as a list of its non-empty parts; other values unchanged."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def check_namespaces(names: list[str], *allowed: Namespace) -> list[str]:
    """``names`` when each is a valid channel in one of ``allowed``; else ``ValueError`` naming the first."""
    for name in names:
        if Channel.parse(name).namespace not in allowed:
            wanted = " or ".join(f"{namespace}:" for namespace in allowed)
            raise ValueError(f"{name!r} is not a {wanted} channel")
    return names


def _only(*allowed: Namespace) -> Callable[[list[str]], list[str]]:
    return lambda names: check_namespaces(names, *allowed)


ChatChannelList = Annotated[list[str], BeforeValidator(split_list), AfterValidator(_only(Namespace.CHAT))]
"""A setting of ``chat:`` channels, given comma-separated (``"chat:a, chat:b"``) or as a list."""
NotifyChannelList = Annotated[list[str], BeforeValidator(split_list), AfterValidator(_only(Namespace.NOTIFY))]
"""A setting of ``notify:`` channels, comma-separated or a list."""
WatchedChannelList = Annotated[
    list[str], BeforeValidator(split_list), AfterValidator(_only(Namespace.DATA, Namespace.NOTIFY))
]
"""A setting of ``data:`` and ``notify:`` channels, comma-separated or a list."""


def _data_channel(name: str) -> str:
    check_namespaces([name], Namespace.DATA)
    return name


DataChannelName = Annotated[str, AfterValidator(_data_channel)]
"""One ``data:`` channel's name (a notification names the chart it is about with one)."""
