"""WebSocket text frames as bytes, encoded once and shared: a publication's frame is the same for every
subscriber (server frames are not masked)."""

import struct
from functools import lru_cache

CACHED_FRAME_CHARS = 4096
"""Frames up to this size are encoded once and reused (pub frames are shared by every subscriber)."""

LARGE_FRAMES_CACHED = 16
"""Larger frames (a tick's packed publications of a busy channel) are also shared by every subscriber,
but only the most recent few are kept: each can be a few hundred KiB."""


def text_frame(text: str) -> bytes:
    """One unmasked, unfragmented text frame holding ``text``."""
    if len(text) <= CACHED_FRAME_CHARS:
        return _shared_frame(text)
    return _shared_large_frame(text)


# Keyed by the str: the hub hands every subscriber the same object, whose hash Python caches, and a
# dict lookup finds the same object without comparing its characters.
@lru_cache(maxsize=2048)
def _shared_frame(text: str) -> bytes:
    return _encode_frame(text)


@lru_cache(maxsize=LARGE_FRAMES_CACHED)
def _shared_large_frame(text: str) -> bytes:
    return _encode_frame(text)


def _encode_frame(text: str) -> bytes:
    payload = text.encode()
    size = len(payload)
    if size < 126:
        return struct.pack("!BB", 0x81, size) + payload
    if size < 1 << 16:
        return struct.pack("!BBH", 0x81, 126, size) + payload
    return struct.pack("!BBQ", 0x81, 127, size) + payload
