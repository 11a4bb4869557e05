"""The test side of a chat: one user who types, taps buttons and waits for the bot.

Waiting is event-driven (no fixed sleeps): ``reply`` returns as soon as the bot posts or edits a
matching message, ``settle`` as soon as the bot has been quiet for a moment. Failures raise
``AssertionError`` with the chat transcript, so a failing e2e test shows what the user saw.
"""

from __future__ import annotations

import asyncio
import struct
import time
import zlib

from bot.sandbox.telegram.chat import (
    CallbackAnswer,
    Chat,
    ChatEvent,
    ChatMessage,
    TelegramUser,
)
from bot.sandbox.telegram.keyboards import Button
from bot.sandbox.telegram.methods import BotApi

_UNDELIVERED_POLL_SECONDS = 0.02


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


# A valid 1×1 grey PNG, what a user's screenshot looks like to the bot by default.
TINY_PNG = (
    b"\x89PNG\r\n\x1a\n"
    + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
    + _png_chunk(b"IDAT", zlib.compress(b"\x00\x80"))
    + _png_chunk(b"IEND", b"")
)


class ChatDriver:
    """One user in one chat. Get it from ``TelegramServer.private_chat``/``group_chat``."""

    def __init__(self, api: BotApi, chat: Chat, user: TelegramUser) -> None:
        self._api = api
        self._chat = chat
        self.user = user
        self._action_mark = len(chat.events)  # events after this happened since our last action
        self._read_mark = self._action_mark  # reply() has consumed events before this
        self._action_time = time.monotonic()

    @property
    def chat_id(self) -> int:
        """The chat's id (the user's id in a private chat)."""
        return self._chat.id

    # --- acting ----------------------------------------------------------------------------

    async def send(self, text: str, *, reply_to: ChatMessage | int | None = None) -> int:
        """Send a text message (``/command`` gets its bot_command entity), optionally as a
        reply; returns its id. In groups the bot only gets commands and replies to itself."""
        target = reply_to.message_id if isinstance(reply_to, ChatMessage) else reply_to
        message = self._api.user_message(self._chat, self.user, text=text, reply_to=target)
        return await self._send(message)

    async def send_sticker(self, emoji: str = "👍") -> int:
        """Send a sticker, the classic not-what-the-bot-asked-for message."""
        message = self._api.user_message(self._chat, self.user, kind="sticker", text=emoji)
        return await self._send(message)

    async def send_photo(self, data: bytes = TINY_PNG, caption: str = "") -> int:
        """Send a photo, e.g. a screenshot of an API key instead of the key itself."""
        message = self._api.user_message(
            self._chat, self.user, kind="photo", text=caption, data=data
        )
        return await self._send(message)

    async def press(
        self, message: ChatMessage | int, button: str | None = None, *, data: str | None = None
    ) -> str:
        """Tap the button whose text is (or contains) ``button`` on the message as it is now,
        or send arbitrary ``data`` as if a client forged it. Returns the callback query id once
        the update is queued."""
        current = self._current(message)
        if data is None:
            if button is None:
                raise TypeError("press() needs the button text or data=")
            target = self._find_button(current, button)
            if target.data is None:
                raise AssertionError(f"button {target.text!r} opens {target.url}, no callback")
            data = target.data
        query_id = self._api.user_presses(self._chat, self.user, current, data)
        self._mark_action()
        await asyncio.sleep(0)
        return query_id

    # --- waiting ---------------------------------------------------------------------------

    # ``timeout`` here is a deadline for the assertion, not a cancellation scope.
    async def reply(
        self,
        contains: str | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> ChatMessage:
        """The next message the bot posted or edited since this user's last action (and since
        the previous ``reply``), optionally one whose plain text contains ``contains``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            events = self._chat.events
            for index in range(self._read_mark, len(events)):
                event = events[index]
                shown = event.message
                if event.kind not in ("new", "edit") or shown is None or not shown.from_bot:
                    continue
                if contains is None or contains in shown.text:
                    self._read_mark = index + 1
                    return shown
            remaining = deadline - loop.time()
            if remaining <= 0:
                wanted = f"containing {contains!r}" if contains else "at all"
                raise AssertionError(
                    f"the bot did not reply {wanted} within {timeout}s\n{self.transcript()}"
                )
            await self._api.activity.wait(remaining)

    async def answer(
        self,
        query_id: str,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> CallbackAnswer:
        """The bot's answer to the button press ``query_id`` (what ``press`` returned), once it
        has answered: a toast or alert, however long the bot took."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for answer in self._chat.callback_answers:
                if answer.query_id == query_id:
                    return answer
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(
                    f"the bot did not answer the button press within {timeout}s\n"
                    f"{self.transcript()}"
                )
            await self._api.activity.wait(remaining)

    async def settle(
        self,
        quiet: float = 0.3,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> list[ChatEvent]:
        """Wait until the bot has fetched this chat's updates and then stayed quiet here for
        ``quiet`` seconds; return the events since this user's last action."""
        deadline = time.monotonic() + timeout
        while True:
            now = time.monotonic()
            idle = now - max(self._chat.last_activity, self._action_time)
            delivered = not self._api.updates.has_undelivered(self._chat.id)
            if delivered and idle >= quiet:
                return self._chat.events[self._action_mark :]
            if now >= deadline:
                state = "is still busy" if delivered else "never fetched the updates"
                raise AssertionError(f"the bot {state} after {timeout}s\n{self.transcript()}")
            pause = quiet - idle if delivered else _UNDELIVERED_POLL_SECONDS
            await self._api.activity.wait(min(max(pause, 0.001), deadline - now))

    # --- looking ---------------------------------------------------------------------------

    @property
    def messages(self) -> list[ChatMessage]:
        """Every message in the chat as it looks now, oldest first (deleted ones included)."""
        return [self._chat.messages[i] for i in sorted(self._chat.messages)]

    @property
    def deleted_ids(self) -> set[int]:
        """Ids of the messages that have been deleted."""
        return {m.message_id for m in self._chat.messages.values() if m.deleted}

    @property
    def callback_answers(self) -> list[CallbackAnswer]:
        """Every answer to a button press in this chat, in order."""
        return list(self._chat.callback_answers)

    def transcript(self) -> str:
        """The chat as a person would retell it: messages in order, with their buttons, edits,
        deletions and button answers."""
        chat = self._chat
        lines = [f"--- chat {chat.id} ({chat.type}{f': {chat.title}' if chat.title else ''}) ---"]
        for event in chat.events:
            if event.kind == "new" and event.message is not None:
                lines.extend(_render(chat.messages[event.message.message_id]))
            elif event.kind == "callback_answer" and event.answer is not None:
                alert = "alert" if event.answer.show_alert else "toast"
                lines.append(f"    ({alert} for button press: {event.answer.text or ''})")
        return "\n".join(lines)

    # --- internals -------------------------------------------------------------------------

    async def _send(self, message: ChatMessage) -> int:
        self._mark_action()
        await asyncio.sleep(0)  # let a waiting long poll see the update
        return message.message_id

    def _mark_action(self) -> None:
        self._action_mark = self._read_mark = len(self._chat.events)
        self._action_time = time.monotonic()

    def _current(self, message: ChatMessage | int) -> ChatMessage:
        message_id = message if isinstance(message, int) else message.message_id
        current = self._chat.messages.get(message_id)
        if current is None or current.deleted:
            raise AssertionError(
                f"message {message_id} is not in the chat any more\n{self.transcript()}"
            )
        return current

    def _find_button(self, message: ChatMessage, label: str) -> Button:
        buttons = [button for row in message.buttons for button in row]
        exact = [button for button in buttons if button.text == label]
        matches = exact or [button for button in buttons if label in button.text]
        if len(matches) != 1:
            problem = "no button" if not matches else "several buttons"
            raise AssertionError(
                f"{problem} matching {label!r} on message {message.message_id}: "
                f"{message.button_labels()}\n{self.transcript()}"
            )
        return matches[0]


def _render(message: ChatMessage) -> list[str]:
    """One message as transcript lines."""
    who = "bot" if message.from_bot else message.sender.first_name
    notes = []
    if message.kind != "text":
        size = f" {len(message.file.data)} bytes" if message.file else ""
        notes.append(f"{message.kind}{size}")
    if message.edits:
        notes.append(f"edited {len(message.edits)}x")
    if message.deleted:
        notes.append("deleted")
    head = f"#{message.message_id} {who}" + (f" [{', '.join(notes)}]" if notes else "")
    body = message.text.splitlines() or [""]
    lines = [f"{head}: {body[0]}", *(f"    {line}" for line in body[1:])]
    for row in message.buttons:
        lines.append("    " + " ".join(_render_button(button) for button in row))
    return lines


def _render_button(button: Button) -> str:
    return f"[{button.text} -> {button.url}]" if button.url else f"[{button.text}]"
