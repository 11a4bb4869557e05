"""Orders on the local Bybit, KuCoin and Bitget servers through real ccxt: one contract, each
venue's wire format and refusals in a small table of what ccxt makes of them.

Every case places spot orders the way the rebalancer does (limit IOC with a client order id)
and checks what the venue's order engine did against what ccxt reports: fills at the book's
prices, fees as the venue charges them, refusals raised as the exception ccxt maps the venue's
code to, and the one order a lost answer leaves behind found again by its client order id.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import ccxt.async_support as ccxt
import pytest

from bot.exchanges.book import BookLevel
from bot.exchanges.catalogue import get_venue
from bot.exchanges.orders import ORDER_DIALECTS
from bot.sandbox.exchanges import SERVERS, DemoPermissions, VenueServer
from bot.sandbox.exchanges.base import DEMO_BALANCES, DemoKey
from bot.sandbox.exchanges.bitget import BitgetServer
from bot.sandbox.exchanges.matching import BookShape
from tests.integration.venue_client import venue_client

SYMBOL = "BTC/USDT"
#: A book thin enough that an order of 0.1 BTC walks through it (five levels of 0.027 BTC).
THIN = BookShape(levels=5, level_value=Decimal(2000))

Lookup = Callable[[ccxt.Exchange, str], Awaitable[dict[str, Any]]]
RawOrder = Callable[[ccxt.Exchange, str, str], Awaitable[object]]


async def bybit_lookup(client: ccxt.Exchange, client_id: str) -> dict[str, Any]:
    """``order/realtime`` by orderLinkId finds the order whatever its state."""
    found = await client.fetch_open_orders(SYMBOL, None, None, {"orderLinkId": client_id})
    assert len(found) == 1
    return found[0]


async def kucoin_lookup(client: ccxt.Exchange, client_id: str) -> dict[str, Any]:
    return await client.fetch_order(None, SYMBOL, {"clientOid": client_id})


async def bitget_lookup(client: ccxt.Exchange, client_id: str) -> dict[str, Any]:
    return await client.fetch_order("", SYMBOL, {"clientOid": client_id})


async def bybit_raw(client: ccxt.Exchange, qty: str, price: str) -> object:
    return await client.privatePostV5OrderCreate(
        {"category": "spot", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit"}
        | {"qty": qty, "price": price, "timeInForce": "IOC"}
    )


async def kucoin_raw(client: ccxt.Exchange, qty: str, price: str) -> object:
    return await client.privatePostHfOrders(
        {"clientOid": "cw-raw", "symbol": "BTC-USDT", "side": "buy", "type": "limit"}
        | {"size": qty, "price": price, "timeInForce": "IOC"}
    )


async def bitget_raw(client: ccxt.Exchange, qty: str, price: str) -> object:
    return await client.privateSpotPostV2SpotTradePlaceOrder(
        {"symbol": "BTCUSDT", "side": "buy", "orderType": "limit", "force": "ioc"}
        | {"size": qty, "price": price}
    )


async def bitget_unified_raw(client: ccxt.Exchange, qty: str, price: str) -> object:
    return await client.privateUtaPostV3TradePlaceOrder(
        {"category": "SPOT", "symbol": "BTCUSDT", "side": "buy", "orderType": "limit"}
        | {"qty": qty, "price": price, "timeInForce": "ioc"}
    )


@dataclass(frozen=True)
class Venue:
    """What one venue (or account mode) does, in ccxt's terms."""

    venue_id: str
    lookup: Lookup  # find an order by client order id
    raw_order: RawOrder  # a limit buy ccxt does not round (to send an amount off the step)
    #: What ccxt raises when a gateway answers 504 for the venue (a dropped connection is
    #: ExchangeNotAvailable everywhere): Bybit's JSON 10016 maps to nothing more specific.
    lost_504: type[Exception]
    #: What the venue's refusal of an amount off the lot step, and of too small a value, says.
    filters: tuple[str, str]
    #: ccxt's status of an IOC cancelled after a partial fill (Bybit: PartiallyFilledCanceled).
    partly_filled: str = "canceled"
    duplicate: type[Exception] = ccxt.InvalidOrder
    read_only: type[Exception] = ccxt.PermissionDenied
    book_limit: int = 5
    unified: bool = False  # Bitget's unified trading account (v3 endpoints)
    #: Whether ccxt reads the average and the filled value from the venue's order (its Bitget
    #: v3 parser reads neither: no average, cost = filled × limit price).
    parses_fill_value: bool = True

    @property
    def name(self) -> str:
        return self.venue_id + ("-unified" if self.unified else "")


VENUES = (
    Venue(
        "bybit",
        bybit_lookup,
        bybit_raw,
        ccxt.ExchangeError,
        ('"retCode":170137', '"retCode":170140'),
        partly_filled="closed",
    ),
    Venue(
        "kucoin",
        kucoin_lookup,
        kucoin_raw,
        ccxt.ExchangeNotAvailable,
        ("Order size increment invalid.", '"code":"600101"'),
        duplicate=ccxt.BadRequest,
        read_only=ccxt.AuthenticationError,
        book_limit=20,
    ),
    Venue(
        "bitget",
        bitget_lookup,
        bitget_raw,
        ccxt.RequestTimeout,
        ('"code":"40808"', '"code":"45110"'),
        duplicate=ccxt.ExchangeError,
    ),
    Venue(
        "bitget",
        bitget_lookup,
        bitget_unified_raw,
        ccxt.RequestTimeout,
        ('"code":"40808"', '"code":"45110"'),
        duplicate=ccxt.ExchangeError,
        unified=True,
        parses_fill_value=False,
    ),
)


@dataclass
class Trading:
    venue: Venue
    server: VenueServer
    client: ccxt.Exchange


@pytest.fixture(params=VENUES, ids=lambda venue: venue.name)
async def trading(request: pytest.FixtureRequest) -> AsyncIterator[Trading]:
    venue: Venue = request.param
    async with SERVERS[venue.venue_id]() as server:
        if isinstance(server, BitgetServer) and venue.unified:
            server.set_unified("demo")
        key = server.issue_key(DemoPermissions(spot_trade=True))
        async with client_for(venue, server, key) as client:
            yield Trading(venue, server, client)


def client_for(
    venue: Venue, server: VenueServer, key: DemoKey
) -> AbstractAsyncContextManager[ccxt.Exchange]:
    return venue_client(get_venue(venue.venue_id), server, key)


async def ready(venue: Venue, client: ccxt.Exchange) -> None:
    """Markets loaded and the account set up as the client pool does it."""
    setup = get_venue(venue.venue_id).account_setup
    if setup is not None:
        await setup(client)
    await client.load_markets()


def on_tick(server: VenueServer, value: Decimal) -> Decimal:
    tick = server.order_rules(SYMBOL).price_tick
    return (value / tick).to_integral_value() * tick


async def ioc_buy(trading: Trading, amount: str, price: Decimal, client_id: str) -> dict[str, Any]:
    """A limit IOC buy with a client order id, as the rebalancer sends it."""
    await ready(trading.venue, trading.client)
    dialect = ORDER_DIALECTS[trading.venue.venue_id]
    params = {"timeInForce": "IOC", dialect.client_id_param: client_id}
    return await trading.client.create_order(
        SYMBOL, "limit", "buy", float(amount), float(price), params
    )


def balances(server: VenueServer) -> dict[str, tuple[Decimal, Decimal]]:
    account = server.account("demo")
    return {
        asset: (account.balance(asset).free, account.balance(asset).used)
        for asset in ("BTC", "USDT")
    }


def orders_with(server: VenueServer, client_id: str) -> int:
    return sum(
        order.client_order_id == client_id for order in server.account("demo").orders.values()
    )


async def test_an_ioc_buy_inside_the_book_fills_at_the_best_ask_and_pays_the_fee(
    trading: Trading,
) -> None:
    server = trading.server
    best_ask = server.order_book(SYMBOL, 1).asks[0]
    limit = on_tick(server, server.prices[SYMBOL].last * Decimal("1.01"))
    placed = await ioc_buy(trading, "0.01", limit, "cw-fill-1")
    found = await trading.venue.lookup(trading.client, "cw-fill-1")

    order = server.find_order("demo", client_order_id="cw-fill-1")
    assert order is not None and placed["id"] == found["id"] == order.id
    assert found["clientOrderId"] == "cw-fill-1"
    assert found["status"] == "closed" and found["filled"] == 0.01
    cost = Decimal("0.01") * best_ask.price
    assert order.cost == cost and order.average == best_ask.price
    if trading.venue.parses_fill_value:
        assert Decimal(str(found["average"])) == best_ask.price
        assert Decimal(str(found["cost"])) == cost
        assert found["fee"]["currency"] == order.fee_currency
        assert Decimal(str(found["fee"]["cost"])) == order.fee
    rate = server.fee_rates.taker
    quote_fee = cost * rate if server.fee_in_quote else Decimal(0)
    base_fee = Decimal(0) if server.fee_in_quote else Decimal("0.01") * rate
    assert order.fee == quote_fee + base_fee
    assert balances(server) == {
        "BTC": (DEMO_BALANCES["BTC"] + Decimal("0.01") - base_fee, 0),
        "USDT": (DEMO_BALANCES["USDT"] - cost - quote_fee, 0),
    }


async def test_an_ioc_larger_than_the_book_under_its_limit_fills_part_and_cancels_the_rest(
    trading: Trading,
) -> None:
    server = trading.server
    server.book_shape = THIN
    asks = server.order_book(SYMBOL, 3).asks
    reachable = sum((level.amount for level in asks), Decimal(0))
    await ioc_buy(trading, "0.1", asks[-1].price, "cw-part-1")
    found = await trading.venue.lookup(trading.client, "cw-part-1")

    order = server.find_order("demo", client_order_id="cw-part-1")
    assert order is not None and order.status == "canceled" and order.filled == reachable
    assert found["status"] == trading.venue.partly_filled
    assert Decimal(str(found["filled"])) == reachable and found["amount"] == 0.1
    assert order.average == sum((lv.price * lv.amount for lv in asks), Decimal(0)) / reachable
    assert balances(server)["USDT"][1] == 0  # nothing stays held for the cancelled rest


async def test_an_ioc_priced_away_from_the_book_fills_nothing(trading: Trading) -> None:
    server = trading.server
    best_bid = server.order_book(SYMBOL, 1).bids[0].price
    before = balances(server)
    await ioc_buy(trading, "0.01", best_bid, "cw-miss-1")
    found = await trading.venue.lookup(trading.client, "cw-miss-1")

    assert found["status"] == "canceled" and found["filled"] == 0
    assert balances(server) == before


async def test_a_buy_beyond_the_free_quote_is_insufficient_funds_and_changes_nothing(
    trading: Trading,
) -> None:
    server = trading.server
    before = balances(server)
    limit = on_tick(server, server.prices[SYMBOL].last * Decimal("1.01"))
    with pytest.raises(ccxt.InsufficientFunds):
        await ioc_buy(trading, "1", limit, "cw-poor-1")
    assert balances(server) == before and orders_with(server, "cw-poor-1") == 0


async def test_an_amount_off_the_lot_step_is_the_venues_filter_error(trading: Trading) -> None:
    server = trading.server
    step = server.order_rules(SYMBOL).amount_step
    limit = on_tick(server, server.prices[SYMBOL].last * Decimal("1.01"))
    await ready(trading.venue, trading.client)
    with pytest.raises(ccxt.InvalidOrder) as refused:
        await trading.venue.raw_order(trading.client, f"{Decimal('0.01') + step / 2:f}", str(limit))
    assert trading.venue.filters[0] in str(refused.value)
    assert server.account("demo").orders == {}


async def test_an_order_worth_less_than_the_minimum_value_is_the_venues_filter_error(
    trading: Trading,
) -> None:
    rules = trading.server.order_rules(SYMBOL)
    price = Decimal(500)  # 0.0001 BTC at 500 is worth 0.05 USDT: below every minimum here
    assert Decimal("0.0001") >= rules.min_amount and Decimal("0.05") < rules.min_notional
    with pytest.raises(ccxt.InvalidOrder) as refused:
        await ioc_buy(trading, "0.0001", price, "cw-small-1")
    assert trading.venue.filters[1] in str(refused.value)
    assert trading.server.account("demo").orders == {}


async def test_a_reused_client_order_id_is_refused_the_venues_way(trading: Trading) -> None:
    server = trading.server
    limit = on_tick(server, server.prices[SYMBOL].last * Decimal("1.01"))
    await ioc_buy(trading, "0.01", limit, "cw-twice-1")
    with pytest.raises(trading.venue.duplicate) as refused:
        await ioc_buy(trading, "0.01", limit, "cw-twice-1")

    assert type(refused.value) is trading.venue.duplicate
    markers = ORDER_DIALECTS[trading.venue.venue_id].duplicate_markers
    assert any(marker in str(refused.value) for marker in markers)
    assert orders_with(server, "cw-twice-1") == 1


@pytest.mark.parametrize("status", [None, 504], ids=["dropped", "504"])
async def test_a_lost_answer_leaves_one_order_that_its_client_id_finds(
    trading: Trading, status: int | None
) -> None:
    server = trading.server
    limit = on_tick(server, server.prices[SYMBOL].last * Decimal("1.01"))
    server.lose_next_order_responses(1, status)
    with pytest.raises(ccxt.BaseError) as lost:
        await ioc_buy(trading, "0.01", limit, "cw-lost-1")
    assert type(lost.value) is (trading.venue.lost_504 if status else ccxt.ExchangeNotAvailable)
    found = await trading.venue.lookup(trading.client, "cw-lost-1")

    assert found["status"] == "closed" and found["filled"] == 0.01
    assert found["clientOrderId"] == "cw-lost-1"
    assert len(server.account("demo").orders) == orders_with(server, "cw-lost-1") == 1


async def test_a_resting_order_can_be_cancelled_and_its_hold_released(trading: Trading) -> None:
    server = trading.server
    await ready(trading.venue, trading.client)
    bid = server.order_book(SYMBOL, 5).bids[-1].price
    dialect = ORDER_DIALECTS[trading.venue.venue_id]
    placed = await trading.client.create_order(
        SYMBOL, "limit", "buy", 0.01, float(bid), {dialect.client_id_param: "cw-rest-1"}
    )
    assert (await trading.venue.lookup(trading.client, "cw-rest-1"))["status"] == "open"
    assert balances(server)["USDT"][1] > 0

    await trading.client.cancel_order(placed["id"], SYMBOL)
    assert (await trading.venue.lookup(trading.client, "cw-rest-1"))["status"] == "canceled"
    assert balances(server)["USDT"] == (DEMO_BALANCES["USDT"], 0)


async def test_a_read_only_key_may_not_place_orders(trading: Trading) -> None:
    server, venue = trading.server, trading.venue
    limit = on_tick(server, server.prices[SYMBOL].last * Decimal("1.01"))
    async with client_for(venue, server, server.issue_key(DemoPermissions())) as reader:
        await ready(venue, reader)
        with pytest.raises(venue.read_only):
            await reader.create_order(SYMBOL, "limit", "buy", 0.01, float(limit), {})
    assert server.account("demo").orders == {}


async def test_the_order_book_is_the_engines_book_around_the_last_price(trading: Trading) -> None:
    server, venue = trading.server, trading.venue
    await ready(venue, trading.client)
    book = await trading.client.fetch_order_book(SYMBOL, venue.book_limit)

    def levels(side: tuple[BookLevel, ...]) -> list[list[float]]:
        return [[float(level.price), float(level.amount)] for level in side]

    expected = server.order_book(SYMBOL, venue.book_limit)
    assert book["bids"] == levels(expected.bids) and book["asks"] == levels(expected.asks)
    bids, asks = [level[0] for level in book["bids"]], [level[0] for level in book["asks"]]
    assert bids == sorted(bids, reverse=True) and asks == sorted(asks)
    assert bids[0] < float(server.prices[SYMBOL].last) < asks[0]
