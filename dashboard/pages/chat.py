"""Chat: a room's log with sender and time, who is here, and a prompt publishing over the session's socket.

Every post goes out under the dashboard's identity, not the viewer's, so with a token (auth on) the page is
read-only unless ``PULSE_DASHBOARD_CHAT=on`` says viewers are trusted (``DashboardSettings.dashboard_chat``).

Chat text is untrusted: it is shown with ``st.text`` (no Markdown, no HTML, nothing fetched). A message the
gateway did not acknowledge is kept under the log with Retry and Discard: nothing typed is silently lost.
"""

from dataclasses import dataclass

import streamlit as st
from pydantic import ValidationError

from dashboard.chrome import session_chrome
from dashboard.consumer import SendTimeoutError
from dashboard.markup import escape_markdown
from dashboard.session import session_buffer, session_consumer
from dashboard.session_buffer import ChatKind
from dashboard.settings import get_settings
from dashboard.status import clock_time
from pulseboard.link import NotConnectedError, RequestRejectedError
from shared.channels import Channel, ChannelError, Namespace
from shared.payloads import MAX_CHAT_TEXT, ChatPost

ROOMS_KEY = "chat_rooms"
UNSENT_KEY = "chat_unsent"
LOG_LINES = 200


@dataclass(frozen=True, slots=True)
class Unsent:
    room: str
    text: str
    error: str


settings = get_settings()
buffer = session_buffer()
session_chrome()
consumer = session_consumer()
rooms: list[str] = st.session_state.setdefault(ROOMS_KEY, list(settings.dashboard_rooms))
unsent: list[Unsent] = st.session_state.setdefault(UNSENT_KEY, [])


def send(room: str, text: str) -> bool:
    """Publish ``text`` to ``room``; on failure, say why and keep the text for a retry."""
    try:
        consumer.publish(room, ChatPost(text=text), timeout=settings.dashboard_send_timeout)
    except (NotConnectedError, SendTimeoutError, RequestRejectedError, ValidationError) as exc:
        reason = str(exc) if not isinstance(exc, ValidationError) else "the message is not valid chat text"
        st.toast(f"Message not sent: {escape_markdown(reason)}", icon=":material/error:")
        unsent.append(Unsent(room, text, reason))
        return False
    return True


st.title("Chat")
top = st.columns([2, 2], vertical_alignment="bottom")
room = top[0].selectbox("Room", rooms, key="chat_room") or rooms[0]
with top[1].popover("Join another room", icon=":material/add:"):
    new_room = st.text_input("Room name", placeholder="ops", key="chat_new_room")
    if st.button("Join", key="chat_join") and new_room:
        try:
            channel = Channel.parse(f"chat:{new_room.strip()}")
        except ChannelError as exc:
            st.error(escape_markdown(str(exc)))
        else:
            if channel.namespace is Namespace.CHAT and str(channel) not in rooms:
                rooms.append(str(channel))
                consumer.join_room(str(channel))
                st.rerun()


@st.fragment(run_every=settings.dashboard_refresh)
def room_view() -> None:
    log_column, people_column = st.columns([4, 1])
    with log_column, st.container(height=520, autoscroll=True):
        entries = buffer.chat_log(room)[-LOG_LINES:]
        if not entries:
            st.text("No messages yet.")
        for entry in entries:
            when = clock_time(entry.ts)
            if entry.kind is ChatKind.MESSAGE:
                with st.chat_message("user", avatar=":material/person:"):
                    st.text(f"{entry.sender} · {when}")
                    st.text(entry.text)
            else:
                verb = "joined" if entry.kind is ChatKind.JOIN else "left"
                st.text(f"{when}  {entry.sender} {verb}")
    with people_column:
        present = sorted(set(buffer.presence(room).values()))
        st.text(f"Here now ({len(present)})")
        for name in present:
            st.text(f"● {name}")


# Sent before the log is drawn, so a failure shows below it in this same run (the input is pinned to
# the bottom of the page wherever it is called).
if settings.chat_enabled:
    prompt = st.chat_input(f"Message {room}", max_chars=MAX_CHAT_TEXT, key="chat_prompt")
    if prompt:
        send(room, prompt)
else:
    st.caption(
        "Read-only: posts would go out under this dashboard's token, whoever is viewing. "
        "An operator can allow them with PULSE_DASHBOARD_CHAT=on behind a login."
    )

room_view()

for index, item in enumerate(list(unsent)):
    if item.room != room:
        continue
    with st.container(border=True):
        st.text(f"Not sent: {item.text}")
        st.caption(f"Why: {escape_markdown(item.error)}")
        retry, discard = st.columns(2)
        if retry.button("Retry", key=f"retry_{index}", icon=":material/refresh:"):
            unsent.remove(item)
            send(item.room, item.text)
            st.rerun()
        if discard.button("Discard", key=f"discard_{index}", icon=":material/delete:"):
            unsent.remove(item)
            st.rerun()
