"""Balance snapshots on a real SQLite file: written with the read that took them, read back
exactly, per chat, as a series over time, thinned by retention, and gone with their connection.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

import storage.snapshots
from bot.exchanges.health import HealthPolicy, Observation, decide
from bot.rules.retention import SnapshotRetention
from storage.connections import ConnectionRecord, ConnectionRepository
from storage.credentials import Credentials, KeyRole
from storage.database import Database
from storage.schema import snapshots as snapshots_table
from storage.snapshots import (
    Snapshot,
    SnapshotAsset,
    SnapshotRepository,
    ValuePoint,
    insert_snapshot,
)
from storage.vault import Vault, generate_master_key, parse_master_key

D = Decimal
NOW = datetime(2026, 6, 1, 12, 30, 17, 250_000, tzinfo=UTC)
CHAT = 7_000_000_001  # beyond 32 bits, as Telegram ids can be
OTHER_CHAT = 55
POLICY = HealthPolicy(timedelta(minutes=1))
KEEP_ALL = timedelta(hours=48)
KEEP_HOURLY = timedelta(days=90)


@pytest.fixture
def repo(database: Database) -> ConnectionRepository:
    return ConnectionRepository(database, Vault(parse_master_key(generate_master_key())))


@pytest.fixture
def snapshots(database: Database) -> SnapshotRepository:
    return SnapshotRepository(database)


async def connect(repo: ConnectionRepository, chat_id: int, label: str) -> ConnectionRecord:
    return await repo.add(
        chat_id,
        label=label,
        venue="kraken",
        sandbox=False,
        role=KeyRole.READ,
        credentials=Credentials("key-" + label, "secret-" + label),
        permissions="read,noip",
        limit=10,
        now=NOW - timedelta(days=200),
    )


async def record_read(
    repo: ConnectionRepository, record: ConnectionRecord, snapshot: Snapshot
) -> bool:
    """What the balance sweep does with a healthy read: its outcome and snapshot together."""
    return await repo.record_health(
        record.chat_id,
        record.id,
        keys_version=record.keys_version,
        decide=lambda current: decide(current, Observation(), POLICY, snapshot.taken_at),
        now=snapshot.taken_at,
        snapshot=snapshot,
    )


def reading(
    record: ConnectionRecord, at: datetime, usd: str = "100", quote: str = "USD"
) -> Snapshot:
    """A one-asset snapshot worth ``usd``."""
    return Snapshot(
        record.id,
        record.chat_id,
        at,
        quote,
        {"USD": SnapshotAsset(D(usd), D(0), D(1), D(usd), None)},
    )


def digits(asset: SnapshotAsset) -> list[str | None]:
    return [
        None if v is None else format(v, "f")
        for v in (asset.free, asset.used, asset.price, asset.value)
    ]


# ----- writing and reading ---------------------------------------------------------------------


async def test_a_snapshot_recorded_with_its_read_round_trips_exactly(
    repo: ConnectionRepository, snapshots: SnapshotRepository
) -> None:
    record = await connect(repo, CHAT, "Futures")
    taken = Snapshot(
        connection_id=record.id,
        chat_id=CHAT,
        taken_at=NOW,
        quote="EUR",
        assets={
            "BTC": SnapshotAsset(
                D("0.52340000"),
                D("0.00010000"),
                D("67234.123456789012"),
                D("35197.79262917049574567"),
                "BTC/USDT@binance USDT/EUR@kraken",
            ),
            "PEPE": SnapshotAsset(D("1000000000000"), D(0), D("0.00000001"), D("10000"), "x"),
            "DUST": SnapshotAsset(D("1E-12"), D("0.000000000001"), D("2"), D("4E-12"), "y"),
            "MYST": SnapshotAsset(D("7"), D("0"), None, None, None),
            "USDT": SnapshotAsset(D("-41.275"), D("183.4246"), D("0.92"), D("130.8"), "z"),
        },
        extra={"settle": "USDT", "wallet_balance": "12500.00000000", "unrealised_pnl": "-41.275"},
    )

    assert await record_read(repo, record, taken) is True

    stored = (await snapshots.latest(CHAT))[record.id]
    assert stored.id is not None
    assert stored == replace(taken, id=stored.id)
    for name, asset in taken.assets.items():  # the digits, trailing zeros too
        back = stored.assets[name]
        assert digits(back) == digits(asset)
    assert stored.taken_at.tzinfo is not None and stored.taken_at == NOW
    assert stored.total_value == D("35197.79262917049574567") + D(10000) + D("4E-12") + D("130.8")
    assert stored.unpriced == ("MYST",)
    assert (await repo.get(CHAT, record.id)) == replace(
        record, last_sync_at=NOW, last_ok_at=NOW, next_check_at=NOW + POLICY.period
    )


async def test_a_snapshot_without_futures_figures_reads_back_with_none(
    repo: ConnectionRepository, snapshots: SnapshotRepository
) -> None:
    record = await connect(repo, CHAT, "Spot")

    await record_read(repo, record, reading(record, NOW))

    assert (await snapshots.latest(CHAT))[record.id].extra == {}


async def test_a_read_of_keys_replaced_meanwhile_stores_no_snapshot(
    repo: ConnectionRepository, snapshots: SnapshotRepository
) -> None:
    """The snapshot is part of the read's outcome: a stale outcome writes neither."""
    record = await connect(repo, CHAT, "Main")
    await repo.replace_key(
        CHAT,
        record.id,
        role=KeyRole.READ,
        credentials=Credentials("new-key", "new-secret"),
        permissions="read,noip",
        now=NOW,
        next_check_at=NOW,
    )

    assert await record_read(repo, record, reading(record, NOW)) is False

    assert await snapshots.latest(CHAT) == {}
    assert await snapshots.count(record.id) == 0


async def test_latest_is_the_newest_snapshot_of_each_of_the_chats_own_connections(
    repo: ConnectionRepository, snapshots: SnapshotRepository
) -> None:
    first, second, never = [await connect(repo, CHAT, label) for label in ("A", "B", "C")]
    foreign = await connect(repo, OTHER_CHAT, "A")
    for minutes in (0, 1, 2):
        at = NOW + timedelta(minutes=minutes)
        await record_read(repo, first, reading(first, at, str(100 + minutes)))
        await record_read(repo, foreign, reading(foreign, at, str(900 + minutes)))
    await record_read(repo, second, reading(second, NOW, "7"))

    latest = await snapshots.latest(CHAT)

    assert set(latest) == {first.id, second.id}  # never read: no snapshot, no entry
    assert latest[first.id].total_value == D(102)
    assert latest[first.id].taken_at == NOW + timedelta(minutes=2)
    assert latest[second.id].total_value == D(7)
    assert never.id not in latest
    assert set(await snapshots.latest(OTHER_CHAT)) == {foreign.id}
    assert set(await snapshots.latest(CHAT, [second.id])) == {second.id}
    assert await snapshots.latest(CHAT, [foreign.id]) == {}  # another chat's connection
    assert await snapshots.latest(OTHER_CHAT, [first.id, second.id]) == {}


async def test_values_since_start_from_each_connections_last_point_before(
    repo: ConnectionRepository, snapshots: SnapshotRepository
) -> None:
    early, late, gone_quiet = [await connect(repo, CHAT, label) for label in ("E", "L", "Q")]
    foreign = await connect(repo, OTHER_CHAT, "F")
    since = NOW - timedelta(days=1)
    series = [
        (early, since - timedelta(days=3), "1"),
        (early, since - timedelta(hours=2), "2"),  # the last one before: the starting point
        (early, since, "3"),  # exactly at ``since``: inside
        (early, since + timedelta(hours=5), "4"),
        (late, since + timedelta(hours=1), "5"),  # nothing before: starts inside
        (late, since + timedelta(hours=9), "6"),
        (gone_quiet, since - timedelta(days=5), "7"),
        (gone_quiet, since - timedelta(days=4), "8"),  # its last point, before ``since``
        (foreign, since + timedelta(hours=1), "99"),
    ]
    for record, at, value in series:
        await record_read(repo, record, reading(record, at, value))

    points = await snapshots.values_since(CHAT, since)

    assert points == [
        ValuePoint(gone_quiet.id, since - timedelta(days=4), "USD", D(8)),
        ValuePoint(early.id, since - timedelta(hours=2), "USD", D(2)),
        ValuePoint(early.id, since, "USD", D(3)),
        ValuePoint(late.id, since + timedelta(hours=1), "USD", D(5)),
        ValuePoint(early.id, since + timedelta(hours=5), "USD", D(4)),
        ValuePoint(late.id, since + timedelta(hours=9), "USD", D(6)),
    ]
    assert await snapshots.values_since(CHAT, NOW + timedelta(days=1)) == [
        ValuePoint(gone_quiet.id, since - timedelta(days=4), "USD", D(8)),
        ValuePoint(early.id, since + timedelta(hours=5), "USD", D(4)),
        ValuePoint(late.id, since + timedelta(hours=9), "USD", D(6)),
    ]


async def test_a_deleted_connection_takes_its_snapshots_with_it(
    database: Database, repo: ConnectionRepository, snapshots: SnapshotRepository
) -> None:
    if database.is_sqlite:  # SQLite enforces foreign keys only when told (PostgreSQL always)
        async with database.begin() as conn:
            assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar_one() == 1
    deleted, kept = await connect(repo, CHAT, "Deleted"), await connect(repo, CHAT, "Kept")
    for minutes in range(3):
        for record in (deleted, kept):
            await record_read(repo, record, reading(record, NOW + timedelta(minutes=minutes)))

    assert await repo.delete(CHAT, deleted.id) is True

    assert await snapshots.count(deleted.id) == 0
    assert await snapshots.count(kept.id) == 3
    assert set(await snapshots.latest(CHAT)) == {kept.id}


# ----- retention ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    id: int
    connection_id: int
    taken_at: datetime


def expected_after_retention(rows: Iterable[Row], now: datetime) -> set[int]:
    """The rule, written plainly: everything older than 48 h thinned to the first reading of
    each (connection, UTC hour); then everything older than 90 days to the first of each
    (connection, UTC day). "First" is by time, then by id."""
    ordered = sorted(rows, key=lambda r: (r.taken_at, r.id))

    def thin(rows: list[Row], cutoff: datetime, bucket: timedelta) -> list[Row]:
        kept, seen = [], set()
        for row in rows:
            if row.taken_at >= cutoff:
                kept.append(row)
                continue
            slot = (row.connection_id, int(row.taken_at.timestamp() // bucket.total_seconds()))
            if slot not in seen:
                seen.add(slot)
                kept.append(row)
        return kept

    hourly = thin(ordered, now - KEEP_ALL, timedelta(hours=1))
    return {row.id for row in thin(hourly, now - KEEP_HOURLY, timedelta(days=1))}


def reading_times(seed: int, now: datetime) -> list[datetime]:
    """Readings of one connection over 130 days: random ones, bursts inside single hours and
    days in each tier, readings sharing one time, and the tier boundaries to the microsecond.
    Shuffled, so ids do not follow time."""
    rng = random.Random(seed)
    span = int(timedelta(days=130).total_seconds())
    times = [now - timedelta(seconds=rng.randrange(span)) for _ in range(300)]
    for age_hours in (3, 47, 49, 24 * 10, 24 * 89 + 23, 24 * 91, 24 * 120):
        hour = (now - timedelta(hours=age_hours)).replace(minute=0, second=0, microsecond=0)
        times += [hour + timedelta(minutes=rng.randrange(60)) for _ in range(6)]
    for cutoff in (now - KEEP_ALL, now - KEEP_HOURLY):
        times += [cutoff - timedelta(microseconds=1), cutoff, cutoff + timedelta(microseconds=1)]
    times += times[:5]  # the same moment twice
    rng.shuffle(times)
    return times


async def fill(database: Database, records: Sequence[ConnectionRecord]) -> list[Row]:
    """Insert every connection's readings (one transaction), and return what is stored."""
    async with database.begin() as conn:
        for seed, record in enumerate(records):
            for at in reading_times(seed, NOW):
                await insert_snapshot(conn, reading(record, at))
    return await stored_rows(database)


async def stored_rows(database: Database) -> list[Row]:
    async with database.begin() as conn:
        rows = await conn.execute(
            select(
                snapshots_table.c.id, snapshots_table.c.connection_id, snapshots_table.c.taken_at
            )
        )
        return sorted((Row(r.id, r.connection_id, r.taken_at) for r in rows), key=lambda r: r.id)


async def two_connections(repo: ConnectionRepository) -> list[ConnectionRecord]:
    return [await connect(repo, CHAT, "A"), await connect(repo, OTHER_CHAT, "B")]


async def test_retention_keeps_48_hours_then_hourly_to_90_days_then_daily(
    database: Database, repo: ConnectionRepository, snapshots: SnapshotRepository
) -> None:
    rows = await fill(database, await two_connections(repo))
    expected = expected_after_retention(rows, NOW)

    deleted = await snapshots.downsample(NOW)

    left = await stored_rows(database)
    assert {row.id for row in left} == expected
    assert deleted == len(rows) - len(left) > 0
    young = [row for row in rows if row.taken_at >= NOW - KEEP_ALL]
    assert set(young) <= set(left)  # every read of the last 48 h
    for connection_id in {row.connection_id for row in rows}:
        mine = [row for row in left if row.connection_id == connection_id]
        middle = [r for r in mine if NOW - KEEP_HOURLY <= r.taken_at < NOW - KEEP_ALL]
        old = [r for r in mine if r.taken_at < NOW - KEEP_HOURLY]
        hours = [r.taken_at.replace(minute=0, second=0, microsecond=0) for r in middle]
        days = [r.taken_at.date() for r in old]
        assert len(hours) == len(set(hours)) and len(days) == len(set(days))
        assert middle and old


async def test_retention_a_second_time_changes_nothing(
    database: Database, repo: ConnectionRepository, snapshots: SnapshotRepository
) -> None:
    rows = await fill(database, await two_connections(repo))
    await SnapshotRetention(snapshots, clock=lambda: NOW).run()  # as the hourly sweep runs it
    after_first = await stored_rows(database)
    assert {row.id for row in after_first} == expected_after_retention(rows, NOW)

    assert await snapshots.downsample(NOW) == 0

    assert await stored_rows(database) == after_first


async def test_retention_in_small_batches_or_run_every_few_days_gives_the_same_table(
    database: Database,
    repo: ConnectionRepository,
    snapshots: SnapshotRepository,
    more_databases: Callable[..., Awaitable[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One big batch is the reference; many batches of 7 rows each (boundaries falling inside
    hours and days, and between rows of the same time) and runs as time passes must agree."""
    rows = await fill(database, await two_connections(repo))
    expected = expected_after_retention(rows, NOW)
    assert len(rows) > 7 * 50
    others = []
    for name in ("batched", "incremental"):
        other = Database(await more_databases(name))
        await other.migrate()
        other_repo = ConnectionRepository(other, Vault(parse_master_key(generate_master_key())))
        assert await fill(other, await two_connections(other_repo)) == rows
        others.append(other)
    batched, incremental = others

    try:
        await snapshots.downsample(NOW)
        monkeypatch.setattr(storage.snapshots, "_DOWNSAMPLE_BATCH", 7)
        await SnapshotRepository(batched).downsample(NOW)
        for days_before in (60, 30, 2, 1):
            await SnapshotRepository(incremental).downsample(NOW - timedelta(days=days_before))
        await SnapshotRepository(incremental).downsample(NOW)

        reference = await stored_rows(database)
        assert {row.id for row in reference} == expected
        assert await stored_rows(batched) == reference
        assert await stored_rows(incremental) == reference
    finally:
        for other in others:
            await other.dispose()
