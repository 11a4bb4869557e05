"""Who may talk to the bot, where keys may be entered, and deleting messages that carry secrets."""

from __future__ import annotations

import logging

from telegram import Chat, ChatMemberAdministrator, ChatMemberOwner, Message, Update
from telegram.constants import ChatType
from telegram.error import TelegramError
from telegram.ext import ApplicationHandlerStop, ContextTypes, filters

from bot.exchanges.key_input import looks_like_secret
from bot.handlers.context import services

log = logging.getLogger(__name__)


def is_private(chat: Chat | None) -> bool:
    return chat is not None and chat.type == ChatType.PRIVATE


async def gate_allowed_users(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Runs before every handler: with an allow-list set, everyone else is turned away."""
    allowed = services(context).allowed_users
    user = update.effective_user
    if not allowed or (user is not None and user.id in allowed):
        return
    if update.callback_query is not None:
        await update.callback_query.answer("This bot is private.")
    elif update.effective_message is not None and is_private(update.effective_chat):
        await update.effective_message.reply_text(
            "Sorry, this Coinwarden bot is private. You can run your own: it is self-hosted."
        )
    raise ApplicationHandlerStop


async def delete_secret_message(message: Message, context: ContextTypes.DEFAULT_TYPE) -> bool:
    """Delete a message that carries a secret; if Telegram refuses, ask the user to do it."""
    try:
        await message.delete()
        return True
    except TelegramError as exc:
        log.warning("could not delete a message carrying a secret: %s", exc.message)
    await context.bot.send_message(
        message.chat_id,
        "⚠️ I could not delete your message with the secret. Please delete it yourself now "
        "(long-press it → Delete).",
    )
    return False


async def _can_delete_in(chat_id: int, context: ContextTypes.DEFAULT_TYPE) -> bool:
    """Only admins with the right may delete others' messages; ask rather than fail."""
    try:
        member = await context.bot.get_chat_member(chat_id, context.bot.id)
    except TelegramError:
        return False
    return isinstance(member, ChatMemberOwner) or (
        isinstance(member, ChatMemberAdministrator) and member.can_delete_messages
    )


GROUP_SECRET_WARNING = (
    "⚠️ That looked like an API key or secret. Never paste keys in a group: {action} "
    "revoke that key on the exchange and connect a new one with me in a private chat."
)
PRIVATE_SECRET_WARNING = (
    "🔑 That looked like an API key or secret, so I deleted it. I only take keys during "
    "/connect, one at a time, when I ask for them."
)
NOT_UNDERSTOOD = "I did not understand that. Send /help to see what I can do."


class _LooksLikeSecret(filters.MessageFilter):
    """Text that ``looks_like_secret``: one long token of key characters, or a PEM key."""

    def filter(self, message: Message) -> bool:
        return looks_like_secret(message.text or "")


LOOKS_LIKE_SECRET = _LooksLikeSecret(name="LooksLikeSecret")
#: A pasted key that Telegram took for a command: base64 keys start with "/" one time in 64, and
#: "/cancel+Xy…" even carries a real command name. It goes to ``stray_text`` like any pasted key,
#: and before every command handler (the connect conversation, first in its group, routes it).
KEY_AS_COMMAND = filters.TEXT & filters.COMMAND & LOOKS_LIKE_SECRET


async def stray_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Text outside any flow: a pasted key is deleted at once; anything else gets a hint.

    Also receives ``KEY_AS_COMMAND`` messages: a key that starts with "/" is deleted the same way.
    """
    message = update.effective_message
    if message is None or message.text is None:
        return
    if not is_private(update.effective_chat):
        await _guard_group_secret(message, context)
        return
    if looks_like_secret(message.text):
        services(context).connections.remember_secrets(message.text.strip())
        await delete_secret_message(message, context)
        await context.bot.send_message(message.chat_id, PRIVATE_SECRET_WARNING)
        return
    await message.reply_text(NOT_UNDERSTOOD)


async def _guard_group_secret(message: Message, context: ContextTypes.DEFAULT_TYPE) -> None:
    """In groups, a message that looks like a key is deleted where possible and warned about."""
    if not looks_like_secret(message.text or ""):
        return
    services(context).connections.remember_secrets((message.text or "").strip())
    action = "delete that message now, then"
    if await _can_delete_in(message.chat_id, context):
        try:
            await message.delete()
            action = "I deleted it, but everyone here may have seen it, so"
        except TelegramError as exc:
            log.warning("could not delete a key pasted in a group: %s", exc.message)
    await context.bot.send_message(message.chat_id, GROUP_SECRET_WARNING.format(action=action))
