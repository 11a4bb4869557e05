"""Two writers racing on one database: every check-then-write holds.

Each test opens a second ``Database`` on the fixture's URL, so the two writers share nothing in
this process (not the per-process turn lock): they behave as a poller and a worker would, two
processes on one SQLite file or one PostgreSQL database. The drivers run their statements
concurrently (aiosqlite on a thread per connection, asyncpg on the server), and every race is
run for many rounds, each on a fresh chat.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.alerts import (
    AlertLimitReached,
    AlertRepository,
    AlertRule,
    AlertState,
    Condition,
    Direction,
    Metric,
    RuleExists,
    StateChange,
    rules_watching,
    save_states,
)
from storage.connections import (
    ConnectionLimitReached,
    ConnectionRecord,
    ConnectionRepository,
    ConnectionStatus,
    HealthUpdate,
    KeyInUse,
    LabelTaken,
)
from storage.credentials import Credentials, KeyRole
from storage.database import Database
from storage.labels import rename
from storage.outbox import Notice, NoticeKind, Outbox, enqueue
from storage.proposals import ProposalRepository, ProposalStatus, new_token
from storage.schema import connections, rebalance_targets
from storage.targets import DriftState, TargetRepository, TargetSettings
from storage.vault import Vault, generate_master_key, parse_master_key

T = TypeVar("T")
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ROUNDS = 20
STORED = "stored"


@dataclass(frozen=True)
class Writer:
    """One of the two racing processes: its own engine, pool and turn lock."""

    database: Database
    connections: ConnectionRepository
    alerts: AlertRepository
    targets: TargetRepository
    proposals: ProposalRepository


def writer(database: Database, vault: Vault) -> Writer:
    return Writer(
        database,
        ConnectionRepository(database, vault),
        AlertRepository(database),
        TargetRepository(database),
        ProposalRepository(database),
    )


@pytest.fixture
async def writers(database: Database) -> AsyncIterator[tuple[Writer, Writer]]:
    """The fixture's database and a second one on the same URL (one master key: both
    processes of one deployment share it)."""
    other = Database(database.engine.url.render_as_string(hide_password=False))
    vault = Vault(parse_master_key(generate_master_key()))
    try:
        yield writer(database, vault), writer(other, vault)
    finally:
        await other.dispose()


async def race(*calls: Awaitable[T]) -> list[str]:
    """Run the calls at once; what each came to: ``stored`` or the exception's name."""
    outcomes: list[Any] = await asyncio.gather(*calls, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
            raise outcome
    return sorted(type(o).__name__ if isinstance(o, Exception) else STORED for o in outcomes)


def key(name: str) -> Credentials:
    return Credentials(f"CANARYRACEKEY{name}0123456789", f"CANARYRACESECRET{name}987654321")


async def connect(
    w: Writer, chat_id: int, label: str, credentials: Credentials | None = None, limit: int = 10
) -> ConnectionRecord:
    return await w.connections.add(
        chat_id,
        label=label,
        venue="binance",
        sandbox=False,
        role=KeyRole.READ,
        credentials=credentials or key(f"{chat_id}{label}"),
        permissions="read,noip",
        limit=limit,
        now=T0,
        next_check_at=T0 + timedelta(minutes=10),
    )


async def labels(w: Writer, chat_id: int) -> list[str]:
    return sorted(record.label for record in await w.connections.list_for_chat(chat_id))


def chats(base: int) -> range:
    return range(base, base + ROUNDS)


async def test_one_label_in_two_cases_from_two_writers_is_stored_once(
    writers: tuple[Writer, Writer],
) -> None:
    one, two = writers
    for chat in chats(1000):
        outcomes = await race(connect(one, chat, "Main"), connect(two, chat, "MAIN"))
        assert outcomes == [LabelTaken.__name__, STORED]
        assert [label.casefold() for label in await labels(one, chat)] == ["main"]


async def test_adds_past_the_connection_limit_never_store_more_than_the_limit(
    writers: tuple[Writer, Writer],
) -> None:
    one, two = writers
    for chat in chats(2000):
        await connect(one, chat, "First", limit=3)
        await connect(two, chat, "Second", limit=3)
        outcomes = await race(
            *(
                connect(w, chat, f"New{n}{i}", limit=3)
                for i in range(2)
                for n, w in enumerate(writers)
            )
        )
        assert outcomes == [ConnectionLimitReached.__name__] * 3 + [STORED]
        assert len(await labels(two, chat)) == 3


async def test_one_api_key_added_by_two_writers_is_stored_once(
    writers: tuple[Writer, Writer],
) -> None:
    one, two = writers
    for chat in chats(3000):
        shared = key(f"shared{chat}")
        outcomes = await race(
            connect(one, chat, "Ours", shared), connect(two, chat, "Theirs", shared)
        )
        assert outcomes == [KeyInUse.__name__, STORED]
        assert len(await labels(one, chat)) == 1


async def test_one_api_key_put_in_two_connections_at_once_lands_in_one(
    writers: tuple[Writer, Writer],
) -> None:
    """A rotation on one connection races a rotation on another with the same new key."""
    one, two = writers
    for chat in chats(3500):
        first = await connect(one, chat, "First")
        second = await connect(one, chat, "Second")
        shared = key(f"rotated{chat}")
        outcomes = await race(put_trade_key(one, first, shared), put_trade_key(two, second, shared))
        assert outcomes == [KeyInUse.__name__, STORED]
        holders = [r for r in await one.connections.list_for_chat(chat) if r.trade_key]
        assert len(holders) == 1


async def put_trade_key(
    w: Writer, record: ConnectionRecord, credentials: Credentials
) -> ConnectionRecord | None:
    return await w.connections.replace_key(
        record.chat_id,
        record.id,
        role=KeyRole.TRADE,
        credentials=credentials,
        permissions="read,spot,noip",
        now=T0,
        next_check_at=T0 + timedelta(minutes=10),
    )


async def relabel(w: Writer, record: ConnectionRecord, label: str) -> str | None:
    return await rename(w.database, record.chat_id, record.id, label, T0)


async def test_two_renames_to_one_label_in_two_cases_rename_one(
    writers: tuple[Writer, Writer],
) -> None:
    one, two = writers
    for chat in chats(4000):
        first = await connect(one, chat, "First")
        second = await connect(one, chat, "Second")
        outcomes = await race(relabel(one, first, "Main"), relabel(two, second, "MAIN"))
        assert outcomes == [LabelTaken.__name__, STORED]
        assert len({label.casefold() for label in await labels(one, chat)}) == 2


async def test_a_rename_racing_an_add_of_the_same_label_lets_one_through(
    writers: tuple[Writer, Writer],
) -> None:
    one, two = writers
    for chat in chats(4500):
        first = await connect(one, chat, "First")
        outcomes = await race(relabel(one, first, "Main"), connect(two, chat, "main"))
        assert outcomes == [LabelTaken.__name__, STORED]
        stored = [label.casefold() for label in await labels(one, chat)]
        assert "main" in stored and len(set(stored)) == len(stored)


def condition(threshold: int) -> Condition:
    return Condition(Metric.AMOUNT, "BTC", Direction.BELOW, Decimal(threshold))


async def add_rule(w: Writer, chat: int, threshold: int, limit: int = 50) -> AlertRule:
    return await w.alerts.add(
        chat, None, condition(threshold), state=AlertState.ARMED, value=None, limit=limit, now=T0
    )


async def test_alert_rules_past_the_cap_never_store_more_than_the_cap(
    writers: tuple[Writer, Writer],
) -> None:
    one, two = writers
    for chat in chats(5000):
        await add_rule(one, chat, 1, limit=3)
        await add_rule(two, chat, 2, limit=3)
        outcomes = await race(
            *(
                add_rule(w, chat, 100 + 10 * n + i, limit=3)
                for i in range(2)
                for n, w in enumerate(writers)
            )
        )
        assert outcomes == [AlertLimitReached.__name__] * 3 + [STORED]
        assert len(await one.alerts.list_for_chat(chat)) == 3


async def test_one_alert_rule_added_by_two_writers_is_stored_once(
    writers: tuple[Writer, Writer],
) -> None:
    one, two = writers
    for chat in chats(5500):
        assert await race(add_rule(one, chat, 7), add_rule(two, chat, 7)) == [
            RuleExists.__name__,
            STORED,
        ]
        assert len(await two.alerts.list_for_chat(chat)) == 1


def failing(current: ConnectionRecord) -> tuple[HealthUpdate, Notice | None]:
    """A failed check: one more failure, and a notice when it is the change to Error."""
    failed = HealthUpdate(
        ConnectionStatus.ERROR,
        "The exchange is unreachable.",
        None,
        None,
        current.failure_streak + 1,
        T0 + timedelta(minutes=5),
        False,
    )
    changed = current.status is not ConnectionStatus.ERROR
    return failed, Notice(current.chat_id, NoticeKind.STATUS, current.id) if changed else None


def healthy(current: ConnectionRecord) -> tuple[HealthUpdate, Notice | None]:
    update = HealthUpdate(ConnectionStatus.CONNECTED, None, None, None, 0, T0, True)
    return update, None


async def fire_armed_rules(record: ConnectionRecord, conn: AsyncConnection) -> None:
    """What the alert evaluation does after a read, reduced to its decision: an armed rule
    fires (state and notice in the read's transaction)."""
    for rule in await rules_watching(conn, record.chat_id, record.id):
        if rule.state is AlertState.ARMED:
            await save_states(conn, [StateChange(rule.id, AlertState.FIRED, Decimal(1), T0)])
            await enqueue(conn, Notice(record.chat_id, NoticeKind.ALERT, record.id), T0)


async def read(
    w: Writer,
    record: ConnectionRecord,
    decide: Callable[[ConnectionRecord], tuple[HealthUpdate, Notice | None]],
    after: Callable[[ConnectionRecord, AsyncConnection], Awaitable[None]] | None = None,
) -> bool:
    async def evaluate(conn: AsyncConnection, _status: ConnectionStatus) -> None:
        if after is not None:
            await after(record, conn)

    return await w.connections.record_health(
        record.chat_id,
        record.id,
        keys_version=record.keys_version,
        decide=decide,
        now=T0,
        after=evaluate,
    )


async def notices(w: Writer, chat_id: int) -> list[Notice]:
    return [n.notice for n in await Outbox(w.database).pending(1000) if n.notice.chat_id == chat_id]


async def test_a_status_change_seen_by_two_checks_at_once_is_announced_once(
    writers: tuple[Writer, Writer],
) -> None:
    """The sweep and a /check finish together: each decides on the row as the other left it,
    so only one sees Connected → Error."""
    one, two = writers
    for chat in chats(6000):
        record = await connect(one, chat, "Main")
        assert await race(read(one, record, failing), read(two, record, failing)) == [STORED] * 2
        stored = await one.connections.get(chat, record.id)
        assert stored is not None and stored.failure_streak == 2
        assert len(await notices(one, chat)) == 1


async def test_an_alert_crossed_by_two_reads_at_once_fires_once(
    writers: tuple[Writer, Writer],
) -> None:
    """Two connections of a chat are read at once and both cross the chat's all-connection
    rule: the evaluation that runs second sees the rule already fired."""
    one, two = writers
    for chat in chats(7000):
        first = await connect(one, chat, "First")
        second = await connect(one, chat, "Second")
        await add_rule(one, chat, 5)
        outcomes = await race(
            read(one, first, healthy, fire_armed_rules),
            read(two, second, healthy, fire_armed_rules),
        )
        assert outcomes == [STORED] * 2
        assert len(await notices(one, chat)) == 1


def target(weight: int) -> TargetSettings:
    return TargetSettings(
        connection_id=None,
        weights={"BTC": Decimal(weight), "USDT": Decimal(100 - weight)},
        band=Decimal(5),
        band_relative=False,
        every=None,
        slippage=Decimal("0.005"),
        dry_run=True,
    )


async def test_two_writers_setting_a_new_chats_target_leave_one_target(
    writers: tuple[Writer, Writer],
) -> None:
    one, two = writers
    for chat in chats(8000):
        outcomes = await race(
            one.targets.set(chat, target(50), DriftState.IN_BAND, T0),
            two.targets.set(chat, target(60), DriftState.IN_BAND, T0),
        )
        assert outcomes == [STORED, STORED]
        async with one.database.begin() as conn:
            count = select(func.count()).where(rebalance_targets.c.chat_id == chat)
            assert (await conn.execute(count)).scalar_one() == 1


async def test_two_writers_expiring_proposals_report_each_expiry_once(
    writers: tuple[Writer, Writer],
) -> None:
    one, two = writers
    for chat in chats(9000):
        for _ in range(3):
            await one.proposals.create(
                chat,
                None,
                trigger="manual",
                dry_run=False,
                quote="USD",
                plan={},
                legs=[],
                token=new_token(),
                now=T0,
                expires_at=T0 + timedelta(minutes=15),
            )
        later = T0 + timedelta(minutes=20)
        first, second = await asyncio.gather(
            one.proposals.expire_due(later), two.proposals.expire_due(later)
        )
        ours = [p.id for p in [*first, *second] if p.chat_id == chat]
        assert len(ours) == len(set(ours)) == 3
        assert all(p.status is ProposalStatus.OPEN for p in [*first, *second])


async def test_connections_of_two_writers_all_survive(writers: tuple[Writer, Writer]) -> None:
    """Sanity: writers that do not clash both store (the locks serialize, they do not refuse)."""
    one, two = writers
    for chat in chats(9500):
        assert await race(connect(one, chat, "One"), connect(two, chat, "Two")) == [STORED] * 2
    async with two.database.begin() as conn:
        total = select(func.count()).select_from(connections)
        assert (await conn.execute(total)).scalar_one() == 2 * ROUNDS


async def until_a_statement_waits_for_a_lock(w: Writer) -> None:
    """PostgreSQL: until some statement waits on a lock held by another transaction. SQLite
    shows no such thing: a few turns of the loop let the other writer reach its BEGIN."""
    for _ in range(2000):
        await asyncio.sleep(0.005)
        if w.database.is_sqlite:
            return
        async with w.database.engine.connect() as conn:
            waiting = text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if (await conn.execute(waiting)).scalar_one():
                return
    raise AssertionError("the add never waited for the other transaction")


async def test_a_label_stored_by_a_writer_that_skipped_the_checks_still_refuses_the_add(
    writers: tuple[Writer, Writer],
) -> None:
    """The database's own constraint (``lower(label)`` unique per chat) answers like the
    check: on PostgreSQL the add passes its check, then waits at its INSERT for the other
    transaction and fails on the constraint; LabelTaken either way, nothing stored twice."""
    one, two = writers
    chat = 10_000
    await connect(one, chat, "First")
    async with two.database.engine.begin() as conn:
        await conn.execute(
            insert(connections).values(
                chat_id=chat,
                label="main",
                venue="binance",
                status=ConnectionStatus.CONNECTED,
                status_at=T0,
                created_at=T0,
                updated_at=T0,
            )
        )
        adding = asyncio.create_task(connect(one, chat, "MAIN"))
        await until_a_statement_waits_for_a_lock(two)
    with pytest.raises(LabelTaken):
        await adding
    assert await labels(one, chat) == ["First", "main"]
