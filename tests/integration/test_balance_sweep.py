"""The balance sweep against all eight local venue servers and a real SQLite file, on a manual
clock: what each venue is asked for per sweep (from its request log), the snapshots the reads
leave, tickers that fail, the permission probe's cadence, health notices, and a restart.

Each venue's request paths fall in four kinds: the public ticker list (one call per venue per
sweep), the balance read (the one signed call per connection per sweep), the account-mode
detection some venues make once per client (Bybit, Bitget, KuCoin), and the permission probe
(hourly, or while a connection is not Connected).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import AsyncExitStack
from datetime import timedelta
from decimal import Decimal
from functools import partial

import pytest

from bot.exchanges.pool import MarketKey
from bot.sandbox.exchanges import SERVERS, DemoKey, VenueServer
from storage.connections import ConnectionRecord, ConnectionStatus
from storage.credentials import Credentials, KeyRole
from storage.database import Database
from storage.snapshots import Snapshot
from tests.clock import ManualClock
from tests.integration.sweep_stack import (
    CHAT,
    PERIOD,
    PERMISSION_PERIOD,
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
#: The one public call per venue per sweep: every market's price at once.
TICKERS = {
    "binance": "/api/v3/ticker/price",  # the weight-4 last-price list
    "binanceusdm": "/fapi/v2/ticker/price",
    "bitget": "/api/v2/spot/market/tickers",
    "bybit": "/v5/market/tickers",
    "coinbase": "/api/v3/brokerage/market/products",  # prices come with the product list
    "kraken": "/0/public/Ticker",
    "kucoin": "/api/v1/market/allTickers",
    "okx": "/api/v5/market/tickers",
}
#: Signed calls ccxt makes once per client, on its first balance read, to learn the account's
#: mode (unified or classic; KuCoin's high-frequency account); the other venues make none.
SETUP = {
    "bitget": ("/api/v3/account/settings",),
    "bybit": ("/v5/user/query-api", "/v5/account/info"),
    "kucoin": ("/api/v1/hf/accounts/opened", "/api/ua/v1/account/mode"),
}
#: The permission probe of each venue (Binance's key restrictions serve both Binance venues).
PROBE = {
    "binance": "/sapi/v1/account/apiRestrictions",
    "binanceusdm": "/sapi/v1/account/apiRestrictions",
    "bitget": "/api/v2/spot/account/info",
    "bybit": "/v5/user/query-api",
    "coinbase": "/api/v3/brokerage/key_permissions",
    "kraken": "/0/private/GetApiKeyInfo",
    "kucoin": "/api/v1/user/api-key",
    "okx": "/api/v5/account/config",
}
TIMEOUT_MS = 20_000
DEMO = {"BTC": Decimal("0.5234"), "ETH": Decimal("4.182"), "USDT": Decimal("12500")}

Venues = dict[str, VenueServer]
Connections = dict[str, tuple[ConnectionRecord, DemoKey]]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
async def stacks(database: Database, clock: ManualClock) -> AsyncIterator[MakeStack]:
    """Stacks whose clients wait long for an answer: no test here runs into a timeout, and a
    busy machine is slow, not broken."""
    async with StackFactory(database, clock) as make:
        yield partial(make, timeout_ms=TIMEOUT_MS)


@pytest.fixture
async def venues() -> AsyncIterator[Venues]:
    """The eight venue servers, each holding the demo balances for every key it issues."""
    async with AsyncExitStack() as servers:
        yield {
            venue: await servers.enter_async_context(server()) for venue, server in SERVERS.items()
        }


async def connect_all(stack: Stack, servers: Iterable[VenueServer]) -> Connections:
    """One connection per venue (read key, permissions probed at connect time), with the
    venues' markets loaded as a running bot has them: the market lists are their own hourly
    public load (Coinbase's product list doubles as its tickers, so a sweep's count of it
    must not include a market load)."""
    connections = {}
    for server in servers:
        connections[server.venue_id] = await store(stack, server, server.venue_id)
        distinct_prices(server)
    await load_markets(stack, servers)
    return connections


def distinct_prices(server: VenueServer) -> None:
    """Give the held assets a price of this venue's own, on every venue's price grid (Kraken
    quotes BTC/USD in tenths), so a snapshot's price names the venue it came from."""
    offset = sorted(SERVERS).index(server.venue_id)
    start = {"BTC": Decimal(70000), "ETH": Decimal(3900), "ADA": Decimal("0.70")}
    step = {"BTC": Decimal(100), "ETH": Decimal(10), "ADA": Decimal("0.01")}
    for symbol in list(server.prices):
        base = symbol.split("/")[0]
        if base in start:
            server.set_price(symbol, start[base] + offset * step[base])


async def load_markets(stack: Stack, servers: Iterable[VenueServer]) -> None:
    await asyncio.gather(
        *(
            stack.pool.markets.load(MarketKey(server.venue_id, server.base_url, sandbox=False))
            for server in servers
        )
    )


async def sweep(stack: Stack, servers: Iterable[VenueServer]) -> dict[str, Counter[str]]:
    """Run one sweep; how often each venue was asked for each path during it."""
    asked = list(servers)
    marks = {server.venue_id: len(server.request_log) for server in asked}
    await stack.sweep.run()
    return {
        server.venue_id: Counter(r.path for r in server.request_log[marks[server.venue_id] :])
        for server in asked
    }


def steady(venue: str, *extra: str) -> Counter[str]:
    """A sweep's calls to a venue with one connection whose client is built."""
    return Counter([TICKERS[venue], READ[venue], *extra])


def first_read(venue: str) -> Counter[str]:
    """The first sweep of a new client: the same, plus the venue's one-off account setup."""
    return steady(venue, *SETUP.get(venue, ()))


def price_along(asset: str, via: str | None, servers: Mapping[str, VenueServer]) -> Decimal:
    """Recompute a snapshot's price from the servers' own last prices, along the pairs its
    ``via`` names (a pair read backwards divides; a peg is 1)."""
    assert via is not None
    price, holding = Decimal(1), asset
    for step in via.replace(" peg", "").split(" "):
        if "=" in step:  # a stablecoin at 1:1
            base, quote = step.split("=")
            assert base == holding
            holding = quote
            continue
        pair, _, venue = step.partition("@")
        base, quote = pair.split("/")
        listed = servers[venue].prices
        symbol = pair if pair in listed else f"{pair}:{quote}"  # a perpetual
        last = listed[symbol].last
        if base == holding:
            price, holding = price * last, quote
        else:
            assert quote == holding
            price, holding = price * (1 / last), base
    assert holding == "USD"
    return price


def assert_valued_in_usd(snapshot: Snapshot, servers: Mapping[str, VenueServer]) -> None:
    assert snapshot.quote == "USD" and snapshot.unpriced == ()
    for name, asset in snapshot.assets.items():
        assert asset.price is not None and asset.value == asset.total * asset.price
        assert asset.price == price_along(name, asset.via, servers), (name, asset.via)


# ----- calls per sweep ---------------------------------------------------------------------------


async def test_three_sweeps_make_one_signed_balance_read_per_connection_and_one_ticker_call_each(
    database: Database, venues: Venues, stacks: MakeStack, clock: ManualClock
) -> None:
    stack = stacks(*venues.values())
    connections = await connect_all(stack, venues.values())

    seen = []
    for _ in range(3):
        seen.append(await sweep(stack, venues.values()))
        assert sorted(stack.sweep.last_report.checked) == sorted(
            record.id for record, _ in connections.values()
        )
        assert len(stack.sweep.last_report.priced) == len(venues)
        clock.advance(minutes=PERIOD.total_seconds() / 60)

    for venue in venues:
        first, *later = (each[venue] for each in seen)
        assert first == first_read(venue), venue
        assert later == [steady(venue), steady(venue)], venue
        assert all(status == 200 for status in reads(venues[venue])), venue
    assert {venue for venue in venues if first_read(venue) != steady(venue)} == set(SETUP)

    latest = await stack.snapshots.latest(CHAT)
    for venue, (record, _) in connections.items():
        snapshot = latest[record.id]
        assert snapshot.taken_at == T0 + 2 * PERIOD
        assert {name: (a.free, a.used) for name, a in snapshot.assets.items()} == {
            name: (amount, Decimal(0)) for name, amount in DEMO.items()
        }, venue
        assert_valued_in_usd(snapshot, venues)
        for name in ("BTC", "ETH"):  # each venue prices its own holdings
            via = snapshot.assets[name].via
            assert via is not None and via.split()[0].endswith(f"@{venue}"), (venue, via)
        assert await stack.snapshots.count(record.id) == 3
        current = await stack.get(record)
        assert (current.status, current.failure_streak) == (CONNECTED, 0)
        assert current.next_permission_check_at == T0 + PERMISSION_PERIOD  # not probed
    futures = latest[connections["binanceusdm"][0].id].extra
    assert futures["settle"] == "USDT"
    assert Decimal(futures["wallet_balance"]) == DEMO["USDT"]
    assert Decimal(futures["unrealised_pnl"]) == 0
    assert await transitions(database) == []


async def test_a_balance_changed_on_the_exchange_shows_in_the_next_sweeps_snapshot(
    venues: Venues, stacks: MakeStack, clock: ManualClock
) -> None:
    stack = stacks(*venues.values())
    connections = await connect_all(stack, venues.values())
    await stack.sweep.run()
    for server in venues.values():
        server.set_balance("demo", "BTC", "1.25", "0.25")
        server.set_balance("demo", "ETH", "0")
        server.set_balance("demo", "ADA", "1000")
    clock.advance(minutes=5)

    await stack.sweep.run()

    latest = await stack.snapshots.latest(CHAT)
    for venue, (record, _) in connections.items():
        snapshot = latest[record.id]
        assert snapshot.taken_at == clock.now
        assert {name: (a.free, a.used) for name, a in snapshot.assets.items()} == {
            "BTC": (Decimal("1.25"), Decimal("0.25")),
            "ADA": (Decimal(1000), Decimal(0)),
            "USDT": (DEMO["USDT"], Decimal(0)),
        }, venue
        assert_valued_in_usd(snapshot, venues)
        btc = snapshot.assets["BTC"]
        assert btc.price is not None and btc.value == Decimal("1.5") * btc.price


async def test_a_futures_connection_is_valued_from_its_own_venues_tickers(
    stacks: MakeStack,
) -> None:
    async with SERVERS["binanceusdm"]() as server:
        stack = stacks(server)
        record, _ = (await connect_all(stack, [server]))["binanceusdm"]

        calls = (await sweep(stack, [server]))["binanceusdm"]

        snapshot = (await stack.snapshots.latest(CHAT))[record.id]
        assert [r.status for r in server.request_log if r.path == TICKERS["binanceusdm"]] == [200]
        assert calls == first_read("binanceusdm")
        assert snapshot.assets["BTC"].via == "BTC/USDT@binanceusdm USDT=USD peg"
        assert_valued_in_usd(snapshot, {"binanceusdm": server})


# ----- tickers that fail -----------------------------------------------------------------------


async def test_a_venue_whose_ticker_call_fails_is_read_and_valued_from_its_last_good_prices(
    venues: Venues, stacks: MakeStack, clock: ManualClock
) -> None:
    stack = stacks(*venues.values())
    connections = await connect_all(stack, venues.values())
    binance, okx = venues["binance"], venues["okx"]
    await stack.sweep.run()
    before = binance.prices["BTC/USDT"].last
    binance.set_price("BTC/USDT", "80000")
    okx.set_price("BTC/USDT", "80100")
    clock.advance(minutes=5)
    binance.fail_next(1, status=503)  # the sweep's first call there: the ticker list

    calls = await sweep(stack, venues.values())

    assert calls["binance"] == steady("binance")
    assert [r.status for r in binance.request_log[-2:]] == [503, 200]
    latest = await stack.snapshots.latest(CHAT)
    record = connections["binance"][0]
    btc = latest[record.id].assets["BTC"]
    usdt = venues["coinbase"].prices["USDT/USD"].last
    assert (btc.price, btc.via) == (before * usdt, "BTC/USDT@binance USDT/USD@coinbase")
    assert latest[record.id].taken_at == clock.now
    assert latest[connections["okx"][0].id].assets["BTC"].price == Decimal("80100") * usdt
    current = await stack.get(record)
    assert (current.status, current.failure_streak) == (CONNECTED, 0)

    clock.advance(minutes=5)
    await stack.sweep.run()

    btc = (await stack.snapshots.latest(CHAT))[record.id].assets["BTC"]
    assert btc.price == Decimal("80000") * usdt


async def test_with_no_good_prices_holdings_are_unpriced_never_zero_nor_stale(
    stacks: MakeStack, clock: ManualClock
) -> None:
    """One venue alone, so no other venue can price its assets: no prices yet means no price
    (the stablecoin at its peg), and prices older than the book's limit are not used."""
    async with SERVERS["binance"]() as binance:
        stack = stacks(binance)
        record, _ = (await connect_all(stack, [binance]))["binance"]

        async def valued_at(minutes: int, *, ticker_fails: bool) -> Snapshot:
            clock.now = T0 + timedelta(minutes=minutes)
            if ticker_fails:
                binance.fail_next(1, status=503)
            assert (await sweep(stack, [binance]))["binance"][READ["binance"]] == 1
            current = await stack.get(record)
            assert (current.status, current.failure_streak) == (CONNECTED, 0)
            snapshot = (await stack.snapshots.latest(CHAT))[record.id]
            assert snapshot.taken_at == clock.now
            return snapshot

        never = await valued_at(0, ticker_fails=True)
        good = await valued_at(5, ticker_fails=False)
        recent = await valued_at(10, ticker_fails=True)
        at_the_limit = await valued_at(20, ticker_fails=True)  # 15 minutes old: still used
        too_old = await valued_at(25, ticker_fails=True)

    for unpriced in (never, too_old):
        assert unpriced.unpriced == ("BTC", "ETH")
        assert [(unpriced.assets[a].price, unpriced.assets[a].value) for a in ("BTC", "ETH")] == [
            (None, None),
            (None, None),
        ]
        assert unpriced.assets["USDT"].via == "USDT=USD peg"
        assert unpriced.total_value == DEMO["USDT"]
        assert {name: a.free for name, a in unpriced.assets.items()} == DEMO
    for priced in (good, recent, at_the_limit):
        assert priced.unpriced == ()
        assert priced.assets["BTC"].price == binance.prices["BTC/USDT"].last
        assert priced.assets["BTC"].via == "BTC/USDT@binance USDT=USD peg"


# ----- the permission probe ------------------------------------------------------------------


async def test_the_permission_probe_runs_when_it_is_due_and_not_before(
    venues: Venues, stacks: MakeStack, clock: ManualClock
) -> None:
    stack = stacks(*venues.values())
    connections = await connect_all(stack, venues.values())
    await stack.sweep.run()  # the clients are built (Bybit's setup asks what its probe asks)

    clock.now = T0 + PERMISSION_PERIOD - timedelta(minutes=5)
    not_yet = await sweep(stack, venues.values())
    clock.now = T0 + PERMISSION_PERIOD + timedelta(minutes=5)
    due = await sweep(stack, venues.values())
    probed_at = clock.now
    clock.advance(minutes=5)
    after = await sweep(stack, venues.values())

    for venue, (record, _) in connections.items():
        assert not_yet[venue] == steady(venue), venue
        assert due[venue][READ[venue]] == 1 and due[venue][PROBE[venue]] == 1, venue
        assert set(due[venue]) - set(steady(venue, PROBE[venue])) <= markets_paths(venue), venue
        assert after[venue] == steady(venue), venue
        current = await stack.get(record)
        assert current.next_permission_check_at == probed_at + PERMISSION_PERIOD
        assert current.status is CONNECTED


def markets_paths(venue: str) -> set[str]:
    """Public calls of the hourly market-list refresh (due in the same sweep as the probe)."""
    return {
        "binance": {"/api/v3/exchangeInfo"},
        "binanceusdm": {"/fapi/v1/exchangeInfo"},
        "bitget": {
            "/api/v2/spot/public/coins",
            "/api/v2/spot/public/symbols",
            "/api/v2/margin/currencies",
        },
        "bybit": {"/v5/market/instruments-info"},
        "coinbase": {
            "/v2/currencies",
            "/v2/currencies/crypto",
            "/v2/exchange-rates",
            "/api/v3/brokerage/market/products",
        },
        "kraken": {"/0/public/Assets", "/0/public/AssetPairs"},
        "kucoin": {"/api/v2/symbols"},
        "okx": {"/api/v5/public/instruments"},
    }[venue]


async def test_a_connection_in_error_is_probed_on_its_next_good_read(
    database: Database, venues: Venues, stacks: MakeStack, clock: ManualClock
) -> None:
    """Three outages in a row (each read retried when its backoff is over) make it Error; the
    read that succeeds next also probes the key, whatever the probe's own cadence."""
    stack = stacks(*venues.values())
    connections = await connect_all(stack, venues.values())
    await stack.sweep.run()
    failing = []
    for minutes in (5, 10, 20):
        for server in venues.values():
            down(server, 503)
        clock.now = T0 + timedelta(minutes=minutes)
        failing.append(await sweep(stack, venues.values()))
    statuses = {
        venue: (await stack.get(record)).status for venue, (record, _) in connections.items()
    }
    assert statuses == dict.fromkeys(venues, ERROR)

    clock.now = T0 + timedelta(minutes=40)
    recovered = await sweep(stack, venues.values())
    clock.advance(minutes=5)
    after = await sweep(stack, venues.values())

    for venue, (record, _) in connections.items():
        assert [calls[venue] for calls in failing] == [steady(venue)] * 3, venue  # no probe
        assert recovered[venue] == steady(venue, PROBE[venue]), venue
        assert after[venue] == steady(venue), venue
        assert (await stack.get(record)).next_permission_check_at == T0 + timedelta(
            hours=1, minutes=40
        )
        assert reads(venues[venue])[1:] == [503, 503, 503, 200, 200], venue
    ids = sorted(record.id for record, _ in connections.values())
    assert sorted(await transitions(database)) == sorted(
        [(i, "connected", "error") for i in ids] + [(i, "error", "connected") for i in ids]
    )


# ----- health from the balance read ----------------------------------------------------------


async def test_a_revoked_key_gives_one_reauth_notice_and_its_return_one_recovered_notice(
    database: Database, venues: Venues, stacks: MakeStack, clock: ManualClock
) -> None:
    stack = stacks(*venues.values())
    connections = await connect_all(stack, venues.values())
    ids = sorted(record.id for record, _ in connections.values())
    await stack.sweep.run()

    for server in venues.values():
        server.revoke_key(connections[server.venue_id][1].api_key)
    revoked = []
    for minutes in (5, 10):  # the second when the first failure's backoff is over
        clock.now = T0 + timedelta(minutes=minutes)
        revoked.append(await sweep(stack, venues.values()))
        assert sorted(await transitions(database)) == [(i, "connected", "reauth") for i in ids]
    for venue, (record, _) in connections.items():
        current = await stack.get(record)
        assert (current.status, current.failure_streak) == (REAUTH, 2), venue
        assert current.status_detail is not None
        assert "did not accept this API key" in current.status_detail, venue

    for server in venues.values():
        server.restore_key(connections[server.venue_id][1].api_key)
    clock.now = T0 + timedelta(minutes=20)
    restored = await sweep(stack, venues.values())
    clock.advance(minutes=5)
    after = await sweep(stack, venues.values())

    assert sorted(await transitions(database)) == sorted(
        [(i, "connected", "reauth") for i in ids] + [(i, "reauth", "connected") for i in ids]
    )
    for venue, (record, _) in connections.items():
        assert [calls[venue] for calls in revoked] == [steady(venue)] * 2, venue
        assert restored[venue] == steady(venue, PROBE[venue]), venue  # not Connected: probed
        assert after[venue] == steady(venue), venue
        assert len(reads(venues[venue])) == 5, venue
        current = await stack.get(record)
        assert (current.status, current.failure_streak, current.status_detail) == (
            CONNECTED,
            0,
            None,
        )
    notices = repr(await transitions(database))
    for _, key in connections.values():
        secrets = Credentials(key.api_key, key.secret, key.passphrase).secrets()
        assert all(secret not in notices for secret in secrets)


async def test_a_binance_key_revoked_after_a_good_read_is_reauth_not_rate_limited(
    database: Database, stacks: MakeStack, clock: ManualClock
) -> None:
    """ccxt takes Binance's -2015 for a temporary ban once a client has made a signed call of
    its ``private`` API (the spot account read is one); on a long-lived pooled client a deleted
    key must still read as "Re-auth needed", not as "rate-limited" forever."""
    async with SERVERS["binance"]() as server:
        stack = stacks(server)
        record, key = (await connect_all(stack, [server]))["binance"]
        await stack.sweep.run()

        async def no_rebuild() -> Credentials:
            raise AssertionError("the pooled client was built again")

        client = await stack.pool.client(record, KeyRole.READ, no_rebuild)
        assert client.options["hasAlreadyAuthenticatedSuccessfully"] is True  # the trap is set
        server.revoke_key(key.api_key)
        clock.advance(minutes=5)

        await stack.sweep.run()

        current = await stack.get(record)
        assert current.status is REAUTH
        assert current.status_detail is not None
        assert "did not accept this API key" in current.status_detail
        assert "rate" not in current.status_detail
        assert stack.sweep.last_report.checked == [record.id]
        assert reads(server) == [200, 401]
    assert await transitions(database) == [(record.id, "connected", "reauth")]


# ----- restart -----------------------------------------------------------------------------------


async def test_snapshots_survive_a_restart_and_the_new_process_reads_on(
    venues: Venues, stacks: MakeStack, clock: ManualClock
) -> None:
    before = stacks(*venues.values())
    connections = await connect_all(before, venues.values())
    await before.sweep.run()
    kept = await before.snapshots.latest(CHAT)
    await before.pool.close()

    after = stacks(*venues.values())
    assert await after.snapshots.latest(CHAT) == kept
    assert set(kept) == {record.id for record, _ in connections.values()}

    await load_markets(after, venues.values())
    clock.advance(minutes=5)
    calls = await sweep(after, venues.values())

    latest = await after.snapshots.latest(CHAT)
    for venue, (record, _) in connections.items():
        assert calls[venue] == first_read(venue), venue  # new clients: their setup, once
        assert latest[record.id].taken_at == clock.now
        assert latest[record.id].id != kept[record.id].id
        assert await after.snapshots.count(record.id) == 2
