"""One API key, one slot: the same key is refused in a connection's other slot, on a second
connection of the chat, and as its own rotation — found by keyed hashes, never by decrypting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from storage.connections import ConnectionRecord, ConnectionRepository, KeyInUse
from storage.credentials import Credentials, KeyRole
from storage.database import Database
from storage.rotation import rotate_master_key
from storage.schema import connections
from storage.vault import Vault, generate_master_key, parse_master_key

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CHAT = 1001
KEY = Credentials("CANARYREUSEDKEY0123456789ab", "CANARYSECRET0123456789abcdef")
OTHER = Credentials("CANARYOTHERKEY0123456789abc", "CANARYSECRETB0123456789abcd")


async def add(
    repo: ConnectionRepository,
    label: str,
    credentials: Credentials = KEY,
    *,
    chat_id: int = CHAT,
    role: KeyRole = KeyRole.READ,
) -> ConnectionRecord:
    return await repo.add(
        chat_id,
        label=label,
        venue="coinbase",
        sandbox=False,
        role=role,
        credentials=credentials,
        permissions="read,noip",
        limit=10,
        now=T0,
    )


async def put(
    repo: ConnectionRepository, record: ConnectionRecord, role: KeyRole, credentials: Credentials
) -> ConnectionRecord | None:
    return await repo.replace_key(
        CHAT,
        record.id,
        role=role,
        credentials=credentials,
        permissions="read,spot,noip",
        now=T0,
        next_check_at=T0 + timedelta(minutes=1),
    )


@pytest.fixture
def repo(database: Database) -> ConnectionRepository:
    return ConnectionRepository(database, Vault(parse_master_key(generate_master_key())))


async def test_one_key_cannot_be_connected_twice_in_a_chat(repo: ConnectionRepository) -> None:
    await add(repo, "CB2")
    with pytest.raises(KeyInUse) as used:
        await add(repo, "CB3")
    assert (used.value.label, used.value.role, used.value.same_slot) == ("CB2", "read", False)
    assert [r.label for r in await repo.list_for_chat(CHAT)] == ["CB2"]
    await add(repo, "Theirs", chat_id=2002)  # another chat's user holds their own copy


async def test_the_read_key_and_the_trade_key_are_different_keys(
    repo: ConnectionRepository,
) -> None:
    main = await add(repo, "Main", role=KeyRole.TRADE)
    with pytest.raises(KeyInUse) as used:
        await put(repo, main, KeyRole.READ, KEY)
    assert (used.value.label, used.value.role) == ("Main", KeyRole.TRADE)
    assert (await repo.get(CHAT, main.id)).read_key is None  # type: ignore[union-attr]
    assert await put(repo, main, KeyRole.READ, OTHER) is not None


async def test_rotating_to_the_key_in_place_is_refused_as_such(
    repo: ConnectionRepository,
) -> None:
    main = await add(repo, "Main")
    before = await repo.key_in_use(CHAT, KEY.api_key, (main.id, KeyRole.READ))
    assert before is not None and before.same_slot
    with pytest.raises(KeyInUse) as used:
        await put(repo, main, KeyRole.READ, KEY)
    assert used.value.same_slot
    assert await repo.key_in_use(CHAT, OTHER.api_key) is None


async def test_hashes_hide_the_key_follow_a_master_key_rotation_and_fill_in_old_rows(
    database: Database,
) -> None:
    old = parse_master_key(generate_master_key())
    repo = ConnectionRepository(database, Vault(old))
    main = await add(repo, "Main")
    async with database.begin() as conn:
        stored = (await conn.execute(select(connections.c.read_key_hash))).scalar_one()
    assert KEY.api_key not in stored and len(stored) < 80

    new = parse_master_key(generate_master_key())
    await rotate_master_key(database, Vault(new, [old]))
    rotated = ConnectionRepository(database, Vault(new))
    async with database.begin() as conn:
        assert (await conn.execute(select(connections.c.read_key_hash))).scalar_one() != stored
    assert (await rotated.key_in_use(CHAT, KEY.api_key)) is not None

    async with database.begin() as conn:  # a row stored before hashes existed
        await conn.execute(update(connections).values(read_key_hash=None))
    assert await rotated.key_in_use(CHAT, KEY.api_key) is None
    assert await rotated.fill_key_hashes() == 1
    assert await rotated.fill_key_hashes() == 0
    found = await rotated.key_in_use(CHAT, KEY.api_key)
    assert found is not None and (found.label, found.role) == (main.label, KeyRole.READ)
