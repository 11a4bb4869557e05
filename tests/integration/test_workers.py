"""Several processes on one database, as ``python -m bot worker`` runs them: each process here
is the production sweep stack (``bot.app.build_sweep_stack``) over its own ``Database``, client
pool and worker id, against the local venue servers, on a manual clock.

What they must never do: read one connection twice in a period, miss one, alert twice, run one
proposal in two processes, or send an order twice; and a process that dies holds its rows only
until its lease expires, not a moment longer or shorter.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import delete, select

from bot.app import AlreadyPolling, Core, SweepStack, build_sweep_stack, take_polling
from bot.config import ConfigError, load_settings
from bot.exchanges.catalogue import get_venue
from bot.exchanges.pool import ClientPool
from bot.rules.balance_sweep import BalanceSweep, chunk_size
from bot.rules.rebalance.drift import Trigger
from bot.rules.rebalance.executor import Verdict
from bot.rules.rebalance.target_service import TargetService
from bot.rules.rebalance.targets import parse_target
from bot.rules.reminders import ReminderPolicy, RotationReminders
from bot.rules.sweeps import Sweeper
from bot.rules.throttle import VenueBudgets, VenueThrottle
from bot.sandbox.exchanges import SERVERS, DemoKey, DemoPermissions, VenueServer
from bot.sandbox.exchanges.base import KeyRecord, Permission
from storage.alerts import AlertRepository, AlertState, Condition, Direction, Metric
from storage.connections import ConnectionRecord, ConnectionRepository
from storage.credentials import Credentials, KeyRole
from storage.database import Database
from storage.leases import Lease, LeaseKeeper
from storage.outbox import NoticeKind, Outbox
from storage.proposals import LegState, ProposalStatus
from storage.schema import connections, pollers, rebalance_proposals
from storage.vault import Vault, generate_master_key, parse_master_key
from tests.clock import ManualClock
from tests.integration.sweep_stack import READ, T0

#: The balance period: short, because the venue budgets run on real time (calls per second).
PERIOD = timedelta(seconds=2)
#: Calls per second each worker may spend on each venue: one claim takes all PER_VENUE.
RATE = 2.0
LEASE = timedelta(minutes=2)
VENUES = ("binance", "okx", "kraken")
PER_VENUE = 8
PER_CHAT = 4


class CountingReads:
    """A venue server that counts each key's balance reads (the signed call of a sweep); with a
    ``gate``, each read is answered only once the test lets one more through (``allow``)."""

    reads: Counter[str]
    gate: asyncio.Semaphore | None

    async def authenticate(self, request: web.Request, needs: Permission) -> KeyRecord:
        record: KeyRecord = await super().authenticate(request, needs)  # type: ignore[misc]
        if request.path == READ[self.venue_id]:  # type: ignore[attr-defined]
            if self.gate is not None:
                await self.gate.acquire()
            self.reads[record.key.api_key] += 1
        return record


def allow(server: Any, reads: int) -> None:
    """Let ``reads`` more balance reads through the server's gate."""
    for _ in range(reads):
        server.gate.release()


def counting(venue: str) -> VenueServer:
    server_class = type(f"Counting{SERVERS[venue].__name__}", (CountingReads, SERVERS[venue]), {})
    server: Any = server_class()
    server.reads = Counter()
    server.gate = None
    assert isinstance(server, VenueServer)
    return server


@dataclass
class Process:
    """One process on the shared database: its own engine, pool and worker id."""

    name: str
    stack: SweepStack
    sweeper: Sweeper
    pool: ClientPool
    database: Database

    @property
    def balance(self) -> BalanceSweep:
        found = self.stack.sweeps[0]
        assert isinstance(found, BalanceSweep)
        return found

    async def close(self) -> None:
        await self.pool.close()
        await self.database.dispose()


Spawn = Callable[..., Awaitable[Process]]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
async def venues() -> AsyncIterator[dict[str, Any]]:
    async with AsyncExitStack() as running:
        yield {venue: await running.enter_async_context(counting(venue)) for venue in VENUES}


@pytest.fixture
async def spawn(
    database: Database, database_url: str, venues: dict[str, Any], clock: ManualClock
) -> AsyncIterator[Spawn]:
    """``await spawn("worker-a", **settings)``: a process with the production sweep stack."""
    vault = Vault(parse_master_key(generate_master_key()))
    made: list[Process] = []

    async def start(name: str, **overrides: Any) -> Process:
        settings = load_settings(
            **{
                "database_url": database_url,
                "worker_id": name,
                "exchange_endpoints": {v: server.base_url for v, server in venues.items()},
                "balance_sync_seconds": int(PERIOD.total_seconds()),
                "venue_budgets": dict.fromkeys(VENUES, RATE),
                "lease_seconds": int(LEASE.total_seconds()),
                **overrides,
            }
        )
        own = Database(database_url)
        pool = ClientPool(settings.exchange_endpoints, clock=clock, timeout_ms=20_000, paced=False)
        stack = build_sweep_stack(settings, Core(own, vault), pool, clock)
        made.append(Process(name, stack, Sweeper(stack.sweeps), pool, own))
        return made[-1]

    yield start
    for process in made:
        await process.close()


async def store(
    process: Process,
    server: VenueServer,
    n: int,
    permissions: DemoPermissions | None = None,
    next_check_at: datetime | None = None,
) -> tuple[ConnectionRecord, DemoKey]:
    """A key issued on the venue, stored as /connect stores it (due at once unless
    ``next_check_at``)."""
    venue = get_venue(server.venue_id)
    key = server.issue_key(
        permissions or DemoPermissions(read=True), with_passphrase=venue.needs_passphrase
    )
    role = KeyRole.READ if permissions is None else KeyRole.TRADE
    record = await process.stack.repository.add(
        1000 + n // PER_CHAT,
        label=f"{server.venue_id} {n}",
        venue=server.venue_id,
        sandbox=False,
        role=role,
        credentials=Credentials(key.api_key, key.secret, key.passphrase),
        permissions="read,noip" if permissions is None else "read,spot,noip",
        limit=10,
        now=T0,
        next_check_at=next_check_at,
        next_permission_check_at=T0 + timedelta(hours=1),
    )
    return record, key


async def seed(process: Process, venues: dict[str, Any]) -> dict[int, tuple[str, DemoKey]]:
    """PER_VENUE connections per venue, each with an alert that its first read fires (the demo
    account holds 0.5234 BTC); connection id → (venue, key)."""
    alerts = AlertRepository(process.database)
    seeded = {}
    for server in venues.values():
        for _ in range(PER_VENUE):
            record, key = await store(process, server, len(seeded))
            await alerts.add(
                record.chat_id,
                record.id,
                Condition(Metric.AMOUNT, "BTC", Direction.BELOW, Decimal(1)),
                state=AlertState.ARMED,
                value=None,
                limit=50,
                now=T0,
            )
            seeded[record.id] = (server.venue_id, key)
    return seeded


def reads_per_key(venues: dict[str, Any]) -> Counter[str]:
    return sum((server.reads for server in venues.values()), Counter())


async def leases(database: Database) -> dict[int, str | None]:
    async with database.begin() as conn:
        rows = await conn.execute(select(connections.c.id, connections.c.lease_owner))
        return {row.id: row.lease_owner for row in rows}


async def eventually(condition: Callable[[], Awaitable[bool]]) -> None:
    """Wait for what another task is doing (bounded; never waits for time to pass)."""
    for _ in range(2000):
        if await condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the condition never held")


# ----- the balance sweep -------------------------------------------------------------------------


async def test_two_workers_read_every_connection_once_per_period_and_alert_once(
    database: Database, venues: dict[str, Any], spawn: Spawn, clock: ManualClock
) -> None:
    a, b = await spawn("worker-a"), await spawn("worker-b")
    seeded = await seed(a, venues)

    for period in range(1, 4):
        await asyncio.gather(a.sweeper.run("balance"), b.sweeper.run("balance"))
        checked = [*a.balance.last_report.checked, *b.balance.last_report.checked]
        assert sorted(checked) == sorted(seeded)  # none twice, none missed
        assert set(reads_per_key(venues).values()) == {period}
        assert set((await leases(database)).values()) == {None}  # every row given back
        clock.advance(seconds=PERIOD.total_seconds())

    pending = await Outbox(database).pending(limit=1000)
    assert Counter(p.notice.kind for p in pending) == {NoticeKind.ALERT: len(seeded)}
    assert sorted(p.notice.connection_id for p in pending) == sorted(seeded)


async def test_a_worker_that_dies_mid_sweep_holds_its_rows_until_the_lease_expires(
    database: Database, venues: dict[str, Any], spawn: Spawn, clock: ManualClock
) -> None:
    a = await spawn("worker-a", venue_budgets=dict.fromkeys(VENUES, 1000.0))
    b = await spawn("worker-b")
    seeded = await seed(a, venues)
    for server in venues.values():
        server.set_delay(30)  # worker-a dies long before any venue answers

    run = asyncio.create_task(a.sweeper.run("balance"))
    await eventually(lambda: _all_held_by(database, "worker-a"))
    run.cancel()  # dead: nothing released, no heartbeat any more
    with pytest.raises(asyncio.CancelledError):
        await run
    for server in venues.values():
        server.set_delay(0)
        server.reads.clear()  # what worker-a sent never got an answer

    clock.advance(seconds=LEASE.total_seconds() - 1)
    await b.sweeper.run("balance")
    assert b.balance.last_report.checked == []  # not before the lease expires
    assert reads_per_key(venues) == Counter()

    clock.advance(seconds=1)
    await b.sweeper.run("balance")
    assert sorted(b.balance.last_report.checked) == sorted(seeded)
    assert set(reads_per_key(venues).values()) == {1}
    assert set((await leases(database)).values()) == {None}
    pending = await Outbox(database).pending(limit=1000)
    assert Counter(p.notice.connection_id for p in pending) == dict.fromkeys(seeded, 1)


async def _all_held_by(database: Database, owner: str) -> bool:
    return set((await leases(database)).values()) == {owner}


async def held_by(database: Database, owner: str) -> set[int]:
    return {cid for cid, holder in (await leases(database)).items() if holder == owner}


#: A budget of one call per second: one claim takes two rounds of the reads in flight.
SLOW = 1.0


class Unpaced(VenueBudgets):
    """A budget of ``SLOW`` calls per second on every venue, so claims are as small as they
    get, whose throttle does not wait in real time: the venue's gate paces the reads."""

    def __init__(self) -> None:
        super().__init__()
        self._own: dict[str, VenueThrottle] = {}

    def __call__(self, venue_id: str) -> VenueThrottle:
        concurrency = get_venue(venue_id).sweep_concurrency
        return self._own.setdefault(venue_id, VenueThrottle(concurrency, SLOW, sleep=_no_wait))


async def _no_wait(_seconds: float) -> None:
    await asyncio.sleep(0)


def small_chunks(process: Process, clock: ManualClock) -> BalanceSweep:
    """The process's balance sweep (its reader, repository and leases) on ``Unpaced`` budgets."""
    stack = process.stack
    return BalanceSweep(
        stack.reader,
        stack.repository,
        process.pool,
        stack.chats,
        budgets=Unpaced(),
        clock=clock,
        leases=stack.leases,
    )


async def test_a_running_sweep_takes_a_dead_workers_rows_once_their_lease_expires_not_before(
    database: Database, venues: dict[str, Any], spawn: Spawn, clock: ManualClock
) -> None:
    b = await spawn("worker-b")
    binance = venues["binance"]
    size = chunk_size("binance", SLOW)
    stored = [(await store(b, binance, n))[0].id for n in range(2 * size + size // 2)]
    dead_lease = Lease("worker-a", clock() + LEASE)  # it died holding these, unread
    taken = await b.stack.repository.claim_due(clock(), dead_lease, {"binance": size // 2})
    dead = {record.id for record in taken}
    binance.gate = asyncio.Semaphore(0)
    sweep = small_chunks(b, clock)

    run = asyncio.create_task(sweep.run())
    await eventually(lambda: _holds(database, "worker-b", size))  # the first chunk
    allow(binance, size // 2 + 1)  # fewer than half a chunk pending: the next claim
    await eventually(lambda: _holds(database, "worker-b", size // 2 - 1 + size))
    assert await held_by(database, "worker-a") == dead  # its lease has not expired yet

    clock.advance(seconds=LEASE.total_seconds() * 2 / 3)
    await b.stack.leases.renew()  # worker-b's heartbeat: its own rows stay its own
    clock.advance(seconds=LEASE.total_seconds() / 3)  # worker-a's lease ends
    allow(binance, len(stored))
    await run

    assert sorted(sweep.last_report.checked) == sorted(stored)
    assert sweep.last_report.claims == 3  # the free rows in two chunks, then worker-a's
    assert set(binance.reads.values()) == {1} and len(binance.reads) == len(stored)
    assert set((await leases(database)).values()) == {None}


async def test_a_run_never_reads_a_connection_that_fell_due_after_it_started(
    database: Database, venues: dict[str, Any], spawn: Spawn, clock: ManualClock
) -> None:
    b = await spawn("worker-b")
    binance = venues["binance"]
    size = chunk_size("binance", SLOW)
    due = [(await store(b, binance, n))[0].id for n in range(size + size // 2)]
    soon = T0 + timedelta(seconds=1)
    later = [
        (await store(b, binance, len(due) + n, next_check_at=soon))[0] for n in range(size // 2)
    ]
    binance.gate = asyncio.Semaphore(0)
    sweep = small_chunks(b, clock)

    run = asyncio.create_task(sweep.run())
    await eventually(lambda: _holds(database, "worker-b", size))  # the first chunk, at T0
    clock.advance(seconds=2)  # the later ones are due now, after the run started
    allow(binance, len(due))
    await run

    assert sorted(sweep.last_report.checked) == sorted(due)
    assert sweep.last_report.claims == 2
    assert len(binance.reads) == len(due)
    assert set((await leases(database)).values()) == {None}
    for record in later:
        assert await b.stack.repository.get(record.chat_id, record.id) == record  # untouched

    binance.gate = None
    await sweep.run()  # the next run takes them
    assert sorted(sweep.last_report.checked) == sorted(record.id for record in later)


async def _holds(database: Database, owner: str, rows: int) -> bool:
    return len(await held_by(database, owner)) == rows


async def test_the_heartbeat_keeps_a_slow_sweeps_rows_from_another_worker(
    database: Database, venues: dict[str, Any], spawn: Spawn, clock: ManualClock
) -> None:
    a = await spawn("worker-a", venue_budgets=dict.fromkeys(VENUES, 1000.0))
    b = await spawn("worker-b")
    seeded = await seed(a, venues)
    for server in venues.values():
        server.set_delay(0.5)

    run = asyncio.create_task(a.sweeper.run("balance"))
    await eventually(lambda: _all_held_by(database, "worker-a"))
    clock.advance(seconds=LEASE.total_seconds() * 2 / 3)
    await a.stack.leases.renew()  # one heartbeat while the reads are out
    clock.advance(seconds=LEASE.total_seconds() * 2 / 3)  # past the first lease, not the renewed
    await b.sweeper.run("balance")
    assert b.balance.last_report.checked == []

    await run
    assert sorted(a.balance.last_report.checked) == sorted(seeded)
    assert set(reads_per_key(venues).values()) == {1}


async def test_a_stopping_worker_gives_its_rows_back_at_once(
    database: Database, venues: dict[str, Any], spawn: Spawn, clock: ManualClock
) -> None:
    a = await spawn("worker-a", venue_budgets=dict.fromkeys(VENUES, 1000.0))
    b = await spawn("worker-b", venue_budgets=dict.fromkeys(VENUES, 1000.0))
    seeded = await seed(a, venues)
    for server in venues.values():
        server.set_delay(30)
    run = asyncio.create_task(a.sweeper.run("balance"))
    await eventually(lambda: _all_held_by(database, "worker-a"))
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    await a.stack.leases.release_all()  # what SIGTERM does after cancelling the sweeps
    for server in venues.values():
        server.set_delay(0)

    await b.sweeper.run("balance")  # same moment: no lease to wait for
    assert sorted(b.balance.last_report.checked) == sorted(seeded)


# ----- the shared sweeps -------------------------------------------------------------------------


async def test_a_shared_sweep_runs_in_one_process_per_period(
    database: Database, venues: dict[str, Any], spawn: Spawn, clock: ManualClock
) -> None:
    a, b = await spawn("worker-a"), await spawn("worker-b")
    await store(a, venues["binance"], 0)
    clock.advance(days=90)

    ran = await asyncio.gather(a.sweeper.run("reminders"), b.sweeper.run("reminders"))
    assert ran == [True, True]  # both ticked; one ran it, the other found it taken
    assert len(await Outbox(database).pending()) == 1
    clock.advance(minutes=59)
    await b.sweeper.run("reminders")
    assert len(await Outbox(database).pending()) == 1  # the gate: next run in an hour
    clock.advance(days=30)
    await b.sweeper.run("reminders")
    assert len(await Outbox(database).pending()) == 2


async def test_a_reminder_is_queued_once_even_by_processes_that_skip_the_lease(
    database: Database, venues: dict[str, Any], spawn: Spawn, clock: ManualClock
) -> None:
    """``mark_reminded`` compares and sets the reminder time the sweep read."""
    a, b = await spawn("worker-a"), await spawn("worker-b")
    await store(a, venues["binance"], 0)
    clock.advance(days=90)
    bare = [
        RotationReminders(process.stack.repository, ReminderPolicy(), clock=clock)
        for process in (a, b)
    ]
    await asyncio.gather(*(reminders.run() for reminders in bare))
    assert len(await Outbox(database).pending()) == 1


# ----- rebalance executions ----------------------------------------------------------------------


async def proposal_to_approve(process: Process, server: VenueServer, clock: ManualClock) -> Any:
    """A trading connection read once, a target, and an open proposal with two legs or more."""
    await store(process, server, 0, DemoPermissions(read=True, spot_trade=True))
    await process.sweeper.run("balance")
    targets = TargetService(
        process.stack.targets,
        process.stack.repository,
        process.stack.snapshots,
        process.pool,
        process.stack.health,
        clock,
    )
    chat = 1000
    await targets.set(chat, parse_target(["all", "BTC", "30", "ETH", "40", "USDT", "30"]))
    proposal = await process.stack.proposal_service.propose(chat, Trigger.MANUAL)
    assert len(await process.stack.proposals.legs(proposal.id)) >= 2
    return proposal


async def test_an_approval_executing_in_the_poller_is_never_resumed_by_a_worker(
    venues: dict[str, Any], spawn: Spawn, clock: ManualClock
) -> None:
    poller, worker = await spawn("poller"), await spawn("worker-a")
    binance = venues["binance"]
    proposal = await proposal_to_approve(poller, binance, clock)

    claimed = await poller.stack.executor.approve(proposal.chat_id, proposal.id, proposal.revision)
    assert claimed.verdict is Verdict.CLAIMED and claimed.proposal is not None
    executed, resumed = await asyncio.gather(
        poller.stack.executor.execute(claimed.proposal), worker.stack.executor.resume()
    )
    assert resumed == []
    assert executed.proposal is not None and executed.proposal.status is ProposalStatus.EXECUTED
    legs = await poller.stack.proposals.legs(proposal.id)
    orders = Counter(order.client_order_id for order in binance.account("demo").orders.values())
    assert orders == {leg.client_order_id: 1 for leg in legs}


async def test_a_dead_pollers_execution_is_finished_by_a_worker_after_its_lease_once(
    database: Database, venues: dict[str, Any], spawn: Spawn, clock: ManualClock
) -> None:
    poller, worker = await spawn("poller"), await spawn("worker-a")
    binance = venues["binance"]
    proposal = await proposal_to_approve(poller, binance, clock)
    claimed = await poller.stack.executor.approve(proposal.chat_id, proposal.id, proposal.revision)
    assert claimed.proposal is not None
    # The poller journalled its first leg as sending, the order reached the venue, and the
    # poller died before the answer: the other legs were never sent.
    first, *rest = await poller.stack.proposals.legs(proposal.id)
    assert await poller.stack.proposals.mark_sending(
        first.id, first.planned.amount, first.planned.price, clock(), "poller"
    )
    binance.place_order(
        "demo",
        first.planned.symbol,
        "buy" if first.planned.side == "buy" else "sell",
        first.planned.amount,
        (
            first.planned.price
            * (Decimal("1.01") if first.planned.side == "buy" else Decimal("0.99"))
        ).quantize(binance.order_rules(first.planned.symbol).price_tick),
        time_in_force="IOC",
        client_order_id=first.client_order_id,
    )

    clock.advance(seconds=LEASE.total_seconds() - 1)
    assert await worker.stack.executor.resume() == []
    assert await _status(database, proposal.id) == (ProposalStatus.EXECUTING, "poller")
    clock.advance(seconds=1)
    await worker.sweeper.run("rebalance")  # the minute sweep's resume

    done = ProposalStatus.PARTLY_EXECUTED  # the one leg sent filled; the rest were skipped
    assert await _status(database, proposal.id) == (done, None)
    legs = await worker.stack.proposals.legs(proposal.id)
    assert legs[0].state is LegState.FILLED
    assert all(leg.state is LegState.SKIPPED for leg in legs[1:])
    pending = await Outbox(database).pending()
    assert [p.notice.kind for p in pending] == [NoticeKind.REBALANCE_RESULT]

    # The poller was only slow, not dead: it sends nothing the worker has settled.
    late = await poller.stack.executor.execute(claimed.proposal)
    assert late.proposal is not None and late.proposal.status is done
    orders = Counter(order.client_order_id for order in binance.account("demo").orders.values())
    assert orders == {first.client_order_id: 1}
    assert {leg.client_order_id for leg in rest}.isdisjoint(orders)


async def _status(database: Database, proposal_id: int) -> tuple[ProposalStatus, str | None]:
    async with database.begin() as conn:
        row = (
            await conn.execute(
                select(rebalance_proposals.c.status, rebalance_proposals.c.lease_owner).where(
                    rebalance_proposals.c.id == proposal_id
                )
            )
        ).one()
    return ProposalStatus(row.status), row.lease_owner


# ----- leases and settings -----------------------------------------------------------------------


async def test_two_processes_claiming_at_once_never_share_a_row(
    database: Database, database_url: str, venues: dict[str, Any], spawn: Spawn
) -> None:
    """The claim statement itself, many rounds, each process on its own engine."""
    seeder = await spawn("seeder")
    for n in range(40):
        await store(seeder, venues["binance"], n)
    engines = [Database(database_url) for _ in range(4)]
    repositories = [
        ConnectionRepository(engine, Vault(parse_master_key(generate_master_key())))
        for engine in engines
    ]
    try:
        for round_ in range(5):
            now = T0 + timedelta(hours=round_)  # every earlier lease has expired
            claims = await asyncio.gather(
                *(
                    repo.claim_due(now, Lease(f"p{i}", now + LEASE), {"binance": 7})
                    for i, repo in enumerate(repositories)
                )
            )
            ids = [record.id for claimed in claims for record in claimed]
            assert len(ids) == len(set(ids)) == 28, round_
    finally:
        for engine in engines:
            await engine.dispose()


async def test_a_named_sweep_lease_is_taken_by_one_and_expires_for_the_others(
    database: Database, clock: ManualClock
) -> None:
    keepers = [LeaseKeeper(database, f"p{i}", LEASE, clock) for i in range(3)]
    taken = await asyncio.gather(*(keeper.take_sweep("reminders") for keeper in keepers))
    assert sorted(taken) == [False, False, True]
    clock.advance(seconds=LEASE.total_seconds())  # its holder died: the lease ran out
    assert await keepers[0].take_sweep("reminders")


async def test_a_pollers_row_is_taken_over_only_from_a_process_that_is_gone(
    database: Database, venues: dict[str, Any], spawn: Spawn, clock: ManualClock
) -> None:
    vault = Vault(parse_master_key(generate_master_key()))
    token, key = "1:token", vault.key_hash("1:token")
    here = socket.gethostname()
    dead_pid = await asyncio.to_thread(_exited_pid)

    async def poller_row(owner: str, host: str, pid: int) -> None:
        keeper = LeaseKeeper(database, owner, LEASE, clock)
        async with database.begin() as conn:
            await conn.execute(delete(pollers))
        assert await keeper.take_poller(key, host, pid, lambda _: False) is None

    newcomer = LeaseKeeper(database, "new", LEASE, clock)
    await poller_row("elsewhere", "other-host", 4242)
    with pytest.raises(AlreadyPolling, match="host other-host, pid 4242"):
        await take_polling(newcomer, token, vault)
    await poller_row("sibling", here, os.getppid())  # alive, on this host
    with pytest.raises(AlreadyPolling, match=f"pid {os.getppid()}"):
        await take_polling(newcomer, token, vault)

    # Dead on this host: taken at once, and what it held is free again.
    await poller_row("dead", here, dead_pid)
    record, _ = await store(await spawn("seeder"), venues["binance"], 0)
    repository = ConnectionRepository(database, vault)
    assert await repository.claim_due(clock(), Lease("dead", clock() + LEASE), {"binance": 1})
    assert await take_polling(newcomer, token, vault) == key
    assert (await leases(database))[record.id] is None

    # Another host's row once its heartbeat stopped for a whole lease.
    await poller_row("elsewhere", "other-host", 4242)
    clock.advance(seconds=LEASE.total_seconds())
    assert await take_polling(newcomer, token, vault) == key


def _exited_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_worker_settings_are_read_and_checked() -> None:
    settings = load_settings(
        worker_id="eu-1", venue_budgets="binance=10, kraken=0.5", sweeps="false", lease_seconds=60
    )
    assert (settings.worker_id, settings.sweeps, settings.lease_seconds) == ("eu-1", False, 60)
    assert settings.venue_budgets == {"binance": 10.0, "kraken": 0.5}
    for bad, says in (
        ("binance=10,moon=1", "unknown venue 'moon'"),
        ("binance", "expected venue=calls per second"),
        ("kraken=0", "above 0"),
    ):
        with pytest.raises(ConfigError, match=f"COINWARDEN_VENUE_BUDGETS: .*{says}"):
            load_settings(venue_budgets=bad)
    with pytest.raises(ConfigError, match="COINWARDEN_WORKER_ID"):
        load_settings(worker_id="x" * 65)
