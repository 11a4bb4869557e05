"""/alert (one line, or a guided setup with buttons), /alerts, and the buttons on alerts.

Callback data carries a rule or connection id and is always looked up within the chat the
press came from; the guided setup keeps its half-made rule in ``chat_data``, not in buttons.
"""

from __future__ import annotations

import re
from typing import Any, cast

from telegram import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.constants import ParseMode
from telegram.ext import (
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    ConversationHandler,
    MessageHandler,
    filters,
)

from bot.handlers.choose import guided_setup, scope_picker
from bot.handlers.context import services
from bot.handlers.render import EXPIRED_BUTTON, NO_CONNECTIONS, esc
from bot.handlers.render_alerts import ALL, created_message, describe, rules_message, scope_name
from bot.rules.alert_service import Created, NoConnections, UnknownAsset, UnknownLabel
from bot.rules.alerts import RuleSyntaxError, parse_number, parse_rule
from storage.alerts import AlertLimitReached, Condition, Direction, Metric, RuleExists

HTML = ParseMode.HTML
GONE = "That alert is not here any more."
CLOSED = "This menu is closed."
DRAFT = "alert_draft"
CHOOSE, NUMBER = range(2)
_RULE_BUTTON = re.compile(r"^a([zdykpr]):(\d{1,12})$")
#: Assets offered as buttons in the guided setup (the biggest holdings).
MAX_ASSET_BUTTONS = 12
CANCEL = InlineKeyboardButton("Cancel", callback_data="ag:x")


async def _reply_created(message: Message, created: Created, scope: str) -> None:
    await message.reply_text(
        created_message(created.rule, scope, created.value, created.quote), parse_mode=HTML
    )


def _refusal(error: Exception, limit: int) -> str:
    """What the user reads when a rule cannot be stored; nothing was stored."""
    if isinstance(error, UnknownLabel):
        labels = ", ".join(f"<b>{esc(label)}</b>" for label in error.labels)
        return f"No connection called <b>{esc(error.label)}</b> here. Yours: {labels}, or all."
    if isinstance(error, UnknownAsset):
        held = ", ".join(esc(asset) for asset in error.held) or "nothing yet"
        return f"<b>{esc(error.asset)}</b> is not held there. It holds: {held}."
    if isinstance(error, NoConnections):
        return NO_CONNECTIONS
    if isinstance(error, RuleExists):
        return "You already have this very alert. See /alerts."
    if isinstance(error, AlertLimitReached):
        return f"This chat has {limit} alerts, the most it can hold. Delete one in /alerts first."
    return esc(str(error))


async def alert_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    """``/alert <label|all> …`` sets a rule in one line; ``/alert`` alone starts the guided
    setup."""
    message = cast(Message, update.effective_message)
    hs = services(context)
    if not context.args:
        return await _start_guided(message, context)
    try:
        spec = parse_rule(list(context.args))
        created = await hs.alerts.create(message.chat_id, spec)
    except RuleSyntaxError as error:
        await message.reply_text(esc(str(error)), parse_mode=HTML)
        return ConversationHandler.END
    except (UnknownLabel, UnknownAsset, NoConnections, RuleExists, AlertLimitReached) as error:
        await message.reply_text(_refusal(error, hs.alerts.limit), parse_mode=HTML)
        return ConversationHandler.END
    scope = spec.scope if spec.scope is not None else ALL
    if spec.scope is not None:
        record = await hs.connections.find(message.chat_id, spec.scope)
        scope = record.label if record is not None else spec.scope
    await _reply_created(message, created, scope)
    return ConversationHandler.END


async def _start_guided(message: Message, context: ContextTypes.DEFAULT_TYPE) -> int:
    records = await services(context).connections.list_for_chat(message.chat_id)
    if not records:
        await message.reply_text(NO_CONNECTIONS)
        return ConversationHandler.END
    picker = await scope_picker(
        message,
        records,
        question="🔔 New alert. Which connection should it watch?",
        prefix="ag:c:",
        everything="All connections together",
        cancel=CANCEL,
    )
    # The setup lives on this message: buttons of an older one answer "closed".
    cast(dict[str, Any], context.chat_data)[DRAFT] = {"message_id": picker.message_id}
    return CHOOSE


async def add_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    """ "Add alert" under /alerts: the same guided setup, in a new message."""
    query = cast(CallbackQuery, update.callback_query)
    await query.answer()
    return await _start_guided(cast(Message, query.message), context)


async def guided_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    query = cast(CallbackQuery, update.callback_query)
    chat_id = cast(Message, query.message).chat_id
    hs = services(context)
    draft = cast(dict[str, Any], context.chat_data).get(DRAFT)
    step, _, choice = (query.data or "").removeprefix("ag:").partition(":")
    if draft is None or draft["message_id"] != cast(Message, query.message).message_id:
        await query.answer(CLOSED)
        return CHOOSE if draft is not None else ConversationHandler.END
    if step == "x":
        await query.answer()
        await query.edit_message_text("No alert was set.")
        return _end(context)
    await query.answer()
    if step == "c":
        connection_id = int(choice) or None
        if connection_id is not None and await hs.connections.get(chat_id, connection_id) is None:
            await query.edit_message_text("That connection is not here any more.")
            return _end(context)
        held = await hs.alerts.held(chat_id, connection_id)
        draft.update(connection_id=connection_id, held=held[:MAX_ASSET_BUTTONS])
        buttons = [
            InlineKeyboardButton(asset, callback_data=f"ag:a:{i}")
            for i, asset in enumerate(draft["held"])
        ]
        rows = [buttons[i : i + 3] for i in range(0, len(buttons), 3)]
        rows.append([InlineKeyboardButton("💼 Total value", callback_data="ag:a:p")])
        rows.append([CANCEL])
        held_note = "" if held else "\n(No balance read yet: only the total value for now.)"
        await query.edit_message_text(
            f"Which asset?{held_note}", reply_markup=InlineKeyboardMarkup(rows)
        )
        return CHOOSE
    if step == "a":
        if choice == "p":
            draft.update(asset=None, metric=Metric.PORTFOLIO)
            return await _ask_direction(query, draft)
        if not choice.isdigit() or int(choice) >= len(draft.get("held", [])):
            return CHOOSE
        draft["asset"] = draft["held"][int(choice)]
        settings = await hs.chats.settings(chat_id)
        rows = [
            [InlineKeyboardButton("Amount", callback_data="ag:m:amount")],
            [InlineKeyboardButton(f"Value in {settings.quote}", callback_data="ag:m:value")],
            [InlineKeyboardButton("Share of the portfolio", callback_data="ag:m:share")],
            [CANCEL],
        ]
        await query.edit_message_text(
            f"Watch which number of {esc(draft['asset'])}?",
            reply_markup=InlineKeyboardMarkup(rows),
            parse_mode=HTML,
        )
        return CHOOSE
    if step == "m" and choice in ("amount", "value", "share"):
        draft["metric"] = Metric(choice)
        return await _ask_direction(query, draft)
    if step == "d" and choice in ("below", "above"):
        draft["direction"] = Direction(choice)
        unit = "%" if draft["metric"] is Metric.SHARE else ""
        await query.edit_message_text(
            f"Alert when it goes {choice} what? Type the number{' (a percentage)' if unit else ''},"
            " e.g. 0.5 or 25000. /cancel stops."
        )
        return NUMBER
    return CHOOSE


async def _ask_direction(query: CallbackQuery, draft: dict[str, Any]) -> int:
    rows = [
        [
            InlineKeyboardButton("⬇️ Below", callback_data="ag:d:below"),
            InlineKeyboardButton("⬆️ Above", callback_data="ag:d:above"),
        ],
        [CANCEL],
    ]
    await query.edit_message_text(
        "Alert when it goes below or above a threshold?", reply_markup=InlineKeyboardMarkup(rows)
    )
    return CHOOSE


async def guided_number(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    message = cast(Message, update.effective_message)
    hs = services(context)
    draft = cast(dict[str, Any], context.chat_data).get(DRAFT) or {}
    if "direction" not in draft:
        return _end(context)
    try:
        threshold = parse_number(message.text or "", "threshold")
        if threshold < 0 or (draft["metric"] is Metric.SHARE and threshold > 100):
            raise RuleSyntaxError("Give a number from 0 (and at most 100 for a share).")
    except RuleSyntaxError as error:
        await message.reply_text(f"{esc(str(error))} Try again, or /cancel.", parse_mode=HTML)
        return NUMBER
    condition = Condition(draft["metric"], draft.get("asset"), draft["direction"], threshold)
    try:
        created = await hs.alerts.create_for(message.chat_id, draft["connection_id"], condition)
    except (UnknownAsset, NoConnections, RuleExists, AlertLimitReached) as error:
        await message.reply_text(_refusal(error, hs.alerts.limit), parse_mode=HTML)
        return _end(context)
    records = {r.id: r for r in await hs.connections.list_for_chat(message.chat_id)}
    await _reply_created(message, created, scope_name(created.rule, records))
    return _end(context)


async def guided_cancel(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    await cast(Message, update.effective_message).reply_text("No alert was set.")
    return _end(context)


def _end(context: ContextTypes.DEFAULT_TYPE) -> int:
    cast(dict[str, Any], context.chat_data).pop(DRAFT, None)
    return ConversationHandler.END


async def _list(
    chat_id: int, context: ContextTypes.DEFAULT_TYPE
) -> tuple[str, InlineKeyboardMarkup]:
    hs = services(context)
    rules = await hs.alerts.rules.list_for_chat(chat_id)
    records = {r.id: r for r in await hs.connections.list_for_chat(chat_id)}
    quote = (await hs.chats.settings(chat_id)).quote
    return rules_message(rules, records, quote, hs.clock(), hs.alerts.limit)


async def alerts_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = cast(Message, update.effective_message)
    text, keyboard = await _list(message.chat_id, context)
    await message.reply_text(text, parse_mode=HTML, reply_markup=keyboard)


async def rule_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Snooze (az), Delete (ad → ay confirm / ak keep), Pause (ap), Resume (ar): the chat's
    own rules only."""
    query = cast(CallbackQuery, update.callback_query)
    message = cast(Message, query.message)
    match = _RULE_BUTTON.match(query.data or "")
    if match is None:
        await query.answer(EXPIRED_BUTTON)
        return
    action, rule_id = match.group(1), int(match.group(2))
    hs = services(context)
    rule = await hs.alerts.rules.get(message.chat_id, rule_id)
    if rule is None:
        await query.answer(GONE, show_alert=True)
        return
    records = {r.id: r for r in await hs.connections.list_for_chat(message.chat_id)}
    quote = (await hs.chats.settings(message.chat_id)).quote
    words = describe(rule.condition, scope_name(rule, records), quote)
    if action == "z":
        await hs.alerts.snooze(message.chat_id, rule_id)
        await query.answer("Snoozed for 24 h.")
        return
    if action == "d":
        await query.answer()
        keyboard = InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton("🗑 Yes, delete", callback_data=f"ay:{rule_id}"),
                    InlineKeyboardButton("Keep it", callback_data=f"ak:{rule_id}"),
                ]
            ]
        )
        await message.reply_text(
            f"Delete the alert: {words}?", parse_mode=HTML, reply_markup=keyboard
        )
        return
    if action in ("y", "k"):
        await query.answer()
        if action == "y":
            await hs.alerts.rules.delete(message.chat_id, rule_id)
        done = "🗑 Deleted" if action == "y" else "Kept"
        await query.edit_message_text(f"{done}: {words}. See /alerts.", parse_mode=HTML)
        return
    await hs.alerts.rules.update(message.chat_id, rule_id, paused=action == "p")
    await query.answer("Paused." if action == "p" else "Resumed.")
    text, keyboard = await _list(message.chat_id, context)
    await query.edit_message_text(text, parse_mode=HTML, reply_markup=keyboard)


def handlers() -> list[BaseHandler[Update, ContextTypes.DEFAULT_TYPE, Any]]:
    guided = guided_setup(
        entry_points=[
            CommandHandler("alert", alert_command),
            CallbackQueryHandler(add_button, pattern=r"^an:0$"),
        ],
        states={
            CHOOSE: [CallbackQueryHandler(guided_button, pattern=r"^ag:")],
            NUMBER: [
                MessageHandler(filters.TEXT & ~filters.COMMAND, guided_number),
                CallbackQueryHandler(guided_button, pattern=r"^ag:x$"),
            ],
        },
        cancel=guided_cancel,
    )
    return [
        guided,
        CommandHandler("alerts", alerts_command),
        CallbackQueryHandler(rule_button, pattern=r"^a[zdykpr]:"),
    ]
