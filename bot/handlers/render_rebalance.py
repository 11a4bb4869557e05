"""How targets, proposals, execution reports and the history read: data in, HTML and buttons out.

Callback data names a proposal by id and revision (``rp:12:3``); handlers look it up within the
chat the tap came from, so a forged, foreign or stale button does nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.handlers.dates import when
from bot.handlers.layout import format_amount, format_money, format_percent, pre_table
from bot.handlers.render import esc
from bot.rules.rebalance.target_service import TargetView
from bot.rules.rebalance.targets import describe
from storage.proposals import Leg, LegState, Proposal, ProposalStatus

TRIGGERS = {
    "manual": "you asked for it",
    "drift": "the allocation drifted outside its band",
    "schedule": "it is the scheduled time",
}
STATUS = {
    ProposalStatus.OPEN: "waiting for your decision",
    ProposalStatus.DRY_RUN: "dry run",
    ProposalStatus.EXECUTING: "executing",
    ProposalStatus.EXECUTED: "executed",
    ProposalStatus.PARTLY_EXECUTED: "partly executed",
    ProposalStatus.FAILED: "failed",
    ProposalStatus.REJECTED: "rejected",
    ProposalStatus.EXPIRED: "expired",
    ProposalStatus.REQUOTED: "replaced by an updated plan",
}
LEG_STATES = {
    LegState.PLANNED: "not sent",
    LegState.SENDING: "sent, outcome pending",
    LegState.UNKNOWN: "sent, looking it up",
    LegState.FILLED: "✅ filled",
    LegState.PARTLY: "🟡 partly filled",
    LegState.NOT_FILLED: "⚪ not filled",
    LegState.REFUSED: "❌ refused",
    LegState.LOST: "❓ not found at the exchange",
    LegState.SKIPPED: "⏭ not sent",
}
NO_TARGET = (
    "<b>Rebalancing</b>\nNo target yet. Set one in a line, for example:\n"
    "<code>/rebalance all BTC 50 USDT 50</code>\n"
    "<code>/rebalance Main BTC 60 ETH 20 USDT 20 band 5 every 1w</code>\n"
    "Options: <code>band 5</code> (points) or <code>band 25%</code> (of each weight), "
    "<code>every 1d|1w</code>, <code>slippage 0.5</code>, <code>dryrun</code>. "
    "Every trigger sends a proposal first: nothing trades until you tap Approve."
)


def _why(proposal: Proposal) -> str:
    return TRIGGERS.get(proposal.trigger, proposal.trigger)


def _pct(text: object) -> str:
    return format_percent(Decimal(str(text)))


def allocation_table(
    before: Mapping[str, Any],
    after: Mapping[str, Any] | None,
    target: Mapping[str, Any],
    *,
    first: str = "now",
) -> str:
    """Asset, now (or ``first``), after (when known) and target, one line each, in a
    ``<pre>`` block."""
    head = [""] + [first] + (["after"] if after is not None else []) + ["target"]
    rows = [head]
    for asset in target:
        row = [asset, _pct(before.get(asset, 0))]
        if after is not None:
            row.append(_pct(after.get(asset, 0)))
        row.append(_pct(target[asset]))
        rows.append(row)
    return "<pre>" + pre_table(rows, align="l" + "r" * (len(head) - 1)) + "</pre>"


def target_message(view: TargetView) -> tuple[str, InlineKeyboardMarkup]:
    spec = view.spec
    band = (
        f"{format_amount(spec.band.size)}% of each weight"
        if spec.band.relative
        else f"{format_amount(spec.band.size)} points"
    )
    lines = [
        "<b>Rebalancing target</b>" + (" · dry run only" if spec.dry_run else ""),
        f"Scope: <b>{esc(view.scope)}</b>",
        f"<code>/rebalance {esc(describe(spec))}</code>",
        f"Drift band: {band} · slippage {format_amount(spec.slippage * 100)}%"
        + (f" · every {spec.every.value}" if spec.every else ""),
    ]
    if view.current is None:
        lines.append("\nNo fresh balance read of the whole scope yet: drift is not known.")
    else:
        lines += [
            "\nAllocation now (assets not in the target are not counted):",
            allocation_table(view.current, None, spec.weights),
        ]
    lines.append(
        "Proposals come when drift leaves the band"
        + (", on schedule" if spec.every else "")
        + " or when you tap Propose now. "
        + (
            "They are dry runs only: nothing is ever traded."
            if spec.dry_run
            else "Nothing trades until you approve."
        )
    )
    keyboard = InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton("📝 Propose now", callback_data="rt:p"),
                InlineKeyboardButton("✏️ Edit", callback_data="rt:e"),
            ],
            [
                InlineKeyboardButton(
                    "Dry run only: on" if spec.dry_run else "Dry run only: off",
                    callback_data="rt:d0" if spec.dry_run else "rt:d1",
                ),
                InlineKeyboardButton("🗑 Delete", callback_data="rt:x"),
            ],
            [InlineKeyboardButton("📜 History", callback_data="rt:h")],
        ]
    )
    return "\n".join(lines), keyboard


def _leg_line(position: int, leg: Leg, quote: str) -> str:
    planned = leg.planned
    base = planned.symbol.split("/")[0]
    return (
        f"{position}. <b>{planned.side.upper()}</b> {format_amount(planned.amount)} {esc(base)}"
        f" on <b>{esc(planned.label)}</b>\n"
        f"   {esc(planned.symbol)} ≈ {format_amount(planned.price)}"
        f" · {format_money(planned.value, quote)} · fee ≈ {format_money(planned.fee, quote)}"
    )


def _outcome_line(position: int, leg: Leg) -> str:
    planned = leg.planned
    base, quote = planned.symbol.split("/")[0], planned.symbol.split("/")[1]
    line = (
        f"{position}. {planned.side.upper()} {format_amount(planned.amount)} {esc(base)}"
        f" on {esc(planned.label)}: {LEG_STATES[leg.state]}"
    )
    if leg.filled:
        line += f"\n   {format_amount(leg.filled)} {esc(base)}"
        if leg.average:
            line += f" at {format_amount(leg.average)} {esc(quote)}"
        fees = ", ".join(f"{format_amount(v)} {esc(k)}" for k, v in leg.fees.items())
        if fees:
            line += f" · fee {fees}"
    if leg.detail:
        line += f"\n   <i>{esc(leg.detail)}</i>"
    return line


def _left_out(plan: Mapping[str, Any]) -> list[str]:
    items = plan.get("left_out") or []
    if not items:
        return []
    lines = ["\n<b>Left out</b>"]
    for item in items:
        where = f"{esc(item['label'])}: " if item.get("label") else ""
        lines.append(f"• {where}{esc(item['subject'])}: {esc(item['detail'])}")
    return lines


def proposal_message(
    proposal: Proposal, legs: Sequence[Leg], now: datetime
) -> tuple[str, InlineKeyboardMarkup | None]:
    """The proposal as the chat sees it while it is open, or as it ended."""
    plan = proposal.plan
    quote = proposal.quote
    executed = proposal.status in (
        ProposalStatus.EXECUTING,
        ProposalStatus.EXECUTED,
        ProposalStatus.PARTLY_EXECUTED,
    ) or any(leg.state is not LegState.PLANNED for leg in legs)
    if executed:
        return result_message(proposal, legs, now), None
    if proposal.dry_run:
        title = "🧪 <b>Rebalance dry run</b> · nothing has been or will be traded"
    else:
        title = "📝 <b>Rebalance proposal</b> · a dry run: nothing has been traded"
    lines = [
        title,
        f"Scope: <b>{esc(plan['scope'])}</b> · why now: {_why(proposal)}",
        "",
        "<b>Orders</b> (limit, immediate-or-cancel; sells first on each exchange)",
        *(_leg_line(i + 1, leg, quote) for i, leg in enumerate(legs)),
        "",
        f"Traded ≈ {format_money(Decimal(plan['traded_value']), quote)}"
        f" · fees ≈ {format_money(Decimal(plan['fees']), quote)}",
        allocation_table(plan["before"], plan["after"], plan["target"]),
    ]
    if plan.get("note"):
        lines.append(f"<i>{esc(plan['note'])}</i>")
    lines += _left_out(plan)
    keyboard: InlineKeyboardMarkup | None = None
    if proposal.dry_run:
        lines.append(
            f"\nThese trades would have cost about {format_money(Decimal(plan['fees']), quote)}"
            " in fees. This target is dry run only: turn it off in /rebalance to approve trades."
        )
    elif proposal.status is ProposalStatus.OPEN and proposal.expires_at > now:
        lines.append(
            f"\nApprove by {when(proposal.expires_at, now)}; prices are checked again first."
        )
        keyboard = InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton(
                        "✅ Approve", callback_data=f"rp:{proposal.id}:{proposal.revision}"
                    ),
                    InlineKeyboardButton(
                        "✖ Reject", callback_data=f"rr:{proposal.id}:{proposal.revision}"
                    ),
                ],
                [InlineKeyboardButton("📋 Details", callback_data=f"rd:{proposal.id}")],
            ]
        )
    else:
        lines.append(f"\nThis proposal is {STATUS[proposal.status]}.")
        keyboard = InlineKeyboardMarkup(
            [[InlineKeyboardButton("📝 Propose again", callback_data="rt:p")]]
        )
    return "\n".join(lines), keyboard


def result_message(proposal: Proposal, legs: Sequence[Leg], now: datetime) -> str:
    """What an execution did, leg by leg, the allocation after and the fees paid."""
    plan = proposal.plan
    lines = [
        f"🔁 <b>Rebalance {STATUS[proposal.status]}</b> · scope <b>{esc(plan['scope'])}</b>",
        *(_outcome_line(i + 1, leg) for i, leg in enumerate(legs)),
    ]
    result = proposal.result or {}
    if result.get("after"):
        lines += ["", "Allocation after (read from the exchanges):"]
        lines.append(
            allocation_table(plan["before"], result["after"], plan["target"], first="before")
        )
    fees = result.get("fees") or {}
    if fees:
        paid = ", ".join(f"{format_amount(Decimal(v))} {esc(k)}" for k, v in fees.items())
        lines.append(f"Fees paid: {paid}")
    if proposal.note:
        lines.append(f"<i>{esc(proposal.note)}</i>")
    if proposal.finished_at is not None:
        lines.append(f"Finished {when(proposal.finished_at, now)}.")
    return "\n".join(lines)


def details_message(proposal: Proposal, legs: Sequence[Leg]) -> str:
    """The full table: every leg with its client order id and limits."""
    lines = [f"<b>Proposal {proposal.id}</b> (revision {proposal.revision}), legs in order:"]
    for i, leg in enumerate(legs, 1):
        planned = leg.planned
        lines.append(
            f"{i}. {esc(planned.label)} {esc(planned.symbol)} {planned.side} "
            f"{format_amount(planned.amount)} ≈ {format_amount(planned.price)}"
            f" · value {format_money(planned.value, proposal.quote)}"
            f" · fee ≈ {format_money(planned.fee, proposal.quote)}"
            f"\n   client order id <code>{esc(leg.client_order_id)}</code>"
        )
    return "\n".join(lines)


def history_message(items: Sequence[tuple[Proposal, Sequence[Leg]]], now: datetime) -> str:
    if not items:
        return "No rebalance proposals yet."
    lines = ["<b>Rebalance history</b> (newest first)"]
    for proposal, legs in items:
        lines.append(
            f"\n<b>{when(proposal.created_at, now)}</b> · {STATUS[proposal.status]}"
            f" · {esc(proposal.plan.get('scope', ''))} · {_why(proposal)}"
        )
        for i, leg in enumerate(legs, 1):
            planned = leg.planned
            state = "" if leg.state is LegState.PLANNED else f": {LEG_STATES[leg.state]}"
            lines.append(
                f"  {i}. {planned.side} {format_amount(planned.amount)} {esc(planned.symbol)}"
                f" on {esc(planned.label)}{state}"
            )
    return "\n".join(lines)
