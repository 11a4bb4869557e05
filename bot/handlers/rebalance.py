"""/rebalance: set a target (one line, or a guided setup with buttons), see it, get proposals,
approve or reject them, and read the history.

A proposal's buttons carry its id and revision; every tap is looked up within the chat it came
from, so a forged, foreign, replayed or superseded button does nothing. Approval is claimed
once in the database, so a double tap executes once.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, cast

from telegram import Bot, CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest
from telegram.ext import (
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    ConversationHandler,
    MessageHandler,
    filters,
)

from bot.clock import Clock
from bot.handlers.choose import guided_setup, scope_picker
from bot.handlers.context import services
from bot.handlers.dates import when
from bot.handlers.render import EXPIRED_BUTTON, esc
from bot.handlers.render_rebalance import (
    NO_TARGET,
    STATUS,
    details_message,
    history_message,
    proposal_message,
    result_message,
    target_message,
)
from bot.rules.rebalance.drift import Trigger
from bot.rules.rebalance.executor import Executor, Verdict
from bot.rules.rebalance.proposal import NoProposal, ProposalService, rebalancing_venue
from bot.rules.rebalance.target_service import TargetRefused, TargetService
from bot.rules.rebalance.targets import TargetSyntaxError, describe, parse_target
from storage.proposals import Proposal, ProposalRepository, ProposalStatus

log = logging.getLogger(__name__)

HTML = ParseMode.HTML
DRAFT = "rebalance_draft"
CLOSED = "This menu is closed."
GONE = "That proposal is not here."
SCOPE, WEIGHTS, OPTIONS = range(3)
_PROPOSAL_BUTTON = re.compile(r"^r([prd]):(\d{1,12})(?::(\d{1,6}))?$")
CANCEL = InlineKeyboardButton("Cancel", callback_data="rg:x")


@dataclass(frozen=True)
class Rebalancing:
    """What the rebalance flow needs, put in ``bot_data`` by the composition root."""

    targets: TargetService
    proposals: ProposalService
    repository: ProposalRepository
    executor: Executor
    clock: Clock


REBALANCING_KEY = "coinwarden.rebalancing"


def rebalancing(context: ContextTypes.DEFAULT_TYPE) -> Rebalancing:
    found = context.bot_data[REBALANCING_KEY]
    assert isinstance(found, Rebalancing)
    return found


# ----- proposals out -------------------------------------------------------------------------


async def show_proposal(bot: Bot, rb: Rebalancing, proposal: Proposal) -> None:
    """Send a proposal, or edit the message of the one it updates (a new revision)."""
    legs = await rb.repository.legs(proposal.id)
    text, keyboard = proposal_message(proposal, legs, rb.clock())
    if proposal.message_id is not None and proposal.revision > 1:
        try:
            await bot.edit_message_text(
                text,
                chat_id=proposal.chat_id,
                message_id=proposal.message_id,
                parse_mode=HTML,
                reply_markup=keyboard,
            )
            return
        except BadRequest:
            pass  # too old to edit, or deleted: a new message
    sent = await bot.send_message(proposal.chat_id, text, parse_mode=HTML, reply_markup=keyboard)
    await rb.repository.set_message(proposal.id, sent.message_id)


async def propose(bot: Bot, rb: Rebalancing, chat_id: int, trigger: Trigger) -> None:
    """Make (or update) the chat's proposal and show it; say plainly why when there is none."""
    try:
        proposal = await rb.proposals.propose(chat_id, trigger)
    except NoProposal as nothing:
        prefix = {
            Trigger.DRIFT: "⚖️ Your allocation drifted outside its band, but no trade is proposed: ",
            Trigger.SCHEDULE: "⏰ Scheduled rebalance: no trade is proposed: ",
        }.get(trigger, "No proposal: ")
        await bot.send_message(chat_id, prefix + esc(nothing.reason), parse_mode=HTML)
        return
    await show_proposal(bot, rb, proposal)


async def show_result(bot: Bot, rb: Rebalancing, proposal: Proposal) -> None:
    """An execution's report: in place of the proposal where possible, else a new message."""
    legs = await rb.repository.legs(proposal.id)
    text = result_message(proposal, legs, rb.clock())
    if proposal.message_id is not None:
        try:
            await bot.edit_message_text(
                text, chat_id=proposal.chat_id, message_id=proposal.message_id, parse_mode=HTML
            )
            return
        except BadRequest:
            pass
    await bot.send_message(proposal.chat_id, text, parse_mode=HTML)


# ----- /rebalance ------------------------------------------------------------------------------


async def rebalance_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    message = cast(Message, update.effective_message)
    rb = rebalancing(context)
    words = list(context.args or [])
    chat_id = message.chat_id
    if not words:
        view = await rb.targets.view(chat_id)
        if view is None:
            await message.reply_text(
                NO_TARGET,
                parse_mode=HTML,
                reply_markup=InlineKeyboardMarkup(
                    [[InlineKeyboardButton("🧭 Set one up with buttons", callback_data="rt:g")]]
                ),
            )
            return ConversationHandler.END
        text, keyboard = target_message(view)
        await message.reply_text(text, parse_mode=HTML, reply_markup=keyboard)
        return ConversationHandler.END
    head = words[0].casefold()
    if head == "off" and len(words) == 1:
        deleted = await rb.targets.delete(chat_id)
        await message.reply_text(
            "🗑 The rebalancing target is deleted: no more proposals."
            if deleted
            else "There was no rebalancing target."
        )
        return ConversationHandler.END
    if head == "history" and len(words) == 1:
        items = await rb.repository.history(chat_id)
        await message.reply_text(history_message(items, rb.clock()), parse_mode=HTML)
        return ConversationHandler.END
    await _set_target(message, context, words)
    return ConversationHandler.END


async def _set_target(
    message: Message, context: ContextTypes.DEFAULT_TYPE, words: list[str]
) -> None:
    """Parse, check and store a target, show it, then propose at once (a dry run)."""
    rb = rebalancing(context)
    try:
        spec = parse_target(words)
        view = await rb.targets.set(message.chat_id, spec)
    except (TargetSyntaxError, TargetRefused) as error:
        await message.reply_text(esc(str(error)), parse_mode=HTML)
        return
    text, keyboard = target_message(view)
    await message.reply_text("✅ Target set.\n" + text, parse_mode=HTML, reply_markup=keyboard)
    await propose(context.bot, rb, message.chat_id, Trigger.MANUAL)


async def target_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    """The target card's buttons: propose now, edit, dry-run toggle, delete (with a confirm),
    history; and "set one up" when there is none."""
    query = cast(CallbackQuery, update.callback_query)
    message = cast(Message, query.message)
    rb = rebalancing(context)
    action = (query.data or "").removeprefix("rt:")
    chat_id = message.chat_id
    if action == "g":
        await query.answer()
        return await _start_guided(message, context)
    view = await rb.targets.view(chat_id)
    if view is None and action not in ("h",):
        await query.answer("There is no target any more: /rebalance sets one.", show_alert=True)
        return ConversationHandler.END
    if action == "p":
        await query.answer("Reading balances and prices…")
        await propose(context.bot, rb, chat_id, Trigger.MANUAL)
    elif action == "e":
        await query.answer()
        assert view is not None
        await message.reply_text(
            "Copy this line, change it and send it back:\n"
            f"<code>/rebalance {esc(describe(view.spec))}</code>",
            parse_mode=HTML,
            reply_markup=InlineKeyboardMarkup(
                [[InlineKeyboardButton("🧭 Or set it up with buttons", callback_data="rt:g")]]
            ),
        )
    elif action in ("d0", "d1"):
        changed = await rb.targets.set_dry_run(chat_id, action == "d1")
        await query.answer("Dry run only." if action == "d1" else "Proposals can be approved.")
        if changed is not None:
            text, keyboard = target_message(changed)
            await query.edit_message_text(text, parse_mode=HTML, reply_markup=keyboard)
    elif action == "x":
        await query.answer()
        await message.reply_text(
            "Delete the rebalancing target? Open proposals can no longer be approved.",
            reply_markup=InlineKeyboardMarkup(
                [
                    [
                        InlineKeyboardButton("🗑 Yes, delete", callback_data="rt:y"),
                        InlineKeyboardButton("Keep it", callback_data="rt:k"),
                    ]
                ]
            ),
        )
    elif action == "y":
        await query.answer()
        await rb.targets.delete(chat_id)
        await query.edit_message_text("🗑 The rebalancing target is deleted.")
    elif action == "k":
        await query.answer()
        await query.edit_message_text("Kept. /rebalance shows it.")
    elif action == "h":
        await query.answer()
        items = await rb.repository.history(chat_id)
        await message.reply_text(history_message(items, rb.clock()), parse_mode=HTML)
    else:
        await query.answer(EXPIRED_BUTTON)
    return ConversationHandler.END


async def proposal_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Approve (rp:id:rev), Reject (rr:id:rev), Details (rd:id) of this chat's proposals."""
    query = cast(CallbackQuery, update.callback_query)
    message = cast(Message, query.message)
    rb = rebalancing(context)
    match = _PROPOSAL_BUTTON.match(query.data or "")
    if match is None:
        await query.answer(EXPIRED_BUTTON)
        return
    action, proposal_id = match.group(1), int(match.group(2))
    revision = int(match.group(3) or 0)
    chat_id = message.chat_id
    proposal = await rb.repository.get(chat_id, proposal_id)
    if proposal is None:
        await query.answer(GONE, show_alert=True)
        return
    if action == "d":
        await query.answer()
        legs = await rb.repository.legs(proposal.id)
        await message.reply_text(details_message(proposal, legs), parse_mode=HTML)
        return
    if proposal.status is not ProposalStatus.OPEN or proposal.revision != revision:
        newer = proposal.status is ProposalStatus.OPEN
        await query.answer(
            "This proposal was updated: use the latest buttons."
            if newer
            else f"Already handled: this proposal is {STATUS[proposal.status]}.",
            show_alert=True,
        )
        return
    now = rb.clock()
    if action == "r":
        await query.answer("Rejected.")
        await rb.executor.reject(chat_id, proposal_id, revision)
        await query.edit_message_text(
            f"✖ Rejected at {when(now, now)}. Nothing was traded. /rebalance history lists it."
        )
        return
    approval = await rb.executor.approve(chat_id, proposal_id, revision)
    if approval.verdict is Verdict.EXPIRED:
        await query.answer()
        await query.edit_message_text(
            f"⌛ This proposal expired at {when(proposal.expires_at, now)}: prices may have "
            "moved since. Nothing was traded.",
            reply_markup=InlineKeyboardMarkup(
                [[InlineKeyboardButton("📝 Fresh proposal", callback_data="rt:p")]]
            ),
        )
        return
    if approval.verdict is Verdict.PAUSED:
        await query.answer(
            "Trading is paused in this chat: nothing was traded. /resume first.", show_alert=True
        )
        return
    if approval.verdict is not Verdict.CLAIMED or approval.proposal is None:
        await query.answer("Already handled.", show_alert=True)
        return
    await query.answer("Checking balances and prices, then trading…")
    await query.edit_message_reply_markup(reply_markup=None)
    # In the background: updates are handled one at a time, and /pause must get through while
    # the legs run.
    context.application.create_task(
        _execute(context.bot, rb, message, approval.proposal), update=update
    )


async def _execute(bot: Bot, rb: Rebalancing, message: Message, proposal: Proposal) -> None:
    approval = await rb.executor.execute(proposal)
    if approval.verdict is Verdict.EXECUTED and approval.proposal is not None:
        await show_result(bot, rb, approval.proposal)
    elif approval.verdict is Verdict.REQUOTED:
        await message.edit_text("↻ Replaced by an updated plan; nothing was traded on this one.")
        await message.reply_text(
            f"Prices or balances moved ({esc(approval.reason or '')}), so nothing was traded."
            + (" Here is an updated plan:" if approval.replacement else ""),
            parse_mode=HTML,
        )
        if approval.replacement is not None:
            await show_proposal(bot, rb, approval.replacement)
    elif approval.verdict is Verdict.STOPPED:
        await message.edit_text(
            f"⛔ Not executed: {esc(approval.reason or '')}. Nothing was traded.", parse_mode=HTML
        )


# ----- the guided setup ------------------------------------------------------------------------


async def _start_guided(message: Message, context: ContextTypes.DEFAULT_TYPE) -> int:
    records = [
        r
        for r in await services(context).connections.list_for_chat(message.chat_id)
        if rebalancing_venue(r.venue)
    ]
    if not records:
        await message.reply_text(
            "No spot connection here can be rebalanced yet: /connect one first."
        )
        return ConversationHandler.END
    picker = await scope_picker(
        message,
        records,
        question="⚖️ New rebalancing target. Which holdings should it balance?",
        prefix="rg:s:",
        everything="All spot connections together",
        cancel=CANCEL,
    )
    cast(dict[str, Any], context.chat_data)[DRAFT] = {"message_id": picker.message_id}
    return SCOPE


def _draft(context: ContextTypes.DEFAULT_TYPE) -> dict[str, Any] | None:
    return cast(dict[str, Any], context.chat_data).get(DRAFT)


def _end(context: ContextTypes.DEFAULT_TYPE) -> int:
    cast(dict[str, Any], context.chat_data).pop(DRAFT, None)
    return ConversationHandler.END


async def guided_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    query = cast(CallbackQuery, update.callback_query)
    message = cast(Message, query.message)
    draft = _draft(context)
    step, _, choice = (query.data or "").removeprefix("rg:").partition(":")
    if draft is None or draft["message_id"] != message.message_id:
        await query.answer(CLOSED)
        return SCOPE if draft is not None else ConversationHandler.END
    await query.answer()
    if step == "x":
        await query.edit_message_text("No target was set.")
        return _end(context)
    if step == "s":
        hs = services(context)
        connection_id = int(choice) if choice.isdigit() else 0
        record = await hs.connections.get(message.chat_id, connection_id) if connection_id else None
        if connection_id and record is None:
            await query.edit_message_text("That connection is not here any more.")
            return _end(context)
        draft["scope"] = record.label if record is not None else "all"
        held = await hs.alerts.held(message.chat_id, connection_id or None)
        draft["held"] = held[:4]
        presets = _presets(held)
        draft["presets"] = presets
        rows = [
            [
                InlineKeyboardButton(
                    " · ".join(f"{a} {w}%" for a, w in preset), callback_data=f"rg:w:{i}"
                )
            ]
            for i, preset in enumerate(presets)
        ]
        rows.append([CANCEL])
        await query.edit_message_text(
            "Which assets, and what share of their value each? Type them, e.g. "
            "<code>BTC 50 ETH 30 USDT 20</code> (adding up to 100), or tap one:",
            parse_mode=HTML,
            reply_markup=InlineKeyboardMarkup(rows),
        )
        return WEIGHTS
    if step == "w" and choice.isdigit() and int(choice) < len(draft.get("presets", [])):
        draft["weights"] = [f"{a} {w}" for a, w in draft["presets"][int(choice)]]
        return await _ask_band(query)
    if step == "b" and choice in ("5", "10", "25%"):
        draft["band"] = choice
        await query.edit_message_text(
            "Also propose on a schedule?",
            reply_markup=InlineKeyboardMarkup(
                [
                    [
                        InlineKeyboardButton("No, on drift only", callback_data="rg:e:-"),
                        InlineKeyboardButton("Daily", callback_data="rg:e:1d"),
                        InlineKeyboardButton("Weekly", callback_data="rg:e:1w"),
                    ],
                    [CANCEL],
                ]
            ),
        )
        return OPTIONS
    if step == "e" and choice in ("-", "1d", "1w"):
        draft["every"] = None if choice == "-" else choice
        await query.edit_message_text(
            "Should proposals be approvable (trades run with your trade key after you tap "
            "Approve), or dry runs only?",
            reply_markup=InlineKeyboardMarkup(
                [
                    [InlineKeyboardButton("✅ Approvable", callback_data="rg:m:t")],
                    [InlineKeyboardButton("🧪 Dry runs only", callback_data="rg:m:d")],
                    [CANCEL],
                ]
            ),
        )
        return OPTIONS
    if step == "m" and choice in ("t", "d") and "weights" in draft:
        words = [draft["scope"], *" ".join(draft["weights"]).split(), "band", draft["band"]]
        if draft.get("every"):
            words += ["every", draft["every"]]
        if choice == "d":
            words.append("dryrun")
        await query.edit_message_text(
            f"Setting: <code>/rebalance {esc(' '.join(words))}</code>", parse_mode=HTML
        )
        _end(context)
        await _set_target(message, context, words)
        return ConversationHandler.END
    return OPTIONS if "weights" in draft else WEIGHTS


async def guided_weights(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    message = cast(Message, update.effective_message)
    draft = _draft(context)
    if draft is None or "scope" not in draft:
        return _end(context)
    words = (message.text or "").split()
    try:
        parse_target([draft["scope"], *words])
    except TargetSyntaxError as error:
        await message.reply_text(f"{esc(str(error))}\nTry again, or /cancel.", parse_mode=HTML)
        return WEIGHTS
    draft["weights"] = words
    picker = await message.reply_text(**_band_question())
    draft["message_id"] = picker.message_id
    return OPTIONS


def _band_question() -> dict[str, Any]:
    return {
        "text": "How far may an asset drift from its weight before I propose a rebalance?",
        "reply_markup": InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton("5 points", callback_data="rg:b:5"),
                    InlineKeyboardButton("10 points", callback_data="rg:b:10"),
                    InlineKeyboardButton("25% of its weight", callback_data="rg:b:25%"),
                ],
                [CANCEL],
            ]
        ),
    }


async def _ask_band(query: CallbackQuery) -> int:
    await query.edit_message_text(**_band_question())
    return OPTIONS


def _presets(held: list[str]) -> list[list[tuple[str, int]]]:
    """Quick targets from what is held: the two biggest holdings 50/50, and each of the
    biggest against USDT."""
    presets: list[list[tuple[str, int]]] = []
    if len(held) >= 2:
        presets.append([(held[0], 50), (held[1], 50)])
    for asset in held[:3]:
        if asset != "USDT" and [(asset, 50), ("USDT", 50)] not in presets:
            presets.append([(asset, 50), ("USDT", 50)])
    if len(held) >= 3:
        presets.append([(held[0], 40), (held[1], 30), (held[2], 30)])
    return presets[:4]


async def guided_cancel(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    await cast(Message, update.effective_message).reply_text("No target was set.")
    return _end(context)


def handlers() -> list[BaseHandler[Update, ContextTypes.DEFAULT_TYPE, Any]]:
    guided = guided_setup(
        entry_points=[
            CommandHandler("rebalance", rebalance_command),
            CallbackQueryHandler(target_button, pattern=r"^rt:"),
        ],
        states={
            SCOPE: [CallbackQueryHandler(guided_button, pattern=r"^rg:")],
            WEIGHTS: [
                MessageHandler(filters.TEXT & ~filters.COMMAND, guided_weights),
                CallbackQueryHandler(guided_button, pattern=r"^rg:"),
            ],
            OPTIONS: [CallbackQueryHandler(guided_button, pattern=r"^rg:")],
        },
        cancel=guided_cancel,
    )
    return [guided, CallbackQueryHandler(proposal_button, pattern=r"^r[prd]:")]


class RebalanceDelivery:
    """Turns the outbox's rebalance notices into messages: a trigger becomes a proposal, a
    finished execution (after a restart) its report."""

    def __init__(self, rb: Rebalancing) -> None:
        self._rb = rb

    async def trigger(self, bot: Bot, chat_id: int, trigger: str) -> None:
        await propose(bot, self._rb, chat_id, Trigger(trigger))

    async def result(self, bot: Bot, chat_id: int, proposal_id: int) -> bool:
        proposal = await self._rb.repository.get(chat_id, proposal_id)
        if proposal is None:
            return False
        await show_result(bot, self._rb, proposal)
        return True
