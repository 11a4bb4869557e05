"""Alert rules evaluated on every fresh snapshot, inside the transaction that records it.

No exchange call of its own: the numbers come from the snapshots. A rule is evaluated only
when every connection it watches is Connected and was read within two of its periods (no alert
and no re-arming from stale data: the health alert already speaks for a broken connection),
and only on numbers that are known: a value rule whose asset has no price is skipped rather
than read as 0. The rule's new state and the alert it owes are written in that same
transaction (the outbox), so a crash between evaluation and delivery loses no alert and a
restart repeats none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncConnection

from bot.exchanges.health import HealthPolicy
from bot.rules.alerts import step
from storage.alerts import AlertRule, Condition, Metric, StateChange, rules_watching, save_states
from storage.connections import AfterRead, ConnectionRecord, ConnectionStatus, records_in
from storage.outbox import Notice, NoticeKind, enqueue
from storage.snapshots import Snapshot, latest_in

ZERO = Decimal(0)


def metric_value(condition: Condition, snapshots: Sequence[Snapshot]) -> Decimal | None:
    """The number a rule watches over these snapshots; None when it is not known."""
    if not snapshots or (len(snapshots) > 1 and len({s.quote for s in snapshots}) > 1):
        return None
    asset = condition.asset
    if condition.metric is Metric.AMOUNT:
        assert asset is not None
        return sum((s.assets[asset].total for s in snapshots if asset in s.assets), ZERO)
    if condition.metric is Metric.PORTFOLIO:
        return _total(snapshots)
    assert asset is not None
    held = [s.assets[asset] for s in snapshots if asset in s.assets]
    if any(a.value is None for a in held):
        return None
    value = sum((a.value for a in held if a.value is not None), ZERO)
    if condition.metric is Metric.VALUE:
        return value
    total = _total(snapshots)
    return value / total * 100 if total else None


def _total(snapshots: Sequence[Snapshot]) -> Decimal | None:
    """The scope's value, only if every asset in it has a price."""
    if any(s.unpriced for s in snapshots):
        return None
    return sum((s.total_value for s in snapshots), ZERO)


@dataclass(frozen=True)
class Crossing:
    """A rule that crossed its threshold, with the value that crossed it."""

    rule: AlertRule
    value: Decimal


def quiet(rule: AlertRule, now: datetime) -> bool:
    """Snoozed, or within its cooldown since the last alert: a crossing now waits (the rule
    stays armed and tells once this is over, if the condition still holds)."""
    if rule.snoozed_until is not None and now < rule.snoozed_until:
        return True
    cooldown = rule.condition.cooldown
    return cooldown is not None and rule.fired_at is not None and now - rule.fired_at < cooldown


def evaluate(
    rules: Sequence[AlertRule],
    snapshots: Mapping[int, Snapshot],
    usable: set[int],
    chat_connections: Sequence[int],
    now: datetime,
) -> tuple[list[StateChange], list[Crossing]]:
    """The rules whose state changes on these snapshots, and the crossings to tell the chat
    (a rule that stays as it was is not written: most rules, most of the time).

    ``usable``: the connections whose latest snapshot may be used now (Connected, fresh).
    """
    changes: list[StateChange] = []
    crossings: list[Crossing] = []
    scopes: dict[int | None, list[Snapshot] | None] = {}
    for rule in rules:
        if rule.paused:
            continue
        scope = rule.connection_id
        if scope not in scopes:
            watched = [scope] if scope is not None else chat_connections
            usable_all = bool(watched) and all(i in usable for i in watched)
            scopes[scope] = [snapshots[i] for i in watched] if usable_all else None
        watched_snapshots = scopes[scope]
        if watched_snapshots is None:
            continue
        value = metric_value(rule.condition, watched_snapshots)
        if value is None:
            continue
        result = step(rule.condition, rule.state, value)
        if result.crossed and quiet(rule, now):
            continue  # stays armed: it tells once the snooze or cooldown is over
        if result.state is not rule.state:
            changes.append(
                StateChange(rule.id, result.state, value, now if result.crossed else None)
            )
        if result.crossed:
            crossings.append(Crossing(rule, value))
    return changes, crossings


def alert_notice(crossing: Crossing, records: Mapping[int, ConnectionRecord], quote: str) -> Notice:
    rule = crossing.rule
    condition = rule.condition
    record = records.get(rule.connection_id) if rule.connection_id is not None else None
    return Notice(
        rule.chat_id,
        NoticeKind.ALERT,
        rule.connection_id,
        {
            "rule_id": rule.id,
            "connection_id": rule.connection_id,
            "metric": str(condition.metric),
            "asset": condition.asset,
            "direction": str(condition.direction),
            "threshold": format(condition.threshold, "f"),
            "value": format(crossing.value, "f"),
            "quote": quote,
            "label": record.label if record is not None else None,
            "venue": record.venue if record is not None else None,
            "sandbox": record.sandbox if record is not None else False,
        },
    )


class AlertEvaluator:
    """Builds the in-transaction step that evaluates a chat's rules after one of its reads."""

    def __init__(self, policy: HealthPolicy) -> None:
        self._policy = policy

    def after_read(self, record: ConnectionRecord, now: datetime) -> AfterRead:
        async def evaluate_rules(conn: AsyncConnection, status: ConnectionStatus) -> None:
            if status is not ConnectionStatus.CONNECTED:
                return
            rules = await rules_watching(conn, record.chat_id, record.id)
            if not rules:
                return
            chat_records = {r.id: r for r in await records_in(conn, record.chat_id)}
            everyone = any(rule.connection_id is None for rule in rules)
            snapshots = await latest_in(conn, record.chat_id, None if everyone else [record.id])
            usable = {
                i
                for i, snapshot in snapshots.items()
                if i in chat_records
                and chat_records[i].status is ConnectionStatus.CONNECTED
                and now - snapshot.taken_at <= 2 * self._policy.of(chat_records[i]).period
            }
            changes, crossings = evaluate(rules, snapshots, usable, list(chat_records), now)
            await save_states(conn, changes)
            quote = snapshots[record.id].quote if record.id in snapshots else ""
            for crossing in crossings:
                await enqueue(conn, alert_notice(crossing, chat_records, quote), now)

        return evaluate_rules
