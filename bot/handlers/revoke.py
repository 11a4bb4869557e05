"""/revoke [label] and the Revoke button: confirm, then wipe the keys and say what to do next.

Callback data carries only a connection id; every press is checked against the chat it came from.
"""

from __future__ import annotations

from typing import cast

from telegram import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.constants import ParseMode
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, ContextTypes

from bot.exchanges.connections import ConnectionService
from bot.handlers.choose import GONE, connection_from_args, connection_from_button
from bot.handlers.context import services
from bot.handlers.rebalance import rebalancing
from bot.handlers.render import ROLE_TITLE, back_to_card, esc, venue_title
from storage.connections import ConnectionRecord

HTML = ParseMode.HTML
QUESTION = "Which connection do you want to revoke?"


def fingerprints(record: ConnectionRecord) -> str:
    """The connection's keys by masked fingerprint, so the user knows which to delete."""
    return " · ".join(
        f"{ROLE_TITLE[role]} <code>{esc(slot.mask)}</code>"
        for role in record.roles
        if (slot := record.key(role)) is not None
    )


def _confirmation(record: ConnectionRecord) -> tuple[str, InlineKeyboardMarkup]:
    venue = ConnectionService.venue_of(record)
    text = (
        f"Revoke <b>{esc(record.label)}</b> ({esc(venue_title(venue, record.sandbox))})?\n"
        f"{fingerprints(record)}\n\n"
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
    record = await connection_from_args(message, context, context.args or [], "rv", QUESTION)
    if record is not None:
        text, keyboard = _confirmation(record)
        await message.reply_text(text, parse_mode=HTML, reply_markup=keyboard)


async def revoke_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = cast(CallbackQuery, update.callback_query)
    chat_id = cast(Message, query.message).chat_id
    connections = services(context).connections
    found = await connection_from_button(query, chat_id, context)
    if found is None:
        return
    action, record = found
    connection_id = record.id
    if action == "rv":
        await query.answer()
        text, keyboard = _confirmation(record)
        await query.edit_message_text(text, parse_mode=HTML, reply_markup=keyboard)
    elif action == "rvn":
        await query.answer("Nothing changed.")
        await query.edit_message_text(
            f"Kept <b>{esc(record.label)}</b>. Nothing changed.",
            parse_mode=HTML,
            reply_markup=back_to_card(record),
        )
    else:
        alerts = await services(context).alerts.rules.count_for_connection(chat_id, connection_id)
        target = await rebalancing(context).targets.scoped_to(chat_id, connection_id)
        revoked = await connections.revoke(chat_id, connection_id)
        if revoked is None:
            await query.answer(GONE, show_alert=True)
            return
        await query.answer("Revoked.")
        venue = ConnectionService.venue_of(revoked)
        which = "both keys (read and trade)" if len(revoked.roles) > 1 else "the key"
        gone_alerts = (
            f" Its {alerts} alert{'s' if alerts > 1 else ''} went with it." if alerts else ""
        ) + (" So did its rebalancing target." if target else "")
        await query.edit_message_text(
            f"🗑 <b>{esc(revoked.label)}</b> is revoked: its keys are wiped from Coinwarden."
            f"{gone_alerts}\n\n"
            f"Finish the job on {esc(venue.name)}: delete {which} there too "
            f"({fingerprints(revoked)}), so nobody can use "
            f"{'them' if len(revoked.roles) > 1 else 'it'} anywhere.\n{venue.delete_key_howto}",
            parse_mode=HTML,
        )


def handlers() -> list[BaseHandler[Update, ContextTypes.DEFAULT_TYPE, None]]:
    return [
        CommandHandler("revoke", revoke_command),
        CallbackQueryHandler(revoke_button, pattern=r"^rv[yn]?:"),
    ]
