"""/check [label]: a step-by-step diagnosis of a stored key, each step ✅/❌ with its fix."""

from __future__ import annotations

from typing import cast

from telegram import CallbackQuery, Message, Update
from telegram.constants import ChatAction, ParseMode
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, ContextTypes

from bot.handlers.choose import GONE, connection_from_args, connection_from_button
from bot.handlers.context import services
from bot.handlers.render import back_to_card, check_report

QUESTION = "Which connection do you want to check?"


async def _run(chat_id: int, connection_id: int, context: ContextTypes.DEFAULT_TYPE) -> str:
    hs = services(context)
    await context.bot.send_chat_action(chat_id, ChatAction.TYPING)
    result = await hs.connections.check(chat_id, connection_id, hs.outbound_ips)
    if result is None:
        return GONE
    record, report = result
    return check_report(record, hs.connections.venue_of(record), report)


async def check_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = cast(Message, update.effective_message)
    record = await connection_from_args(message, context, context.args or [], "ck", QUESTION)
    if record is not None:
        text = await _run(message.chat_id, record.id, context)
        await message.reply_text(text, parse_mode=ParseMode.HTML)


async def check_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = cast(CallbackQuery, update.callback_query)
    chat_id = cast(Message, query.message).chat_id
    found = await connection_from_button(query, chat_id, context)
    if found is None:
        return
    await query.answer("Checking…")
    await query.edit_message_text(
        await _run(chat_id, found[1].id, context),
        parse_mode=ParseMode.HTML,
        reply_markup=back_to_card(found[1]),
    )


def handlers() -> list[BaseHandler[Update, ContextTypes.DEFAULT_TYPE, None]]:
    return [
        CommandHandler("check", check_command),
        CallbackQueryHandler(check_button, pattern=r"^ck:"),
    ]
