"""Renaming a connection: the label check and the change in one transaction.

Labels are unique per chat ignoring case, as when a connection is added; the database's own
constraint compares exactly, so the case-insensitive check is made here, on rows locked first.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from storage.connections import LabelTaken
from storage.database import Database
from storage.schema import connections


async def rename(
    database: Database, chat_id: int, connection_id: int, new_label: str, now: datetime
) -> str | None:
    """Give the chat's connection ``new_label``; returns its label before, None when the chat
    has no such connection. ``LabelTaken(<the other label as stored>)`` when another connection
    of the chat is called that, in any case; a change of case of its own label is fine."""
    try:
        async with database.begin() as conn:
            rows = (
                await conn.execute(
                    select(connections.c.id, connections.c.label)
                    .where(connections.c.chat_id == chat_id)
                    .with_for_update()  # two renames in one chat take turns (PostgreSQL)
                )
            ).all()
            before = next((row.label for row in rows if row.id == connection_id), None)
            if before is None:
                return None
            wanted = new_label.casefold()
            for row in rows:
                if row.id != connection_id and row.label.casefold() == wanted:
                    raise LabelTaken(row.label)
            await conn.execute(
                update(connections)
                .where(connections.c.id == connection_id, connections.c.chat_id == chat_id)
                .values(label=new_label, updated_at=now)
            )
    except IntegrityError:  # a connection called exactly that was added meanwhile
        raise LabelTaken(new_label) from None
    return before
