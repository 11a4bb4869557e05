"""Placing a leg and finding it again through real ccxt against each local venue: one contract,
every spot venue that rebalancing trades on."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from decimal import Decimal

import ccxt.async_support as ccxt
import pytest

from bot.exchanges.catalogue import get_venue
from bot.exchanges.orders import (
    ORDER_DIALECTS,
    OrderRefused,
    OutcomeUnknown,
    Refusal,
    client_order_id,
    dialect_of,
    find_order,
    place_limit_ioc,
)
from bot.sandbox.exchanges import SERVERS, DemoPermissions, VenueServer
from tests.integration.venue_client import venue_client

VENUES = sorted(ORDER_DIALECTS)
SYMBOL = "BTC/USDT"


@pytest.fixture(params=VENUES)
async def venue(request: pytest.FixtureRequest) -> AsyncIterator[tuple[VenueServer, ccxt.Exchange]]:
    venue_id: str = request.param
    async with SERVERS[venue_id]() as server:
        key = server.issue_key(DemoPermissions(spot_trade=True), with_passphrase=True)
        venue = get_venue(venue_id)
        async with venue_client(venue, server, key) as client:
            await client.load_markets()
            if venue.account_setup is not None:
                await venue.account_setup(client)
            yield server, client


def recent() -> int:
    """Where a lookup starts searching: a minute before now, as the executor asks."""
    return int(time.time() * 1000) - 60_000


def price_near(server: VenueServer, factor: str) -> Decimal:
    tick = server.order_rules(SYMBOL).price_tick
    raw = server.prices[SYMBOL].last * Decimal(factor)
    return (raw / tick).to_integral_value() * tick


def orders_with(server: VenueServer, client_id: str) -> int:
    return sum(
        order.client_order_id == client_id for order in server.account("demo").orders.values()
    )


async def test_an_ioc_sell_fills_and_the_report_matches_the_venue(
    venue: tuple[VenueServer, ccxt.Exchange],
) -> None:
    server, client = venue
    dialect = dialect_of(server.venue_id)
    cid = client_order_id(dialect, "00ff00ff00ff00ff", 0)
    placed = await place_limit_ioc(
        client, dialect, SYMBOL, "sell", Decimal("0.1"), price_near(server, "0.99"), cid
    )
    found = await find_order(client, dialect, SYMBOL, cid, since_ms=recent())
    assert found is not None and found.done and found.status == "closed"
    assert found.filled == Decimal("0.1")
    order = server.find_order("demo", client_order_id=cid)
    assert order is not None and found.average == order.average
    assert placed is None or placed.filled == found.filled
    assert server.account("demo").balance("BTC").free == Decimal("0.4234")


@pytest.mark.parametrize("status", [None, 504])
async def test_a_lost_answer_is_unknown_and_the_lookup_finds_the_one_order(
    venue: tuple[VenueServer, ccxt.Exchange], status: int | None
) -> None:
    server, client = venue
    dialect = dialect_of(server.venue_id)
    cid = client_order_id(dialect, "0123456789abcdef", 3)
    server.lose_next_order_responses(1, status)
    with pytest.raises(OutcomeUnknown):
        await place_limit_ioc(
            client, dialect, SYMBOL, "buy", Decimal("0.01"), price_near(server, "1.01"), cid
        )
    found = await find_order(client, dialect, SYMBOL, cid, since_ms=recent())
    assert found is not None and found.filled == Decimal("0.01")
    assert orders_with(server, cid) == 1


async def test_insufficient_funds_is_a_refusal_and_nothing_is_placed(
    venue: tuple[VenueServer, ccxt.Exchange],
) -> None:
    server, client = venue
    dialect = dialect_of(server.venue_id)
    cid = client_order_id(dialect, "1111222233334444", 1)
    with pytest.raises(OrderRefused) as refused:
        await place_limit_ioc(
            client, dialect, SYMBOL, "buy", Decimal("5"), price_near(server, "1.01"), cid
        )
    assert refused.value.refusal is Refusal.INSUFFICIENT_FUNDS
    assert orders_with(server, cid) == 0
    assert await find_order(client, dialect, SYMBOL, cid, since_ms=recent()) is None


async def test_an_order_below_the_minimum_is_refused_as_invalid(
    venue: tuple[VenueServer, ccxt.Exchange],
) -> None:
    server, client = venue
    dialect = dialect_of(server.venue_id)
    rules, price = server.order_rules(SYMBOL), price_near(server, "1.01")
    tiny = max(rules.amount_step, rules.min_amount)
    if tiny * price >= rules.min_notional:
        pytest.skip(f"{server.venue_id} takes an order of one lot step")
    cid = client_order_id(dialect, "5555666677778888", 2)
    with pytest.raises(OrderRefused) as refused:
        await place_limit_ioc(client, dialect, SYMBOL, "buy", tiny, price, cid)
    assert refused.value.refusal is Refusal.INVALID


def test_client_order_ids_are_stable_distinct_and_short() -> None:
    for dialect in ORDER_DIALECTS.values():
        ids = {client_order_id(dialect, "89abcdef01234567", leg) for leg in range(200)}
        assert len(ids) == 200
        assert client_order_id(dialect, "89abcdef01234567", 7) == client_order_id(
            dialect, "89abcdef01234567", 7
        )
        assert all(len(cid) <= 36 for cid in ids)
        assert client_order_id(dialect, "89abcdef01234568", 7) not in ids
