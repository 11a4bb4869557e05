"""The Bot API methods the local server implements, and the state they act on.

``BotApi`` plays Telegram's back end: it holds the chats, checks every request the way the real
server does (limits, parse errors, edit and delete rules, flood control) and turns what the test
users do into updates for getUpdates.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from bot.sandbox.telegram.chat import (
    CallbackAnswer,
    Chat,
    ChatEvent,
    ChatMessage,
    MessageKind,
    StoredFile,
    TelegramUser,
)
from bot.sandbox.telegram.errors import ApiError, Violation, bad_request, summarize
from bot.sandbox.telegram.html import (
    FormattedText,
    HtmlParseError,
    MessageEntity,
    parse_html,
    utf16_length,
)
from bot.sandbox.telegram.keyboards import Button, parse_reply_markup
from bot.sandbox.telegram.spec import UploadedFile
from bot.sandbox.telegram.updates import Pulse, UpdateQueue

MAX_TEXT_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024
MAX_CALLBACK_ANSWER_LENGTH = 200
MAX_COMMANDS = 100
DELETE_WINDOW_SECONDS = 48 * 3600
UNSUPPORTED = "method is not supported by the local test server"
CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
_COMMAND_NAME = re.compile(r"[a-z0-9_]+")
_LEADING_COMMAND = re.compile(r"/[A-Za-z0-9_]{1,64}(@[A-Za-z0-9_]{3,32})?(?![A-Za-z0-9_])")
_IMAGE_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")

Params = dict[str, Any]
Handler = Callable[[Params], Awaitable[Any]]


class FloodControl:
    """Telegram's limits on bot messages (sends and edits) within one second: per chat, and
    optionally over all chats (about 30 per second on the real service)."""

    def __init__(self, limit_per_second: int, overall_per_second: int | None = None) -> None:
        self.limit_per_second = limit_per_second
        self.overall_per_second = overall_per_second
        self._everywhere: deque[float] = deque()

    def check(self, chat: Chat) -> None:
        """Raise 429 with retry_after when one more message would exceed a limit."""
        now = time.monotonic()
        _within_a_second(chat.recent_bot_messages, self.limit_per_second, now)
        if self.overall_per_second is not None:
            _within_a_second(self._everywhere, self.overall_per_second, now)

    def record(self, chat: Chat) -> None:
        """Count a message that went out."""
        now = time.monotonic()
        chat.recent_bot_messages.append(now)
        if self.overall_per_second is not None:
            self._everywhere.append(now)


def _within_a_second(recent: deque[float], limit: int, now: float) -> None:
    while recent and now - recent[0] >= 1.0:
        recent.popleft()
    if len(recent) >= limit:
        retry_after = max(1, math.ceil(recent[0] + 1.0 - now))
        raise ApiError(429, f"Too Many Requests: retry after {retry_after}", retry_after)


class BotApi:
    """Telegram's side of one bot: chats, updates, commands, files, and the method handlers."""

    def __init__(
        self,
        bot: TelegramUser,
        *,
        flood_limit_per_second: int,
        violations: list[Violation],
        overall_limit_per_second: int | None = None,
    ) -> None:
        self.bot = bot
        self.chats: dict[int, Chat] = {}
        self.updates = UpdateQueue()
        self.activity = Pulse()  # fires on every chat event
        self.webhook_url = ""
        self.flood = FloodControl(flood_limit_per_second, overall_limit_per_second)
        self._violations = violations
        self._commands: dict[tuple[str, str], list[dict[str, str]]] = {}
        self._files: dict[str, StoredFile] = {}
        self._pending_queries: dict[str, int] = {}  # callback query id -> chat id
        self._subscribers: list[Callable[[ChatEvent], None]] = []
        self._last_query_id = 0
        self._last_file_id = 0
        self._handlers: dict[str, Handler] = {
            "getme": self.get_me,
            "deletewebhook": self.delete_webhook,
            "getwebhookinfo": self.get_webhook_info,
            "setwebhook": self.set_webhook,
            "getupdates": self.get_updates,
            "setmycommands": self.set_my_commands,
            "getmycommands": self.get_my_commands,
            "deletemycommands": self.delete_my_commands,
            "sendmessage": self.send_message,
            "editmessagetext": self.edit_message_text,
            "editmessagereplymarkup": self.edit_message_reply_markup,
            "deletemessage": self.delete_message,
            "deletemessages": self.delete_messages,
            "answercallbackquery": self.answer_callback_query,
            "sendphoto": self.send_photo,
            "senddocument": self.send_document,
            "sendchataction": self.send_chat_action,
            "getchat": self.get_chat,
            "getchatmember": self.get_chat_member,
        }

    def handler(self, method: str) -> Handler:
        """The implementation of a spec method; the ones we lack are refused (and reported)."""
        handler = self._handlers.get(method.lower())
        if handler is None:
            raise bad_request(UNSUPPORTED)
        return handler

    # --- observing -------------------------------------------------------------------------

    def subscribe(self, callback: Callable[[ChatEvent], None]) -> Callable[[], None]:
        """Call ``callback`` for every chat event; returns the function that unsubscribes."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    def commands_for(self, scope: dict[str, Any] | None, language_code: str) -> dict[str, str]:
        """The command menu registered for a scope and language."""
        entries = self._commands.get(_scope_key(scope, language_code), [])
        return {entry["command"]: entry["description"] for entry in entries}

    # --- what the test users do ------------------------------------------------------------

    def user_message(
        self,
        chat: Chat,
        user: TelegramUser,
        *,
        kind: MessageKind = "text",
        text: str = "",
        data: bytes | None = None,
        reply_to: int | None = None,
    ) -> ChatMessage:
        """The user sends something. The bot gets it as a ``message`` update, in groups only if
        it is a command or a reply to the bot (privacy mode, as getMe reports)."""
        upload = UploadedFile("photo.png", "image/png", data) if data is not None else None
        message = ChatMessage(
            message_id=chat.new_message_id(),
            from_bot=False,
            sender=user,
            date=int(time.time()),
            kind=kind,
            text=text,
            html=text,
            entities=_command_entities(text) if kind == "text" else (),
            file=self._store_file(upload) if upload is not None else None,
            reply_to=reply_to,
        )
        chat.messages[message.message_id] = message
        self._emit(ChatEvent("new", chat.id, message))
        if self._reaches_bot(chat, message):
            self.updates.push("message", chat.id, chat.message_json(message))
        return message

    def user_presses(self, chat: Chat, user: TelegramUser, message: ChatMessage, data: str) -> str:
        """The user taps a button (or forges callback data); returns the callback query id."""
        self._last_query_id += 1
        query_id = str(8_000_000_000_000_000 + self._last_query_id)
        self._pending_queries[query_id] = chat.id
        payload = {
            "id": query_id,
            "from": user.to_json(),
            "message": chat.message_json(message),
            "chat_instance": f"instance{abs(chat.id)}",
            "data": data,
        }
        self.updates.push("callback_query", chat.id, payload)
        return query_id

    # --- bot, webhook, updates, commands ---------------------------------------------------

    async def get_me(self, params: Params) -> Any:
        return {
            **self.bot.to_json(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def delete_webhook(self, params: Params) -> Any:
        self.webhook_url = ""
        if params.get("drop_pending_updates"):
            self.updates.drop_pending()
        return True

    async def set_webhook(self, params: Params) -> Any:
        self.webhook_url = str(params["url"])
        return True

    async def get_webhook_info(self, params: Params) -> Any:
        return {
            "url": self.webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": self.updates.pending_count,
        }

    async def get_updates(self, params: Params) -> Any:
        if self.webhook_url:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        allowed = params.get("allowed_updates")
        return await self.updates.get(
            offset=params.get("offset"),
            limit=int(params.get("limit") or 100),
            wait_seconds=float(params.get("timeout") or 0),
            allowed_updates=list(allowed) if isinstance(allowed, list) else None,
        )

    async def set_my_commands(self, params: Params) -> Any:
        commands = params["commands"]
        if not isinstance(commands, list):
            raise bad_request("can't parse commands JSON object")
        checked = [_checked_command(entry) for entry in commands]
        if len(checked) > MAX_COMMANDS:
            raise bad_request("BOT_COMMANDS_TOO_MUCH")
        key = _scope_key(params.get("scope"), params.get("language_code", ""))
        self._commands[key] = checked
        return True

    async def get_my_commands(self, params: Params) -> Any:
        key = _scope_key(params.get("scope"), params.get("language_code", ""))
        return self._commands.get(key, [])

    async def delete_my_commands(self, params: Params) -> Any:
        key = _scope_key(params.get("scope"), params.get("language_code", ""))
        self._commands.pop(key, None)
        return True

    # --- sending ---------------------------------------------------------------------------

    async def send_message(self, params: Params) -> Any:
        chat = self._writable_chat(params)
        text = self._formatted("sendMessage", params, "text", "entities")
        _check_text_length(text)
        return self._post(chat, params, "text", text, str(params["text"]), None)

    async def send_photo(self, params: Params) -> Any:
        return self._send_media(params, "photo")

    async def send_document(self, params: Params) -> Any:
        return self._send_media(params, "document")

    def _send_media(self, params: Params, kind: MessageKind) -> Any:
        chat = self._writable_chat(params)
        file = self._input_file(params, kind)
        if kind == "photo" and not file.data.startswith(_IMAGE_SIGNATURES):
            raise bad_request("IMAGE_PROCESS_FAILED")
        caption = self._formatted(f"send{kind.title()}", params, "caption", "caption_entities")
        if utf16_length(caption.text) > MAX_CAPTION_LENGTH:
            raise bad_request("message caption is too long")
        return self._post(chat, params, kind, caption, str(params.get("caption", "")), file)

    async def send_chat_action(self, params: Params) -> Any:
        chat = self._writable_chat(params)
        action = str(params["action"])
        if action not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        self._emit(ChatEvent("chat_action", chat.id, action=action))
        return True

    def _post(
        self,
        chat: Chat,
        params: Params,
        kind: MessageKind,
        text: FormattedText,
        html: str,
        file: StoredFile | None,
    ) -> Any:
        """Check the keyboard, reply target and flood limit, then store and announce."""
        buttons, markup = _keyboard(params)
        reply_to = self._reply_target(chat, params)
        self.flood.check(chat)
        message = ChatMessage(
            message_id=chat.new_message_id(),
            from_bot=True,
            sender=self.bot,
            date=int(time.time()),
            kind=kind,
            text=text.text,
            html=html,
            entities=text.entities,
            buttons=buttons,
            reply_markup=markup,
            file=file,
            reply_to=reply_to,
        )
        chat.messages[message.message_id] = message
        self.flood.record(chat)
        self._emit(ChatEvent("new", chat.id, message))
        return chat.message_json(message)

    # --- editing ---------------------------------------------------------------------------

    async def edit_message_text(self, params: Params) -> Any:
        chat, message = self._editable(params)
        if message.kind != "text":
            raise bad_request("there is no text in the message to edit")
        if params.get("text") in (None, ""):
            raise bad_request("message text is empty")
        text = self._formatted("editMessageText", params, "text", "entities")
        _check_text_length(text)
        buttons, markup = _keyboard(params)  # no reply_markup removes the keyboard, as in Telegram
        if (text.text, text.entities, markup) == (
            message.text,
            message.entities,
            message.reply_markup,
        ):
            raise _not_modified()
        return self._replace(
            chat,
            message,
            text=text.text,
            html=str(params["text"]),
            entities=text.entities,
            buttons=buttons,
            reply_markup=markup,
            edits=[*message.edits, message.text],
        )

    async def edit_message_reply_markup(self, params: Params) -> Any:
        chat, message = self._editable(params)
        buttons, markup = _keyboard(params)
        if markup == message.reply_markup:
            raise _not_modified()
        return self._replace(chat, message, buttons=buttons, reply_markup=markup)

    def _editable(self, params: Params) -> tuple[Chat, ChatMessage]:
        if params.get("inline_message_id"):
            raise bad_request("inline messages are not supported by the local test server")
        chat = self._writable_chat(params)
        message = chat.messages.get(_message_id(params))
        if message is None or message.deleted:
            raise bad_request("message to edit not found")
        if not message.from_bot:
            raise bad_request("message can't be edited")
        return chat, message

    def _replace(self, chat: Chat, message: ChatMessage, **changes: Any) -> Any:
        self.flood.check(chat)
        edited = dataclasses.replace(message, edit_date=int(time.time()), **changes)
        chat.messages[message.message_id] = edited
        self.flood.record(chat)
        self._emit(ChatEvent("edit", chat.id, edited))
        return chat.message_json(edited)

    # --- deleting --------------------------------------------------------------------------

    async def delete_message(self, params: Params) -> Any:
        chat = self._chat(params)
        message = chat.messages.get(_message_id(params))
        if message is None or message.deleted:
            raise bad_request("message to delete not found")
        if not self._may_delete(chat, message):
            raise bad_request("message can't be deleted")
        self._delete(chat, message)
        return True

    async def delete_messages(self, params: Params) -> Any:
        chat = self._chat(params)
        ids = params["message_ids"]
        if not isinstance(ids, list) or not ids or not all(isinstance(i, int) for i in ids):
            raise bad_request("message identifiers are not specified")
        if len(ids) > 100:
            raise bad_request("too many message identifiers specified")
        # Telegram skips messages it cannot find, but refuses ones the bot may not delete.
        found = [m for i in ids if (m := chat.messages.get(i)) is not None and not m.deleted]
        if not all(self._may_delete(chat, message) for message in found):
            raise bad_request("message can't be deleted")
        for message in found:
            self._delete(chat, message)
        return True

    def _may_delete(self, chat: Chat, message: ChatMessage) -> bool:
        """Bots delete their own messages anywhere, users' messages in private chats, and
        others' messages in groups only as an admin with can_delete_messages; all < 48 h."""
        if time.time() - message.date > DELETE_WINDOW_SECONDS:
            return False
        return message.from_bot or chat.type == "private" or chat.bot_can_delete

    def _delete(self, chat: Chat, message: ChatMessage) -> None:
        deleted = dataclasses.replace(message, deleted=True)
        chat.messages[message.message_id] = deleted
        self._emit(ChatEvent("delete", chat.id, deleted))

    # --- callback queries, chats -----------------------------------------------------------

    async def answer_callback_query(self, params: Params) -> Any:
        query_id = str(params["callback_query_id"])
        text = params.get("text")
        if text and utf16_length(str(text)) > MAX_CALLBACK_ANSWER_LENGTH:
            raise bad_request("MESSAGE_TOO_LONG")
        chat_id = self._pending_queries.pop(query_id, None)
        if chat_id is None:
            raise bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        chat = self.chats[chat_id]
        alert = bool(params.get("show_alert"))
        answer = CallbackAnswer(query_id, str(text) if text else None, alert)
        chat.callback_answers.append(answer)
        self._emit(ChatEvent("callback_answer", chat.id, answer=answer))
        return True

    async def get_chat(self, params: Params) -> Any:
        return self._chat(params).full_info_json()

    async def get_chat_member(self, params: Params) -> Any:
        chat = self._chat(params)
        user_id = params["user_id"]
        if user_id == self.bot.id:
            if chat.type != "private" and chat.bot_can_delete:
                return _administrator_json(self.bot)
            return {"status": "member", "user": self.bot.to_json()}
        user = chat.members.get(user_id)
        if user is None:
            return {"status": "left", "user": {"id": user_id, "is_bot": False, "first_name": "?"}}
        return {"status": "member", "user": user.to_json()}

    # --- shared checks ---------------------------------------------------------------------

    def _chat(self, params: Params) -> Chat:
        chat_id = params.get("chat_id")
        chat = self.chats.get(chat_id) if isinstance(chat_id, int) else None
        if chat is None:
            raise bad_request("chat not found")
        chat.last_activity = time.monotonic()
        return chat

    def _writable_chat(self, params: Params) -> Chat:
        chat = self._chat(params)
        if chat.bot_blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        return chat

    def _formatted(
        self, method: str, params: Params, text_key: str, entities_key: str
    ) -> FormattedText:
        """The text after entity parsing, per parse_mode (only HTML is checked)."""
        raw = str(params.get(text_key, ""))
        mode = str(params.get("parse_mode") or "")
        if mode.lower() == "html":
            try:
                return parse_html(raw)
            except HtmlParseError as error:
                raise bad_request(f"can't parse entities: {error}") from None
        if mode.lower() in ("markdown", "markdownv2"):
            self._violations.append(
                Violation(
                    method,
                    f"parse_mode {mode} is not validated by the local test server; use HTML",
                    summarize(params),
                )
            )
            return FormattedText(raw)
        if mode:
            raise bad_request("unsupported parse_mode")
        entities = params.get(entities_key) or []
        if not isinstance(entities, list) or not all(isinstance(e, dict) for e in entities):
            raise bad_request(f"can't parse {entities_key} JSON object")
        return FormattedText(raw, tuple(MessageEntity.from_json(e) for e in entities))

    def _reaches_bot(self, chat: Chat, message: ChatMessage) -> bool:
        """Privacy mode: in groups the bot sees commands meant for it and replies to it;
        as an admin it sees everything (Telegram exempts admin bots from privacy mode)."""
        if chat.type == "private" or chat.bot_can_delete:
            return True
        replied = chat.messages.get(message.reply_to) if message.reply_to is not None else None
        if replied is not None and replied.from_bot:
            return True
        match = _LEADING_COMMAND.match(message.text) if message.kind == "text" else None
        return match is not None and match.group(1) in (None, f"@{self.bot.username}")

    def _reply_target(self, chat: Chat, params: Params) -> int | None:
        """The message this one replies to, if any and if it still exists."""
        reply = params.get("reply_parameters")
        if isinstance(reply, dict):
            target, lenient = reply.get("message_id"), reply.get("allow_sending_without_reply")
        else:
            target = params.get("reply_to_message_id")
            lenient = params.get("allow_sending_without_reply")
        if target is None:
            return None
        message = chat.messages.get(target)
        if message is None or message.deleted:
            if lenient:
                return None
            raise bad_request("message to be replied not found")
        return message.message_id

    def _input_file(self, params: Params, field: str) -> StoredFile:
        """An upload (directly or via ``attach://name``) or the file_id of an earlier one."""
        value = params[field]
        if isinstance(value, str) and value.startswith("attach://"):
            value = params.get(value.removeprefix("attach://"))
        if isinstance(value, UploadedFile):
            return self._store_file(value)
        if isinstance(value, str) and value in self._files:
            return self._files[value]
        raise bad_request("wrong file identifier/HTTP URL specified")

    def _store_file(self, upload: UploadedFile) -> StoredFile:
        self._last_file_id += 1
        stored = StoredFile(
            file_id=f"sandbox-file-{self._last_file_id}",
            file_unique_id=f"sandbox-unique-{self._last_file_id}",
            data=upload.data,
            file_name=upload.filename,
            mime_type=upload.content_type,
        )
        self._files[stored.file_id] = stored
        return stored

    def _emit(self, event: ChatEvent) -> None:
        chat = self.chats[event.chat_id]
        chat.events.append(event)
        chat.last_activity = time.monotonic()
        self.activity.fire()
        for callback in list(self._subscribers):
            callback(event)


def _message_id(params: Params) -> int:
    message_id = params.get("message_id")
    if not isinstance(message_id, int) or message_id <= 0:
        raise bad_request("message identifier is not specified")
    return message_id


def _check_text_length(text: FormattedText) -> None:
    if not text.text.strip():
        raise bad_request("message text is empty")
    if utf16_length(text.text) > MAX_TEXT_LENGTH:
        raise bad_request("message is too long")


def _keyboard(params: Params) -> tuple[list[list[Button]], dict[str, Any] | None]:
    """Buttons to show and the markup to echo back (Telegram echoes non-empty inline keyboards)."""
    markup = params.get("reply_markup")
    if markup is None:
        return [], None
    buttons = parse_reply_markup(markup)
    return buttons, markup if buttons else None


def _not_modified() -> ApiError:
    return bad_request(
        "message is not modified: specified new message content and reply markup are exactly "
        "the same as a current content and reply markup of the message"
    )


def _checked_command(entry: Any) -> dict[str, str]:
    """One BotCommand, trimmed and checked like tdlib and Telegram do."""
    if not isinstance(entry, dict):
        raise bad_request("can't parse BotCommand JSON object")
    command = str(entry.get("command", "")).strip().removeprefix("/")
    description = str(entry.get("description", "")).strip()
    if not command:
        raise bad_request("command must be non-empty")
    if len(command) > 32:
        raise bad_request("command length must not exceed 32")
    if not description:
        raise bad_request("command description must be non-empty")
    if len(description) > 256:
        raise bad_request("command description length must not exceed 256")
    if not _COMMAND_NAME.fullmatch(command):
        raise bad_request("BOT_COMMAND_INVALID")
    return {"command": command, "description": description}


def _scope_key(scope: Any, language_code: Any) -> tuple[str, str]:
    return json.dumps(scope or {"type": "default"}, sort_keys=True), str(language_code or "")


def _command_entities(text: str) -> tuple[MessageEntity, ...]:
    """The bot_command entity Telegram adds when a message starts with /command[@bot]."""
    match = _LEADING_COMMAND.match(text)
    if match is None:
        return ()
    return (MessageEntity("bot_command", 0, utf16_length(match.group())),)


def _administrator_json(bot: TelegramUser) -> dict[str, Any]:
    rights = dict.fromkeys(
        (
            "can_be_edited",
            "is_anonymous",
            "can_manage_video_chats",
            "can_restrict_members",
            "can_promote_members",
            "can_change_info",
            "can_invite_users",
            "can_post_stories",
            "can_edit_stories",
            "can_delete_stories",
        ),
        False,
    )
    return {
        "status": "administrator",
        "user": bot.to_json(),
        **rights,
        "can_manage_chat": True,
        "can_delete_messages": True,
    }
