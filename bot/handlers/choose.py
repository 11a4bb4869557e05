"""Commands that act on one connection: by label, the only one, or a button list to choose from.

Callback data is ``<action>:<connection id>``; the id is always looked up within the chat the
press came from, so a forged or foreign id finds nothing.
"""

from __future__ import annotations

import re

from telegram import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from telegram.constants import ParseMode

from bot.exchanges.connections import ConnectionService
from bot.handlers.render import EXPIRED_BUTTON, NO_CONNECTIONS, esc
from storage.connections import ConnectionRecord

GONE = "That connection is not here any more."
_CALLBACK = re.compile(r"^([a-z]{1,4}):(\d{1,12})$")


async def connection_from_args(
    message: Message, connections: ConnectionService, args: list[str], action: str, question: str
) -> ConnectionRecord | None:
    """The connection named in ``args``; otherwise the only one; otherwise ask with buttons."""
    label = " ".join(args)
    if label:
        record = await connections.find(message.chat_id, label)
        if record is None:
            await message.reply_text(
                f"No connection called <b>{esc(label)}</b> here. See /connections.",
                parse_mode=ParseMode.HTML,
            )
        return record
    records = await connections.list_for_chat(message.chat_id)
    if not records:
        await message.reply_text(NO_CONNECTIONS)
        return None
    if len(records) == 1:
        return records[0]
    keyboard = InlineKeyboardMarkup(
        [[InlineKeyboardButton(r.label, callback_data=f"{action}:{r.id}")] for r in records]
    )
    await message.reply_text(question, reply_markup=keyboard)
    return None


async def connection_from_button(
    query: CallbackQuery, chat_id: int, connections: ConnectionService
) -> tuple[str, ConnectionRecord] | None:
    """Parse ``action:id`` and load the connection within this chat; answer the press if not."""
    match = _CALLBACK.match(query.data or "")
    if match is None:
        await query.answer(EXPIRED_BUTTON)
        return None
    record = await connections.get(chat_id, int(match.group(2)))
    if record is None:
        await query.answer(GONE, show_alert=True)
        return None
    return match.group(1), record


async def scope_picker(
    message: Message,
    records: list[ConnectionRecord],
    *,
    question: str,
    prefix: str,
    everything: str,
    cancel: InlineKeyboardButton,
) -> Message:
    """The first step of a guided setup: one button per connection (``<prefix><id>``), one for
    all of them together (``<prefix>0``) and Cancel; the message the setup then lives on."""
    rows = [[InlineKeyboardButton(r.label, callback_data=f"{prefix}{r.id}")] for r in records]
    rows.append([InlineKeyboardButton(everything, callback_data=f"{prefix}0")])
    rows.append([cancel])
    return await message.reply_text(question, reply_markup=InlineKeyboardMarkup(rows))
