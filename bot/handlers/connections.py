"""/connections: one card per connected account, each with its buttons."""

from __future__ import annotations

from typing import cast

from telegram import Message, Update
from telegram.constants import ParseMode
from telegram.ext import CommandHandler, ContextTypes

from bot.exchanges.connections import ConnectionService
from bot.handlers.context import services
from bot.handlers.render import NO_CONNECTIONS, connection_card


async def list_connections(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = cast(Message, update.effective_message)
    hs = services(context)
    records = await hs.connections.list_for_chat(message.chat_id)
    if not records:
        await message.reply_text(NO_CONNECTIONS)
        return
    pause = await hs.chats.pause_state(message.chat_id)
    now = hs.clock()
    for record in records:
        text, keyboard = connection_card(
            record, ConnectionService.venue_of(record), pause, now, hs.rotate_after_days
        )
        await message.reply_text(text, parse_mode=ParseMode.HTML, reply_markup=keyboard)


def handler() -> CommandHandler[ContextTypes.DEFAULT_TYPE, None]:
    return CommandHandler("connections", list_connections)
