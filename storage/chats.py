"""Per-chat state: the kill switch that pauses every automated trading action of a chat, and
the chat's settings (what balances are valued in, what counts as dust)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.database import Database, insert_on_conflict
from storage.schema import chats


@dataclass(frozen=True)
class PauseState:
    paused: bool
    since: datetime | None = None


@dataclass(frozen=True)
class ChatSettings:
    quote: str = "USD"
    dust_threshold: Decimal | None = None  # None: the quote currency's default


async def ensure_chat(conn: AsyncConnection, is_sqlite: bool, chat_id: int, now: datetime) -> None:
    """Create the chat's row if it is new, and hold it until the caller's transaction ends:
    every per-chat check-then-write (labels, keys, limits, rules, the target) takes turns on
    it. SQLite's BEGIN IMMEDIATE already holds the whole database."""
    insert = insert_on_conflict(conn, chats).values(id=chat_id, created_at=now)
    await conn.execute(insert.on_conflict_do_nothing())
    if not is_sqlite:
        await lock_chat(conn, chat_id)


async def lock_chat(conn: AsyncConnection, chat_id: int) -> None:
    """Hold the chat's row until the caller's transaction ends (PostgreSQL; a no-op read on
    SQLite). NO KEY UPDATE: rows that only reference the chat (a notice) are not held up."""
    await conn.execute(
        select(chats.c.id).where(chats.c.id == chat_id).with_for_update(key_share=True)
    )


class ChatRepository:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def pause_state(self, chat_id: int) -> PauseState:
        """Read from the database every time: a pause must take effect on the very next action."""
        async with self._db.begin() as conn:
            row = (
                await conn.execute(
                    select(chats.c.paused, chats.c.paused_at).where(chats.c.id == chat_id)
                )
            ).first()
        if row is None or not row.paused:
            return PauseState(False)
        return PauseState(True, row.paused_at)

    async def set_paused(self, chat_id: int, paused: bool, now: datetime) -> PauseState:
        """Switch the chat's pause on or off; returns the state that holds afterwards.

        Pausing an already paused chat keeps its original time.
        """
        async with self._db.begin() as conn:
            await ensure_chat(conn, self._db.is_sqlite, chat_id, now)
            await conn.execute(
                update(chats)
                .where(chats.c.id == chat_id, chats.c.paused != paused)
                .values(paused=paused, paused_at=now if paused else None)
            )
        return await self.pause_state(chat_id)

    async def settings(self, chat_id: int) -> ChatSettings:
        return (await self.settings_for([chat_id]))[chat_id]

    async def settings_for(self, chat_ids: Iterable[int]) -> dict[int, ChatSettings]:
        """Every listed chat's settings (the defaults for a chat with no row yet)."""
        wanted = set(chat_ids)
        found = {chat_id: ChatSettings() for chat_id in wanted}
        if not wanted:
            return found
        async with self._db.begin() as conn:
            rows = await conn.execute(
                select(chats.c.id, chats.c.quote_currency, chats.c.dust_threshold).where(
                    chats.c.id.in_(wanted)
                )
            )
            for row in rows:
                dust = Decimal(row.dust_threshold) if row.dust_threshold is not None else None
                found[row.id] = ChatSettings(row.quote_currency, dust)
        return found

    async def update_settings(
        self,
        chat_id: int,
        now: datetime,
        *,
        quote: str | None = None,
        dust_threshold: Decimal | None = None,
    ) -> ChatSettings:
        """Change the given settings; a new quote currency resets the dust threshold to its
        default (a threshold in USD means nothing in BTC)."""
        values: dict[str, object] = {}
        if quote is not None:
            values.update(quote_currency=quote, dust_threshold=None)
        if dust_threshold is not None:
            values["dust_threshold"] = format(dust_threshold, "f")
        async with self._db.begin() as conn:
            await ensure_chat(conn, self._db.is_sqlite, chat_id, now)
            if values:
                await conn.execute(update(chats).where(chats.c.id == chat_id).values(values))
        return await self.settings(chat_id)
