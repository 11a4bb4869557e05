"""Migrations: a database from an older release upgrades in place and keeps its connections."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, insert, select, text
from sqlalchemy.exc import IntegrityError

from storage.activity import ActivityEntry, ActivityLog
from storage.connections import ConnectionRepository, ConnectionStatus
from storage.credentials import Credentials, KeyRole
from storage.database import MIGRATIONS, Database, SchemaTooNew
from storage.leases import Lease
from storage.schema import activity, chats, connections, metadata, notifications, snapshots
from storage.vault import Binding, Vault, generate_master_key, parse_master_key

NOW = datetime(2026, 8, 1, 9, 30, tzinfo=UTC)


def _upgrade(revision: str) -> object:
    def run(sync_connection: Connection) -> None:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = sync_connection
        command.upgrade(config, revision)

    return run


async def test_a_0001_database_upgrades_and_its_connection_is_due_for_a_health_check(
    more_databases: Callable[..., Awaitable[str]],
) -> None:
    database = Database(await more_databases("old", empty=True))
    vault = Vault(parse_master_key(generate_master_key()))
    async with database.begin() as conn:
        await conn.run_sync(_upgrade("0001"))
        await conn.execute(
            text("INSERT INTO chats (id, created_at, paused) VALUES (7, :now, :no)"),
            {"now": NOW, "no": False},
        )
        await conn.execute(
            text(
                "INSERT INTO connections (id, chat_id, label, venue, sandbox, status, status_at,"
                " read_permissions, read_key_mask, read_key_added_at, read_api_key, read_secret,"
                " created_at, updated_at) VALUES (1, 7, 'Main', 'binance', :no, 'connected',"
                " :now, 'read', 'abcd…wxyz', :now, :key, :secret, :now, :now)"
            ),
            {
                "now": NOW,
                "no": False,
                "key": vault.encrypt("old-api-key", Binding(7, 1, "read_api_key")),
                "secret": vault.encrypt("old-secret", Binding(7, 1, "read_secret")),
            },
        )
    await database.migrate()
    repo = ConnectionRepository(database, vault)
    record = await repo.get(7, 1)
    assert record is not None and record.status is ConnectionStatus.CONNECTED
    assert (record.keys_version, record.failure_streak, record.next_check_at) == (1, 0, None)
    assert await repo.credentials(7, 1, KeyRole.READ) == Credentials("old-api-key", "old-secret")
    now = datetime.now(UTC)
    due = await repo.claim_due(now, Lease("test", now + timedelta(minutes=1)), {"binance": 10})
    assert [r.id for r in due] == [1]
    await database.dispose()


# Alembic cannot compare expression indexes (the label index below is checked on its own).
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression")
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
async def test_the_migrations_build_exactly_the_declared_schema(database: Database) -> None:
    def differences(sync_connection: Connection) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(sync_connection), metadata))

    async with database.begin() as conn:
        assert await conn.run_sync(differences) == []


async def test_the_database_refuses_a_second_label_that_differs_only_in_case(
    database: Database,
) -> None:
    """Two writers that both passed the repository's casefold check cannot both insert."""
    now = datetime.now(UTC)
    row = {"venue": "binance", "status": "connected", "status_at": now}
    async with database.begin() as conn:
        await conn.execute(insert(chats).values(id=7, created_at=now))
        await conn.execute(
            insert(connections).values(
                chat_id=7, label="Main", created_at=now, updated_at=now, **row
            )
        )
    with pytest.raises(IntegrityError):
        async with database.begin() as conn:
            await conn.execute(
                insert(connections).values(
                    chat_id=7, label="MAIN", created_at=now, updated_at=now, **row
                )
            )


async def test_the_tables_that_grow_with_every_read_number_rows_past_two_to_the_31(
    database: Database,
) -> None:
    """Activity, snapshots and the outbox get a row per read or more: a 32-bit id would stop
    the sweeps of a busy PostgreSQL host within months."""
    now = datetime.now(UTC)
    last_32_bit = 2**31 - 1
    async with database.begin() as conn:
        await conn.execute(insert(chats).values(id=7, created_at=now))
        created = await conn.execute(
            insert(connections)
            .values(
                chat_id=7,
                label="Main",
                venue="binance",
                status="connected",
                status_at=now,
                created_at=now,
                updated_at=now,
            )
            .returning(connections.c.id)
        )
        connection_id = created.scalar_one()
        rows = {
            activity: {"connection_id": connection_id, "at": now, "action": "x", "outcome": "ok"},
            snapshots: {"connection_id": connection_id, "chat_id": 7, "taken_at": now}
            | {"quote": "USD", "assets": "{}"},
            notifications: {"chat_id": 7, "kind": "alert", "payload": "{}", "created_at": now},
        }
        for table, row in rows.items():  # the largest 32-bit id is taken
            await conn.execute(insert(table).values(id=last_32_bit, **row))
            if not database.is_sqlite:  # an explicit id does not move the sequence
                await conn.execute(text(f"SELECT setval('{table.name}_id_seq', {last_32_bit})"))
    entry = ActivityEntry(at=now, action="fetch_balance", outcome="ok")
    assert await ActivityLog(database).record(connection_id, entry)
    async with database.begin() as conn:
        for table, row in rows.items():
            if table is not activity:
                await conn.execute(insert(table).values(**row))
            ids = (await conn.execute(select(table.c.id).order_by(table.c.id))).scalars().all()
            assert ids == [last_32_bit, last_32_bit + 1], table.name


def head_revision() -> str:
    """This code's newest revision (whatever migrations exist)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


async def revision(database: Database) -> str:
    async with database.begin() as conn:
        return (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()


async def test_two_processes_migrating_a_new_database_at_once_both_succeed(
    more_databases: Callable[..., Awaitable[str]],
) -> None:
    """A poller and its workers start together: one migrates, the other waits and finds the
    schema current (PostgreSQL: an advisory lock; SQLite: the write lock taken at BEGIN)."""
    for round_ in range(3):
        url = await more_databases(f"fresh{round_}", empty=True)
        first, second = Database(url), Database(url)
        try:
            await asyncio.gather(first.migrate(), second.migrate())
            assert await revision(first) == head_revision()
        finally:
            await first.dispose()
            await second.dispose()


async def test_a_database_from_a_newer_coinwarden_is_refused_before_anything_changes(
    database: Database, database_url: str
) -> None:
    known = head_revision()
    newer = f"{int(known) + 1:04d}"
    async with database.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": newer})
    expected = f"created by a newer Coinwarden (schema {newer}); this one knows up to {known}"

    for attempt in (database.migrate(), database.stored_secrets(), database.schema()):
        with pytest.raises(SchemaTooNew, match=re.escape(expected)):
            await attempt
    assert await revision(database) == newer

    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("COINWARDEN_")},
        "COINWARDEN_DATABASE_URL": database_url,
        "COINWARDEN_TELEGRAM_TOKEN": "1:unused",
        "COINWARDEN_TELEGRAM_API_URL": "http://127.0.0.1:9/bot",
    }
    for command_name in ("run", "doctor"):
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", command_name, env=env, stderr=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
        assert process.returncode == 2, stderr
        assert stderr.decode().strip().splitlines() == [
            f"coinwarden: refusing to start: the database was {expected}: run the newer "
            "version, or point it at another database"
        ]
    assert await revision(database) == newer
