"""Pure rendering of alerts: a rule in words, the alert message, the list of rules."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.exchanges.catalogue import get_venue
from bot.handlers.dates import when
from bot.handlers.layout import format_amount, format_money, format_percent
from bot.handlers.render import esc, venue_title
from storage.alerts import AlertRule, AlertState, Condition, Direction, Metric
from storage.connections import ConnectionRecord, ConnectionStatus

ALL = "all connections"


def number(metric: Metric, value: Decimal, quote: str) -> str:
    """A watched number in its own unit: an amount, money in the chat's currency, a share."""
    if metric is Metric.SHARE:
        return format_percent(value)
    if metric in (Metric.VALUE, Metric.PORTFOLIO):
        return format_money(value, quote) if quote else format_amount(value)
    return format_amount(value)


def subject(condition: Condition, scope: str) -> str:
    """What the rule watches, in words (HTML-escaped)."""
    where = esc(scope)
    asset = esc(condition.asset or "")
    if condition.metric is Metric.AMOUNT:
        return f"{asset} on {where}"
    if condition.metric is Metric.VALUE:
        return f"the value of {asset} on {where}"
    if condition.metric is Metric.SHARE:
        return f"the share of {asset} in {where}"
    return f"the value of {where}"


def describe(condition: Condition, scope: str, quote: str) -> str:
    """``BTC on Main below 0.5`` (re-arm and cooldown when set)."""
    words = (
        f"{subject(condition, scope)} {condition.direction} "
        f"{esc(number(condition.metric, condition.threshold, quote))}"
    )
    extras = []
    if condition.rearm is not None:
        extras.append(f"re-arms at {esc(number(condition.metric, condition.rearm, quote))}")
    if condition.cooldown is not None:
        hours = condition.cooldown.total_seconds() / 3600
        extras.append(f"at most one alert per {hours:g} h")
    return words + (f" ({', '.join(extras)})" if extras else "")


def scope_name(rule: AlertRule, records: Mapping[int, ConnectionRecord]) -> str:
    if rule.connection_id is None:
        return ALL
    record = records.get(rule.connection_id)
    return record.label if record is not None else "a revoked connection"


def created_message(rule: AlertRule, scope: str, value: Decimal | None, quote: str) -> str:
    condition = rule.condition
    lines = [f"🔔 Alert set: {describe(condition, scope, quote)}."]
    if value is None:
        lines.append("I have no balance read for it yet; it is checked at every read.")
    else:
        now = esc(number(condition.metric, value, quote))
        lines.append(
            f"{subject(condition, scope)[0].upper()}{subject(condition, scope)[1:]} is {now} now."
        )
    if rule.state is AlertState.FIRED:
        moved = "drops below" if condition.direction is Direction.BELOW else "rises above"
        lines.append(
            f"It is already {condition.direction}: I'll tell you the next time it {moved} "
            "after recovering."
        )
    lines.append("See every rule with /alerts.")
    return "\n".join(lines)


def alert_message(
    payloads: Sequence[Mapping[str, Any]], now: datetime
) -> tuple[str, InlineKeyboardMarkup]:
    """One message for every alert a chat got from one sweep, with buttons per alert."""
    lines = ["🔔 <b>Alert</b>" if len(payloads) == 1 else f"🔔 <b>{len(payloads)} alerts</b>"]
    rows = []
    for payload in payloads:
        condition = Condition(
            Metric(payload["metric"]),
            payload["asset"],
            Direction(payload["direction"]),
            Decimal(payload["threshold"]),
        )
        quote = payload["quote"]
        scope = payload["label"] or ALL
        venue = (
            f" ({esc(venue_title(get_venue(payload['venue']), payload['sandbox']))})"
            if payload["venue"]
            else ""
        )
        crossed = "dropped below" if condition.direction is Direction.BELOW else "rose above"
        value = esc(number(condition.metric, Decimal(payload["value"]), quote))
        threshold = esc(number(condition.metric, condition.threshold, quote))
        title = subject(condition, scope)
        lines.append(
            f"\n{title[0].upper()}{title[1:]}{venue} {crossed} {threshold}: "
            f"<b>{value}</b> now · {esc(when(now, now))}"
        )
        rule_id = payload["rule_id"]
        short = esc(condition.asset or "value")
        connection_id = payload.get("connection_id")
        balance = (
            InlineKeyboardButton("💰 Balance", callback_data=f"bn:{connection_id}")
            if connection_id is not None
            else InlineKeyboardButton("📊 Portfolio", callback_data="pn:0")
        )
        rows.append(
            [
                balance,
                InlineKeyboardButton(f"😴 24 h · {short}", callback_data=f"az:{rule_id}"),
                InlineKeyboardButton(f"🗑 {short}", callback_data=f"ad:{rule_id}"),
            ]
        )
    return "\n".join(lines), InlineKeyboardMarkup(rows)


def rule_state(rule: AlertRule, record: ConnectionRecord | None, now: datetime) -> str:
    if rule.paused:
        return "⏸ paused"
    if record is not None and record.status is not ConnectionStatus.CONNECTED:
        return "⚠️ not checked while the connection is not Connected"
    if rule.snoozed_until is not None and rule.snoozed_until > now:
        return f"😴 snoozed until {when(rule.snoozed_until, now)}"
    if rule.state is AlertState.FIRED and rule.fired_at is not None:
        return f"🔔 fired {when(rule.fired_at, now)}"
    if rule.state is AlertState.FIRED:
        return "🔔 already crossed when set"
    return "✅ armed"


def rules_message(
    rules: Sequence[AlertRule],
    records: Mapping[int, ConnectionRecord],
    quote: str,
    now: datetime,
    limit: int,
) -> tuple[str, InlineKeyboardMarkup]:
    """/alerts: every rule with its state, Pause/Resume and Delete per rule, and Add."""
    if not rules:
        text = (
            "No alerts yet. Add one with a line like\n"
            "<code>/alert Main BTC below 0.5</code>\n"
            "<code>/alert all value below 25000</code>\n"
            "or send /alert for a guided setup."
        )
        return text, InlineKeyboardMarkup(
            [[InlineKeyboardButton("➕ Add alert", callback_data="an:0")]]
        )
    lines = [f"🔔 <b>Alerts</b> ({len(rules)} of {limit})"]
    rows = []
    for index, rule in enumerate(rules, 1):
        record = records.get(rule.connection_id) if rule.connection_id is not None else None
        lines.append(
            f"\n{index}. {describe(rule.condition, scope_name(rule, records), quote)}\n"
            f"    {rule_state(rule, record, now)}"
        )
        toggle = (
            InlineKeyboardButton(f"▶️ Resume {index}", callback_data=f"ar:{rule.id}")
            if rule.paused
            else InlineKeyboardButton(f"⏸ Pause {index}", callback_data=f"ap:{rule.id}")
        )
        rows.append(
            [toggle, InlineKeyboardButton(f"🗑 Delete {index}", callback_data=f"ad:{rule.id}")]
        )
    rows.append([InlineKeyboardButton("➕ Add alert", callback_data="an:0")])
    return "\n".join(lines), InlineKeyboardMarkup(rows)
