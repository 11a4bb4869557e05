"""Commands that act on one connection: by label, the only one, or a button list to choose from.

Callback data is ``<action>:<connection id>``; the id is always looked up within the chat the
press came from, so a forged or foreign id finds nothing.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Coroutine
from typing import Any, cast

from telegram import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.constants import ParseMode
from telegram.ext import (
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    ConversationHandler,
)
from telegram.warnings import PTBUserWarning

from bot.handlers.context import services
from bot.handlers.render import EXPIRED_BUTTON, NO_CONNECTIONS, esc
from storage.connections import ConnectionRecord

GONE = "That connection is not here any more."
CLOSED = "This menu is closed."
_CALLBACK = re.compile(r"^([a-z]{1,4}):(\d{1,12})$")
#: chat_data: the message ids of the pickers sent, newest last (a few are enough).
PICKERS = "connection_pickers"
KEPT_PICKERS = 10


async def connection_from_args(
    message: Message,
    context: ContextTypes.DEFAULT_TYPE,
    args: list[str],
    action: str,
    question: str,
) -> ConnectionRecord | None:
    """The connection named in ``args``; otherwise the only one; otherwise ask with buttons
    (and Cancel). A newer picker closes the older ones."""
    connections = services(context).connections
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
    rows = [[InlineKeyboardButton(r.label, callback_data=f"{action}:{r.id}")] for r in records]
    rows.append([InlineKeyboardButton("Cancel", callback_data="pk:x")])
    picker = await message.reply_text(question, reply_markup=InlineKeyboardMarkup(rows))
    pickers = cast(dict[str, Any], context.chat_data).setdefault(PICKERS, [])
    pickers.append(picker.message_id)
    del pickers[:-KEPT_PICKERS]
    return None


def _superseded(context: ContextTypes.DEFAULT_TYPE, message_id: int) -> bool:
    pickers: list[int] = cast(dict[str, Any], context.chat_data).get(PICKERS, [])
    return message_id in pickers and message_id != pickers[-1]


async def connection_from_button(
    query: CallbackQuery, chat_id: int, context: ContextTypes.DEFAULT_TYPE
) -> tuple[str, ConnectionRecord] | None:
    """Parse ``action:id`` and load the connection within this chat; answer the press if not
    (also when it is on a picker a newer one replaced)."""
    match = _CALLBACK.match(query.data or "")
    if match is None:
        await query.answer(EXPIRED_BUTTON)
        return None
    if query.message is not None and _superseded(context, query.message.message_id):
        await query.answer(CLOSED)
        return None
    record = await services(context).connections.get(chat_id, int(match.group(2)))
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


async def cancel_picker(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A picker's Cancel: nothing chosen, the menu closes."""
    query = cast(CallbackQuery, update.callback_query)
    await query.answer()
    await query.edit_message_text("Cancelled: nothing was chosen.")


def handlers() -> list[BaseHandler[Update, ContextTypes.DEFAULT_TYPE, None]]:
    return [CallbackQueryHandler(cancel_picker, pattern=r"^pk:x$")]


def guided_setup(
    entry_points: list[BaseHandler[Update, ContextTypes.DEFAULT_TYPE, Any]],
    states: dict[object, list[BaseHandler[Update, ContextTypes.DEFAULT_TYPE, Any]]],
    cancel: Callable[[Update, ContextTypes.DEFAULT_TYPE], Coroutine[Any, Any, int]],
) -> ConversationHandler[ContextTypes.DEFAULT_TYPE]:
    """A guided setup (alerts, rebalancing): a conversation per chat that /cancel ends and its
    entry points restart. Tracked per chat on purpose: each setup checks which message its
    buttons are on, so PTB's per_message advice does not apply."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*per_message=False.*", category=PTBUserWarning)
        return ConversationHandler(
            entry_points=entry_points,
            states=states,
            fallbacks=[CommandHandler("cancel", cancel)],
            allow_reentry=True,
        )
