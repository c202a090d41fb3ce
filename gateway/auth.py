"""Who a client is and what it may do: HS256 tokens, channel permissions, and the origin policy.

A token is a JWT signed with ``PULSE_SECRET``::

    {"sub": "alice", "exp": 1767225600, "iat": ...,
     "channels": {"subscribe": ["data:*", "chat:*", "notify:*"], "publish": ["chat:*"]}}

Patterns are shell-style (``fnmatch``, case-sensitive). With auth off every client may do everything.
"""

import fnmatch
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import jwt

ALGORITHM = "HS256"
EVERYTHING = ("*",)
DEFAULT_LEEWAY = 30.0
"""Seconds of clock skew a token's ``exp``, ``nbf`` and ``iat`` are allowed (``PULSE_JWT_LEEWAY``): the host
that mints tokens and the gateway's rarely agree to the second, and without it a fresh token from a clock
a little ahead is refused as not yet valid, one from a clock behind as expired."""
MAX_SUBJECT_CHARS = 128
SUBJECT_RULE = f"1-{MAX_SUBJECT_CHARS} printable characters, with no leading or trailing space"
_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
"""Unicode categories a ``sub`` may not contain: controls, format characters (bidi overrides such as
U+202E, zero-width joiners), surrogates, private-use and unassigned code points, line and paragraph
separators. The ``sub`` reaches other users as a chat sender name, where these would reorder or hide text."""


class AuthError(Exception):
    """The token is missing, malformed, badly signed or expired."""


@dataclass(frozen=True, slots=True)
class Grant:
    """What one authenticated (or, with auth off, anonymous) client may do."""

    subject: str | None
    expires: float | None
    """When the gateway stops honouring the token: its ``exp`` plus the leeway it was verified with."""
    subscribe: tuple[str, ...] = EVERYTHING
    publish: tuple[str, ...] = EVERYTHING

    def may_subscribe(self, channel: str) -> bool:
        return _matches(self.subscribe, channel)

    def may_publish(self, channel: str) -> bool:
        return _matches(self.publish, channel)


OPEN = Grant(subject=None, expires=None)


def _matches(patterns: Sequence[str], channel: str) -> bool:
    return any(fnmatch.fnmatchcase(channel, pattern) for pattern in patterns)


def _patterns(claims: dict[str, object], key: str) -> tuple[str, ...]:
    channels = claims.get("channels")
    if not isinstance(channels, dict):
        return ()
    patterns = channels.get(key, [])
    if not isinstance(patterns, list) or not all(isinstance(item, str) for item in patterns):
        raise AuthError(f"token claim channels.{key} must be a list of strings")
    return tuple(patterns)


def verify_token(token: str, secret: str, *, leeway: float) -> Grant:
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": ["sub", "exp"]}, leeway=leeway
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("token expired") from None
    except jwt.InvalidTokenError as exc:
        raise AuthError(f"invalid token: {exc}") from None
    subject = claims["sub"]
    if not isinstance(subject, str) or not is_printable_subject(subject):
        raise AuthError(f"token sub must be {SUBJECT_RULE}")
    return Grant(
        subject=subject,
        # A token let in by the leeway must not be closed as expired the moment it is admitted.
        expires=float(claims["exp"]) + leeway,
        subscribe=_patterns(claims, "subscribe"),
        publish=_patterns(claims, "publish"),
    )


def is_printable_subject(subject: str) -> bool:
    """Whether ``subject`` may be an identity: 1 to 128 characters, printable (letters of any script,
    digits, punctuation, symbols, inner spaces), with no leading or trailing whitespace."""
    return (
        0 < len(subject) <= MAX_SUBJECT_CHARS
        and subject == subject.strip()
        and not any(unicodedata.category(char) in _UNPRINTABLE for char in subject)
    )


def mint_token(
    secret: str,
    subject: str,
    *,
    ttl: float,
    subscribe: Sequence[str] = ("data:*", "chat:*", "notify:*"),
    publish: Sequence[str] = ("chat:*",),
) -> str:
    if not is_printable_subject(subject):
        raise ValueError(f"sub must be {SUBJECT_RULE}")
    now = int(time.time())
    claims = {
        "sub": subject,
        "iat": now,
        "exp": now + int(ttl),
        "channels": {"subscribe": list(subscribe), "publish": list(publish)},
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def origin_allowed(origin: str | None, host: str | None, allowed: Sequence[str]) -> bool:
    """Browsers send ``Origin``; allow none (non-browser clients), our own, and exactly the listed ones.

    Matching is exact on scheme, host and port, so ``http://evil-localhost.com`` or
    ``http://localhost.evil.com`` never pass as ``http://localhost``; the opaque ``null`` (sandboxed
    frames, ``file:`` pages) passes only if an operator lists it, or allows ``*``.
    """
    if origin is None:
        return True
    if "*" in allowed:
        return True
    normalized = origin.strip().rstrip("/").lower()
    if normalized in {item.lower() for item in allowed}:
        return True
    parts = urlsplit(normalized)
    return parts.scheme in ("http", "https") and bool(host) and parts.netloc == (host or "").lower()
