"""A chat's rebalancing target: plain records out; every query scoped by ``chat_id``.

A chat has at most one target (a new ``/rebalance`` replaces it). Its scope is one connection,
or all of the chat's spot connections (``connection_id`` None); revoking the connection of a
one-connection target deletes the target with it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.chats import ensure_chat
from storage.database import Database, insert_on_conflict
from storage.schema import rebalance_targets


class DriftState(StrEnum):
    """Whether the allocation was last seen inside the band (a drift trigger fires on leaving)."""

    IN_BAND = "in_band"
    OUT_OF_BAND = "out_of_band"


@dataclass(frozen=True)
class TargetSettings:
    """What the trader chose: weights in percent (summing to 100), the drift band (percentage
    points, or percent of each weight if ``band_relative``), an optional schedule (``1d``,
    ``1w``), the slippage allowed (a fraction) and whether proposals are only ever dry runs."""

    connection_id: int | None
    weights: Mapping[str, Decimal]
    band: Decimal
    band_relative: bool
    every: str | None
    slippage: Decimal
    dry_run: bool


@dataclass(frozen=True)
class Target:
    id: int
    chat_id: int
    settings: TargetSettings
    drift_state: DriftState
    set_at: datetime
    last_scheduled_at: datetime | None

    @property
    def connection_id(self) -> int | None:
        return self.settings.connection_id


def _target(row: Any) -> Target:
    return Target(
        id=row.id,
        chat_id=row.chat_id,
        settings=TargetSettings(
            connection_id=row.connection_id,
            weights={asset: Decimal(weight) for asset, weight in json.loads(row.weights).items()},
            band=Decimal(row.band),
            band_relative=bool(row.band_relative),
            every=row.every,
            slippage=Decimal(row.slippage),
            dry_run=bool(row.dry_run),
        ),
        drift_state=DriftState(row.drift_state),
        set_at=row.set_at,
        last_scheduled_at=row.last_scheduled_at,
    )


async def targets_watching(conn: AsyncConnection, chat_id: int, connection_id: int) -> list[Target]:
    """The target a new snapshot of ``connection_id`` may move (inside the caller's
    transaction): the chat's target if it covers that connection, held until the transaction
    ends, so two reads move its drift state one after the other."""
    rows = await conn.execute(
        select(rebalance_targets)
        .where(
            rebalance_targets.c.chat_id == chat_id,
            or_(
                rebalance_targets.c.connection_id == connection_id,
                rebalance_targets.c.connection_id.is_(None),
            ),
        )
        .with_for_update(key_share=True)
    )
    return [_target(row) for row in rows]


async def save_drift_state(conn: AsyncConnection, target_id: int, state: DriftState) -> None:
    await conn.execute(
        update(rebalance_targets)
        .where(rebalance_targets.c.id == target_id)
        .values(drift_state=state)
    )


class TargetRepository:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def set(
        self, chat_id: int, settings: TargetSettings, drift_state: DriftState, now: datetime
    ) -> Target:
        """Create or replace the chat's target (one statement: two writers cannot both
        insert)."""
        values = {
            "connection_id": settings.connection_id,
            "weights": json.dumps({a: format(w, "f") for a, w in settings.weights.items()}),
            "band": format(settings.band, "f"),
            "band_relative": settings.band_relative,
            "every": settings.every,
            "slippage": format(settings.slippage, "f"),
            "dry_run": settings.dry_run,
            "drift_state": drift_state,
            "set_at": now,
            "last_scheduled_at": None,
        }
        async with self._db.begin() as conn:
            await ensure_chat(conn, self._db.is_sqlite, chat_id, now)
            upsert = insert_on_conflict(conn, rebalance_targets).values(chat_id=chat_id, **values)
            await conn.execute(
                upsert.on_conflict_do_update(index_elements=["chat_id"], set_=values)
            )
            row = (
                await conn.execute(
                    select(rebalance_targets).where(rebalance_targets.c.chat_id == chat_id)
                )
            ).one()
        return _target(row)

    async def get(self, chat_id: int) -> Target | None:
        async with self._db.begin() as conn:
            row = (
                await conn.execute(
                    select(rebalance_targets).where(rebalance_targets.c.chat_id == chat_id)
                )
            ).first()
        return _target(row) if row is not None else None

    async def delete(self, chat_id: int) -> bool:
        async with self._db.begin() as conn:
            result = await conn.execute(
                delete(rebalance_targets).where(rebalance_targets.c.chat_id == chat_id)
            )
            return result.rowcount > 0

    async def set_dry_run(self, chat_id: int, dry_run: bool) -> Target | None:
        async with self._db.begin() as conn:
            await conn.execute(
                update(rebalance_targets)
                .where(rebalance_targets.c.chat_id == chat_id)
                .values(dry_run=dry_run)
            )
        return await self.get(chat_id)

    async def scheduled(self) -> list[Target]:
        """Every target with a schedule (few: one per chat at most)."""
        async with self._db.begin() as conn:
            rows = await conn.execute(
                select(rebalance_targets).where(rebalance_targets.c.every.is_not(None))
            )
            return [_target(row) for row in rows]

    async def mark_scheduled_in(
        self, conn: AsyncConnection, target_id: int, previous: datetime | None, at: datetime
    ) -> bool:
        """Record a scheduled run (inside the caller's transaction) unless another run
        recorded one since ``previous``: True if this call did."""
        last = rebalance_targets.c.last_scheduled_at
        changed = await conn.execute(
            update(rebalance_targets)
            .where(
                rebalance_targets.c.id == target_id,
                last.is_(None) if previous is None else last == previous,
            )
            .values(last_scheduled_at=at)
        )
        return changed.rowcount > 0

    async def count_for_connection(self, chat_id: int, connection_id: int) -> int:
        async with self._db.begin() as conn:
            rows = await conn.execute(
                select(rebalance_targets.c.id).where(
                    rebalance_targets.c.chat_id == chat_id,
                    rebalance_targets.c.connection_id == connection_id,
                )
            )
            return len(rows.all())
