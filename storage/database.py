"""The async engine, SQLite hardening pragmas, and Alembic migrations applied at start."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event, inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from storage.schema import SECRET_COLUMNS, connections
from storage.vault import Binding

MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass(frozen=True)
class StoredSecret:
    """One encrypted value and where it is bound."""

    binding: Binding
    token: str


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    # Overwrite deleted rows so wiped ciphertexts do not linger in free pages.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


class Database:
    """Owns the engine; hands out transactions."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite and parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        self.engine: AsyncEngine = create_async_engine(url)
        # SQLite has one writer at a time; transactions of this process take turns here
        # instead of racing for its file lock (a read that turns into a write cannot wait
        # for the lock, and hundreds of concurrent sweep writes outlast any busy timeout).
        self._turn = asyncio.Lock() if self.is_sqlite else None
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """One transaction: committed on success, rolled back on any exception. Never nest
        two: on SQLite the inner one would wait for the outer one forever."""
        if self._turn is None:
            async with self.engine.begin() as conn:
                yield conn
            return
        async with self._turn, self.engine.begin() as conn:
            yield conn

    async def migrate(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(_upgrade_to_head)

    async def stored_secrets(self, conn: AsyncConnection | None = None) -> list[StoredSecret]:
        """Every encrypted value in the database (empty before the first migration)."""
        if conn is None:
            async with self.engine.connect() as own:
                return await self.stored_secrets(own)
        if not await conn.run_sync(lambda sync: inspect(sync).has_table("connections")):
            return []
        columns = [connections.c[name] for name in SECRET_COLUMNS]
        rows = await conn.execute(select(connections.c.id, connections.c.chat_id, *columns))
        return [
            StoredSecret(Binding(row.chat_id, row.id, name), token)
            for row in rows
            for name in SECRET_COLUMNS
            if (token := getattr(row, name)) is not None
        ]

    async def dispose(self) -> None:
        await self.engine.dispose()


def _upgrade_to_head(sync_connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = sync_connection
    command.upgrade(config, "head")
