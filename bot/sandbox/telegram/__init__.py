"""Local Telegram-compatible Bot API server for the e2e tests and the terminal sandbox.

Start a :class:`TelegramServer`, point the bot at ``server.base_url``, and talk to it through
:class:`ChatDriver` objects; ``server.violations`` lists everything real Telegram would refuse.
"""

from bot.sandbox.telegram.chat import (
    CallbackAnswer,
    ChatEvent,
    ChatMessage,
    StoredFile,
    TelegramUser,
)
from bot.sandbox.telegram.driver import ChatDriver
from bot.sandbox.telegram.errors import ApiError, Violation
from bot.sandbox.telegram.html import FormattedText, HtmlParseError, MessageEntity, parse_html
from bot.sandbox.telegram.keyboards import Button
from bot.sandbox.telegram.server import ApiCall, TelegramServer
from bot.sandbox.telegram.spec import BotApiSpec, SpecNotFoundError, UploadedFile

__all__ = [
    "ApiCall",
    "ApiError",
    "BotApiSpec",
    "Button",
    "CallbackAnswer",
    "ChatDriver",
    "ChatEvent",
    "ChatMessage",
    "FormattedText",
    "HtmlParseError",
    "MessageEntity",
    "SpecNotFoundError",
    "StoredFile",
    "TelegramServer",
    "TelegramUser",
    "UploadedFile",
    "Violation",
    "parse_html",
]
