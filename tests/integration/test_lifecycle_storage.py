"""The connection lifecycle in storage: key replacement, guarded health writes, the outbox,
rotation reminders, the pause switch and the trading gate, on a real SQLite file."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError

from bot.rules.reminders import ReminderPolicy, RotationReminders
from bot.rules.trading import TradingBlock, trading_block
from storage.activity import ActivityEntry, ActivityLog
from storage.chats import ChatRepository, PauseState
from storage.connections import (
    ConnectionRecord,
    ConnectionRepository,
    ConnectionStatus,
    HealthUpdate,
)
from storage.credentials import Credentials, KeyRole
from storage.database import Database
from storage.leases import Lease
from storage.outbox import Notice, NoticeKind, NoticeState, Outbox, enqueue
from storage.vault import Vault, generate_master_key, parse_master_key
from tests.clock import ManualClock

Decision = tuple[HealthUpdate, Notice | None]
T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
CHAT = 1001
OLD = Credentials("CANARYOLDKEY0123456789abcd", "CANARYOLDSECRET9876543210zy")
NEW = Credentials("CANARYNEWKEY0123456789abcd", "CANARYNEWSECRET9876543210zy")
TRADE = Credentials("CANARYTRADEKEY0123456789ab", "CANARYTRADESECRET987654321")


def repository(database: Database) -> ConnectionRepository:
    return ConnectionRepository(database, Vault(parse_master_key(generate_master_key())))


async def add(
    repo: ConnectionRepository,
    *,
    chat_id: int = CHAT,
    label: str = "Main",
    role: KeyRole = KeyRole.READ,
    credentials: Credentials = OLD,
    now: datetime = T0,
) -> ConnectionRecord:
    return await repo.add(
        chat_id,
        label=label,
        venue="binance",
        sandbox=False,
        role=role,
        credentials=credentials,
        permissions="read,spot,noip" if role is KeyRole.TRADE else "read,noip",
        limit=10,
        now=now,
        next_check_at=now + timedelta(minutes=10),
    )


async def rotate(
    repo: ConnectionRepository,
    record: ConnectionRecord,
    now: datetime,
    *,
    role: KeyRole = KeyRole.READ,
    credentials: Credentials = NEW,
) -> ConnectionRecord:
    rotated = await repo.replace_key(
        record.chat_id,
        record.id,
        role=role,
        credentials=credentials,
        permissions="read,spot,noip" if role is KeyRole.TRADE else "read,noip",
        now=now,
        next_check_at=now + timedelta(minutes=10),
    )
    assert rotated is not None
    return rotated


def broken(now: datetime, streak: int = 3) -> HealthUpdate:
    return HealthUpdate(
        ConnectionStatus.ERROR,
        "The exchange is unreachable or under maintenance.",
        "Nothing to do.",
        "System is under maintenance.",
        streak,
        now + timedelta(minutes=40),
        False,
    )


def silently(update: HealthUpdate) -> Callable[[ConnectionRecord], Decision]:
    """A decision that stores ``update`` whatever the row holds, and tells nobody."""
    return lambda current: (update, None)


def status_notice(record: ConnectionRecord, status: str = "error") -> Notice:
    return Notice(record.chat_id, NoticeKind.STATUS, record.id, {"status": status})


async def test_replacing_a_key_overwrites_its_ciphertexts_and_starts_the_status_over(
    database: Database, stored_bytes: Callable[[], Awaitable[bytes]]
) -> None:
    repo = repository(database)
    record = await add(repo)
    await repo.record_health(
        CHAT,
        record.id,
        keys_version=1,
        decide=silently(broken(T0)),
        now=T0,
    )
    old_tokens = [secret.token for secret in await database.stored_secrets()]
    assert len(old_tokens) == 2  # api key and secret, no passphrase

    later = T0 + timedelta(days=3)
    rotated = await rotate(repo, record, later)

    assert await repo.credentials(CHAT, record.id, KeyRole.READ) == NEW
    assert rotated.keys_version == 2
    assert rotated.status is ConnectionStatus.CONNECTED
    assert (rotated.status_detail, rotated.status_fix, rotated.status_message) == (None,) * 3
    assert (rotated.failure_streak, rotated.status_at) == (0, later)
    assert rotated.read_key is not None and rotated.read_key.added_at == later
    assert (rotated.label, rotated.created_at) == (record.label, record.created_at)
    new_tokens = [secret.token for secret in await database.stored_secrets()]
    await database.dispose()  # checkpoint the WAL into the main file
    raw = await stored_bytes()
    assert all(token.encode() in raw for token in new_tokens)  # the search can find tokens
    for secret in (*OLD.secrets(), *NEW.secrets()):
        assert secret.encode() not in raw
    if database.is_sqlite:  # SQLite only: secure_delete overwrites the replaced row at once;
        # PostgreSQL keeps the old row version (a ciphertext, never clear text) until VACUUM.
        for token in old_tokens:
            assert token.encode() not in raw
            assert token.rsplit(".", 1)[1].encode() not in raw  # not even the ciphertext part


async def test_replacing_a_key_of_another_chat_changes_nothing(database: Database) -> None:
    repo = repository(database)
    record = await add(repo)

    assert (
        await repo.replace_key(
            2002,
            record.id,
            role=KeyRole.READ,
            credentials=NEW,
            permissions="read",
            now=T0,
            next_check_at=T0,
        )
        is None
    )
    assert await repo.credentials(CHAT, record.id, KeyRole.READ) == OLD


async def test_a_health_result_for_replaced_keys_is_ignored_and_queues_no_notice(
    database: Database,
) -> None:
    """A check of the old key finishing after a rotation must not judge the new key."""
    repo = repository(database)
    record = await add(repo)
    rotated = await rotate(repo, record, T0 + timedelta(minutes=1))
    asked: list[ConnectionRecord] = []

    def decide(current: ConnectionRecord) -> Decision:
        asked.append(current)
        return broken(T0), status_notice(current)

    applied = await repo.record_health(
        CHAT, record.id, keys_version=record.keys_version, decide=decide, now=T0
    )

    assert applied is False and asked == []
    assert await repo.get(CHAT, record.id) == rotated
    assert await Outbox(database).pending() == []


async def test_a_health_result_is_stored_with_its_notice_and_decided_on_the_current_row(
    database: Database,
) -> None:
    repo = repository(database)
    record = await add(repo)
    seen: list[ConnectionRecord] = []

    def decide(current: ConnectionRecord) -> Decision:
        seen.append(current)
        return broken(T0), status_notice(current)

    now = T0 + timedelta(minutes=10)
    assert await repo.record_health(CHAT, record.id, keys_version=1, decide=decide, now=now)

    stored = await repo.get(CHAT, record.id)
    assert seen == [record]
    assert stored is not None and stored.status is ConnectionStatus.ERROR
    assert (stored.failure_streak, stored.status_at, stored.last_sync_at) == (3, now, now)
    assert stored.last_ok_at == T0  # a failed check is not an "ok"
    [pending] = await Outbox(database).pending()
    assert pending.notice == status_notice(record)
    assert pending.created_at == now


async def test_a_failing_decision_or_notice_leaves_the_connection_untouched(
    database: Database,
) -> None:
    """The state change and its notice are one transaction: never one without the other."""
    repo = repository(database)
    record = await add(repo)

    def blows_up(current: ConnectionRecord) -> Decision:
        raise RuntimeError("decide failed")

    def undeliverable(current: ConnectionRecord) -> Decision:
        return broken(T0), Notice(999_999, NoticeKind.STATUS, current.id, {})  # no such chat

    with pytest.raises(RuntimeError):
        await repo.record_health(CHAT, record.id, keys_version=1, decide=blows_up, now=T0)
    with pytest.raises(IntegrityError):
        await repo.record_health(CHAT, record.id, keys_version=1, decide=undeliverable, now=T0)

    assert await repo.get(CHAT, record.id) == record
    assert await Outbox(database).pending() == []


async def test_health_permissions_update_only_the_keys_the_connection_holds(
    database: Database,
) -> None:
    repo = repository(database)
    record = await add(repo)
    update = replace(
        broken(T0, streak=1),
        permissions={KeyRole.READ: "read,withdraw,noip", KeyRole.TRADE: "read,spot"},
    )

    await repo.record_health(CHAT, record.id, keys_version=1, decide=silently(update), now=T0)

    stored = await repo.get(CHAT, record.id)
    assert stored is not None and stored.read_key is not None
    assert stored.read_key.permissions == "read,withdraw,noip"
    assert stored.trade_key is None


async def test_due_connections_are_claimed_never_checked_first_then_the_longest_waiting(
    database: Database,
) -> None:
    repo = repository(database)
    due_later = await add(repo, label="later")  # next check at T0 + 10 min
    never = await repo.add(
        CHAT,
        label="never",
        venue="okx",
        sandbox=False,
        role=KeyRole.READ,
        credentials=NEW,
        permissions="read",
        limit=10,
        now=T0,
    )
    overdue = await add(repo, label="overdue", credentials=TRADE, now=T0 - timedelta(hours=1))
    held = Lease("worker-a", T0 + timedelta(hours=1))

    # Only the venues asked for, at most their cap each, oldest first.
    assert [r.id for r in await repo.claim_due(T0, held, {"binance": 1})] == [overdue.id]
    # Ten minutes on: the never-checked one first; the claimed one is held, not taken again.
    later = T0 + timedelta(minutes=10)
    claimed = await repo.claim_due(later, held, {"binance": 10, "okx": 10})
    assert [r.id for r in claimed] == [never.id, due_later.id]


async def test_a_key_is_reminded_at_ninety_days_then_every_thirty_until_replaced(
    database: Database,
) -> None:
    repo = repository(database)
    record = await add(repo)
    after, every = timedelta(days=90), timedelta(days=30)

    async def due(day: float) -> list[tuple[ConnectionRecord, KeyRole]]:
        now = T0 + timedelta(days=day)
        return await repo.due_for_reminder(now, older_than=now - after, reminded_before=now - every)

    async def remind(day: float) -> None:
        [(current, role)] = await due(day)
        notice = Notice(CHAT, NoticeKind.ROTATE_KEY, current.id, {"role": str(role)})
        assert await repo.mark_reminded(current, role, T0 + timedelta(days=day), notice)

    assert await due(89.9) == []
    await remind(90)
    assert await due(90) == []
    assert await due(119.9) == []
    await remind(120)

    rotated = await rotate(repo, record, T0 + timedelta(days=121))
    assert rotated.read_key is not None and rotated.read_key.reminded_at is None
    assert await due(150) == []  # the new key is 29 days old
    assert await due(210.9) == []
    assert [(r.id, role) for r, role in await due(211)] == [(record.id, KeyRole.READ)]
    assert len(await Outbox(database).pending()) == 2


async def test_a_reminder_for_a_key_replaced_meanwhile_is_not_noted_nor_queued(
    database: Database,
) -> None:
    repo = repository(database)
    record = await add(repo)
    notice = Notice(CHAT, NoticeKind.ROTATE_KEY, record.id, {"role": "read"})
    await rotate(repo, record, T0 + timedelta(days=90))

    assert await repo.mark_reminded(record, KeyRole.READ, T0 + timedelta(days=91), notice) is False
    assert await Outbox(database).pending() == []


async def test_rotation_reminders_over_time_come_at_day_90_120_150_and_never_between(
    database: Database,
) -> None:
    repo = repository(database)
    record = await add(repo)
    clock = ManualClock(T0)
    reminders = RotationReminders(repo, ReminderPolicy(), clock=clock)

    for _ in range(160 * 4):  # the sweep runs every six hours
        clock.advance(hours=6)
        await reminders.run()

    pending = await Outbox(database).pending()
    assert [(p.created_at - T0).days for p in pending] == [90, 120, 150]
    assert all(p.notice.kind is NoticeKind.ROTATE_KEY for p in pending)
    assert all(p.notice.connection_id == record.id for p in pending)
    assert pending[0].notice.payload == {"role": "read", "added_at": T0.isoformat()}


async def test_each_key_of_a_connection_keeps_its_own_reminder_clock(database: Database) -> None:
    """Adding the trade key later neither resets nor merges the read key's reminders."""
    repo = repository(database)
    record = await add(repo)
    clock = ManualClock(T0)
    reminders = RotationReminders(repo, ReminderPolicy(), clock=clock)

    for day in range(1, 136):
        clock.now = T0 + timedelta(days=day)
        if day == 10:
            await rotate(repo, record, clock.now, role=KeyRole.TRADE, credentials=TRADE)
        await reminders.run()

    reminded = [
        ((p.created_at - T0).days, p.notice.payload["role"])
        for p in await Outbox(database).pending()
    ]
    assert reminded == [(90, "read"), (100, "trade"), (120, "read"), (130, "trade")]


async def test_pausing_a_chat_records_since_when_and_resuming_clears_it(
    database: Database,
) -> None:
    chats = ChatRepository(database)

    assert await chats.pause_state(CHAT) == PauseState(False)  # a chat never seen
    assert await chats.set_paused(CHAT, True, T0) == PauseState(True, T0)
    later = T0 + timedelta(hours=2)
    assert await chats.set_paused(CHAT, True, later) == PauseState(True, T0)  # still since T0
    assert await chats.pause_state(2002) == PauseState(False)  # other chats go on
    assert await chats.set_paused(CHAT, False, later) == PauseState(False)
    assert await chats.set_paused(CHAT, False, later) == PauseState(False)
    assert await chats.set_paused(CHAT, True, later) == PauseState(True, later)
    assert await chats.pause_state(CHAT) == PauseState(True, later)


async def test_outbox_hands_out_pending_notices_oldest_first_until_each_is_done(
    database: Database,
) -> None:
    await ChatRepository(database).set_paused(CHAT, False, T0)  # the chat must exist
    outbox = Outbox(database)
    payloads: list[dict[str, Any]] = [{"n": n, "text": "<b>é</b>"} for n in range(4)]
    for n, payload in enumerate(payloads):
        async with database.begin() as conn:
            await enqueue(
                conn, Notice(CHAT, NoticeKind.STATUS, None, payload), T0 + timedelta(seconds=n)
            )

    first = await outbox.pending()
    assert [p.notice.payload for p in first] == payloads
    assert [p.attempts for p in first] == [0] * 4
    assert [p.notice.payload["n"] for p in await outbox.pending(limit=2)] == [0, 1]

    await outbox.mark(first[0].id, NoticeState.SENT, T0)
    await outbox.mark(first[2].id, NoticeState.DROPPED, T0)
    await outbox.failed_attempt(first[1].id)
    await outbox.failed_attempt(first[1].id)

    left = await outbox.pending()
    assert [(p.id, p.attempts) for p in left] == [(first[1].id, 2), (first[3].id, 0)]


async def test_activity_for_a_deleted_connection_is_refused_quietly(database: Database) -> None:
    """A sweep may finish its calls just after the user revoked the connection."""
    repo = repository(database)
    record = await add(repo)
    log = ActivityLog(database)
    entry = ActivityEntry(at=T0, action="exchange call", outcome="ok", endpoint="GET /x")

    assert await log.record(record.id, entry) is True
    assert await repo.delete(CHAT, record.id) is True
    assert await log.record(record.id, entry) is False
    assert await log.record(record.id) is True  # nothing to write is never an error
    assert await log.recent(record.id) == []


async def test_the_trading_gate_reads_pause_status_and_trade_key_from_the_database(
    database: Database,
) -> None:
    repo, chats = repository(database), ChatRepository(database)
    trading = await add(repo, role=KeyRole.TRADE, credentials=TRADE)
    reading = await add(repo, label="Watch")

    async def gate(record: ConnectionRecord) -> TradingBlock | None:
        current = await repo.get(CHAT, record.id)
        assert current is not None
        return trading_block(current, await chats.pause_state(CHAT))

    assert await gate(trading) is None
    assert await gate(reading) is TradingBlock.NO_TRADE_KEY

    await chats.set_paused(CHAT, True, T0)
    assert await gate(trading) is TradingBlock.PAUSED
    assert await gate(reading) is TradingBlock.PAUSED

    await chats.set_paused(CHAT, False, T0)
    for status in (ConnectionStatus.ERROR, ConnectionStatus.REAUTH):
        update = replace(broken(T0), status=status)
        await repo.record_health(CHAT, trading.id, keys_version=1, decide=silently(update), now=T0)
        assert await gate(trading) is TradingBlock.NOT_CONNECTED


@pytest.mark.sqlite_only("another process writes through its own sqlite3 connection")
async def test_no_other_process_can_replace_a_key_between_reading_and_writing_a_health_result(
    database: Database, tmp_path: Path
) -> None:
    """Another process (the user's /rotate, another worker) cannot commit a new key after the
    row was read for the decision and before it is written: the transaction holds SQLite's
    write lock from BEGIN, so the decision is written for the key it judged."""
    repo = repository(database)
    record = await add(repo)

    def decide(current: ConnectionRecord) -> Decision:
        other = sqlite3.connect(tmp_path / "coinwarden.db", timeout=0)
        with closing(other), pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute(
                "UPDATE connections SET keys_version = keys_version + 1 WHERE id = ?",
                (current.id,),
            )
        return broken(T0), status_notice(current)

    applied = await repo.record_health(CHAT, record.id, keys_version=1, decide=decide, now=T0)

    stored = await repo.get(CHAT, record.id)
    assert stored is not None and stored.keys_version == 1
    assert (applied, stored.status) == (True, ConnectionStatus.ERROR)
    assert [p.notice for p in await Outbox(database).pending()] == [status_notice(record)]
