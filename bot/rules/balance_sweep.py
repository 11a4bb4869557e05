"""The balance sweep: read every due connection once, and let that read speak for its health.

Per connection and period there is exactly one signed call, the venue's balance read. Its
outcome drives the health state machine (``bot.exchanges.health.decide``) and, when it
succeeds, becomes a valued snapshot, written in the same transaction as the health outcome and
its notice, and the chat's alert rules are evaluated on it in that same transaction. The
permission probe (a key that gained the right to withdraw, a trade key that
lost its rights) runs on its own slower cadence, and on every read of a connection that is not
Connected, so a flagged key is never cleared by a balance read alone.

Public prices are fetched once per price source per run (``PriceFeed``), before the first
read that needs them, and shared by every connection of every chat. Each connection's outcome
is committed as soon as it is known, so a sweep cut short by a restart has recorded what it
finished and the rest is still due. A venue that answers "rate limited" gets no more calls from
this run.

Several processes may sweep one database (``python -m bot worker``): a run claims the due
connections with a lease (``storage.leases``) in small chunks, per venue, as its reads go: a
few seconds of this process's budget there, the next chunk once half of the last is still
pending. So each process takes work as fast as it reads it (not a whole period's worth up
front), and the rows of a process that died are taken by a running sweep once their lease
expires, not a period later. A run only takes what was due when it started, so it ends. Each
read's transaction releases its row; what a run claimed and did not read it gives back. Two
processes never read one connection at once.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Protocol

import ccxt.async_support as ccxt
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.clock import Clock, utc_now
from bot.exchanges.balances import Holdings, read_holdings
from bot.exchanges.catalogue import VENUES, get_venue
from bot.exchanges.connections import ConnectionService
from bot.exchanges.diagnosis import diagnose
from bot.exchanges.health import HealthPolicy, Observation, decide, observe
from bot.exchanges.pool import ClientPool
from bot.exchanges.prices import PriceFeed, PriceSource, Valuation, value_holdings
from bot.rules.throttle import VenueBudgets
from storage.activity import ActivityLog
from storage.chats import ChatRepository, ChatSettings
from storage.connections import (
    AfterRead,
    ConnectionRecord,
    ConnectionRepository,
    ConnectionStatus,
)
from storage.credentials import Credentials, KeyRole
from storage.leases import DEFAULT_LENGTH, Leased, LeaseKeeper, default_owner, release
from storage.snapshots import Snapshot, SnapshotAsset

log = logging.getLogger(__name__)

#: Seconds of this process's budget on a venue that one claim takes: enough to keep the
#: venue's throttle busy until the next claim (made while half of it is still pending), few
#: enough that each process's share follows how fast it really reads.
CHUNK_SECONDS = 5
#: Rows one claim takes at most, whatever the budget: a budget far above what the process can
#: read would otherwise claim a whole venue at once and hold it from the other processes.
MAX_CHUNK = 100


def chunk_size(venue_id: str, per_second: float) -> int:
    """Connections of a venue one claim takes: ``CHUNK_SECONDS`` of this process's budget there
    (COINWARDEN_VENUE_BUDGETS, so a worker with a bigger budget takes more), and at least two
    rounds of the venue's reads in flight, within ``MAX_CHUNK``."""
    floor = 2 * get_venue(venue_id).sweep_concurrency
    return min(MAX_CHUNK, max(floor, math.ceil(per_second * CHUNK_SECONDS)))


class ReadWatcher(Protocol):
    """Evaluates something on each fresh snapshot (alerts, rebalancing drift), inside the
    transaction that records it, so what it decides and queues is written with it."""

    def after_read(self, record: ConnectionRecord, now: datetime) -> AfterRead: ...


def after_all(hooks: Sequence[AfterRead]) -> AfterRead:
    """One hook that runs ``hooks`` in order."""

    async def run(conn: AsyncConnection, status: ConnectionStatus) -> None:
        for hook in hooks:
            await hook(conn, status)

    return run


class ConnectionGone(Exception):
    """The connection was revoked while the sweep was about to use it."""


@dataclass(frozen=True)
class ReadOutcome:
    """What one read found: a problem (None = healthy) and, if healthy, the valued snapshot."""

    seen: Observation
    snapshot: Snapshot | None = None
    recorded: bool = False  # the outcome was written (the connection still held these keys)


def source_of(record: ConnectionRecord) -> PriceSource:
    return PriceSource(record.venue, record.sandbox)


def to_snapshot(
    record: ConnectionRecord, holdings: Holdings, valuation: Valuation, now: datetime
) -> Snapshot:
    extra: dict[str, str] = {}
    if holdings.futures is not None:
        futures = holdings.futures
        extra = {
            "settle": futures.settle,
            "wallet_balance": format(futures.wallet_balance, "f"),
            "unrealised_pnl": format(futures.unrealised_pnl, "f"),
            "margin_balance": format(futures.margin_balance, "f"),
            "initial_margin": format(futures.initial_margin, "f"),
            "available": format(futures.available, "f"),
        }
    return Snapshot(
        connection_id=record.id,
        chat_id=record.chat_id,
        taken_at=now,
        quote=valuation.quote,
        assets={
            a.asset: SnapshotAsset(
                a.balance.free, a.balance.used, a.price, a.value, " ".join(a.via) or None
            )
            for a in valuation.assets
        },
        extra=extra,
    )


class BalanceReader:
    """One connection's read: the balance (one signed call), the permission probe when due,
    the valuation, and the write of all of it with the health outcome."""

    def __init__(
        self,
        connections: ConnectionService,
        repository: ConnectionRepository,
        activity: ActivityLog,
        pool: ClientPool,
        prices: PriceFeed,
        chats: ChatRepository,
        policy: HealthPolicy,
        *,
        permission_period: timedelta,
        watchers: Sequence[ReadWatcher] = (),
        clock: Clock = utc_now,
    ) -> None:
        self._connections = connections
        self._watchers = tuple(watchers)
        self._repo = repository
        self._activity = activity
        self._pool = pool
        self.prices = prices
        self._chats = chats
        self.policy = policy
        self._permission_period = permission_period
        self._clock = clock

    def policy_for(self, record: ConnectionRecord) -> HealthPolicy:
        """The bot's period, or the slower one the chat chose for this connection."""
        return self.policy.of(record)

    @staticmethod
    def probe_due(record: ConnectionRecord, now: datetime) -> bool:
        """Whether this read also probes the keys' permissions: on their cadence, and while
        the connection is not Connected (a key flagged for its rights stays flagged until a
        probe clears it)."""
        return (
            record.status is not ConnectionStatus.CONNECTED
            or record.next_permission_check_at is None
            or record.next_permission_check_at <= now
        )

    def calls(self, record: ConnectionRecord, now: datetime) -> int:
        """The signed calls a read of ``record`` makes now (for the venue budget)."""
        return 1 + (len(record.roles) if self.probe_due(record, now) else 0)

    async def read(
        self,
        record: ConnectionRecord,
        settings: ChatSettings,
        *,
        live: bool = False,
        priced: Awaitable[object] | None = None,
        lease_owner: str | None = None,
    ) -> ReadOutcome | None:
        """Read, value and record one connection; None if it went away meanwhile.

        ``live`` is a read the user asked for (Refresh): they see the outcome at once, so a
        failure is shown to them rather than recorded (the sweep judges health), and a
        success is recorded without a notice. ``priced`` is awaited before the valuation: a
        ticker call that runs alongside the balance read. ``lease_owner``: the sweep process
        that claimed the row; the write that records the read releases its lease.
        """
        venue = get_venue(record.venue)
        probe_due = self.probe_due(record, self._clock())
        holdings: Holdings | None = None
        try:
            client = await self._pool.client(
                record, record.reading_role, partial(self._credentials, record, record.reading_role)
            )
            holdings = await read_holdings(client, venue)
            seen = Observation()
            if probe_due:
                seen = await observe(self._pool, record, venue, partial(self._credentials, record))
        except ConnectionGone:
            return None
        except (ccxt.BaseError, ValueError) as exc:
            seen = Observation(diagnose(exc), record.reading_role)
        finally:
            await self._activity.record(record.id, *self._pool.drain_calls(record.id))
        if seen.problem is not None:
            seen = replace(seen, problem=self._connections.scrubbed(seen.problem))
        snapshot = None
        if holdings is not None:
            if priced is not None:
                await priced
            valuation = value_holdings(
                holdings, self.prices.view(), settings.quote, source_of(record)
            )
            snapshot = to_snapshot(record, holdings, valuation, self._clock())
        if live and seen.problem is not None:
            return ReadOutcome(seen, snapshot)
        now = self._clock()
        policy = self.policy_for(record)
        hooks = (
            [watcher.after_read(record, now) for watcher in self._watchers]
            if snapshot is not None
            else []
        )
        if lease_owner is not None:
            hooks.append(_releasing(record.id, lease_owner))
        recorded = await self._repo.record_health(
            record.chat_id,
            record.id,
            keys_version=record.keys_version,
            decide=lambda current: decide(current, seen, policy, now, announce=not live),
            now=now,
            snapshot=snapshot,
            next_permission_check_at=(
                now + self._permission_period if probe_due and seen.permissions else None
            ),
            after=after_all(hooks) if hooks else None,
        )
        return ReadOutcome(seen, snapshot, recorded)

    async def refresh(self, chat_id: int, connection_ids: Sequence[int]) -> dict[int, ReadOutcome]:
        """Live reads the user asked for, concurrently, with fresh prices for their venues."""
        records = [
            record
            for connection_id in connection_ids
            if (record := await self._repo.get(chat_id, connection_id)) is not None
        ]
        settings = await self._chats.settings(chat_id)
        # Tickers and balances at once: a Refresh takes about one round trip, not two.
        tickers = {
            source: asyncio.ensure_future(self.prices.refresh(source))
            for source in {source_of(r) for r in records}
        }
        outcomes = await asyncio.gather(
            *(self.read(r, settings, live=True, priced=tickers[source_of(r)]) for r in records)
        )
        await asyncio.gather(*tickers.values())
        return {
            record.id: outcome
            for record, outcome in zip(records, outcomes, strict=True)
            if outcome is not None
        }

    async def _credentials(self, record: ConnectionRecord, role: KeyRole) -> Credentials:
        credentials = await self._connections.credentials(record.chat_id, record.id, role)
        if credentials is None:
            raise ConnectionGone(record.id)
        return credentials


def _releasing(connection_id: int, owner: str) -> AfterRead:
    async def release_lease(conn: AsyncConnection, _status: ConnectionStatus) -> None:
        await release(conn, Leased.CONNECTIONS.table, [connection_id], owner)

    return release_lease


@dataclass
class SweepReport:
    """What one run did, for logs, tests and benchmarks."""

    checked: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)  # claimed, left due (rate limit, revoked)
    priced: list[PriceSource] = field(default_factory=list)  # ticker calls made
    claims: int = 0  # chunks claimed (claim statements that took rows)


class BalanceSweep:
    name = "balance"

    def __init__(
        self,
        reader: BalanceReader,
        repository: ConnectionRepository,
        pool: ClientPool,
        chats: ChatRepository,
        *,
        budgets: VenueBudgets | None = None,
        clock: Clock = utc_now,
        leases: LeaseKeeper | None = None,
    ) -> None:
        self._reader = reader
        self._repo = repository
        self._pool = pool
        self._chats = chats
        self._budgets = budgets or VenueBudgets()
        self._clock = clock
        #: The process's leases (a process of its own when not given: one-process use).
        self._leases = leases or LeaseKeeper(
            repository.database, default_owner(), DEFAULT_LENGTH, clock
        )
        self.last_report = SweepReport()

    async def run(self) -> str:
        started = self._clock()
        await self._pool.markets.refresh_due(started)
        report = SweepReport()
        held: set[int] = set()  # claimed, neither read nor given back yet
        venues = [
            asyncio.create_task(self._venue(venue, started, report, held)) for venue in VENUES
        ]
        try:
            await asyncio.gather(*venues)
        except Exception:
            # A failed run stops everywhere and gives its rows back; a cancelled one (the
            # process is dying) keeps them until the lease expires.
            for task in venues:
                task.cancel()
            await asyncio.wait(venues)
            await self._leases.release(Leased.CONNECTIONS, held)
            raise
        self.last_report = report
        return (
            f"{len(report.checked)} read in {report.claims} claims, "
            f"{len(report.skipped)} left for the next run"
        )

    async def _venue(
        self, venue: str, due_by: datetime, report: SweepReport, held: set[int]
    ) -> None:
        """Claim the venue's connections due by ``due_by`` a chunk at a time and read them
        through its throttle, claiming the next chunk while half a chunk is still pending (the
        throttle never idles for the slowest read), until a claim finds none or the venue
        says "rate limited"; what was claimed and not read is given back."""
        throttle = self._budgets(venue)
        size = chunk_size(venue, throttle.per_second)
        rate_limited = asyncio.Event()
        priced: set[PriceSource] = set()
        claimed: set[int] = set()
        pending: set[asyncio.Task[None]] = set()

        async def one(record: ConnectionRecord, settings: ChatSettings) -> None:
            async with throttle.slot(cost=self._reader.calls(record, self._clock())):
                if rate_limited.is_set():
                    report.skipped.append(record.id)
                    return
                outcome = await self._reader.read(record, settings, lease_owner=self._leases.owner)
            if outcome is None or not outcome.recorded:
                report.skipped.append(record.id)
                return
            held.discard(record.id)  # its write released it
            report.checked.append(record.id)
            problem = outcome.seen.problem
            if problem is not None and problem.rate_limited:
                rate_limited.set()

        try:
            while not rate_limited.is_set():
                chunk = await self._repo.claim_due(
                    self._clock(), self._leases.lease(), {venue: size}, due_by=due_by
                )
                if not chunk:
                    break
                report.claims += 1
                ids = {record.id for record in chunk}
                claimed.update(ids)
                held.update(ids)
                for source in sorted({source_of(r) for r in chunk} - priced, key=_source_order):
                    await self._price(source, report)
                    priced.add(source)
                settings = await self._chats.settings_for({record.chat_id for record in chunk})
                pending |= {
                    asyncio.create_task(one(record, settings[record.chat_id])) for record in chunk
                }
                while 2 * len(pending) >= size and not rate_limited.is_set():
                    done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                    for task in done:
                        task.result()  # a read that failed fails the run
            for finished in asyncio.as_completed(pending):
                await finished
        finally:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        # Rate limited, revoked or rotated meanwhile: given back at once.
        unread = claimed & held
        held.difference_update(unread)
        await self._leases.release(Leased.CONNECTIONS, unread)

    async def _price(self, source: PriceSource, report: SweepReport) -> None:
        async with self._budgets(source.venue_id).slot():
            await self._reader.prices.refresh(source)
        report.priced.append(source)


def _source_order(source: PriceSource) -> tuple[str, bool]:
    return (source.venue_id, source.sandbox)
