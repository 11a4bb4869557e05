"""The balance sweep's health semantics against real local venue servers and a real SQLite
file, on a manual clock.

Faults are injected on the venue (5xx, a held response, 429, a revoked key, a key that gains
the withdraw right); what the chat is told is read from the outbox, what the venue saw from its
request log. A restart is a new set of objects over the same database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta

import pytest

from bot.exchanges.catalogue import get_venue
from bot.exchanges.key_check import KeyAccepted
from bot.exchanges.pool import MarketKey
from bot.rules.sweeps import Sweeper
from bot.sandbox.exchanges import (
    SERVERS,
    BinanceServer,
    DemoPermissions,
    OkxServer,
)
from storage.connections import ConnectionRecord, ConnectionStatus
from storage.credentials import Credentials, KeyRole
from storage.database import Database
from storage.leases import DEFAULT_LENGTH
from storage.outbox import Outbox
from tests.clock import ManualClock
from tests.integration.sweep_stack import (
    CHAT,
    PERIOD,
    READ,
    T0,
    MakeStack,
    Stack,
    StackFactory,
    down,
    reads,
    store,
    transitions,
)

CONNECTED, REAUTH, ERROR = (
    ConnectionStatus.CONNECTED,
    ConnectionStatus.REAUTH,
    ConnectionStatus.ERROR,
)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
async def binance() -> AsyncIterator[BinanceServer]:
    async with BinanceServer() as server:
        yield server


@pytest.fixture
async def okx() -> AsyncIterator[OkxServer]:
    async with OkxServer() as server:
        yield server


@pytest.fixture
async def stacks(database: Database, clock: ManualClock) -> AsyncIterator[MakeStack]:
    """Build stacks (one master key for all, as after a restart); their pools close at the end."""
    async with StackFactory(database, clock) as make:
        yield make


async def eventually(condition: Callable[[], Awaitable[bool] | bool]) -> None:
    """Wait for something another task is doing (bounded; never waits for time to pass)."""
    for _ in range(1000):
        outcome = condition()
        if await outcome if isinstance(outcome, Awaitable) else outcome:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the condition never held")


async def status_is(stack: Stack, record: ConnectionRecord, status: ConnectionStatus) -> bool:
    return (await stack.get(record)).status is status


async def test_faults_then_recovery_give_one_notice_per_transition(
    database: Database, binance: BinanceServer, stacks: MakeStack, clock: ManualClock
) -> None:
    """5xx, timeout, 429 in a row (Error on the third, each retried only when its backoff is
    over), then a revoked key (Re-auth at once), then the key back (recovered)."""
    stack = stacks(binance, timeout_ms=500)
    record, key = await store(stack, binance, "Main")

    async def check_at(minute: int) -> ConnectionRecord:
        clock.now = T0 + timedelta(minutes=minute)
        await stack.sweep.run()
        return await stack.get(record)

    healthy = await check_at(0)
    assert (healthy.status, healthy.failure_streak) == (CONNECTED, 0)
    assert healthy.next_check_at == T0 + PERIOD

    down(binance, 503)
    first = await check_at(5)
    assert (first.status, first.failure_streak, first.next_check_at) == (
        CONNECTED,
        1,
        T0 + timedelta(minutes=10),
    )
    assert await check_at(7) == first  # not due: the venue is not called
    assert len(reads(binance)) == 2

    binance.set_delay(2.0)  # longer than the client's 500 ms timeout
    second = await check_at(10)
    binance.set_delay(0)
    assert (second.status, second.failure_streak, second.next_check_at) == (
        CONNECTED,
        2,
        T0 + timedelta(minutes=20),  # backoff: two periods
    )
    await check_at(19)
    assert len(reads(binance)) == 3 and await transitions(database) == []

    down(binance, 429)
    third = await check_at(20)
    assert (third.status, third.failure_streak, third.next_check_at) == (
        ERROR,
        3,
        T0 + timedelta(minutes=40),
    )
    assert third.status_detail == "The exchange is rate-limiting requests."
    assert await transitions(database) == [(record.id, "connected", "error")]

    binance.revoke_key(key.api_key)
    revoked = await check_at(40)
    assert (revoked.status, revoked.next_check_at) == (REAUTH, T0 + timedelta(minutes=80))
    assert revoked.status_detail is not None and "did not accept this API key" in (
        revoked.status_detail
    )
    assert revoked.status_message == "Invalid API-key, IP, or permissions for action."

    binance.restore_key(key.api_key)
    recovered = await check_at(80)
    assert (recovered.status, recovered.failure_streak, recovered.status_detail) == (
        CONNECTED,
        0,
        None,
    )
    assert (recovered.last_ok_at, recovered.status_at) == (clock.now, clock.now)
    await check_at(85)

    assert await transitions(database) == [
        (record.id, "connected", "error"),
        (record.id, "error", "reauth"),
        (record.id, "reauth", "connected"),
    ]
    statuses = reads(binance)
    assert len(statuses) == 7
    assert [statuses[i] for i in (0, 1, 3, 4, 5, 6)] == [200, 503, 429, 401, 200, 200]


@pytest.mark.parametrize("venue", ["binance", "okx"])
async def test_every_venue_walks_the_same_states_error_reauth_and_back(
    venue: str, database: Database, stacks: MakeStack, clock: ManualClock
) -> None:
    """Venue-agnostic (OKX signs with a passphrase too): Error only on the third 5xx in a row,
    Re-auth at the first refusal, then recovered; one notice for each."""
    async with SERVERS[venue]() as server:
        stack = stacks(server)
        record, key = await store(stack, server, "Main")
        await stack.pool.markets.load(MarketKey(venue, server.base_url, sandbox=False))
        minutes = iter([0, 5, 15, 35, 75])  # each check when it is due (backoff 1, 2, 4, 8)

        async def check() -> ConnectionStatus:
            clock.now = T0 + timedelta(minutes=next(minutes))
            await stack.sweep.run()
            return (await stack.get(record)).status

        seen = []
        for _ in range(3):
            down(server, 503)
            seen.append(await check())
        assert seen == [CONNECTED, CONNECTED, ERROR]
        server.revoke_key(key.api_key)
        assert await check() is REAUTH
        server.restore_key(key.api_key)
        assert await check() is CONNECTED
        await stack.pool.close()

    assert await transitions(database) == [
        (record.id, "connected", "error"),
        (record.id, "error", "reauth"),
        (record.id, "reauth", "connected"),
    ]
    assert reads(server)[:3] == [503, 503, 503]
    assert len(reads(server)) == 5
    notices = repr(await Outbox(database).pending())
    credentials = Credentials(key.api_key, key.secret, key.passphrase)
    assert all(secret not in notices for secret in credentials.secrets())


@pytest.mark.parametrize("flag", ["withdraw", "internal_transfer"])
async def test_a_key_that_gains_the_right_to_move_funds_out_flips_to_reauth(
    flag: str, database: Database, binance: BinanceServer, stacks: MakeStack
) -> None:
    stack = stacks(binance)
    record, key = await store(stack, binance, "Main", next_permission_check_at=None)
    binance.set_permissions(key.api_key, **{flag: True})

    await stack.sweep.run()

    current = await stack.get(record)
    assert current.status is REAUTH
    assert current.status_detail is not None and "move funds out" in current.status_detail
    assert current.read_key is not None
    assert ("withdraw" if flag == "withdraw" else "transfer") in current.read_key.permissions
    assert await transitions(database) == [(record.id, "connected", "reauth")]


async def test_a_rate_limited_venue_gets_no_more_calls_in_that_run(
    database: Database,
    binance: BinanceServer,
    okx: OkxServer,
    stacks: MakeStack,
    clock: ManualClock,
) -> None:
    """The rest of that venue stays due and is not counted as failing; other venues go on."""
    stack = stacks(binance, okx)
    records = [(await store(stack, binance, f"B{n}"))[0] for n in range(3)]
    other, _ = await store(stack, okx, "O")
    await stack.sweep.run()  # all healthy; markets loaded
    clock.advance(minutes=5)
    down(binance, 429)

    await stack.sweep.run()

    report = stack.sweep.last_report
    assert len(reads(binance)) == 3 + 1
    assert reads(binance)[-1] == 429
    assert len(reads(okx)) == 2 and other.id in report.checked
    after = {r.id: await stack.get(r) for r in records}
    [limited] = [r for r in after.values() if r.failure_streak == 1]
    left = sorted(r.id for r in after.values() if r.id != limited.id)
    assert sorted(report.skipped) == left
    assert sorted(report.checked) == sorted([limited.id, other.id])
    for connection_id in left:
        untouched = after[connection_id]
        assert (untouched.failure_streak, untouched.status) == (0, CONNECTED)
        assert untouched.next_check_at == clock.now  # still due
    assert await transitions(database) == []

    await stack.sweep.run()  # the next run, same minute: just the ones left over

    assert sorted(stack.sweep.last_report.checked) == left
    assert len(reads(binance)) == 4 + 2 and len(reads(okx)) == 2


async def test_a_restart_in_the_middle_of_a_sweep_repeats_nothing_and_loses_nothing(
    database: Database,
    binance: BinanceServer,
    okx: OkxServer,
    stacks: MakeStack,
    clock: ManualClock,
) -> None:
    before = stacks(binance, okx)
    fast, fast_key = await store(before, binance, "Fast")
    slow, slow_key = await store(before, okx, "Slow")
    binance.revoke_key(fast_key.api_key)
    okx.revoke_key(slow_key.api_key)
    okx.set_delay(5.0)  # the process dies long before OKX answers

    run = asyncio.create_task(before.sweep.run())
    await eventually(lambda: status_is(before, fast, REAUTH))  # committed; OKX still pending
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    await before.pool.close()
    okx.set_delay(0)
    assert await transitions(database) == [(fast.id, "connected", "reauth")]
    assert (await before.get(slow)).status is CONNECTED  # not finished, so not recorded

    after = stacks(binance, okx)
    await after.sweep.run()
    assert after.sweep.last_report.checked == []  # the dead process still holds the slow one
    clock.advance(seconds=DEFAULT_LENGTH.total_seconds())  # until its lease expires
    await after.sweep.run()

    assert after.sweep.last_report.checked == [slow.id]
    assert len(reads(binance)) == 1  # the finished check was not made again
    assert (await after.get(slow)).status is REAUTH
    assert await transitions(database) == [
        (fast.id, "connected", "reauth"),
        (slow.id, "connected", "reauth"),
    ]


async def test_a_sweep_that_overruns_its_tick_is_skipped_not_piled_up(
    binance: BinanceServer, stacks: MakeStack, clock: ManualClock
) -> None:
    stack = stacks(binance)
    for n in range(2):
        await store(stack, binance, f"B{n}")
    finished: list[datetime] = []

    async def delivered() -> None:
        finished.append(clock.now)

    sweeper = Sweeper([stack.sweep], after=delivered)
    binance.set_delay(0.1)

    first = asyncio.create_task(sweeper.run("balance"))
    await asyncio.sleep(0)  # the first run has started and holds its lock
    ticks = []
    for _ in range(3):
        clock.advance(minutes=1)
        ticks.append(await sweeper.run("balance"))

    assert ticks == [False, False, False]
    assert await first is True
    assert len(reads(binance)) == 2  # one check per connection, not one per tick
    assert len(finished) == 1
    binance.set_delay(0)
    assert await sweeper.run("balance") is True  # once done, the next tick runs
    assert len(reads(binance)) == 2  # (nothing is due yet)


async def test_a_key_replaced_while_its_check_is_in_flight_keeps_its_new_state(
    database: Database, binance: BinanceServer, stacks: MakeStack, clock: ManualClock
) -> None:
    """The check of the old (revoked) key finishes after the rotation: it must not judge it."""
    stack = stacks(binance)
    record, old = await store(stack, binance, "Main")
    await stack.pool.markets.load(MarketKey("binance", binance.base_url, sandbox=False))
    binance.revoke_key(old.api_key)
    new = binance.issue_key(DemoPermissions(read=True))
    binance.set_delay(0.3)

    run = asyncio.create_task(stack.sweep.run())
    await eventually(lambda: len(stack.pool) == 1)  # the old key's probe is on its way
    rotated = await stack.repo.replace_key(
        CHAT,
        record.id,
        role=KeyRole.READ,
        credentials=Credentials(new.api_key, new.secret),
        permissions="read,noip",
        now=clock.now,
        next_check_at=clock.now + PERIOD,
    )
    await run

    assert reads(binance) == [401]  # the old key was checked and refused...
    assert stack.sweep.last_report.skipped == [record.id]
    assert await stack.get(record) == rotated  # ...and that verdict was dropped
    assert rotated is not None and (rotated.keys_version, rotated.status) == (2, CONNECTED)
    assert await transitions(database) == []


async def test_a_key_rotated_through_the_service_mid_check_is_checked_fresh_next_time(
    database: Database, binance: BinanceServer, stacks: MakeStack, clock: ManualClock
) -> None:
    stack = stacks(binance)
    record, old = await store(stack, binance, "Main")
    venue = get_venue("binance")
    new = binance.issue_key(DemoPermissions(read=True))
    accepted = await stack.service.check_key(
        venue, Credentials(new.api_key, new.secret), sandbox=False
    )
    assert isinstance(accepted, KeyAccepted)
    await stack.pool.markets.load(MarketKey("binance", binance.base_url, sandbox=False))
    binance.revoke_key(old.api_key)
    binance.set_delay(0.3)

    run = asyncio.create_task(stack.sweep.run())
    await eventually(lambda: len(stack.pool) == 1)
    rotated = await stack.service.replace_key(
        CHAT,
        record.id,
        role=KeyRole.READ,
        credentials=Credentials(new.api_key, new.secret),
        accepted=accepted,
    )
    await run
    binance.set_delay(0)

    assert rotated is not None and await stack.get(record) == rotated
    assert stack.sweep.last_report.checked == []
    clock.now = rotated.next_check_at or clock.now
    await stack.sweep.run()

    current = await stack.get(record)
    assert stack.sweep.last_report.checked == [record.id]
    assert (current.status, current.failure_streak, current.keys_version) == (CONNECTED, 0, 2)
    assert reads(binance)[-1] == 200  # the new key, on a new client
    assert await transitions(database) == []


async def test_a_connection_revoked_mid_check_is_skipped_without_error(
    database: Database, binance: BinanceServer, stacks: MakeStack
) -> None:
    """One is revoked while its probe is in flight, the other before its turn came."""
    stack = stacks(binance)
    in_flight, _ = await store(stack, binance, "first")  # never checked: goes first
    waiting, _ = await store(stack, binance, "second", next_check_at=T0)
    records = [in_flight, waiting]
    await stack.pool.markets.load(MarketKey("binance", binance.base_url, sandbox=False))
    binance.set_delay(0.3)

    run = asyncio.create_task(stack.sweep.run())
    await eventually(lambda: len(stack.pool) == 1)
    assert await stack.service.revoke(CHAT, waiting.id) is not None
    assert await stack.service.revoke(CHAT, in_flight.id) is not None
    await run

    assert stack.sweep.last_report.checked == []
    assert sorted(stack.sweep.last_report.skipped) == sorted(r.id for r in records)
    assert await stack.repo.list_for_chat(CHAT) == []
    assert await Outbox(database).pending() == []
    assert len(reads(binance)) <= 1  # the second connection's key was never used


async def test_every_check_call_lands_in_the_connection_activity_log(
    binance: BinanceServer, stacks: MakeStack, clock: ManualClock
) -> None:
    stack = stacks(binance)
    record, key = await store(stack, binance, "Main")
    for fault in (None, 503, None, 429):
        if fault:
            down(binance, fault)
        await stack.sweep.run()
        clock.advance(minutes=10)  # due again, whatever the backoff

    entries = await stack.activity.recent(record.id, limit=50)
    logged = [e for e in reversed(entries) if e.endpoint == f"GET {READ['binance']}"]
    assert [entry.http_status for entry in logged] == reads(binance) == [200, 503, 200, 429]
    assert [entry.outcome for entry in logged] == ["ok", "error", "ok", "error"]
    assert [entry.error_class for entry in logged][::2] == [None, None]
    assert all(entry.error_class for entry in logged[1::2])
    assert all(entry.at <= clock.now and entry.latency_ms is not None for entry in logged)
    assert all(secret not in repr(entries) for secret in (key.api_key, key.secret))


async def test_a_fresh_sweep_over_the_same_database_takes_exactly_the_due_connections(
    binance: BinanceServer, stacks: MakeStack, clock: ManualClock
) -> None:
    """No state in the sweep object: what is due is a query."""
    setup = stacks(binance)
    never, _ = await store(setup, binance, "never checked")
    overdue, _ = await store(setup, binance, "overdue", next_check_at=T0 - timedelta(minutes=1))
    due_now, _ = await store(setup, binance, "due now", next_check_at=T0)
    later, _ = await store(setup, binance, "later", next_check_at=T0 + timedelta(seconds=1))

    first = stacks(binance)
    await first.sweep.run()
    again = stacks(binance)
    await again.sweep.run()

    assert sorted(first.sweep.last_report.checked) == sorted([never.id, overdue.id, due_now.id])
    assert again.sweep.last_report.checked == []
    assert len(reads(binance)) == 3
    assert (await again.get(later)).last_sync_at == T0  # as stored, never checked
