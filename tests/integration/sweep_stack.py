"""What the balance-sweep tests share: one bot process's sweep objects over a real database (the
``database`` fixture: SQLite and PostgreSQL), the venue servers it talks to, a manual clock, and
connections stored as /connect stores them.

A restart is a new ``Stack`` over the same database (``StackFactory`` builds them all with one
master key, as a restarted bot would have, and closes their pools at the end).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Self

from bot.exchanges.catalogue import get_venue
from bot.exchanges.connections import ConnectionPolicy, ConnectionService
from bot.exchanges.health import HealthPolicy
from bot.exchanges.pool import ClientPool
from bot.exchanges.prices import PriceFeed
from bot.redaction import SecretRedactor
from bot.rules.balance_sweep import BalanceReader, BalanceSweep
from bot.rules.throttle import VenueBudgets, VenueThrottle
from bot.sandbox.exchanges import DemoKey, DemoPermissions, VenueServer
from storage.activity import ActivityLog
from storage.chats import ChatRepository
from storage.connections import ConnectionRecord, ConnectionRepository
from storage.credentials import Credentials, KeyRole
from storage.database import Database
from storage.outbox import Outbox
from storage.snapshots import SnapshotRepository
from storage.vault import Vault, generate_master_key, parse_master_key
from tests.clock import ManualClock

T0 = datetime(2026, 2, 9, 10, 0, tzinfo=UTC)
PERIOD = timedelta(minutes=5)
POLICY = HealthPolicy(PERIOD)
CHAT = 4242
PERMISSION_PERIOD = timedelta(hours=1)
#: The one signed call a sweep makes per connection: its balance read, by venue.
READ = {
    "binance": "/api/v3/account",
    "binanceusdm": "/fapi/v3/account",
    "bitget": "/api/v2/spot/account/assets",
    "bybit": "/v5/account/wallet-balance",
    "coinbase": "/api/v3/brokerage/accounts",
    "kraken": "/0/private/BalanceEx",
    "kucoin": "/api/v1/accounts",
    "okx": "/api/v5/account/balance",
}


class OneLane(VenueBudgets):
    """Each venue's checks one at a time and without spacing: they run in the order they are
    due and no test waits for a rate budget (the throttle has tests of its own)."""

    def __init__(self) -> None:
        super().__init__()
        self._lanes: dict[str, VenueThrottle] = {}

    def __call__(self, venue_id: str) -> VenueThrottle:
        return self._lanes.setdefault(venue_id, VenueThrottle(1, 1_000_000))


class Stack:
    """What one bot process holds for the sweep; a restart is a new Stack on the same database."""

    def __init__(
        self,
        database: Database,
        vault: Vault,
        clock: ManualClock,
        servers: tuple[VenueServer, ...],
        timeout_ms: int,
    ) -> None:
        endpoints = {server.venue_id: server.base_url for server in servers}
        self.repo = ConnectionRepository(database, vault)
        self.activity = ActivityLog(database)
        self.snapshots = SnapshotRepository(database)
        self.pool = ClientPool(endpoints, clock=clock, timeout_ms=timeout_ms, paced=False)
        self.service = ConnectionService(
            self.repo,
            self.activity,
            ConnectionPolicy(max_per_chat=20, endpoints=endpoints, health=POLICY, paced=False),
            SecretRedactor(),
            clock=clock,
            pool=self.pool,
        )
        chats = ChatRepository(database)
        self.reader = BalanceReader(
            self.service,
            self.repo,
            self.activity,
            self.pool,
            PriceFeed(self.pool, clock=clock),
            chats,
            POLICY,
            permission_period=PERMISSION_PERIOD,
            clock=clock,
        )
        self.sweep = BalanceSweep(
            self.reader, self.repo, self.pool, chats, budgets=OneLane(), clock=clock
        )

    async def get(self, record: ConnectionRecord) -> ConnectionRecord:
        current = await self.repo.get(record.chat_id, record.id)
        assert current is not None
        return current


class StackFactory:
    """Builds stacks (one master key for all, as after a restart); closes their pools on exit."""

    def __init__(self, database: Database, clock: ManualClock) -> None:
        self._database = database
        self._clock = clock
        self._vault = Vault(parse_master_key(generate_master_key()))
        self._made: list[Stack] = []

    def __call__(self, *servers: VenueServer, timeout_ms: int = 3000) -> Stack:
        stack = Stack(self._database, self._vault, self._clock, servers, timeout_ms)
        self._made.append(stack)
        return stack

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.gather(*(stack.pool.close() for stack in self._made))


MakeStack = Callable[..., Stack]


async def store(
    stack: Stack,
    server: VenueServer,
    label: str,
    *,
    next_check_at: datetime | None = None,
    next_permission_check_at: datetime | None = T0 + PERMISSION_PERIOD,
) -> tuple[ConnectionRecord, DemoKey]:
    """A read key issued on the venue, stored as a connection (due at once unless told), its
    permissions probed as it was connected. A futures venue's key has futures rights (the
    venue answers nothing without them); a passphrase where the venue has one."""
    venue = get_venue(server.venue_id)
    key = server.issue_key(
        DemoPermissions(read=True, futures_trade=venue.requires_derivatives),
        with_passphrase=venue.needs_passphrase,
    )
    record = await stack.repo.add(
        CHAT,
        label=label,
        venue=server.venue_id,
        sandbox=False,
        role=KeyRole.READ,
        credentials=Credentials(key.api_key, key.secret, key.passphrase),
        permissions="read,noip",
        limit=20,
        now=T0,
        next_check_at=next_check_at,
        next_permission_check_at=next_permission_check_at,
    )
    return record, key


def down(server: VenueServer, status: int) -> None:
    """The venue fails the next sweep's calls: its one ticker call, then the balance read."""
    server.fail_next(2, status=status)


def reads(server: VenueServer) -> list[int]:
    """The HTTP statuses of the balance reads the venue has answered, in order."""
    return [r.status for r in server.request_log if r.path == READ[server.venue_id]]


async def transitions(database: Database) -> list[tuple[int | None, str, str]]:
    """Pending status notices as (connection, previous, status)."""
    return [
        (p.notice.connection_id, p.notice.payload["previous"], p.notice.payload["status"])
        for p in await Outbox(database).pending()
    ]
