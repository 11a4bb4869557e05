"""/portfolio: every connection of the chat aggregated; Refresh, By exchange, and a Chart."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import cast

from telegram import CallbackQuery, InputFile, Message, Update
from telegram.constants import ChatAction, ParseMode
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, ContextTypes

from bot.handlers.balance import failed_read
from bot.handlers.charts import Point, Slice, portfolio_chart
from bot.handlers.context import services
from bot.handlers.long_text import edit_long, reply_long
from bot.handlers.render import NO_CONNECTIONS
from bot.handlers.render_money import REFRESHING, chart_caption, portfolio_message
from bot.rules.portfolio import Portfolio, ValueSeries, build_portfolio, dust_threshold

#: Chart resolution per span: hourly points for a week, four-hourly for a month.
CHART_STEPS = {7: timedelta(hours=1), 30: timedelta(hours=4)}


async def load(chat_id: int, context: ContextTypes.DEFAULT_TYPE) -> Portfolio | None:
    """The chat's portfolio from the stored snapshots (None: no connections)."""
    hs = services(context)
    records = await hs.connections.list_for_chat(chat_id)
    if not records:
        return None
    settings = await hs.chats.settings(chat_id)
    now = hs.clock()
    return build_portfolio(
        records,
        await hs.snapshots.latest(chat_id),
        await hs.snapshots.values_since(chat_id, now - timedelta(days=7)),
        quote=settings.quote,
        dust_below=dust_threshold(settings.quote, settings.dust_threshold),
        now=now,
        periods={r.id: hs.balances.policy_for(r).period for r in records},
    )


async def refresh_all(chat_id: int, context: ContextTypes.DEFAULT_TYPE) -> str | None:
    """Read every connection now, concurrently; what failed, as warning lines (None: all ok)."""
    hs = services(context)
    records = await hs.connections.list_for_chat(chat_id)
    outcomes = await hs.balances.refresh(chat_id, [r.id for r in records])
    warnings = [
        failed_read(outcome.seen.problem, record.label)
        for record in records
        if (outcome := outcomes.get(record.id)) is not None and outcome.seen.problem is not None
    ]
    return "\n".join(warnings) or None


async def portfolio_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = cast(Message, update.effective_message)
    hs = services(context)
    warning = None
    if not await hs.snapshots.latest(message.chat_id):
        await context.bot.send_chat_action(message.chat_id, ChatAction.TYPING)
        warning = await refresh_all(message.chat_id, context)
    portfolio = await load(message.chat_id, context)
    if portfolio is None:
        await message.reply_text(NO_CONNECTIONS)
        return
    text, keyboard = portfolio_message(portfolio, hs.clock(), warning=warning)
    await reply_long(message, text, keyboard)


async def view_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """``pf`` by asset, ``px`` by exchange, ``pr:<0|1>`` refresh then show that view, ``pn``
    by asset in a new message (under an alert)."""
    query = cast(CallbackQuery, update.callback_query)
    message = cast(Message, query.message)
    action, _, flag = (query.data or "").partition(":")
    warning = None
    if action == "pr":
        await query.answer("Refreshing…")
        await query.edit_message_text(
            f"{message.text_html}\n\n{REFRESHING}", parse_mode=ParseMode.HTML
        )
        warning = await refresh_all(message.chat_id, context)
    else:
        await query.answer()
    portfolio = await load(message.chat_id, context)
    if portfolio is None:
        await query.edit_message_text(NO_CONNECTIONS)
        return
    by_exchange = action == "px" or (action == "pr" and flag == "1")
    text, keyboard = portfolio_message(
        portfolio, services(context).clock(), by_exchange=by_exchange, warning=warning
    )
    if action == "pn":  # under an alert: the alert stays, the portfolio comes as a new message
        await reply_long(message, text, keyboard)
    else:
        await edit_long(query, text, keyboard)


async def chart_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Send the allocation and the value over 7 or 30 days as a PNG photo."""
    query = cast(CallbackQuery, update.callback_query)
    chat_id = cast(Message, query.message).chat_id
    days = int((query.data or "").partition(":")[2] or 7)
    if days not in CHART_STEPS:
        days = 7
    await query.answer("Drawing the chart…")
    portfolio = await load(chat_id, context)
    if portfolio is None:
        await context.bot.send_message(chat_id, NO_CONNECTIONS)
        return
    await context.bot.send_chat_action(chat_id, ChatAction.UPLOAD_PHOTO)
    hs = services(context)
    now = hs.clock()
    start = now - timedelta(days=days)
    series = ValueSeries(await hs.snapshots.values_since(chat_id, start), portfolio.quote)
    slices = [
        Slice(line.asset, float(line.value))
        for line in portfolio.holdings.lines
        if line.value is not None and line.value > 0
    ]
    if portfolio.holdings.dust.value > 0:
        slices.append(Slice("Small balances", float(portfolio.holdings.dust.value)))
    points = [Point(at, float(value)) for at, value in series.totals(start, now, CHART_STEPS[days])]
    png = await asyncio.to_thread(
        portfolio_chart, slices, points, portfolio.quote, title="Portfolio", days=days
    )
    caption, keyboard = chart_caption(portfolio.quote, days, portfolio.total)
    await context.bot.send_photo(
        chat_id,
        InputFile(png, filename="portfolio.png"),
        caption=caption,
        parse_mode=ParseMode.HTML,
        reply_markup=keyboard,
    )


def handlers() -> list[BaseHandler[Update, ContextTypes.DEFAULT_TYPE, None]]:
    return [
        CommandHandler("portfolio", portfolio_command),
        CallbackQueryHandler(view_button, pattern=r"^(pf|px|pr|pn):[01]$"),
        CallbackQueryHandler(chart_button, pattern=r"^pc:(7|30)$"),
    ]
