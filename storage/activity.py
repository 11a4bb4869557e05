"""The per-connection activity log: what was called, when, how it went. Never headers or bodies."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from storage.database import Database
from storage.schema import activity

RETENTION_PER_CONNECTION = 500


@dataclass(frozen=True)
class ActivityEntry:
    at: datetime
    action: str
    outcome: str
    endpoint: str | None = None
    http_status: int | None = None
    latency_ms: int | None = None
    error_class: str | None = None


class ActivityLog:
    def __init__(self, database: Database, retention: int = RETENTION_PER_CONNECTION) -> None:
        self._db = database
        self._retention = retention

    async def record(self, connection_id: int, *entries: ActivityEntry) -> bool:
        """Append entries in one transaction and drop what falls beyond the retention window.

        False (and nothing written) when the connection no longer exists: a sweep may finish
        its calls just after the user revoked the connection.
        """
        if not entries:
            return True
        try:
            async with self._db.begin() as conn:
                await conn.execute(
                    insert(activity),
                    [
                        {
                            "connection_id": connection_id,
                            "at": entry.at,
                            "action": entry.action[:64],
                            "endpoint": entry.endpoint[:200] if entry.endpoint else None,
                            "http_status": entry.http_status,
                            "latency_ms": entry.latency_ms,
                            "outcome": entry.outcome[:32],
                            "error_class": entry.error_class,
                        }
                        for entry in entries
                    ],
                )
                keep = (
                    select(activity.c.id)
                    .where(activity.c.connection_id == connection_id)
                    .order_by(activity.c.id.desc())
                    .limit(self._retention)
                )
                await conn.execute(
                    delete(activity).where(
                        activity.c.connection_id == connection_id, activity.c.id.not_in(keep)
                    )
                )
        except IntegrityError:
            return False
        return True

    async def recent(self, connection_id: int, limit: int = 20) -> list[ActivityEntry]:
        async with self._db.begin() as conn:
            rows = await conn.execute(
                select(activity)
                .where(activity.c.connection_id == connection_id)
                .order_by(activity.c.id.desc())
                .limit(limit)
            )
            return [
                ActivityEntry(
                    at=row.at,
                    action=row.action,
                    outcome=row.outcome,
                    endpoint=row.endpoint,
                    http_status=row.http_status,
                    latency_ms=row.latency_ms,
                    error_class=row.error_class,
                )
                for row in rows
            ]
