"""Spot orders on the local Kraken, Coinbase and OKX servers through real ccxt: one contract
(fill at the book, partial and empty IOC fills, refusals, reused client ids, a lost answer,
cancelling, the book itself), each venue's own answers in a small table."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import ccxt.async_support as ccxt
import pytest

from bot.exchanges.catalogue import get_venue
from bot.sandbox.exchanges import SERVERS, BookShape, DemoPermissions, VenueServer
from tests.integration.venue_client import venue_client

SYMBOL = "BTC/USDT"
AMOUNT = Decimal("0.01")

Order = dict[str, Any]
Lookup = Callable[[ccxt.Exchange, str], Awaitable[list[Order]]]


async def open_and_closed_lists(client: ccxt.Exchange, client_id: str) -> list[Order]:
    """Kraken: both order lists filter on ``cl_ord_id``; QueryOrders takes txids only."""
    params = {"clientOrderId": client_id}
    return [
        *await client.fetch_open_orders(SYMBOL, None, None, params),
        *await client.fetch_closed_orders(SYMBOL, None, None, params),
    ]


async def every_order(client: ccxt.Exchange, client_id: str) -> list[Order]:
    """Coinbase: the order list of every status, matched on the parsed ``clientOrderId``."""
    return [o for o in await client.fetch_orders(SYMBOL) if o["clientOrderId"] == client_id]


async def by_client_id(client: ccxt.Exchange, client_id: str) -> list[Order]:
    """OKX: ``trade/order`` takes a ``clOrdId``."""
    try:
        return [await client.fetch_order(None, SYMBOL, {"clOrdId": client_id})]
    except ccxt.OrderNotFound:
        return []


@dataclass(frozen=True)
class Refusal:
    """The exact ccxt class a venue's refusal becomes, and a text of the venue's answer."""

    error: type[ccxt.BaseError]
    marker: str


@dataclass(frozen=True)
class Expected:
    client_param: str  # the create_order param ccxt forwards as the venue's client id
    client_id: str  # in the venue's format
    bad_client_id: tuple[str, Refusal]  # one the venue refuses, and how
    lookup: Lookup  # the orders carrying a client id, found the venue's way
    fee_currency: str  # of a BTC/USDT buy
    below_minimum: tuple[Decimal, Refusal]  # an amount under the venue's minimum
    off_step: Refusal
    read_only: Refusal
    reuse_while_open: Refusal | None  # None: the venue answers with the earlier order
    reuse_when_done: Literal["accepted", "refused", "earlier"]


EXPECTED: dict[str, Expected] = {
    "kraken": Expected(
        client_param="clientOrderId",
        client_id="5e0c4a8f-6a1b-4f3e-9d2c-7b8a9c0d1e2f",
        # Free text is 18 characters at most; ccxt maps none of the argument errors it names.
        bad_client_id=(
            "cw-00ff00ff00ff00ff-1",
            Refusal(ccxt.ExchangeError, "EGeneral:Invalid arguments:cl_ord_id"),
        ),
        lookup=open_and_closed_lists,
        fee_currency="USDT",
        below_minimum=(
            Decimal("0.00005"),
            Refusal(ccxt.InvalidOrder, "EOrder:Order minimum not met"),
        ),
        off_step=Refusal(ccxt.InvalidOrder, "EGeneral:Invalid arguments:volume"),
        read_only=Refusal(ccxt.PermissionDenied, "EGeneral:Permission denied"),
        reuse_while_open=Refusal(ccxt.ExchangeError, "EOrder:Duplicate order"),
        reuse_when_done="accepted",
    ),
    "coinbase": Expected(
        client_param="client_order_id",
        client_id="cw-00ff00ff00ff00ff-1",
        bad_client_id=("", Refusal(ccxt.BadRequest, "INVALID_ARGUMENT")),
        lookup=every_order,
        fee_currency="USDT",
        below_minimum=(
            Decimal("0.00001"),
            Refusal(ccxt.ExchangeError, "PREVIEW_INVALID_QUOTE_SIZE_TOO_SMALL"),
        ),
        off_step=Refusal(ccxt.ExchangeError, "PREVIEW_INVALID_SIZE_PRECISION"),
        read_only=Refusal(ccxt.ExchangeError, "Missing required scopes"),
        reuse_while_open=None,
        reuse_when_done="earlier",
    ),
    "okx": Expected(
        client_param="clOrdId",
        client_id="cw00ff00ff00ff00ff001",
        bad_client_id=("cw-00ff00ff00ff00ff-1", Refusal(ccxt.BadRequest, '"sCode":"51000"')),
        lookup=by_client_id,
        fee_currency="BTC",
        below_minimum=(Decimal("0.000005"), Refusal(ccxt.InvalidOrder, '"sCode":"51020"')),
        off_step=Refusal(ccxt.InvalidOrder, '"sCode":"51121"'),
        read_only=Refusal(ccxt.ExchangeError, '"code":"50120"'),
        reuse_while_open=Refusal(ccxt.InvalidOrder, '"sCode":"51016"'),
        reuse_when_done="refused",
    ),
}


@dataclass(frozen=True)
class Venue:
    server: VenueServer
    client: ccxt.Exchange
    expected: Expected

    def params(self, time_in_force: str | None = "IOC") -> dict[str, str]:
        """create_order params carrying the client id (and a time in force)."""
        params = {self.expected.client_param: self.expected.client_id}
        return params if time_in_force is None else {**params, "timeInForce": time_in_force}

    async def buy(self, amount: Decimal, price: Decimal, **params: str) -> Order:
        return await self.client.create_order(
            SYMBOL, "limit", "buy", float(amount), float(price), params
        )

    def balances(self) -> dict[str, tuple[Decimal, Decimal]]:
        """(free, used) of BTC and USDT."""
        account = self.server.account("demo")
        return {a: (account.balance(a).free, account.balance(a).used) for a in ("BTC", "USDT")}

    def orders_with(self, client_id: str) -> int:
        orders = self.server.account("demo").orders.values()
        return sum(order.client_order_id == client_id for order in orders)


@pytest.fixture(params=sorted(EXPECTED))
async def venue(request: pytest.FixtureRequest) -> AsyncIterator[Venue]:
    venue_id: str = request.param
    async with SERVERS[venue_id]() as server:
        key = server.issue_key(DemoPermissions(spot_trade=True), with_passphrase=True)
        async with venue_client(get_venue(venue_id), server, key) as client:
            await client.load_markets()
            yield Venue(server, client, EXPECTED[venue_id])


def number(value: object) -> Decimal:
    """A figure ccxt parsed (a float, or a string where ccxt keeps the venue's text)."""
    return Decimal(str(value))


async def test_a_limit_ioc_buy_fills_at_the_book_and_moves_the_balances(venue: Venue) -> None:
    before = venue.balances()
    asks = venue.server.order_book(SYMBOL, 3).asks
    placed = await venue.buy(AMOUNT, asks[2].price, **venue.params())
    order = await venue.client.fetch_order(placed["id"], SYMBOL)

    assert order["status"] == "closed" and order["timeInForce"] in ("IOC", None)
    assert order["clientOrderId"] == venue.expected.client_id
    assert number(order["filled"]) == AMOUNT and number(order["average"]) == asks[0].price
    cost = AMOUNT * asks[0].price
    assert number(order["cost"]) == cost
    fee, fee_currency = number(order["fee"]["cost"]), order["fee"]["currency"]
    assert fee_currency == venue.expected.fee_currency
    record = venue.server.find_order("demo", order_id=placed["id"])
    assert record is not None and fee == record.fee > 0
    after = venue.balances()
    assert after["BTC"] == (before["BTC"][0] + AMOUNT - (fee if fee_currency == "BTC" else 0), 0)
    assert after["USDT"] == (before["USDT"][0] - cost - (fee if fee_currency == "USDT" else 0), 0)


async def test_an_ioc_larger_than_the_book_under_its_limit_fills_part_and_cancels_the_rest(
    venue: Venue,
) -> None:
    venue.server.book_shape = BookShape(levels=5, level_value=Decimal(1000))
    asks = venue.server.order_book(SYMBOL, 5).asks
    reachable = asks[0].amount + asks[1].amount
    wanted = Decimal("0.05")
    assert reachable < wanted
    placed = await venue.buy(wanted, asks[1].price, **venue.params())
    order = await venue.client.fetch_order(placed["id"], SYMBOL)

    assert order["status"] == "canceled"
    assert number(order["filled"]) == reachable and number(order["amount"]) == wanted
    fills = asks[0].amount * asks[0].price + asks[1].amount * asks[1].price
    assert number(order["cost"]) == pytest.approx(fills)
    assert venue.balances()["USDT"][1] == 0  # the unfilled rest holds nothing


async def test_an_ioc_priced_away_from_the_book_fills_nothing_and_is_found_by_client_id(
    venue: Venue,
) -> None:
    before = venue.balances()
    best_bid = venue.server.order_book(SYMBOL, 1).bids[0].price
    placed = await venue.buy(AMOUNT, best_bid, **venue.params())

    [found] = await venue.expected.lookup(venue.client, venue.expected.client_id)
    assert found["id"] == placed["id"] and found["status"] == "canceled"
    assert number(found["filled"]) == 0
    assert venue.balances() == before


async def test_an_order_beyond_the_free_balance_is_insufficient_funds_and_changes_nothing(
    venue: Venue,
) -> None:
    before = venue.balances()
    best_ask = venue.server.order_book(SYMBOL, 1).asks[0].price
    with pytest.raises(ccxt.InsufficientFunds):
        await venue.buy(Decimal(1), best_ask, **venue.params())
    assert venue.balances() == before and not venue.server.account("demo").orders
    assert await venue.expected.lookup(venue.client, venue.expected.client_id) == []


@pytest.mark.parametrize("breach", ["below_minimum", "off_step"])
async def test_a_filter_breach_is_the_venues_refusal(venue: Venue, breach: str) -> None:
    rules, expected = venue.server.order_rules(SYMBOL), venue.expected
    if breach == "below_minimum":
        amount, refusal = expected.below_minimum
    else:
        # As a client whose markets predate a coarser lot size: ccxt then sends the finer
        # amount instead of truncating it to the step.
        venue.client.markets[SYMBOL]["precision"]["amount"] = float(rules.amount_step / 10)
        amount, refusal = AMOUNT + rules.amount_step / 2, expected.off_step
    best_ask = venue.server.order_book(SYMBOL, 1).asks[0].price
    with pytest.raises(ccxt.BaseError) as raised:
        await venue.buy(amount, best_ask, **venue.params())
    assert type(raised.value) is refusal.error and refusal.marker in str(raised.value)
    assert not venue.server.account("demo").orders


async def test_a_client_id_in_a_format_the_venue_refuses_places_nothing(venue: Venue) -> None:
    client_id, refusal = venue.expected.bad_client_id
    best_ask = venue.server.order_book(SYMBOL, 1).asks[0].price
    params = {venue.expected.client_param: client_id, "timeInForce": "IOC"}
    with pytest.raises(ccxt.BaseError) as raised:
        await venue.buy(AMOUNT, best_ask, **params)
    assert type(raised.value) is refusal.error and refusal.marker in str(raised.value)
    assert not venue.server.account("demo").orders


async def test_a_reused_client_id_meets_the_venues_rule_open_and_done(venue: Venue) -> None:
    """Kraken refuses it among open orders only, OKX for good, Coinbase answers the earlier
    order; cancelling the resting order in between goes through ccxt too."""
    expected, book = venue.expected, venue.server.order_book(SYMBOL, 5)
    resting = await venue.buy(AMOUNT, book.bids[4].price, **venue.params(None))

    async def again() -> Order:
        return await venue.buy(AMOUNT, book.asks[0].price, **venue.params())

    if expected.reuse_while_open is None:
        assert (await again())["id"] == resting["id"]
    else:
        with pytest.raises(ccxt.BaseError) as raised:
            await again()
        assert type(raised.value) is expected.reuse_while_open.error
        assert expected.reuse_while_open.marker in str(raised.value)
    assert venue.orders_with(expected.client_id) == 1

    await venue.client.cancel_order(resting["id"], SYMBOL)
    assert (await venue.client.fetch_order(resting["id"], SYMBOL))["status"] == "canceled"
    assert venue.balances()["USDT"][1] == 0

    if expected.reuse_when_done == "accepted":
        assert (await again())["id"] != resting["id"]
        assert venue.orders_with(expected.client_id) == 2
        return
    if expected.reuse_when_done == "earlier":
        assert (await again())["id"] == resting["id"]
    else:
        assert expected.reuse_while_open is not None
        with pytest.raises(expected.reuse_while_open.error):
            await again()
    assert venue.orders_with(expected.client_id) == 1


@pytest.mark.parametrize("status", [None, 504])
async def test_an_order_whose_answer_is_lost_is_found_once_by_its_client_id(
    venue: Venue, status: int | None
) -> None:
    venue.server.lose_next_order_responses(1, status)
    best_ask = venue.server.order_book(SYMBOL, 1).asks[0].price
    with pytest.raises(ccxt.NetworkError):
        await venue.buy(AMOUNT, best_ask, **venue.params())

    [found] = await venue.expected.lookup(venue.client, venue.expected.client_id)
    assert found["status"] == "closed" and number(found["filled"]) == AMOUNT
    assert found["clientOrderId"] == venue.expected.client_id
    assert len(venue.server.account("demo").orders) == 1


async def test_a_read_only_key_is_refused_and_nothing_is_placed(venue: Venue) -> None:
    server = venue.server
    key = server.issue_key(DemoPermissions(), with_passphrase=True)
    best_ask = server.order_book(SYMBOL, 1).asks[0].price
    async with venue_client(get_venue(server.venue_id), server, key) as reader:
        with pytest.raises(ccxt.BaseError) as raised:
            await reader.create_order(SYMBOL, "limit", "buy", float(AMOUNT), float(best_ask))
    refusal = venue.expected.read_only
    assert type(raised.value) is refusal.error and refusal.marker in str(raised.value)
    assert not server.account("demo").orders


@pytest.mark.parametrize("side", ["buy", "sell"])
async def test_a_market_order_takes_the_best_level(venue: Venue, side: str) -> None:
    book = venue.server.order_book(SYMBOL, 1)
    best = book.asks[0] if side == "buy" else book.bids[0]
    # Coinbase sends a market buy as the quote to spend (amount x price) and fills what it buys.
    placed = await venue.client.create_order(
        SYMBOL, "market", side, float(AMOUNT), float(best.price)
    )
    order = await venue.client.fetch_order(placed["id"], SYMBOL)
    assert order["status"] == "closed" and order["type"] == "market"
    assert number(order["filled"]) == pytest.approx(AMOUNT, rel=Decimal("1e-4"))
    assert number(order["average"]) == best.price


async def test_the_book_is_the_one_orders_fill_against(venue: Venue) -> None:
    book = await venue.client.fetch_order_book(SYMBOL, 5)
    served = venue.server.order_book(SYMBOL, 5)
    bids, asks = [level[:2] for level in book["bids"]], [level[:2] for level in book["asks"]]
    assert bids == [[float(lv.price), float(lv.amount)] for lv in served.bids]
    assert asks == [[float(lv.price), float(lv.amount)] for lv in served.asks]
    assert bids == sorted(bids, reverse=True) and asks == sorted(asks)
    assert bids[0][0] < float(venue.server.prices[SYMBOL].last) < asks[0][0]
