"""The outbox: messages owed to a chat, stored with the change that caused them.

A sweep that flips a status writes the notice in the same transaction, so the notice exists
exactly when the change does; delivery happens afterwards and marks each notice done. A crash
between the two leaves the notice pending (delivered after the restart), never lost.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.database import Database
from storage.schema import notifications


class NoticeKind(StrEnum):
    STATUS = "status"  # a connection's status changed (also: recovered)
    ROTATE_KEY = "rotate_key"  # a key is old enough to rotate
    ALERT = "alert"  # an alert rule crossed its threshold
    REBALANCE = "rebalance"  # a trigger asks for a rebalancing proposal
    REBALANCE_RESULT = "rebalance_result"  # an execution finished with nobody watching


class NoticeState(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    DROPPED = "dropped"  # the chat cannot be reached any more (bot blocked, chat gone)


@dataclass(frozen=True)
class Notice:
    """What to tell a chat; ``payload`` holds plain JSON values, never a credential."""

    chat_id: int
    kind: NoticeKind
    connection_id: int | None = None
    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PendingNotice:
    id: int
    notice: Notice
    created_at: datetime
    attempts: int


async def enqueue(conn: AsyncConnection, notice: Notice, now: datetime) -> None:
    """Add a notice inside the caller's transaction (the one making the change)."""
    await conn.execute(
        insert(notifications).values(
            chat_id=notice.chat_id,
            connection_id=notice.connection_id,
            kind=notice.kind,
            payload=json.dumps(dict(notice.payload), sort_keys=True),
            created_at=now,
        )
    )


class Outbox:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def pending(self, limit: int = 100) -> list[PendingNotice]:
        """Oldest first, so each chat hears about its changes in the order they happened."""
        async with self._db.begin() as conn:
            rows = await conn.execute(
                select(notifications)
                .where(notifications.c.state == NoticeState.PENDING)
                .order_by(notifications.c.id)
                .limit(limit)
            )
            return [
                PendingNotice(
                    id=row.id,
                    notice=Notice(
                        chat_id=row.chat_id,
                        kind=NoticeKind(row.kind),
                        connection_id=row.connection_id,
                        payload=json.loads(row.payload),
                    ),
                    created_at=row.created_at,
                    attempts=row.attempts,
                )
                for row in rows
            ]

    async def mark(self, notice_id: int, state: NoticeState, now: datetime) -> None:
        async with self._db.begin() as conn:
            await conn.execute(
                update(notifications)
                .where(notifications.c.id == notice_id)
                .values(state=state, done_at=now, attempts=notifications.c.attempts + 1)
            )

    async def failed_attempt(self, notice_id: int) -> None:
        """Count a delivery that failed for a reason that may pass (it stays pending)."""
        async with self._db.begin() as conn:
            await conn.execute(
                update(notifications)
                .where(notifications.c.id == notice_id)
                .values(attempts=notifications.c.attempts + 1)
            )
