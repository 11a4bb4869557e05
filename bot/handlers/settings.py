"""/settings: what balances are valued in, what counts as dust, how often each connection's
balance is read. Every choice is a button; callback data carries indexes, never free text."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from typing import cast

from telegram import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.constants import ParseMode
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, ContextTypes

from bot.exchanges.prices import QUOTE_CURRENCIES
from bot.handlers.context import services
from bot.handlers.layout import format_amount
from bot.handlers.portfolio import refresh_all
from bot.handlers.render import EXPIRED_BUTTON, esc
from bot.rules.portfolio import dust_threshold
from storage.chats import ChatSettings
from storage.connections import ConnectionRecord

#: Dust thresholds offered, in units of the quote currency.
DUST_CHOICES = {
    "BTC": (Decimal(0), Decimal("0.00001"), Decimal("0.0001"), Decimal("0.001")),
}
DEFAULT_DUST_CHOICES = (Decimal(0), Decimal(1), Decimal(10), Decimal(100))
#: Balance read periods a connection can choose (seconds); slower than the bot's period only.
SYNC_CHOICES = (60, 300, 900, 3600)
_CALLBACK = re.compile(r"^(sq|sd|sp|ss):(\d{1,12})(?::(\d{1,2}))?$")


def dust_choices(quote: str) -> tuple[Decimal, ...]:
    return DUST_CHOICES.get(quote, DEFAULT_DUST_CHOICES)


def period_text(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)} min"
    return f"{int(seconds)} s"


def settings_message(
    settings: ChatSettings, records: list[ConnectionRecord], periods: dict[int, timedelta]
) -> tuple[str, InlineKeyboardMarkup]:
    quote = settings.quote
    dust = dust_threshold(quote, settings.dust_threshold)
    lines = [
        "⚙️ <b>Settings</b>",
        "",
        f"<b>Currency:</b> {esc(quote)}: balances, the portfolio and alerts are valued in it.",
        f"<b>Dust:</b> assets worth less than {esc(format_amount(dust))} {esc(quote)} are rolled "
        "into one “small balances” line.",
    ]
    if records:
        lines += ["", "<b>Balance reads</b> (each read is also the connection's health check):"]
        lines += [
            f"• {esc(r.label)}: every {period_text(periods[r.id].total_seconds())}" for r in records
        ]
    rows = [
        [
            InlineKeyboardButton(f"{'✅ ' if q == quote else ''}{q}", callback_data=f"sq:{i}")
            for i, q in enumerate(QUOTE_CURRENCIES)
        ],
        [
            InlineKeyboardButton(
                f"{'✅ ' if d == dust else ''}dust {format_amount(d)}", callback_data=f"sd:{i}"
            )
            for i, d in enumerate(dust_choices(quote))
        ],
    ]
    rows += [[InlineKeyboardButton(f"⏱ {r.label}", callback_data=f"sp:{r.id}")] for r in records]
    return "\n".join(lines), InlineKeyboardMarkup(rows)


def period_picker(
    record: ConnectionRecord, current: timedelta, base: timedelta
) -> tuple[str, InlineKeyboardMarkup]:
    text = (
        f"How often should I read the balance of <b>{esc(record.label)}</b>? Now: every "
        f"{period_text(current.total_seconds())}. Slower reads use less of the exchange's rate "
        "budget; alerts on this connection are checked as often as it is read."
    )
    buttons = [
        InlineKeyboardButton(
            f"{'✅ ' if max(base.total_seconds(), s) == current.total_seconds() else ''}"
            f"{period_text(max(base.total_seconds(), s))}",
            callback_data=f"ss:{record.id}:{i}",
        )
        for i, s in enumerate(SYNC_CHOICES)
    ]
    back = [InlineKeyboardButton("← Back", callback_data="sp:0")]
    return text, InlineKeyboardMarkup([buttons, back])


async def _overview(
    chat_id: int, context: ContextTypes.DEFAULT_TYPE
) -> tuple[str, InlineKeyboardMarkup]:
    hs = services(context)
    records = await hs.connections.list_for_chat(chat_id)
    periods = {r.id: hs.balances.policy_for(r).period for r in records}
    return settings_message(await hs.chats.settings(chat_id), records, periods)


async def settings_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = cast(Message, update.effective_message)
    text, keyboard = await _overview(message.chat_id, context)
    await message.reply_text(text, parse_mode=ParseMode.HTML, reply_markup=keyboard)


async def settings_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = cast(CallbackQuery, update.callback_query)
    chat_id = cast(Message, query.message).chat_id
    match = _CALLBACK.match(query.data or "")
    hs = services(context)
    if match is None:
        await query.answer(EXPIRED_BUTTON)
        return
    action, number, choice = match.group(1), int(match.group(2)), match.group(3)
    settings = await hs.chats.settings(chat_id)
    note = None
    if action == "sq" and number < len(QUOTE_CURRENCIES):
        quote = QUOTE_CURRENCIES[number]
        if quote != settings.quote:
            await hs.chats.update_settings(chat_id, hs.clock(), quote=quote)
            await query.answer(f"Valuing in {quote}; reading your balances again…")
            note = await refresh_all(chat_id, context)
        else:
            await query.answer()
    elif action == "sd" and number < len(dust_choices(settings.quote)):
        chosen = dust_choices(settings.quote)[number]
        await hs.chats.update_settings(chat_id, hs.clock(), dust_threshold=chosen)
        await query.answer("Saved.")
    elif action == "sp" and number:
        record = await hs.connections.get(chat_id, number)
        if record is None:
            await query.answer("That connection is not here any more.", show_alert=True)
            return
        await query.answer()
        text, keyboard = period_picker(
            record, hs.balances.policy_for(record).period, hs.balances.policy.period
        )
        await query.edit_message_text(text, parse_mode=ParseMode.HTML, reply_markup=keyboard)
        return
    elif action == "ss" and choice is not None and int(choice) < len(SYNC_CHOICES):
        seconds = SYNC_CHOICES[int(choice)]
        own = seconds if seconds > hs.balances.policy.period.total_seconds() else None
        if await hs.connections.set_sync_seconds(chat_id, number, own) is None:
            await query.answer("That connection is not here any more.", show_alert=True)
            return
        await query.answer("Saved.")
    else:
        await query.answer()
    text, keyboard = await _overview(chat_id, context)
    if note:
        text += f"\n\n{note}"
    await query.edit_message_text(text, parse_mode=ParseMode.HTML, reply_markup=keyboard)


def handlers() -> list[BaseHandler[Update, ContextTypes.DEFAULT_TYPE, None]]:
    return [
        CommandHandler("settings", settings_command),
        CallbackQueryHandler(settings_button, pattern=r"^s[qdps]:"),
    ]
