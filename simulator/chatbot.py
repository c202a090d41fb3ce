"""The chat bot: a greeting at start, then now and then a remark about the simulated data.

It gives the dashboard's chat something to show without a second person at hand. It posts about every
``interval`` seconds (with jitter, so it does not read like a metronome).
"""

import random
from collections.abc import Sequence

from shared.channels import Channel, Namespace
from shared.payloads import ChatPost
from simulator.sources import DataSource

BOT_NAME = "simbot"
"""The sender name asked for with ``?name=``; a gateway with auth on uses the token's ``sub`` instead."""

CHAT_CHANNEL = Channel(Namespace.CHAT, "lobby")

_SMALL_TALK = (
    "All quiet here. Anyone watching the charts?",
    "Reminder: every number in this room is made up by python -m simulator.",
    "Coffee break for the humans, random walks for me.",
    "If a chart looks boring, wait for the next spike.",
)


class ChatBot:
    def __init__(
        self, sources: Sequence[DataSource], rng: random.Random, *, rate: float, interval: float = 5.0
    ) -> None:
        self._sources = sources
        self._rng = rng
        self._rate = rate
        self._interval = interval
        self._next: float | None = None

    def _remark(self) -> str:
        source = self._rng.choice(self._sources)
        if not source.latest or self._rng.random() < 0.25:
            return self._rng.choice(_SMALL_TALK)
        series = self._rng.choice(source.series)
        value = source.latest[series.name]
        return f"{source.channel} {series.name} is at {value:g}{series.unit} right now."

    def _greeting(self) -> str:
        channels = ", ".join(str(source.channel) for source in self._sources)
        return f"{BOT_NAME} here: simulating {channels} at {self._rate:g} points/s each."

    def due(self, now: float) -> ChatPost | None:
        """The post to send at ``now`` (monotonic seconds), if one is due."""
        if self._next is not None and now < self._next:
            return None
        text = self._greeting() if self._next is None else self._remark()
        self._next = now + self._interval * self._rng.uniform(0.6, 1.4)
        return ChatPost(text=text)
