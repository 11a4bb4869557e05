"""Account reads through unmodified ccxt, on every local venue server, with the bot's options.

Open orders, own trades, balances that move with deposits and withdrawals, refusals of keys
without read rights, and Binance USDⓈ-M positions and margin. Clients are built as the bot
builds them and warmed the way the bot's pooled clients are (markets, account setup, one balance
read), so the request counts below are what a ``/orders`` or ``/trades`` costs on each venue.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

import ccxt.async_support as ccxt
import pytest

from bot.exchanges.catalogue import get_venue
from bot.sandbox.exchanges import SERVERS, BitgetServer, VenueServer
from bot.sandbox.exchanges.activity import DemoOrder, DemoTrade, Pair
from bot.sandbox.exchanges.base import DemoKey, DemoPermissions
from bot.sandbox.exchanges.binanceusdm import BinanceUsdmServer
from tests.integration.venue_client import venue_client

T = TypeVar("T")


@dataclass(frozen=True)
class Reads:
    """How a venue serves the reads: which ccxt calls want a market, and how a key without read
    rights is refused (ccxt's exception, the HTTP status, the request refused)."""

    orders_need_symbol: bool
    trades_need_symbol: bool
    refusal: type[ccxt.BaseError]
    refusal_status: int
    refused_path: str


READS: dict[str, Reads] = {
    "binance": Reads(False, True, ccxt.AuthenticationError, 401, "/api/v3/openOrders"),
    "binanceusdm": Reads(False, True, ccxt.AuthenticationError, 401, "/fapi/v1/openOrders"),
    "bitget": Reads(False, True, ccxt.PermissionDenied, 400, "/api/v2/spot/trade/unfilled-orders"),
    "bybit": Reads(False, False, ccxt.PermissionDenied, 200, "/v5/order/realtime"),
    "coinbase": Reads(
        False, False, ccxt.ExchangeError, 403, "/api/v3/brokerage/orders/historical/batch"
    ),
    "kraken": Reads(False, False, ccxt.PermissionDenied, 200, "/0/private/OpenOrders"),
    # ccxt asks KuCoin's account mode before any order read; KuCoin refuses that already.
    "kucoin": Reads(True, True, ccxt.AuthenticationError, 403, "/api/ua/v1/account/mode"),
    "okx": Reads(False, False, ccxt.ExchangeError, 401, "/api/v5/trade/orders-pending"),
}


def test_every_served_venue_has_a_row() -> None:
    assert set(READS) == set(SERVERS)


@pytest.fixture(params=sorted(SERVERS))
async def server(request: pytest.FixtureRequest) -> AsyncIterator[VenueServer]:
    async with SERVERS[request.param]() as running:
        yield running


def reading_key(server: VenueServer, *, read: bool = True) -> DemoKey:
    """A key as the user makes it for monitoring (futures rights where the venue needs them)."""
    venue = get_venue(server.venue_id)
    permissions = DemoPermissions(
        read=read, spot_trade=not read, futures_trade=venue.requires_derivatives
    )
    return server.issue_key(permissions, with_passphrase=venue.needs_passphrase)


async def warm(client: ccxt.Exchange, server: VenueServer) -> None:
    """What a pooled client has done before a trader's read: markets, setup, a balance read."""
    venue = get_venue(server.venue_id)
    await client.load_markets()
    if venue.account_setup is not None:
        await venue.account_setup(client)
    await client.fetch_balance()


def market(server: VenueServer, spot: str) -> str:
    """The market this server quotes for a spot pair (a perpetual on a futures venue)."""
    return next(symbol for symbol in server.prices if Pair.of(symbol).spot == spot)


async def counted(server: VenueServer, call: Awaitable[T]) -> tuple[T, int]:
    """What ``call`` returns, and how many requests it made."""
    before = len(server.request_log)
    result = await call
    return result, len(server.request_log) - before


async def read_all(
    server: VenueServer,
    fetch: Callable[[str | None], Awaitable[list[Any]]],
    markets: list[str | None],
) -> tuple[list[Any], int]:
    """``fetch`` for each market (``[None]``: once for all), joined, and the requests made."""
    items: list[Any] = []
    requests = 0
    for symbol in markets:
        found, made = await counted(server, fetch(symbol))
        items += found
        requests += made
    return items, requests


def as_order(order: DemoOrder) -> dict[str, Any]:
    return {
        "id": order.id,
        "clientOrderId": order.client_order_id,
        "symbol": order.symbol,
        "side": order.side,
        "type": "limit",
        "price": float(order.price),
        "amount": float(order.amount),
        "filled": float(order.filled),
        "status": "open",
    }


def as_trade(trade: DemoTrade) -> dict[str, Any]:
    return {
        "id": trade.id,
        "order": trade.order_id,
        "symbol": trade.symbol,
        "side": trade.side,
        "price": float(trade.price),
        "amount": float(trade.amount),
        "fee": (pytest.approx(float(trade.fee)), trade.fee_currency),
        "takerOrMaker": "taker" if trade.taker else "maker",
    }


def unified_trade(trade: dict[str, Any]) -> dict[str, Any]:
    picked = {key: trade[key] for key in ("id", "order", "symbol", "side", "price", "amount")}
    return {
        **picked,
        "fee": (trade["fee"]["cost"], trade["fee"]["currency"]),
        "takerOrMaker": trade["takerOrMaker"],
    }


# --- open orders and trades --------------------------------------------------------------------


async def test_open_orders_come_back_unified_in_one_request_where_the_venue_allows(
    server: VenueServer,
) -> None:
    reads = READS[server.venue_id]
    btc, eth = market(server, "BTC/USDT"), market(server, "ETH/USDT")
    bid = server.add_open_order("demo", btc, "buy", "0.01", "60000")
    ask = server.add_open_order("demo", eth, "sell", "0.4", "4500", filled="0.1")
    markets: list[str | None] = [btc, eth] if reads.orders_need_symbol else [None]
    async with venue_client(get_venue(server.venue_id), server, reading_key(server)) as client:
        await warm(client, server)
        if reads.orders_need_symbol:
            with pytest.raises(ccxt.ArgumentsRequired):
                await client.fetch_open_orders()
        orders, requests = await read_all(server, client.fetch_open_orders, markets)

    assert requests == len(markets)  # one request in all, or one per market

    keys = as_order(bid).keys()
    shown = {order["id"]: {key: order[key] for key in keys} for order in orders}
    assert shown == {bid.id: as_order(bid), ask.id: as_order(ask)}
    assert {order["id"]: order["remaining"] for order in orders} == {bid.id: 0.01, ask.id: 0.3}


async def test_my_trades_carry_price_amount_and_fee_of_history_and_live_fills(
    server: VenueServer,
) -> None:
    reads = READS[server.venue_id]
    btc, eth = market(server, "BTC/USDT"), market(server, "ETH/USDT")
    hours_ago = server.server_time_ms() - 2 * 3_600_000
    server.add_trade("demo", btc, "buy", "0.02", "65000", time_ms=hours_ago)
    ask = server.add_open_order("demo", eth, "sell", "0.4", "4500")
    server.fill("demo", ask.id, "0.1")  # the market trades through part of the resting order
    markets: list[str | None] = [btc, eth] if reads.trades_need_symbol else [None]
    async with venue_client(get_venue(server.venue_id), server, reading_key(server)) as client:
        await warm(client, server)
        if reads.trades_need_symbol:
            with pytest.raises(ccxt.ArgumentsRequired):
                await client.fetch_my_trades(limit=20)
        trades, requests = await read_all(
            server, lambda symbol: client.fetch_my_trades(symbol, limit=20), markets
        )

    assert requests == len(markets)  # as the bot asks: 20 at most, per market where needed
    expected = server.account("demo").trades
    assert sorted(map(unified_trade, trades), key=lambda t: t["id"]) == sorted(
        map(as_trade, expected), key=lambda t: t["id"]
    )
    (live,) = [trade for trade in expected if trade.order_id == ask.id]
    assert live.fee > 0 and not live.taker


async def test_a_seeded_account_shows_its_orders_and_holds_through_ccxt(
    server: VenueServer,
) -> None:
    server.seed_accounts = True
    account = server.account("demo")
    seeded = account.open_orders()
    async with venue_client(get_venue(server.venue_id), server, reading_key(server)) as client:
        await warm(client, server)
        balance = await client.fetch_balance()
        orders: list[dict[str, Any]] = []
        for symbol in sorted({order.symbol for order in seeded}):
            orders += await client.fetch_open_orders(symbol)

    assert len(seeded) == 2 and len(account.trades) == 3
    assert sorted(order["id"] for order in orders) == sorted(order.id for order in seeded)
    holds: dict[str, Decimal] = {}
    for order in seeded:
        asset, held = server.hold_of(order)
        holds[asset] = holds.get(asset, Decimal(0)) + held
    for asset, held in holds.items():
        assert account.balance(asset).used == held
        if not get_venue(server.venue_id).requires_derivatives:  # futures add position margin
            assert balance[asset]["used"] == pytest.approx(float(held))


# --- balances move with the trader's own transfers ----------------------------------------------


async def test_deposits_and_withdrawals_show_in_the_next_balance_read(
    server: VenueServer,
) -> None:
    async with venue_client(get_venue(server.venue_id), server, reading_key(server)) as client:
        await warm(client, server)
        before = (await client.fetch_balance())["BTC"]
        server.deposit("demo", "BTC", "0.5")
        deposited = (await client.fetch_balance())["BTC"]
        server.withdraw_funds("demo", "BTC", "0.25")
        withdrawn = (await client.fetch_balance())["BTC"]
        with pytest.raises(ValueError, match="free to withdraw"):
            server.withdraw_funds("demo", "BTC", "5")
        unchanged = (await client.fetch_balance())["BTC"]

    assert deposited["total"] == pytest.approx(before["total"] + 0.5)
    assert deposited["free"] == pytest.approx(before["free"] + 0.5)
    assert withdrawn["total"] == pytest.approx(before["total"] + 0.25)
    assert unchanged == withdrawn


async def test_withdrawing_more_than_is_free_is_refused_even_if_orders_hold_it(
    server: VenueServer,
) -> None:
    btc = market(server, "BTC/USDT")
    server.add_open_order("demo", btc, "sell", "0.5", "90000")  # holds BTC (margin on futures)
    free = server.account("demo").balance("BTC").free
    with pytest.raises(ValueError, match="free to withdraw"):
        server.withdraw_funds("demo", "BTC", free + Decimal("0.00000001"))
    assert server.withdraw_funds("demo", "BTC", free).free == 0


# --- keys without read rights ------------------------------------------------------------------


async def test_a_key_without_read_rights_is_refused_the_venues_way(server: VenueServer) -> None:
    reads = READS[server.venue_id]
    venue = get_venue(server.venue_id)
    btc = market(server, "BTC/USDT")
    server.add_open_order("demo", btc, "buy", "0.01", "60000")
    async with (
        venue_client(venue, server, reading_key(server)) as reader,
        venue_client(venue, server, reading_key(server, read=False)) as client,
    ):
        await reader.load_markets()
        client.set_markets_from_exchange(reader)  # as the pool shares markets
        for call in (client.fetch_open_orders(btc), client.fetch_my_trades(btc)):
            with pytest.raises(ccxt.BaseError) as raised:
                await call
            assert type(raised.value) is reads.refusal
            assert server.request_log[-1].status == reads.refusal_status
    answered = [(entry.path, entry.status) for entry in server.request_log]
    assert (reads.refused_path, reads.refusal_status) in answered


# --- Binance USDⓈ-M: positions and margin ----------------------------------------------------


@pytest.fixture
async def usdm() -> AsyncIterator[BinanceUsdmServer]:
    async with BinanceUsdmServer() as running:
        yield running


def binance_liquidation(
    server: BinanceUsdmServer, symbol: str, amount: str, entry: str, collateral: Decimal
) -> float:
    """Binance's one-position formula: (WB + cum − side·size·entry) / (size·mmr − side·size)."""
    size, side = abs(Decimal(amount)), 1 if Decimal(amount) > 0 else -1
    notional = size * server.mark_price(symbol)
    bracket = next(b for b in reversed(server.brackets[symbol]) if b.floor <= notional)
    numerator = collateral + bracket.cum - side * size * Decimal(entry)
    return float(numerator / (size * bracket.maint_margin_ratio - side * size))


async def test_positions_follow_the_price_with_upnl_and_liquidation(
    usdm: BinanceUsdmServer,
) -> None:
    btc, eth = "BTC/USDT:USDT", "ETH/USDT:USDT"
    usdm.set_price(btc, "72000")
    usdm.set_price(eth, "3900")
    usdm.open_position(btc, "0.5", "70000", leverage=10)
    usdm.open_position(eth, "-2", "4000", leverage=5, margin_mode="isolated")
    wallet = usdm.account("demo").balance("USDT").total
    async with venue_client(get_venue("binanceusdm"), usdm, reading_key(usdm)) as client:
        await warm(client, usdm)
        first, cold = await counted(usdm, client.fetch_positions())
        usdm.set_price(btc, "68000")
        later, requests = await counted(usdm, client.fetch_positions())

    assert (cold, requests) == (2, 1)  # leverage brackets once per client, then positions
    before = {p["symbol"]: p for p in first}
    after = {p["symbol"]: p for p in later}
    assert (before[btc]["side"], before[btc]["contracts"], before[btc]["marginMode"]) == (
        "long",
        0.5,
        "cross",
    )
    assert before[btc]["markPrice"] == 72000 and before[btc]["unrealizedPnl"] == 1000
    assert after[btc]["markPrice"] == 68000 and after[btc]["unrealizedPnl"] == -1000
    cross = binance_liquidation(usdm, btc, "0.5", "70000", wallet)
    assert before[btc]["liquidationPrice"] == pytest.approx(cross, abs=1e-6)
    assert after[btc]["liquidationPrice"] == before[btc]["liquidationPrice"]  # wallet unchanged
    short = after[eth]
    assert (short["side"], short["contracts"], short["marginMode"]) == ("short", 2, "isolated")
    assert short["unrealizedPnl"] == pytest.approx(200)
    isolated = Decimal(2) * 4000 / 5
    assert short["liquidationPrice"] == pytest.approx(
        binance_liquidation(usdm, eth, "-2", "4000", isolated), abs=1e-6
    )


async def test_futures_balance_reports_wallet_upnl_and_margin(usdm: BinanceUsdmServer) -> None:
    btc = "BTC/USDT:USDT"
    usdm.set_price(btc, "72000")
    usdm.open_position(btc, "0.5", "70000", leverage=10)
    order = usdm.add_open_order("demo", btc, "buy", "0.1", "65000", leverage=10)
    wallet = usdm.account("demo").balance("USDT").total
    async with venue_client(get_venue("binanceusdm"), usdm, reading_key(usdm)) as client:
        await warm(client, usdm)
        read, requests = await counted(usdm, client.fetch_balance())
        usdm.set_price(btc, "71000")
        moved = await client.fetch_balance()

    info = read["info"]
    order_margin = Decimal("0.1") * 65000 / 10
    position_margin = Decimal("0.5") * 72000 / 10
    assert requests == 1
    assert usdm.hold_of(order) == ("USDT", order_margin)
    assert Decimal(info["totalWalletBalance"]) == wallet == Decimal("12500")
    assert Decimal(info["totalUnrealizedProfit"]) == 1000
    assert Decimal(info["totalMarginBalance"]) == wallet + 1000
    assert Decimal(info["totalOpenOrderInitialMargin"]) == order_margin
    assert Decimal(info["totalPositionInitialMargin"]) == position_margin
    assert Decimal(info["totalInitialMargin"]) == order_margin + position_margin
    (usdt,) = [entry for entry in info["assets"] if entry["asset"] == "USDT"]
    assert (usdt["walletBalance"], usdt["unrealizedProfit"]) == (
        info["totalWalletBalance"],
        info["totalUnrealizedProfit"],
    )
    assert read["USDT"]["total"] == 13500
    assert read["USDT"]["used"] == float(order_margin + position_margin)
    assert read["USDT"]["free"] == pytest.approx(13500 - float(order_margin + position_margin))
    assert Decimal(moved["info"]["totalUnrealizedProfit"]) == 500
    assert moved["USDT"]["total"] == 13000


# --- Bitget unified accounts read through the v3 endpoints -------------------------------------


async def test_a_bitget_unified_account_lists_orders_and_fills_through_v3() -> None:
    async with BitgetServer() as server:
        server.set_unified("demo")
        order = server.add_open_order("demo", "ETH/USDT", "sell", "0.4", "4500", filled="0.1")
        async with venue_client(get_venue("bitget"), server, reading_key(server)) as client:
            await warm(client, server)
            (shown,), requests = await counted(server, client.fetch_open_orders())
            fills = await client.fetch_my_trades("ETH/USDT")

    assert requests == 1 and server.request_log[-2].path == "/api/v3/trade/unfilled-orders"
    assert {key: shown[key] for key in as_order(order)} == as_order(order)
    (fill,) = fills
    assert (fill["order"], fill["amount"], fill["price"]) == (order.id, 0.1, 4500)
    # Bitget writes unified fees as positive amounts; ccxt 4.5 negates them.
    assert abs(fill["fee"]["cost"]) == pytest.approx(float(order.fee))
