"""/revoke [label] and the Revoke button: confirm, then wipe the keys and say what to do next.

Callback data carries only a connection id; every press is checked against the chat it came from.
"""

from __future__ import annotations

import re
from typing import cast

from telegram import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.constants import ParseMode
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, ContextTypes

from bot.exchanges.connections import ConnectionService
from bot.handlers.context import services
from bot.handlers.render import EXPIRED_BUTTON, esc, venue_title
from storage.connections import ConnectionRecord

HTML = ParseMode.HTML
CALLBACK = re.compile(r"^(rv|rvy|rvn):(\d{1,12})$")
GONE = "That connection is not here any more."


def _confirmation(record: ConnectionRecord) -> tuple[str, InlineKeyboardMarkup]:
    venue = ConnectionService.venue_of(record)
    text = (
        f"Revoke <b>{esc(record.label)}</b> ({esc(venue_title(venue, record.sandbox))})?\n\n"
        "Its keys are wiped from Coinwarden right away. This cannot be undone."
    )
    keyboard = InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton("🗑 Yes, revoke", callback_data=f"rvy:{record.id}"),
                InlineKeyboardButton("Keep it", callback_data=f"rvn:{record.id}"),
            ]
        ]
    )
    return text, keyboard


async def revoke_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = cast(Message, update.effective_message)
    connections = services(context).connections
    label = " ".join(context.args or [])
    if label:
        record = await connections.find(message.chat_id, label)
        if record is None:
            await message.reply_text(
                f"No connection called <b>{esc(label)}</b> here. See /connections.",
                parse_mode=HTML,
            )
            return
        text, keyboard = _confirmation(record)
        await message.reply_text(text, parse_mode=HTML, reply_markup=keyboard)
        return
    records = await connections.list(message.chat_id)
    if not records:
        await message.reply_text("There is nothing to revoke: no accounts are connected here.")
        return
    keyboard = InlineKeyboardMarkup(
        [[InlineKeyboardButton(r.label, callback_data=f"rv:{r.id}")] for r in records]
    )
    await message.reply_text("Which connection do you want to revoke?", reply_markup=keyboard)


async def revoke_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = cast(CallbackQuery, update.callback_query)
    match = CALLBACK.match(query.data or "")
    chat = update.effective_chat
    if match is None or chat is None:
        await query.answer(EXPIRED_BUTTON)
        return
    action, connection_id = match.group(1), int(match.group(2))
    connections = services(context).connections
    record = await connections.get(chat.id, connection_id)
    if record is None:
        await query.answer(GONE, show_alert=True)
        return
    if action == "rv":
        await query.answer()
        text, keyboard = _confirmation(record)
        await query.edit_message_text(text, parse_mode=HTML, reply_markup=keyboard)
    elif action == "rvn":
        await query.answer("Nothing changed.")
        await query.edit_message_text(
            f"Kept <b>{esc(record.label)}</b>. Nothing changed.", parse_mode=HTML
        )
    else:
        revoked = await connections.revoke(chat.id, connection_id)
        if revoked is None:
            await query.answer(GONE, show_alert=True)
            return
        await query.answer("Revoked.")
        venue = ConnectionService.venue_of(revoked)
        await query.edit_message_text(
            f"🗑 <b>{esc(revoked.label)}</b> is revoked: its keys are wiped from Coinwarden.\n\n"
            f"Finish the job on {esc(venue.name)}: delete the API key there too "
            "(API Management → Delete), so it cannot be used by anyone, anywhere.",
            parse_mode=HTML,
        )


def handlers() -> list[BaseHandler[Update, ContextTypes.DEFAULT_TYPE, None]]:
    return [
        CommandHandler("revoke", revoke_command),
        CallbackQueryHandler(revoke_button, pattern=r"^rv[yn]?:"),
    ]
