"""What the local Telegram knows about a chat: its members, its messages, what happened in it.

Messages are immutable snapshots (an edit replaces the snapshot), so a test can keep the message
it was shown and compare it with what the chat holds now.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any, Literal, NamedTuple

from bot.sandbox.telegram.html import MessageEntity
from bot.sandbox.telegram.keyboards import Button

ChatType = Literal["private", "group", "supergroup"]
MessageKind = Literal["text", "photo", "document", "sticker"]
EventKind = Literal["new", "edit", "delete", "callback_answer", "chat_action"]
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class TelegramUser:
    """A Telegram account: one of the test users, or the bot itself."""

    id: int
    first_name: str
    is_bot: bool = False
    username: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The Bot API ``User`` object."""
        result: dict[str, Any] = {
            "id": self.id,
            "is_bot": self.is_bot,
            "first_name": self.first_name,
        }
        if self.username:
            result["username"] = self.username
        return result


@dataclass(frozen=True)
class StoredFile:
    """An uploaded photo or document, kept so tests can look at the bytes."""

    file_id: str
    file_unique_id: str
    data: bytes
    file_name: str | None = None
    mime_type: str | None = None

    def photo_size_json(self) -> dict[str, Any]:
        """A ``PhotoSize``; PNG dimensions are read from the header, anything else is 0×0."""
        width = height = 0
        if self.data.startswith(_PNG_SIGNATURE) and len(self.data) >= 24:
            width, height = struct.unpack(">II", self.data[16:24])
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "width": width,
            "height": height,
            "file_size": len(self.data),
        }

    def document_json(self) -> dict[str, Any]:
        """A ``Document``."""
        result: dict[str, Any] = {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": len(self.data),
        }
        if self.file_name:
            result["file_name"] = self.file_name
        if self.mime_type:
            result["mime_type"] = self.mime_type
        return result


@dataclass(frozen=True)
class ChatMessage:
    """A message as the chat shows it now. ``text`` is plain (a caption for media, the emoji
    for a sticker); ``html`` is the text exactly as the bot sent it."""

    message_id: int
    from_bot: bool
    sender: TelegramUser
    date: int
    kind: MessageKind = "text"
    text: str = ""
    html: str = ""
    entities: tuple[MessageEntity, ...] = ()
    buttons: list[list[Button]] = field(default_factory=list)
    reply_markup: dict[str, Any] | None = None  # the inline keyboard as sent, echoed back
    file: StoredFile | None = None
    deleted: bool = False
    edits: list[str] = field(default_factory=list)  # earlier plain texts, oldest first
    edit_date: int | None = None
    reply_to: int | None = None  # id of the message this one answers

    @property
    def photo(self) -> bytes | None:
        """The photo's bytes, if this is a photo."""
        return self.file.data if self.kind == "photo" and self.file else None

    @property
    def document(self) -> bytes | None:
        """The document's bytes, if this is a document."""
        return self.file.data if self.kind == "document" and self.file else None

    def button_labels(self) -> list[str]:
        """Every button's text, row by row."""
        return [button.text for row in self.buttons for button in row]


class CallbackAnswer(NamedTuple):
    """The bot's answer to a button press (a toast, or an alert when ``show_alert``)."""

    query_id: str
    text: str | None
    show_alert: bool


@dataclass(frozen=True)
class ChatEvent:
    """Something the user would notice in the chat, in the order it happened."""

    kind: EventKind
    chat_id: int
    message: ChatMessage | None = None  # new/edit/delete: the message after the change
    answer: CallbackAnswer | None = None
    action: str | None = None  # chat_action: "typing", "upload_photo", …


@dataclass
class Chat:
    """Server-side state of one chat."""

    id: int
    type: ChatType
    title: str | None
    members: dict[int, TelegramUser]
    bot_can_delete: bool = False
    bot_blocked: bool = False
    messages: dict[int, ChatMessage] = field(default_factory=dict)
    events: list[ChatEvent] = field(default_factory=list)
    callback_answers: list[CallbackAnswer] = field(default_factory=list)
    last_activity: float = 0.0  # loop time of the last bot call that touched this chat
    recent_bot_messages: deque[float] = field(default_factory=deque)  # for flood control
    _last_message_id: int = 0

    def new_message_id(self) -> int:
        """Message ids increase per chat, like in real private chats and basic groups."""
        self._last_message_id += 1
        return self._last_message_id

    def to_json(self) -> dict[str, Any]:
        """The ``Chat`` object embedded in messages."""
        result: dict[str, Any] = {"id": self.id, "type": self.type}
        if self.type == "private":
            user = self.members[self.id]
            result["first_name"] = user.first_name
            if user.username:
                result["username"] = user.username
        else:
            result["title"] = self.title
        return result

    def full_info_json(self) -> dict[str, Any]:
        """``ChatFullInfo`` for getChat, with the fields PTB requires."""
        return {
            **self.to_json(),
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }

    def message_json(self, message: ChatMessage) -> dict[str, Any]:
        """The ``Message`` object for updates and method results."""
        result: dict[str, Any] = {
            "message_id": message.message_id,
            "from": message.sender.to_json(),
            "chat": self.to_json(),
            "date": message.date,
        }
        if message.edit_date is not None:
            result["edit_date"] = message.edit_date
        entities = [entity.to_json() for entity in message.entities]
        if message.kind == "text":
            result["text"] = message.text
            if entities:
                result["entities"] = entities
        elif message.kind == "sticker":
            result["sticker"] = _sticker_json(message.message_id, message.text)
        elif message.file is not None:
            if message.kind == "photo":
                result["photo"] = [message.file.photo_size_json()]
            else:
                result["document"] = message.file.document_json()
            if message.text:
                result["caption"] = message.text
                if entities:
                    result["caption_entities"] = entities
        if message.reply_markup is not None:
            result["reply_markup"] = message.reply_markup
        replied = self.messages.get(message.reply_to) if message.reply_to is not None else None
        if replied is not None and not replied.deleted:
            # Telegram nests the replied-to message one level deep only
            result["reply_to_message"] = self.message_json(replace(replied, reply_to=None))
        return result


def _sticker_json(message_id: int, emoji: str) -> dict[str, Any]:
    return {
        "file_id": f"sticker-{message_id}",
        "file_unique_id": f"sticker-u{message_id}",
        "type": "regular",
        "width": 512,
        "height": 512,
        "is_animated": False,
        "is_video": False,
        "emoji": emoji,
    }
