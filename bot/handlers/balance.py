"""/balance [label]: one connection's holdings from its latest snapshot; Refresh reads live."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from telegram import CallbackQuery, InlineKeyboardMarkup, Message, Update
from telegram.constants import ChatAction, ParseMode
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, ContextTypes

from bot.exchanges.diagnosis import Diagnosis
from bot.handlers.choose import GONE, connection_from_args, connection_from_button
from bot.handlers.context import services
from bot.handlers.long_text import edit_long, reply_long
from bot.handlers.render import esc
from bot.handlers.render_money import REFRESHING, balance_message
from bot.rules.portfolio import dust_threshold, summarise
from storage.connections import ConnectionRecord

QUESTION = "Which connection's balance do you want to see?"


def failed_read(diagnosis: Diagnosis, label: str | None = None) -> str:
    """What a failed live read says: the cause and the fix, and that old figures are shown."""
    who = f"{esc(label)}: " if label else ""
    said = f" ({esc(diagnosis.exchange_message)})" if diagnosis.exchange_message else ""
    return f"⚠️ {who}could not read it now: {esc(diagnosis.cause)}{said} {esc(diagnosis.fix)}"


async def render(
    chat_id: int,
    record: ConnectionRecord,
    context: ContextTypes.DEFAULT_TYPE,
    warning: str | None = None,
) -> tuple[str, InlineKeyboardMarkup]:
    hs = services(context)
    settings = await hs.chats.settings(chat_id)
    snapshot = (await hs.snapshots.latest(chat_id, [record.id])).get(record.id)
    holdings = (
        summarise(snapshot.assets, dust_threshold(snapshot.quote, settings.dust_threshold))
        if snapshot is not None
        else None
    )
    venue = hs.connections.venue_of(record)
    if snapshot is not None and warning is not None:
        warning += " Showing the last balance read."
    return balance_message(record, venue, snapshot, holdings, hs.clock(), warning=warning)


@dataclass(frozen=True)
class LiveRead:
    """A live read done: ``warning`` says why it failed (None: it worked)."""

    warning: str | None = None


async def read_now(
    chat_id: int, record: ConnectionRecord, context: ContextTypes.DEFAULT_TYPE
) -> LiveRead | None:
    """Read the connection now; None if it is gone."""
    outcome = (await services(context).balances.refresh(chat_id, [record.id])).get(record.id)
    if outcome is None:
        return None
    problem = outcome.seen.problem
    return LiveRead(failed_read(problem) if problem is not None else None)


async def balance_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = cast(Message, update.effective_message)
    hs = services(context)
    record = await connection_from_args(message, context, context.args or [], "bal", QUESTION)
    if record is None:
        return
    warning = None
    if not await hs.snapshots.latest(message.chat_id, [record.id]):
        await context.bot.send_chat_action(message.chat_id, ChatAction.TYPING)
        read = await read_now(message.chat_id, record, context)
        if read is None:
            await message.reply_text(GONE)
            return
        warning = read.warning
    text, keyboard = await render(message.chat_id, record, context, warning)
    await reply_long(message, text, keyboard)


async def show_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """``bal`` from a picker replaces it; ``bn`` (under an alert) answers in a new message, so
    the alert stays readable."""
    query = cast(CallbackQuery, update.callback_query)
    message = cast(Message, query.message)
    found = await connection_from_button(query, message.chat_id, context)
    if found is None:
        return
    await query.answer()
    text, keyboard = await render(message.chat_id, found[1], context)
    if found[0] == "bn":
        await reply_long(message, text, keyboard)
    else:
        await edit_long(query, text, keyboard)


async def refresh_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Say "refreshing" at once (without buttons, so a second tap finds none), read live,
    then edit the same message with the outcome."""
    query = cast(CallbackQuery, update.callback_query)
    message = cast(Message, query.message)
    found = await connection_from_button(query, message.chat_id, context)
    if found is None:
        return
    record = found[1]
    await query.answer("Refreshing…")
    await query.edit_message_text(f"{message.text_html}\n\n{REFRESHING}", parse_mode=ParseMode.HTML)
    read = await read_now(message.chat_id, record, context)
    if read is None:
        await query.edit_message_text(GONE)
        return
    text, keyboard = await render(message.chat_id, record, context, read.warning)
    await edit_long(query, text, keyboard)


def handlers() -> list[BaseHandler[Update, ContextTypes.DEFAULT_TYPE, None]]:
    return [
        CommandHandler("balance", balance_command),
        CallbackQueryHandler(show_button, pattern=r"^(bal|bn):"),
        CallbackQueryHandler(refresh_button, pattern=r"^br:"),
    ]
