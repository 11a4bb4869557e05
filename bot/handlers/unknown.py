"""An unknown command gets one short line and the closest real command, never silence.

Registered last in the default group: only a command that no handler took gets here, so a flow
that waits for input keeps its state (a conversation that does not match lets the update pass).
Key steps take every text as input, "/…" included, before it could get here; and a command
addressed to another bot (``/start@OtherBot``) is left alone.
"""

from __future__ import annotations

import re
from typing import cast

from telegram import Message, MessageEntity, Update
from telegram.ext import BaseHandler, ContextTypes, MessageHandler, filters

from bot.exchanges.key_input import looks_like_secret
from bot.handlers.access import LOOKS_LIKE_SECRET, is_private
from bot.handlers.commands import NAMES, closest_command

_COMMAND = re.compile(r"/(?P<name>[A-Za-z0-9_]+)(?:@(?P<bot>[A-Za-z0-9_]+))?")
#: Longer names are cut when echoed (Telegram's own command names stop at 32 characters).
ECHO_MAX = 32


def _bot_username(message: Message) -> str | None:
    try:
        return message.get_bot().username
    except RuntimeError:  # no bot attached: no "@name" form is ours
        return None


def unknown_command(message: Message) -> str | None:
    """The name of the unknown command that starts this message, if this bot should answer it.

    None for our own commands (their handlers decide), for a command addressed to another bot,
    and in groups for a command not addressed to this bot: there it may be another bot's.
    """
    entity = next(iter(message.entities), None)
    if entity is None or entity.type != MessageEntity.BOT_COMMAND or entity.offset != 0:
        return None
    match = _COMMAND.fullmatch(message.parse_entity(entity))
    if match is None:
        return None
    to, ours = match.group("bot"), _bot_username(message)
    if to is not None and (ours is None or to.lower() != ours.lower()):
        return None
    if to is None and not is_private(message.chat):
        return None
    name = match.group("name")
    return None if name.lower() in NAMES else name


class _UnknownCommand(filters.MessageFilter):
    def filter(self, message: Message) -> bool:
        return unknown_command(message) is not None


UNKNOWN_COMMAND = _UnknownCommand(name="UnknownCommand")


def unknown_reply(name: str) -> str:
    """``I don't know /portfolo. Did you mean /portfolio? /help lists them all.``"""
    if looks_like_secret(name):  # a pasted key that Telegram took for a command: never echo it
        shown = "that command"
    else:
        shown = "/" + (name if len(name) <= ECHO_MAX else f"{name[:ECHO_MAX]}…")
    closest = closest_command(name)
    hint = f" Did you mean /{closest}?" if closest is not None else ""
    return f"I don't know {shown}.{hint} /help lists them all."


async def answer_unknown(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = cast(Message, update.effective_message)
    name = unknown_command(message)
    if name is not None:
        await message.reply_text(unknown_reply(name))


def handler() -> BaseHandler[Update, ContextTypes.DEFAULT_TYPE, None]:
    # New messages only: an edit of an old command is not a new question. A whole message that
    # looks like a key is the key-entry handlers' (deleted there), never answered here.
    return MessageHandler(
        filters.UpdateType.MESSAGE & filters.COMMAND & ~LOOKS_LIKE_SECRET & UNKNOWN_COMMAND,
        answer_unknown,
    )
