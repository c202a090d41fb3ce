"""The ``pub`` envelope's bytes: how a publication is written for subscribers, and how it is recognised.

The envelope is ``shared.messages.Pub`` as ``encode`` writes it. Building the model to serialise it was
most of the cost of ingest, so the gateway writes its JSON by hand from the literal pieces below: in
Python (``pub_frame``) and in the Redis broker's publish script, which is given the same pieces
(``lua_pieces``) instead of a copy of its own. tests/test_envelope.py checks that both write the model's
bytes exactly.

Channel names and epochs follow the name rules, so neither has a character that JSON escapes; both are
written between quotes as they are.
"""

from pydantic_core import to_json

PUB_TYPE = "pub"
"""The ``type`` of a publication, for code that reads decoded messages."""

# The envelope between its values: OPEN channel OFFSET offset EPOCH epoch TS ts DATA data CLOSE.
OPEN = '{"type":"pub","channel":"'
OFFSET = '","offset":'
EPOCH = ',"epoch":"'
TS = '","ts":'
DATA = ',"data":'
CLOSE = "}"


def json_number(value: float) -> str:
    """``value`` as the model writes it: ``1e-7`` where ``repr`` writes ``1e-07`` (and faster)."""
    return to_json(value).decode()


def pub_frame(channel: str, offset: int, epoch: str, ts: float, data: str) -> str:
    """The envelope's JSON text; ``data`` is the payload's JSON as ``pydantic_core.to_json`` writes it."""
    return f"{OPEN}{channel}{OFFSET}{offset}{EPOCH}{epoch}{TS}{json_number(ts)}{DATA}{data}{CLOSE}"


def is_pub(text: str) -> bool:
    """Whether a server message's JSON text is a publication (and not an event such as ``join``)."""
    return text.startswith(OPEN)


def lua_pieces() -> str:
    """Lua declaring the pieces as locals ``PUB_OPEN`` ... ``PUB_CLOSE``, for a script to begin with."""
    pieces = {"OPEN": OPEN, "OFFSET": OFFSET, "EPOCH": EPOCH, "TS": TS, "DATA": DATA, "CLOSE": CLOSE}
    return "".join(f"local PUB_{name} = {_lua_string(piece)}\n" for name, piece in pieces.items())


def _lua_string(text: str) -> str:
    # Single-quoted: the pieces are full of double quotes. They are ASCII without control characters,
    # so a backslash and the quote are all that need escaping.
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
