"""Alert rules of a chat: plain records out; every query scoped by ``chat_id``.

The crossing state (armed / fired) is written by the balance sweep inside the transaction that
records the snapshot and queues the alert (``save_states``), so a crash between evaluation and
delivery loses no alert and a restart repeats none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.chats import ensure_chat
from storage.database import Database
from storage.schema import alert_rules


class Metric(StrEnum):
    AMOUNT = "amount"  # an asset's total (free + used), in the asset
    VALUE = "value"  # an asset's value, in the chat's currency
    PORTFOLIO = "portfolio"  # the scope's total value, in the chat's currency
    SHARE = "share"  # an asset's share of the scope's value, in percent


class Direction(StrEnum):
    BELOW = "below"
    ABOVE = "above"


class AlertState(StrEnum):
    ARMED = "armed"
    FIRED = "fired"


@dataclass(frozen=True)
class Condition:
    """What a rule watches and when it fires; ``rearm`` None: 1 % past the threshold."""

    metric: Metric
    asset: str | None
    direction: Direction
    threshold: Decimal
    rearm: Decimal | None = None
    cooldown: timedelta | None = None


@dataclass(frozen=True)
class AlertRule:
    id: int
    chat_id: int
    connection_id: int | None  # None: all of the chat's connections
    condition: Condition
    state: AlertState
    fired_at: datetime | None
    last_value: Decimal | None
    snoozed_until: datetime | None
    paused: bool
    created_at: datetime


@dataclass(frozen=True)
class StateChange:
    rule_id: int
    state: AlertState
    value: Decimal
    fired_at: datetime | None  # set when this change is a crossing


class RuleExists(Exception):
    """The chat already has this very rule."""


class AlertLimitReached(Exception):
    """The chat holds the maximum number of rules."""


def _text(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _rule(row: Any) -> AlertRule:
    return AlertRule(
        id=row.id,
        chat_id=row.chat_id,
        connection_id=row.connection_id,
        condition=Condition(
            Metric(row.metric),
            row.asset,
            Direction(row.direction),
            Decimal(row.threshold),
            Decimal(row.rearm) if row.rearm is not None else None,
            timedelta(seconds=row.cooldown_seconds) if row.cooldown_seconds else None,
        ),
        state=AlertState(row.state),
        fired_at=row.fired_at,
        last_value=Decimal(row.last_value) if row.last_value is not None else None,
        snoozed_until=row.snoozed_until,
        paused=bool(row.paused),
        created_at=row.created_at,
    )


async def rules_watching(
    conn: AsyncConnection, chat_id: int, connection_id: int
) -> list[AlertRule]:
    """The rules a new snapshot of ``connection_id`` may move: its own and the chat's
    all-connection rules (inside the caller's transaction), held until it ends, so two reads
    of the chat evaluate one after the other and a crossing fires once."""
    rows = await conn.execute(
        select(alert_rules)
        .where(
            alert_rules.c.chat_id == chat_id,
            or_(
                alert_rules.c.connection_id == connection_id, alert_rules.c.connection_id.is_(None)
            ),
        )
        .order_by(alert_rules.c.id)
        .with_for_update()
    )
    return [_rule(row) for row in rows]


async def save_states(conn: AsyncConnection, changes: Sequence[StateChange]) -> None:
    """Write what an evaluation decided (inside the transaction that queues its notices)."""
    for change in changes:
        values: dict[str, object] = {"state": change.state, "last_value": _text(change.value)}
        if change.fired_at is not None:
            values["fired_at"] = change.fired_at
        await conn.execute(
            update(alert_rules).where(alert_rules.c.id == change.rule_id).values(values)
        )


class AlertRepository:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def add(
        self,
        chat_id: int,
        connection_id: int | None,
        condition: Condition,
        *,
        state: AlertState,
        value: Decimal | None,
        limit: int,
        now: datetime,
    ) -> AlertRule:
        """Store a rule, atomically with the cap and the duplicate check (the chat's row is
        held from the checks to the commit, so two adds take turns)."""
        async with self._db.begin() as conn:
            await ensure_chat(conn, self._db.is_sqlite, chat_id, now)
            existing = [
                _rule(row)
                for row in await conn.execute(
                    select(alert_rules).where(alert_rules.c.chat_id == chat_id)
                )
            ]
            if any(r.connection_id == connection_id and r.condition == condition for r in existing):
                raise RuleExists
            if len(existing) >= limit:
                raise AlertLimitReached(limit)
            result = await conn.execute(
                insert(alert_rules).values(
                    chat_id=chat_id,
                    connection_id=connection_id,
                    metric=condition.metric,
                    asset=condition.asset,
                    direction=condition.direction,
                    threshold=_text(condition.threshold),
                    rearm=_text(condition.rearm),
                    cooldown_seconds=(
                        int(condition.cooldown.total_seconds()) if condition.cooldown else None
                    ),
                    state=state,
                    last_value=_text(value),
                    created_at=now,
                )
            )
            assert result.inserted_primary_key is not None
            rule_id = int(result.inserted_primary_key[0])
            row = (await conn.execute(select(alert_rules).where(alert_rules.c.id == rule_id))).one()
        return _rule(row)

    async def list_for_chat(self, chat_id: int) -> list[AlertRule]:
        async with self._db.begin() as conn:
            rows = await conn.execute(
                select(alert_rules)
                .where(alert_rules.c.chat_id == chat_id)
                .order_by(alert_rules.c.id)
            )
            return [_rule(row) for row in rows]

    async def get(self, chat_id: int, rule_id: int) -> AlertRule | None:
        async with self._db.begin() as conn:
            row = (
                await conn.execute(
                    select(alert_rules).where(
                        alert_rules.c.id == rule_id, alert_rules.c.chat_id == chat_id
                    )
                )
            ).first()
        return _rule(row) if row is not None else None

    async def count_for_connection(self, chat_id: int, connection_id: int) -> int:
        async with self._db.begin() as conn:
            query = select(func.count()).where(
                alert_rules.c.chat_id == chat_id, alert_rules.c.connection_id == connection_id
            )
            return int((await conn.execute(query)).scalar_one())

    async def delete(self, chat_id: int, rule_id: int) -> bool:
        async with self._db.begin() as conn:
            result = await conn.execute(
                delete(alert_rules).where(
                    alert_rules.c.id == rule_id, alert_rules.c.chat_id == chat_id
                )
            )
            return result.rowcount > 0

    async def update(
        self,
        chat_id: int,
        rule_id: int,
        *,
        paused: bool | None = None,
        snoozed_until: datetime | None = None,
    ) -> AlertRule | None:
        """Pause/resume or snooze one of the chat's rules; None if it has no such rule."""
        values: dict[str, object] = {}
        if paused is not None:
            values["paused"] = paused
        if snoozed_until is not None:
            values["snoozed_until"] = snoozed_until
        async with self._db.begin() as conn:
            result = await conn.execute(
                update(alert_rules)
                .where(alert_rules.c.id == rule_id, alert_rules.c.chat_id == chat_id)
                .values(values)
            )
            if result.rowcount == 0:
                return None
        return await self.get(chat_id, rule_id)
