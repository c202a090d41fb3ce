"""The channels the soak loads, and what fixes their content: the simulator's seed and every channel's
history size."""

from simulator.chatbot import CHAT_CHANNEL
from simulator.run import ALERT_CHANNEL

HISTORY = 1000
"""``PULSE_HISTORY_SIZE`` of the soak's gateway; every channel is filled to it before the clock starts."""
SOAK_ROOM = "chat:soak"
LOBBY = str(CHAT_CHANNEL)
ALERTS = str(ALERT_CHANNEL)
SEED = 7
