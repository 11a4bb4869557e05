"""Renaming a connection on a real SQLite file: labels stay unique per chat, ignoring case."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from storage.connections import ConnectionRepository, LabelTaken
from storage.database import Database
from storage.labels import rename
from tests.integration.test_storage import add, vault

LATER = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)


async def test_a_rename_keeps_the_connection_and_its_keys(database: Database) -> None:
    repo = ConnectionRepository(database, vault())
    main = await add(repo, 1001, "Main")
    before = await repo.get(1001, main)
    assert await rename(database, 1001, main, "Long-term", LATER) == "Main"
    after = await repo.get(1001, main)
    assert before is not None and after is not None
    assert after.label == "Long-term" and after.read_key == before.read_key
    assert await repo.find_by_label(1001, "long-term") == after
    assert await repo.find_by_label(1001, "Main") is None


async def test_a_label_of_another_connection_is_refused_in_any_case_and_named_as_stored(
    database: Database,
) -> None:
    repo = ConnectionRepository(database, vault())
    main = await add(repo, 1001, "Main")
    await add(repo, 1001, "Spare Acct")
    with pytest.raises(LabelTaken) as taken:
        await rename(database, 1001, main, "SPARE acct", LATER)
    assert taken.value.args == ("Spare Acct",)
    assert [r.label for r in await repo.list_for_chat(1001)] == ["Main", "Spare Acct"]


async def test_a_change_of_case_of_its_own_label_is_a_rename(database: Database) -> None:
    repo = ConnectionRepository(database, vault())
    main = await add(repo, 1001, "main")
    assert await rename(database, 1001, main, "Main", LATER + timedelta(minutes=1)) == "main"
    record = await repo.get(1001, main)
    assert record is not None and record.label == "Main"


async def test_another_chat_can_neither_rename_nor_block_a_label(database: Database) -> None:
    repo = ConnectionRepository(database, vault())
    mine = await add(repo, 1001, "Main")
    theirs = await add(repo, 2002, "Spare")
    assert await rename(database, 2002, mine, "Stolen", LATER) is None
    assert await rename(database, 1001, mine, "Spare", LATER) == "Main"  # only 2002 has one
    record, other = await repo.get(1001, mine), await repo.get(2002, theirs)
    assert record is not None and record.label == "Spare"
    assert other is not None and other.label == "Spare"
