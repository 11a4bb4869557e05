"""The balance sweep: read every due connection once, and let that read speak for its health.

Per connection and period there is exactly one signed call, the venue's balance read. Its
outcome drives the health state machine (``bot.exchanges.health.decide``) and, when it
succeeds, becomes a valued snapshot, written in the same transaction as the health outcome and
its notice, and the chat's alert rules are evaluated on it in that same transaction. The
permission probe (a key that gained the right to withdraw, a trade key that
lost its rights) runs on its own slower cadence, and on every read of a connection that is not
Connected, so a flagged key is never cleared by a balance read alone.

Public prices are fetched once per venue per sweep (``PriceFeed``), before the reads, and
shared by every connection of every chat. Each connection's outcome is committed as soon as it
is known, so a sweep cut short by a restart has recorded what it finished and the rest is
still due. A venue that answers "rate limited" gets no more calls from this run.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Protocol

import ccxt.async_support as ccxt
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.clock import Clock, utc_now
from bot.exchanges.balances import Holdings, read_holdings
from bot.exchanges.catalogue import get_venue
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
from storage.snapshots import Snapshot, SnapshotAsset

log = logging.getLogger(__name__)

#: Connections taken per run; the rest stay due for the next one (oldest first).
DEFAULT_BATCH = 2000


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
    ) -> ReadOutcome | None:
        """Read, value and record one connection; None if it went away meanwhile.

        ``live`` is a read the user asked for (Refresh): they see the outcome at once, so a
        failure is shown to them rather than recorded (the sweep judges health), and a
        success is recorded without a notice. ``priced`` is awaited before the valuation: a
        ticker call that runs alongside the balance read.
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
            after=(
                after_all([watcher.after_read(record, now) for watcher in self._watchers])
                if self._watchers and snapshot is not None
                else None
            ),
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


@dataclass
class SweepReport:
    """What one run did, for logs, tests and benchmarks."""

    checked: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)  # left due (rate limit, revoked meanwhile)
    priced: list[PriceSource] = field(default_factory=list)  # ticker calls made


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
        batch: int = DEFAULT_BATCH,
    ) -> None:
        self._reader = reader
        self._repo = repository
        self._pool = pool
        self._chats = chats
        self._budgets = budgets or VenueBudgets()
        self._clock = clock
        self._batch = batch
        self.last_report = SweepReport()

    async def run(self) -> None:
        now = self._clock()
        await self._pool.markets.refresh_due(now)
        due = await self._repo.due_for_check(now, self._batch)
        settings = await self._chats.settings_for({record.chat_id for record in due})
        by_venue: dict[str, list[ConnectionRecord]] = defaultdict(list)
        for record in due:
            by_venue[record.venue].append(record)
        report = SweepReport()
        sources = sorted({source_of(r) for r in due}, key=lambda s: (s.venue_id, s.sandbox))
        await asyncio.gather(*(self._price(source, report) for source in sources))
        await asyncio.gather(
            *(self._venue(records, settings, report) for records in by_venue.values())
        )
        self.last_report = report
        if report.checked or report.skipped:
            log.info(
                "balance sweep: %d read, %d left for the next run",
                len(report.checked),
                len(report.skipped),
            )

    async def _price(self, source: PriceSource, report: SweepReport) -> None:
        async with self._budgets(source.venue_id).slot():
            await self._reader.prices.refresh(source)
        report.priced.append(source)

    async def _venue(
        self,
        records: Sequence[ConnectionRecord],
        settings: dict[int, ChatSettings],
        report: SweepReport,
    ) -> None:
        throttle = self._budgets(records[0].venue)
        rate_limited = asyncio.Event()

        async def one(record: ConnectionRecord) -> None:
            async with throttle.slot(cost=self._reader.calls(record, self._clock())):
                if rate_limited.is_set():
                    report.skipped.append(record.id)
                    return
                outcome = await self._reader.read(record, settings[record.chat_id])
            if outcome is None or not outcome.recorded:
                report.skipped.append(record.id)
                return
            report.checked.append(record.id)
            problem = outcome.seen.problem
            if problem is not None and problem.rate_limited:
                rate_limited.set()

        await asyncio.gather(*(one(record) for record in records))
