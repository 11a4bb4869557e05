"""Migrations: a database from an older release upgrades in place and keeps its connections."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Connection, insert, text
from sqlalchemy.exc import IntegrityError

from storage.connections import ConnectionRepository, ConnectionStatus
from storage.credentials import Credentials, KeyRole
from storage.database import MIGRATIONS, Database
from storage.schema import chats, connections, metadata
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
    tmp_path: Path,
) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
    vault = Vault(parse_master_key(generate_master_key()))
    async with database.begin() as conn:
        await conn.run_sync(_upgrade("0001"))
        await conn.execute(
            text("INSERT INTO chats (id, created_at, paused) VALUES (7, :now, 0)"), {"now": NOW}
        )
        await conn.execute(
            text(
                "INSERT INTO connections (id, chat_id, label, venue, sandbox, status, status_at,"
                " read_permissions, read_key_mask, read_key_added_at, read_api_key, read_secret,"
                " created_at, updated_at) VALUES (1, 7, 'Main', 'binance', 0, 'connected', :now,"
                " 'read', 'abcd…wxyz', :now, :key, :secret, :now, :now)"
            ),
            {
                "now": NOW,
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
    assert [r.id for r in await repo.due_for_check(datetime.now(UTC), limit=10)] == [1]
    await database.dispose()


# Alembic cannot compare expression indexes (the label index below is checked on its own).
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression")
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
