"""/connections: a one-line summary per account with a button to open its card (the card at
once when there is only one); a card's buttons lead on, and back to it."""

from __future__ import annotations

from typing import Any, cast

from telegram import CallbackQuery, Message, Update
from telegram.constants import ParseMode
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, ContextTypes

from bot.exchanges.connections import ConnectionService
from bot.handlers.choose import connection_from_button
from bot.handlers.context import services
from bot.handlers.render import NO_CONNECTIONS, connection_card, connections_summary
from storage.connections import ConnectionRecord


async def _card(record: ConnectionRecord, context: ContextTypes.DEFAULT_TYPE) -> tuple[str, Any]:
    hs = services(context)
    pause = await hs.chats.pause_state(record.chat_id)
    return connection_card(
        record, ConnectionService.venue_of(record), pause, hs.clock(), hs.rotate_after_days
    )


async def list_connections(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = cast(Message, update.effective_message)
    records = await services(context).connections.list_for_chat(message.chat_id)
    if not records:
        await message.reply_text(NO_CONNECTIONS)
        return
    if len(records) == 1:
        text, keyboard = await _card(records[0], context)
    else:
        text, keyboard = connections_summary(records)
    await message.reply_text(text, parse_mode=ParseMode.HTML, reply_markup=keyboard)


async def open_card(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """``cc:<id>``: show a card in place (from the summary, or back from a check or a kept
    revoke)."""
    query = cast(CallbackQuery, update.callback_query)
    chat_id = cast(Message, query.message).chat_id
    found = await connection_from_button(query, chat_id, context)
    if found is None:
        return
    await query.answer()
    text, keyboard = await _card(found[1], context)
    await query.edit_message_text(text, parse_mode=ParseMode.HTML, reply_markup=keyboard)


def handlers() -> list[BaseHandler[Update, ContextTypes.DEFAULT_TYPE, None]]:
    return [
        CommandHandler("connections", list_connections),
        CallbackQueryHandler(open_card, pattern=r"^cc:"),
    ]
