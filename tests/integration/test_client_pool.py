"""The client pool through real ccxt and the local venue servers: one client per (connection,
role), markets loaded once per venue and shared, refreshed by the sweep, closed without leaks."""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta

import ccxt.async_support as ccxt
import pytest

from bot.exchanges.catalogue import get_venue
from bot.exchanges.connections import ConnectionPolicy, ConnectionService
from bot.exchanges.health import HealthPolicy
from bot.exchanges.pool import ClientPool, CredentialsLoader, MarketKey
from bot.redaction import SecretRedactor
from bot.sandbox.exchanges import (
    SERVERS,
    BinanceServer,
    DemoKey,
    DemoPermissions,
    OkxServer,
    VenueServer,
)
from storage.activity import ActivityLog
from storage.connections import ConnectionRecord, ConnectionRepository, ConnectionStatus
from storage.credentials import Credentials, KeyRole
from storage.database import Database
from storage.vault import Vault, generate_master_key, parse_master_key

# An unclosed aiohttp session warns from __del__: make that fail the test that leaked it.
pytestmark = pytest.mark.filterwarnings("error::ResourceWarning")

#: What each venue's load_markets asks for (Kraken's also brings its asset list: currencies).
MARKETS_PATHS = {
    "binance": ["/api/v3/exchangeInfo"],
    "okx": ["/api/v5/public/instruments"],
    "kraken": ["/0/public/Assets", "/0/public/AssetPairs"],
}
T0 = datetime(2025, 1, 6, 12, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def connection(connection_id: int, venue: str, *, sandbox: bool = False) -> ConnectionRecord:
    return ConnectionRecord(
        id=connection_id,
        chat_id=1000 + connection_id,
        label=f"{venue} {connection_id}",
        venue=venue,
        sandbox=sandbox,
        status=ConnectionStatus.CONNECTED,
        status_detail=None,
        status_at=T0,
        read_key=None,
        trade_key=None,
        last_sync_at=None,
        last_ok_at=None,
        created_at=T0,
    )


class Keys:
    """Credentials loaders that count how often the pool decrypts a key."""

    def __init__(self) -> None:
        self.unlocked: Counter[str] = Counter()

    def loader(self, key: DemoKey) -> CredentialsLoader:
        async def unlock() -> Credentials:
            self.unlocked[key.api_key] += 1
            return Credentials(key.api_key, key.secret, key.passphrase)

        return unlock


def hits(server: VenueServer, paths: Iterable[str]) -> int:
    wanted = set(paths)
    return sum(1 for request in server.request_log if request.path in wanted)


def issue(server: VenueServer, permissions: DemoPermissions | None = None) -> DemoKey:
    """A read key the venue accepts for balances (a futures venue wants futures rights)."""
    venue = get_venue(server.venue_id)
    if permissions is None and venue.requires_derivatives:
        permissions = DemoPermissions(futures_trade=True)
    return server.issue_key(permissions, with_passphrase=venue.needs_passphrase)


@pytest.fixture
async def servers() -> AsyncIterator[dict[str, VenueServer]]:
    async with AsyncExitStack() as stack:
        yield {venue: await stack.enter_async_context(SERVERS[venue]()) for venue in MARKETS_PATHS}


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
async def pool(servers: dict[str, VenueServer], clock: Clock) -> AsyncIterator[ClientPool]:
    pool = ClientPool({venue: server.base_url for venue, server in servers.items()}, clock=clock)
    yield pool
    await pool.close()


async def test_one_client_per_connection_and_role_built_on_first_use(
    servers: dict[str, VenueServer], pool: ClientPool
) -> None:
    binance = servers["binance"]
    read_key, trade_key = issue(binance), issue(binance, DemoPermissions(spot_trade=True))
    keys = Keys()
    account = connection(1, "binance")
    assert len(pool) == 0 and binance.request_log == []  # nothing is built ahead of use

    reader = await pool.client(account, KeyRole.READ, keys.loader(read_key))
    assert await pool.client(account, KeyRole.READ, keys.loader(read_key)) is reader
    trader = await pool.client(account, KeyRole.TRADE, keys.loader(trade_key))

    assert trader is not reader and len(pool) == 2
    assert (reader.apiKey, trader.apiKey) == (read_key.api_key, trade_key.api_key)
    assert keys.unlocked == {read_key.api_key: 1, trade_key.api_key: 1}


async def test_markets_are_loaded_once_for_every_connection_of_a_venue(
    servers: dict[str, VenueServer], pool: ClientPool
) -> None:
    keys = Keys()
    ids = itertools.count(1)
    for venue, server in servers.items():
        clients = [
            await pool.client(
                connection(next(ids), venue), KeyRole.READ, keys.loader(issue(server))
            )
            for _ in range(5)
        ]
        balances = [await client.fetch_balance() for client in clients]

        assert all(balance["total"]["BTC"] == pytest.approx(0.5234) for balance in balances)
        assert all(hits(server, [path]) == 1 for path in MARKETS_PATHS[venue])
        shared = clients[0]
        assert all(
            client.markets is shared.markets
            and client.currencies is shared.currencies
            and client.ssl_context is shared.ssl_context  # one CA bundle in memory, not one each
            for client in clients
        )


async def read_balance_and_price(venue: str) -> None:
    """One venue: a pooled client uses what the shared load brought and loads nothing itself."""
    async with SERVERS[venue]() as server:
        pool = ClientPool({venue: server.base_url})
        try:
            await pool.markets.load(MarketKey(venue, server.base_url, sandbox=False))
            loader_paths = {request.path for request in server.request_log}
            record = connection(1, venue)
            client = await pool.client(record, KeyRole.READ, Keys().loader(issue(server)))
            symbol = next(symbol for symbol in server.prices if symbol in client.markets)

            balance = await client.fetch_balance()
            ticker = await client.fetch_ticker(symbol)

            assert balance["total"].get("BTC") == pytest.approx(0.5234), venue
            assert ticker["symbol"] == symbol and ticker["last"], venue
            client_paths = {
                str(call.endpoint).split(" ")[1] for call in pool.drain_calls(record.id)
            }
            assert client_paths and not client_paths & loader_paths, venue
        finally:
            await pool.close()


async def test_pooled_clients_of_every_venue_read_balances_and_prices_from_shared_markets() -> None:
    """Markets, currencies and helper indexes reach the client, and account state it would have
    learnt while loading its own markets (KuCoin's HF account) is asked for separately."""
    await asyncio.gather(*(read_balance_and_price(venue) for venue in SERVERS))


async def test_account_setup_that_fails_is_logged_and_retried_on_next_use() -> None:
    async with SERVERS["kucoin"]() as kucoin:
        pool = ClientPool({"kucoin": kucoin.base_url})
        try:
            key = issue(kucoin)
            record = connection(1, "kucoin")
            kucoin.revoke_key(key.api_key)
            with pytest.raises(ccxt.AuthenticationError):
                await pool.client(record, KeyRole.READ, Keys().loader(key))
            kucoin.restore_key(key.api_key)

            client = await pool.client(record, KeyRole.READ, Keys().loader(key))

            assert (await client.fetch_balance())["total"]["BTC"] == pytest.approx(0.5234)
            setup_calls = [
                call.outcome
                for call in pool.drain_calls(record.id)
                if call.endpoint == "GET /api/v1/hf/accounts/opened"
            ]
            assert setup_calls == ["error", "ok"]
        finally:
            await pool.close()


async def test_concurrent_first_use_loads_markets_and_builds_each_client_once(
    servers: dict[str, VenueServer], pool: ClientPool
) -> None:
    okx = servers["okx"]
    keys = Keys()
    loaders = [keys.loader(issue(okx)) for _ in range(6)]
    records = [connection(index, "okx") for index in range(len(loaders))]

    clients = await asyncio.gather(
        *(
            pool.client(record, KeyRole.READ, unlock)
            for record, unlock in zip(records, loaders, strict=True)
        ),
        *(pool.client(records[0], KeyRole.READ, loaders[0]) for _ in range(3)),
    )

    assert hits(okx, MARKETS_PATHS["okx"]) == 1
    assert len(set(map(id, clients))) == len(records) == len(pool)
    assert all(client is clients[0] for client in clients[len(records) :])
    assert all(count == 1 for count in keys.unlocked.values())


async def test_testnet_and_live_connections_do_not_share_markets(
    servers: dict[str, VenueServer], pool: ClientPool
) -> None:
    okx = servers["okx"]
    assert isinstance(okx, OkxServer)
    keys = Keys()
    live = await pool.client(connection(1, "okx"), KeyRole.READ, keys.loader(issue(okx)))
    demo_key = okx.issue_key(demo_trading=True)
    demo = await pool.client(
        connection(2, "okx", sandbox=True), KeyRole.READ, keys.loader(demo_key)
    )

    assert hits(okx, MARKETS_PATHS["okx"]) == 2
    assert demo.markets is not live.markets
    assert (await demo.fetch_balance())["total"]["BTC"] == pytest.approx(0.5234)


async def test_refresh_reloads_once_when_due_and_every_client_sees_the_new_listing(
    servers: dict[str, VenueServer], pool: ClientPool, clock: Clock
) -> None:
    binance = servers["binance"]
    assert isinstance(binance, BinanceServer)
    keys = Keys()
    clients = [
        await pool.client(connection(index, "binance"), KeyRole.READ, keys.loader(issue(binance)))
        for index in range(1, 4)
    ]
    assert "TRX/USDT" in clients[0].markets
    binance.markets = tuple(m for m in binance.markets if m.symbol != "TRX/USDT")  # delisted

    assert await pool.markets.refresh_due(T0 + timedelta(minutes=59)) == []
    assert hits(binance, MARKETS_PATHS["binance"]) == 1

    clock.now = T0 + timedelta(hours=1)
    refreshed = await asyncio.gather(*(pool.markets.refresh_due(clock.now) for _ in range(3)))

    key = MarketKey("binance", binance.base_url, sandbox=False)
    assert refreshed == [[key]] * 3  # three sweeps asked, one reload ran
    assert hits(binance, MARKETS_PATHS["binance"]) == 2
    for client in clients:
        assert client.markets is clients[0].markets
        assert "TRX/USDT" not in client.markets
        assert "TRX/USDT" not in await client.load_markets()
    assert await pool.markets.refresh_due(clock.now) == []  # fresh again


async def test_a_failed_refresh_keeps_the_markets_and_the_next_sweep_retries(
    servers: dict[str, VenueServer],
    pool: ClientPool,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    kraken = servers["kraken"]
    client = await pool.client(connection(1, "kraken"), KeyRole.READ, Keys().loader(issue(kraken)))
    markets = client.markets
    clock.now = T0 + timedelta(hours=2)
    kraken.fail_next(status=503)

    assert await pool.markets.refresh_due(clock.now) == []
    assert client.markets is markets
    assert "markets of kraken not refreshed (ExchangeNotAvailable)" in caplog.text
    assert (await client.fetch_balance())["total"]["BTC"] == pytest.approx(0.5234)

    assert await pool.markets.refresh_due(clock.now) == [
        MarketKey("kraken", kraken.base_url, sandbox=False)
    ]
    assert client.markets is not markets


async def test_closing_a_connection_closes_only_its_clients(
    servers: dict[str, VenueServer], pool: ClientPool
) -> None:
    binance = servers["binance"]
    keys = Keys()
    revoked, kept = connection(1, "binance"), connection(2, "binance")
    revoked_read = await pool.client(revoked, KeyRole.READ, keys.loader(issue(binance)))
    revoked_trade = await pool.client(
        revoked, KeyRole.TRADE, keys.loader(issue(binance, DemoPermissions(spot_trade=True)))
    )
    other = await pool.client(kept, KeyRole.READ, keys.loader(issue(binance)))
    for client in (revoked_read, revoked_trade):
        await client.fetch_balance()  # sessions open, as a sweep leaves them

    await pool.close_connection(revoked.id)

    assert len(pool) == 1
    for client in (revoked_read, revoked_trade):
        with pytest.raises(ccxt.ExchangeClosedByUser):
            await client.fetch_balance()
    assert (await other.fetch_balance())["total"]["BTC"] == pytest.approx(0.5234)
    rotated = issue(binance)
    fresh = await pool.client(revoked, KeyRole.READ, keys.loader(rotated))
    assert fresh is not revoked_read and fresh.apiKey == rotated.api_key


async def test_shutdown_closes_every_client_at_once_without_unclosed_session_warnings(
    servers: dict[str, VenueServer], pool: ClientPool, caplog: pytest.LogCaptureFixture
) -> None:
    keys = Keys()
    ids = itertools.count(1)
    clients = [
        await pool.client(connection(next(ids), venue), KeyRole.READ, keys.loader(issue(server)))
        for venue, server in servers.items()
        for _ in range(3)
    ]
    await asyncio.gather(*(client.fetch_balance() for client in clients))
    assert len(pool) == 9

    started = time.monotonic()
    await pool.close()
    elapsed = time.monotonic() - started
    await pool.close()  # idempotent

    assert len(pool) == 0
    assert elapsed < 1.0  # 9 × 250 ms if closed one after another
    with pytest.raises(RuntimeError, match="closed"):
        await pool.client(connection(99, "okx"), KeyRole.READ, keys.loader(issue(servers["okx"])))
    clients.clear()
    with caplog.at_level(logging.WARNING):
        gc.collect()  # an unclosed session would warn (ResourceWarning, asyncio, ccxt) now
    assert "Unclosed" not in caplog.text and "release all resources" not in caplog.text


async def test_calls_are_recorded_per_connection_without_secrets(
    servers: dict[str, VenueServer], pool: ClientPool
) -> None:
    okx = servers["okx"]
    key = issue(okx)
    record = connection(7, "okx")
    client = await pool.client(record, KeyRole.READ, Keys().loader(key))
    await client.fetch_balance()
    await client.fetch_ticker("BTC/USDT")

    calls = pool.drain_calls(record.id)

    assert [call.endpoint for call in calls] == [
        "GET /api/v5/account/balance",
        "GET /api/v5/market/ticker",
    ]  # the shared markets load is nobody's call
    assert all(call.http_status == 200 and call.outcome == "ok" for call in calls)
    recorded = repr(calls)
    assert key.passphrase
    assert all(secret not in recorded for secret in (key.api_key, key.secret, key.passphrase))
    assert pool.drain_calls(record.id) == []


async def test_revoking_a_connection_closes_its_pooled_clients(
    servers: dict[str, VenueServer], pool: ClientPool, database: Database
) -> None:
    binance = servers["binance"]
    repository = ConnectionRepository(database, Vault(parse_master_key(generate_master_key())))
    service = ConnectionService(
        repository,
        ActivityLog(database),
        ConnectionPolicy(
            max_per_chat=10,
            endpoints={"binance": binance.base_url},
            health=HealthPolicy(timedelta(seconds=60)),
        ),
        SecretRedactor(),
        pool=pool,
    )
    key = issue(binance)
    record = await repository.add(
        42,
        label="main",
        venue="binance",
        sandbox=False,
        role=KeyRole.READ,
        credentials=Credentials(key.api_key, key.secret),
        permissions="read",
        limit=10,
        now=T0,
    )

    async def unlock() -> Credentials:  # how the sweeps will hand over a stored key
        credentials = await repository.credentials(42, record.id, KeyRole.READ)
        assert credentials is not None
        return credentials

    client = await pool.client(record, KeyRole.READ, unlock)
    await client.fetch_balance()

    assert await service.revoke(42, record.id) is not None

    assert len(pool) == 0
    with pytest.raises(ccxt.ExchangeClosedByUser):
        await client.fetch_balance()
