"""Balance snapshots: what each successful read found, kept over time and downsampled.

The newest snapshot of a connection is what /balance, /portfolio, alerts and rebalancing read.
Retention keeps every read for 48 hours, then one per hour for 90 days, then one per day, so
the table stays bounded however long the bot runs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.database import Database
from storage.schema import snapshots

#: (age after which rows of ``tier`` are thinned, bucket kept per connection, the tier after)
RETENTION = (
    (0, timedelta(hours=48), timedelta(hours=1), 1),
    (1, timedelta(days=90), timedelta(days=1), 2),
)
_DOWNSAMPLE_BATCH = 5000


@dataclass(frozen=True)
class SnapshotAsset:
    """One asset as read and valued; ``price``/``value`` None: no price was found."""

    free: Decimal
    used: Decimal
    price: Decimal | None = None
    value: Decimal | None = None
    via: str | None = None  # the pairs that priced it, e.g. "BTC/USDT@binance USDT=USD peg"

    @property
    def total(self) -> Decimal:
        return self.free + self.used


@dataclass(frozen=True)
class Snapshot:
    connection_id: int
    chat_id: int
    taken_at: datetime
    quote: str
    assets: Mapping[str, SnapshotAsset]
    extra: Mapping[str, str] = field(default_factory=dict)  # e.g. futures wallet, uPnL, margin
    id: int | None = None

    @property
    def total_value(self) -> Decimal:
        """The sum of the priced assets (``unpriced`` names the others)."""
        return sum((a.value for a in self.assets.values() if a.value is not None), Decimal(0))

    @property
    def unpriced(self) -> tuple[str, ...]:
        return tuple(name for name, a in self.assets.items() if a.value is None)


@dataclass(frozen=True)
class ValuePoint:
    """A connection's total at one time: enough for changes over time and the chart."""

    connection_id: int
    taken_at: datetime
    quote: str
    total_value: Decimal


def _text(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _number(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def _encode(assets: Mapping[str, SnapshotAsset]) -> str:
    return json.dumps(
        {
            name: [_text(a.free), _text(a.used), _text(a.price), _text(a.value), a.via]
            for name, a in assets.items()
        },
        separators=(",", ":"),
    )


def _decode(text: str) -> dict[str, SnapshotAsset]:
    decoded: dict[str, Any] = json.loads(text)
    return {
        name: SnapshotAsset(Decimal(free), Decimal(used), _number(price), _number(value), via)
        for name, (free, used, price, value, via) in decoded.items()
    }


def _snapshot(row: Any) -> Snapshot:
    return Snapshot(
        connection_id=row.connection_id,
        chat_id=row.chat_id,
        taken_at=row.taken_at,
        quote=row.quote,
        assets=_decode(row.assets),
        extra=json.loads(row.extra) if row.extra else {},
        id=row.id,
    )


async def insert_snapshot(conn: AsyncConnection, snapshot: Snapshot) -> None:
    """Store a snapshot inside the caller's transaction (the one recording the read)."""
    await conn.execute(
        insert(snapshots).values(
            connection_id=snapshot.connection_id,
            chat_id=snapshot.chat_id,
            taken_at=snapshot.taken_at,
            quote=snapshot.quote,
            total_value=_text(snapshot.total_value),
            unpriced=len(snapshot.unpriced),
            assets=_encode(snapshot.assets),
            extra=json.dumps(dict(snapshot.extra), separators=(",", ":"))
            if snapshot.extra
            else None,
        )
    )


async def latest_in(
    conn: AsyncConnection, chat_id: int, connection_ids: Sequence[int] | None = None
) -> dict[int, Snapshot]:
    """The newest snapshot of each of the chat's connections that has one (inside the
    caller's transaction)."""
    newest = (
        select(func.max(snapshots.c.id))
        .where(snapshots.c.chat_id == chat_id)
        .group_by(snapshots.c.connection_id)
    )
    if connection_ids is not None:
        newest = newest.where(snapshots.c.connection_id.in_(connection_ids))
    rows = await conn.execute(select(snapshots).where(snapshots.c.id.in_(newest)))
    return {row.connection_id: _snapshot(row) for row in rows}


class SnapshotRepository:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def latest(
        self, chat_id: int, connection_ids: Sequence[int] | None = None
    ) -> dict[int, Snapshot]:
        """The newest snapshot of each of the chat's connections that has one."""
        async with self._db.begin() as conn:
            return await latest_in(conn, chat_id, connection_ids)

    async def values_since(self, chat_id: int, since: datetime) -> list[ValuePoint]:
        """Every stored total of the chat's connections from ``since`` on, oldest first, plus
        each connection's last total before ``since`` (where the series starts from)."""
        columns = (
            snapshots.c.connection_id,
            snapshots.c.taken_at,
            snapshots.c.quote,
            snapshots.c.total_value,
        )
        before = (
            select(func.max(snapshots.c.id))
            .where(snapshots.c.chat_id == chat_id, snapshots.c.taken_at < since)
            .group_by(snapshots.c.connection_id)
        )
        async with self._db.begin() as conn:
            rows = await conn.execute(
                select(*columns)
                .where(
                    snapshots.c.chat_id == chat_id,
                    (snapshots.c.taken_at >= since) | snapshots.c.id.in_(before),
                )
                .order_by(snapshots.c.taken_at, snapshots.c.id)
            )
            return [
                ValuePoint(row.connection_id, row.taken_at, row.quote, Decimal(row.total_value))
                for row in rows
                if row.total_value is not None
            ]

    async def count(self, connection_id: int | None = None) -> int:
        query = select(func.count()).select_from(snapshots)
        if connection_id is not None:
            query = query.where(snapshots.c.connection_id == connection_id)
        async with self._db.begin() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def downsample(self, now: datetime) -> int:
        """Thin old rows to one per bucket per connection; returns how many were deleted.

        Works in batches of the oldest rows of each tier, each batch one transaction, so a
        crash leaves a consistent table and the next run carries on.
        """
        deleted = 0
        for tier, keep_all_for, bucket, next_tier in RETENTION:
            while True:
                dropped, seen = await self._thin(tier, now - keep_all_for, bucket, next_tier)
                deleted += dropped
                if seen < _DOWNSAMPLE_BATCH:
                    break
        return deleted

    async def _thin(
        self, tier: int, cutoff: datetime, bucket: timedelta, next_tier: int
    ) -> tuple[int, int]:
        """One batch: keep the first row of each (connection, bucket), promoted to
        ``next_tier``, unless an earlier batch already kept one; delete the rest. The batch is
        held from the read, so two processes thinning at once never keep two rows of a bucket."""
        size = bucket.total_seconds()
        async with self._db.begin() as conn:
            rows = (
                await conn.execute(
                    select(snapshots.c.id, snapshots.c.connection_id, snapshots.c.taken_at)
                    .where(snapshots.c.tier == tier, snapshots.c.taken_at < cutoff)
                    .order_by(snapshots.c.taken_at, snapshots.c.id)
                    .limit(_DOWNSAMPLE_BATCH)
                    .with_for_update()
                )
            ).all()
            if not rows:
                return 0, 0
            # Rows kept by earlier batches in the buckets this batch spans.
            first, last = rows[0].taken_at, rows[-1].taken_at
            earlier = await conn.execute(
                select(snapshots.c.connection_id, snapshots.c.taken_at).where(
                    snapshots.c.tier == next_tier,
                    snapshots.c.taken_at
                    >= datetime.fromtimestamp((first.timestamp() // size) * size, tz=first.tzinfo),
                    snapshots.c.taken_at
                    < datetime.fromtimestamp((last.timestamp() // size + 1) * size, tz=last.tzinfo),
                )
            )
            taken = {(row.connection_id, int(row.taken_at.timestamp() // size)) for row in earlier}
            kept: list[int] = []
            drop: list[int] = []
            for row in rows:
                slot = (row.connection_id, int(row.taken_at.timestamp() // size))
                if slot in taken:
                    drop.append(row.id)
                else:
                    taken.add(slot)
                    kept.append(row.id)
            if drop:
                await conn.execute(delete(snapshots).where(snapshots.c.id.in_(drop)))
            if kept:
                await conn.execute(
                    update(snapshots).where(snapshots.c.id.in_(kept)).values(tier=next_tier)
                )
        return len(drop), len(rows)
