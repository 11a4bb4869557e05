"""Repositories, master key handling and rotation on a real SQLite file."""

from __future__ import annotations

import dataclasses
import os
import stat
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from storage.activity import ActivityEntry, ActivityLog
from storage.connections import ConnectionLimitReached, ConnectionRepository, LabelTaken
from storage.credentials import Credentials, KeyRole
from storage.database import Database
from storage.master_key import MasterKeyConfig, MasterKeyError, open_vault
from storage.rotation import rotate_master_key
from storage.vault import Vault, VaultError, generate_master_key, parse_master_key

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
CANARY = Credentials("CANARYKEY0123456789abcdef", "CANARYSECRET9876543210zyx", "CANARYPASS42")


def vault() -> Vault:
    return Vault(parse_master_key(generate_master_key()))


def canary(label: str) -> Credentials:
    """The canary credentials with an API key of the connection's own (one API key is never
    stored twice in a chat)."""
    return dataclasses.replace(CANARY, api_key=f"{CANARY.api_key}{label}")


async def add(repo: ConnectionRepository, chat_id: int, label: str, limit: int = 10) -> int:
    record = await repo.add(
        chat_id,
        label=label,
        venue="binance",
        sandbox=False,
        role=KeyRole.READ,
        credentials=canary(label),
        permissions="read,noip",
        limit=limit,
        now=NOW,
    )
    return record.id


async def test_a_stored_key_round_trips_and_is_never_in_clear(
    database: Database, stored_bytes: Callable[[], Awaitable[bytes]]
) -> None:
    repo = ConnectionRepository(database, vault())
    connection_id = await add(repo, 1001, "Main")
    assert await repo.credentials(1001, connection_id, KeyRole.READ) == canary("Main")
    assert await repo.credentials(1001, connection_id, KeyRole.TRADE) is None
    record = await repo.get(1001, connection_id)
    assert record is not None and record.read_key is not None
    assert record.read_key.mask == "CANA…Main"
    await database.dispose()  # flush WAL into the main file
    raw = await stored_bytes()
    assert record.read_key.mask.encode() in raw  # the search can find what is stored
    for secret in CANARY.secrets():
        assert secret.encode() not in raw


async def test_another_chat_sees_nothing(database: Database) -> None:
    repo = ConnectionRepository(database, vault())
    connection_id = await add(repo, 1001, "Main")
    assert await repo.get(2002, connection_id) is None
    assert await repo.list_for_chat(2002) == []
    assert await repo.credentials(2002, connection_id, KeyRole.READ) is None
    assert await repo.delete(2002, connection_id) is False
    assert await repo.get(1001, connection_id) is not None


async def test_labels_are_unique_per_chat_ignoring_case(database: Database) -> None:
    repo = ConnectionRepository(database, vault())
    await add(repo, 1001, "Main")
    with pytest.raises(LabelTaken):
        await add(repo, 1001, "main")
    await add(repo, 2002, "Main")  # another chat may reuse it
    assert (await repo.find_by_label(1001, " MAIN ")) is not None


async def test_the_connection_limit_holds(database: Database) -> None:
    repo = ConnectionRepository(database, vault())
    await add(repo, 1001, "a", limit=2)
    await add(repo, 1001, "b", limit=2)
    with pytest.raises(ConnectionLimitReached):
        await add(repo, 1001, "c", limit=2)
    assert await repo.count(1001) == 2


async def test_delete_wipes_the_row_and_its_activity(database: Database) -> None:
    repo, log = ConnectionRepository(database, vault()), ActivityLog(database)
    connection_id = await add(repo, 1001, "Main")
    await log.record(connection_id, ActivityEntry(at=NOW, action="key check", outcome="ok"))
    assert await repo.delete(1001, connection_id)
    assert await repo.get(1001, connection_id) is None
    assert await database.stored_secrets() == []
    assert await log.recent(connection_id) == []


async def test_activity_keeps_only_the_newest_entries(database: Database) -> None:
    repo, log = ConnectionRepository(database, vault()), ActivityLog(database, retention=5)
    connection_id = await add(repo, 1001, "Main")
    for n in range(8):
        await log.record(connection_id, ActivityEntry(at=NOW, action=f"call {n}", outcome="ok"))
    recent = await log.recent(connection_id, limit=20)
    assert [e.action for e in recent] == [f"call {n}" for n in range(7, 2, -1)]


def key_config(
    tmp_path: Path, env_key: str | None = None, previous: tuple[str, ...] = ()
) -> MasterKeyConfig:
    return MasterKeyConfig(
        env_key=env_key, key_file=None, data_dir=tmp_path, previous_keys=previous
    )


async def test_a_key_is_generated_only_for_an_empty_database(
    database: Database, tmp_path: Path
) -> None:
    opened = open_vault(key_config(tmp_path), await database.stored_secrets())
    key_file = tmp_path / "master.key"
    assert opened is not None and key_file.exists()
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    # the next start reads the same key back
    again = open_vault(key_config(tmp_path), [])
    assert again is not None and again.current_key_id == opened.current_key_id


async def test_secrets_without_a_key_refuse_to_open(database: Database, tmp_path: Path) -> None:
    await add(ConnectionRepository(database, vault()), 1001, "Main")
    with pytest.raises(MasterKeyError, match="COINWARDEN_MASTER_KEY"):
        open_vault(key_config(tmp_path), await database.stored_secrets())
    assert not (tmp_path / "master.key").exists()


async def test_secrets_with_a_wrong_key_refuse_to_open(database: Database, tmp_path: Path) -> None:
    await add(ConnectionRepository(database, vault()), 1001, "Main")
    with pytest.raises(MasterKeyError, match="COINWARDEN_MASTER_KEY"):
        open_vault(key_config(tmp_path, generate_master_key()), await database.stored_secrets())


async def test_rotation_re_encrypts_everything_and_round_trips(
    database: Database, tmp_path: Path
) -> None:
    old_text, new_text = generate_master_key(), generate_master_key()
    old = open_vault(key_config(tmp_path, old_text), [])
    assert old is not None
    repo = ConnectionRepository(database, old)
    ids = [await add(repo, 1001, "a"), await add(repo, 2002, "b")]
    rotating = open_vault(
        key_config(tmp_path, new_text, (old_text,)), await database.stored_secrets()
    )
    assert rotating is not None
    assert await rotate_master_key(database, rotating) == 6
    assert await rotate_master_key(database, rotating) == 0  # idempotent
    new_only = open_vault(key_config(tmp_path, new_text), await database.stored_secrets())
    assert new_only is not None
    assert await ConnectionRepository(database, new_only).credentials(
        1001, ids[0], KeyRole.READ
    ) == canary("a")
    with pytest.raises(MasterKeyError):
        open_vault(key_config(tmp_path, old_text), await database.stored_secrets())


async def test_a_tampered_value_aborts_rotation_and_changes_nothing(
    database: Database, tmp_path: Path
) -> None:
    from sqlalchemy import update

    from storage.schema import connections

    old_text, new_text = generate_master_key(), generate_master_key()
    old = open_vault(key_config(tmp_path, old_text), [])
    assert old is not None
    repo = ConnectionRepository(database, old)
    first, second = await add(repo, 1001, "a"), await add(repo, 1001, "b")
    # move a ciphertext from one row to another: it must not decrypt there
    stolen = next(
        s.token for s in await database.stored_secrets() if s.binding.connection_id == first
    )
    async with database.begin() as conn:
        await conn.execute(
            update(connections).where(connections.c.id == second).values(read_api_key=stolen)
        )
    before = await database.stored_secrets()
    rotating = Vault(parse_master_key(new_text), [parse_master_key(old_text)])
    with pytest.raises(VaultError):
        await rotate_master_key(database, rotating)
    assert await database.stored_secrets() == before
