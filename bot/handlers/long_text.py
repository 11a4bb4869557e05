"""Sending text that may be longer than one Telegram message (4,096 characters)."""

from __future__ import annotations

from telegram import CallbackQuery, InlineKeyboardMarkup, Message
from telegram.constants import ParseMode

from bot.handlers.layout import split_message

#: Said at the end of an edited message that had to be cut (an edit cannot add messages).
CUT = "\n\n<i>… more than one message holds: send the command again to see it all.</i>"
_ROOM = 4096 - len(CUT)


async def reply_long(
    message: Message, text: str, keyboard: InlineKeyboardMarkup | None = None
) -> Message:
    """Reply in as many messages as needed, split on line boundaries; the buttons go on the
    last one. Returns the last message."""
    parts = split_message(text)
    for part in parts[:-1]:
        await message.reply_text(part, parse_mode=ParseMode.HTML)
    return await message.reply_text(parts[-1], parse_mode=ParseMode.HTML, reply_markup=keyboard)


async def edit_long(
    query: CallbackQuery, text: str, keyboard: InlineKeyboardMarkup | None = None
) -> None:
    """Edit the button's message in place; a text too long for one message is cut, saying so."""
    parts = split_message(text)
    shown = parts[0] if len(parts) == 1 else split_message(text, _ROOM)[0] + CUT
    await query.edit_message_text(shown, parse_mode=ParseMode.HTML, reply_markup=keyboard)
