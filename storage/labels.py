"""Renaming a connection: the label check and the change in one transaction.

Labels are unique per chat ignoring case, as when a connection is added: the check runs with
the chat's row held (as ``ConnectionRepository.add`` does), so renames and adds take turns, and
the database's unique indexes (exact and ``lower(label)``) catch any writer that did not.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

from storage.chats import lock_chat
from storage.connections import LabelTaken, refusing_taken
from storage.database import Database
from storage.schema import connections


async def rename(
    database: Database, chat_id: int, connection_id: int, new_label: str, now: datetime
) -> str | None:
    """Give the chat's connection ``new_label``; returns its label before, None when the chat
    has no such connection. ``LabelTaken(<the other label as stored>)`` when another connection
    of the chat is called that, in any case; a change of case of its own label is fine."""
    async with refusing_taken(new_label), database.begin() as conn:
        await lock_chat(conn, chat_id)
        rows = (
            await conn.execute(
                select(connections.c.id, connections.c.label).where(
                    connections.c.chat_id == chat_id
                )
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
    return before
