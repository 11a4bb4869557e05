"""The async engine, SQLite hardening pragmas, and Alembic migrations applied at start.

The same code runs on SQLite (the default) and PostgreSQL (asyncpg). A server that cannot be
reached, or a schema newer than these migrations, is refused at the first contact with an error
that names where and what, never the password.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Table, event, func, inspect, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.util import await_only

from storage.schema import SECRET_COLUMNS, connections
from storage.vault import Binding

MIGRATIONS = Path(__file__).parent / "migrations"
#: The key of the PostgreSQL advisory lock that lets one process at a time migrate.
MIGRATION_LOCK = 0x436F696E7761  # "Coinwa"
#: Seconds to wait for a database server to accept a connection.
CONNECT_TIMEOUT = 10
#: How long a SQLite statement waits for another process's lock.
SQLITE_BUSY_MS = 5000
_WAL_RETRY_MS = 50


class DatabaseUnreachable(Exception):
    """The database server cannot be reached or refuses the connection."""

    def __init__(self, server: str, reason: str) -> None:
        super().__init__(f"cannot connect to the database at {server}: {reason}")
        self.server = server


class SchemaTooNew(Exception):
    """The database was migrated by a newer Coinwarden than this one."""

    def __init__(self, found: str, known: str) -> None:
        super().__init__(
            f"the database was created by a newer Coinwarden (schema {found}); this one knows "
            f"up to {known}: run the newer version, or point it at another database"
        )
        self.found = found
        self.known = known


@dataclass(frozen=True)
class StoredSecret:
    """One encrypted value and where it is bound."""

    binding: Binding
    token: str


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    _sqlite_wal(cursor)
    # Overwrite deleted rows so wiped ciphertexts do not linger in free pages.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def _sqlite_wal(cursor: Any) -> None:
    """Switch the file to WAL (once: it stays). The switch needs the file to itself, and when
    another process opens a new file at the same moment (a poller and a worker starting),
    SQLite answers "locked" at once instead of waiting: try again, up to the busy timeout."""
    for _ in range(SQLITE_BUSY_MS // _WAL_RETRY_MS):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise
            await_only(asyncio.sleep(_WAL_RETRY_MS / 1000))  # inside SQLAlchemy's greenlet
    cursor.execute("PRAGMA journal_mode=WAL")


def _sqlite_driver_leaves_begin_to_us(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own BEGIN comes only before a write (a read-then-write transaction would
    # read outside it): SQLAlchemy's recipe turns it off and emits BEGIN itself (below).
    dbapi_connection.isolation_level = None


def _sqlite_begin_immediate(conn: Connection) -> None:
    """Every transaction holds SQLite's write lock from its start, so no other process can
    write between what it reads and what it writes, and it waits at BEGIN (busy_timeout)
    instead of failing with "database is locked" when a read turns into a write. Reads
    through ``engine.connect()`` take it too: keep them short."""
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def insert_on_conflict(conn: AsyncConnection, table: Table) -> sqlite.Insert | postgresql.Insert:
    """The dialect's INSERT, which has ``on_conflict_do_nothing``/``_do_update`` (the generic
    one has neither); both engines spell them alike."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


class Database:
    """Owns the engine; hands out transactions."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite and parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        self._server = _server(parsed)
        options: dict[str, Any] = {}
        if not self.is_sqlite:
            # Connections idle in the pool die with a server restart: test before use.
            options["pool_pre_ping"] = True
            if "timeout" not in parsed.query:  # the URL's own ?timeout= wins
                options["connect_args"] = {"timeout": CONNECT_TIMEOUT}
        self.engine: AsyncEngine = create_async_engine(url, **options)
        # SQLite has one writer at a time and every transaction takes the write lock at BEGIN:
        # transactions of this process take turns here instead of busy-waiting for it
        # (hundreds of concurrent sweep writes would outlast any busy timeout).
        self._turn = asyncio.Lock() if self.is_sqlite else None
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            event.listen(self.engine.sync_engine, "connect", _sqlite_driver_leaves_begin_to_us)
            event.listen(self.engine.sync_engine, "begin", _sqlite_begin_immediate)

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """One transaction: committed on success, rolled back on any exception. Never nest
        two: on SQLite the inner one would wait for the outer one forever.

        A check and the write it decides are safe inside one: on SQLite the transaction holds
        the database's write lock from BEGIN (other processes wait); on PostgreSQL (READ
        COMMITTED) the code locks what it decides on (``ensure_chat``, ``with_for_update``).
        """
        if self._turn is None:
            async with self.engine.begin() as conn:
                yield conn
            return
        async with self._turn, self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def _connect(self) -> AsyncIterator[AsyncConnection]:
        """A connection; a server that cannot be reached is ``DatabaseUnreachable`` (a SQLite
        file's errors stay as they are)."""
        try:
            conn = await self.engine.connect()
        except (OSError, TimeoutError, DBAPIError) as exc:
            if self.is_sqlite:
                raise
            raise DatabaseUnreachable(self._server, _reason(exc)) from None
        try:
            yield conn
        finally:
            await conn.close()

    async def migrate(self) -> None:
        """Upgrade to the newest revision, one process at a time: on PostgreSQL under an
        advisory lock held by the migrating transaction, on SQLite under the write lock its
        transactions take at BEGIN. A schema newer than this code is ``SchemaTooNew``, before
        anything changes."""
        async with self._connect() as conn, conn.begin():
            if not self.is_sqlite:
                await conn.execute(select(func.pg_advisory_xact_lock(MIGRATION_LOCK)))
            await conn.run_sync(_upgrade_to_head)

    async def schema(self) -> tuple[str | None, str]:
        """The database's revision (None before the first migration) and this code's newest;
        ``SchemaTooNew`` when the database's is unknown here."""
        async with self._connect() as conn:
            return await conn.run_sync(_revisions)

    async def stored_secrets(self, conn: AsyncConnection | None = None) -> list[StoredSecret]:
        """Every encrypted value in the database (empty before the first migration). Read
        on its own connection, it first refuses a schema newer than this code
        (``SchemaTooNew``): its columns may mean something else."""
        if conn is None:
            async with self._connect() as own:
                await own.run_sync(_revisions)
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


def _server(url: URL) -> str:
    """Where the database is, for messages: host:port (PostgreSQL's default port when the URL
    has none; the socket directory for a unix socket), or the SQLite file."""
    if url.get_backend_name() == "sqlite":
        return url.database or ":memory:"
    host = url.host or str(url.query.get("host") or "localhost")
    return f"{host}:{url.port or 5432}"


def _reason(exc: BaseException) -> str:
    """The driver's own first line (no URL, so no password), or the OS's words."""
    if isinstance(exc, DBAPIError):
        exc = exc.orig or exc
    if isinstance(exc, TimeoutError):
        return f"no answer within {CONNECT_TIMEOUT} s"
    if isinstance(exc, OSError) and exc.errno is not None and exc.errno > 0:
        return os.strerror(exc.errno).lower()  # the driver's own words repeat the address
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _alembic_config(sync_connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = sync_connection
    return config


def _revisions(sync_connection: Connection) -> tuple[str | None, str]:
    """The database's revision and this code's head; a revision these migrations do not know
    can only come from a newer release (``SchemaTooNew``)."""
    scripts = ScriptDirectory.from_config(_alembic_config(sync_connection))
    head = scripts.get_current_head()
    assert head is not None  # the package ships its migrations
    # Read directly: a MigrationContext would log its set-up before every refusal.
    current = None
    if inspect(sync_connection).has_table("alembic_version"):
        current = sync_connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    if current is not None and current not in {
        script.revision for script in scripts.walk_revisions()
    }:
        raise SchemaTooNew(current, head)
    return current, head


def _upgrade_to_head(sync_connection: Connection) -> None:
    _revisions(sync_connection)
    command.upgrade(_alembic_config(sync_connection), "head")
