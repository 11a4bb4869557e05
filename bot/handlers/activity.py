"""/log [label]: the last exchange calls of a connection, readable on a phone."""

from __future__ import annotations

from typing import cast

from telegram import CallbackQuery, Message, Update
from telegram.constants import ParseMode
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, ContextTypes

from bot.handlers.choose import GONE, connection_from_args, connection_from_button
from bot.handlers.context import services
from bot.handlers.render import activity_log
from storage.connections import ConnectionRecord

SHOWN = 20
QUESTION = "Which connection's activity do you want to see?"


async def _render(
    chat_id: int, record: ConnectionRecord, context: ContextTypes.DEFAULT_TYPE
) -> str:
    hs = services(context)
    connections = hs.connections
    entries = await connections.activity(chat_id, record.id, SHOWN)
    if entries is None:
        return GONE
    return activity_log(record, connections.venue_of(record), entries, hs.clock())


async def log_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = cast(Message, update.effective_message)
    record = await connection_from_args(message, context, context.args or [], "lg", QUESTION)
    if record is not None:
        text = await _render(message.chat_id, record, context)
        await message.reply_text(text, parse_mode=ParseMode.HTML)


async def log_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = cast(CallbackQuery, update.callback_query)
    chat_id = cast(Message, query.message).chat_id
    found = await connection_from_button(query, chat_id, context)
    if found is None:
        return
    await query.answer()
    await query.edit_message_text(
        await _render(chat_id, found[1], context), parse_mode=ParseMode.HTML
    )


def handlers() -> list[BaseHandler[Update, ContextTypes.DEFAULT_TYPE, None]]:
    return [
        CommandHandler("log", log_command),
        CallbackQueryHandler(log_button, pattern=r"^lg:"),
    ]
