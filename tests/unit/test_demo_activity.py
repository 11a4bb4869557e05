"""The demo accounts' money rules, which every venue server shares: what open orders hold, what
fills move, deposits and withdrawals, positions, the seeded account and the listing helpers."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

import pytest

from bot.sandbox.exchanges import BinanceServer, BinanceUsdmServer, KrakenServer, VenueServer
from bot.sandbox.exchanges.activity import (
    DemoPosition,
    QueryNames,
    bounded_int,
    move_position,
    ms_param,
    newest_first,
    page_after,
)
from bot.sandbox.exchanges.base import DEMO_BALANCES, Balance

BTC, ETH, BTC_PERP = "BTC/USDT", "ETH/USDT", "BTC/USDT:USDT"


def assert_used_is_what_orders_hold(server: VenueServer, account: str = "demo") -> None:
    held: dict[str, Decimal] = defaultdict(Decimal)
    for order in server.account(account).open_orders():
        asset, amount = server.hold_of(order)
        held[asset] += amount
    for asset, balance in server.account(account).balances.items():
        assert balance.used == held[asset], asset


# --- open orders hold funds ----------------------------------------------------------------


def test_a_buy_holds_quote_and_a_sell_holds_base() -> None:
    server = BinanceServer()
    server.add_open_order("demo", BTC, "buy", "0.1", "60000")
    server.add_open_order("demo", ETH, "sell", "1.5", "4500", filled="0.5")
    balances = server.account("demo").balances
    assert balances["USDT"] == Balance(Decimal(12500 - 6000), Decimal(6000))
    assert balances["ETH"] == Balance(DEMO_BALANCES["ETH"] - 1, Decimal(1))  # what remains
    assert_used_is_what_orders_hold(server)


def test_where_fees_are_paid_in_the_quote_a_buy_holds_the_fee_too() -> None:
    server = KrakenServer()
    order = server.add_open_order("demo", BTC, "buy", "0.1", "60000")
    assert server.hold_of(order) == ("USDT", Decimal(6000) * (1 + server.fee_rates.taker))


def test_a_contract_order_holds_its_margin_in_the_settlement_asset() -> None:
    server = BinanceUsdmServer()
    order = server.add_open_order("demo", BTC_PERP, "sell", "0.1", "80000", leverage=10)
    assert server.hold_of(order) == ("USDT", Decimal(800))
    assert server.account("demo").balance("USDT").used == 800


def test_an_order_that_cannot_be_funded_is_refused_and_nothing_changes() -> None:
    server = BinanceServer()
    before = dict(server.account("demo").balances)
    with pytest.raises(ValueError, match="not enough USDT"):
        server.add_open_order("demo", BTC, "buy", "1", "60000")
    with pytest.raises(ValueError, match="no market"):
        server.add_open_order("demo", "BTC/EUR", "buy", "0.01", "60000")
    with pytest.raises(ValueError, match="below its amount"):
        server.add_open_order("demo", BTC, "buy", "0.01", "60000", filled="0.01")
    assert server.account("demo").balances == before and not server.account("demo").orders


# --- fills ------------------------------------------------------------------------------------


def test_fills_release_the_hold_and_move_the_balances_with_the_fee() -> None:
    server = BinanceServer()
    order = server.add_open_order("demo", BTC, "buy", "0.1", "60000")
    first = server.fill("demo", order.id, "0.04")
    assert_used_is_what_orders_hold(server)
    last = server.fill("demo", order.id, taker=True)  # the rest
    assert_used_is_what_orders_hold(server)

    balances = server.account("demo").balances
    assert (first.fee, first.fee_currency, first.taker) == (Decimal("0.00004"), "BTC", False)
    assert last.amount == Decimal("0.06") and last.fee == Decimal("0.00006")
    assert balances["BTC"].free == DEMO_BALANCES["BTC"] + Decimal("0.1") - Decimal("0.0001")
    assert balances["USDT"] == Balance(Decimal(6500), Decimal(0))
    assert (order.status, order.filled, order.fee) == ("closed", Decimal("0.1"), Decimal("0.0001"))
    assert [trade.order_id for trade in server.account("demo").trades] == [order.id] * 2
    with pytest.raises(ValueError, match="no open order"):
        server.fill("demo", order.id)


def test_a_sell_fill_pays_its_fee_in_the_quote_and_cannot_overfill() -> None:
    server = BinanceServer()
    order = server.add_open_order("demo", ETH, "sell", "1", "4000")
    with pytest.raises(ValueError, match="only 1 of order"):
        server.fill("demo", order.id, "2")
    server.fill("demo", order.id)
    balances = server.account("demo").balances
    assert balances["ETH"] == Balance(DEMO_BALANCES["ETH"] - 1, Decimal(0))
    assert balances["USDT"].free == Decimal(12500 + 4000 - 4)


def test_a_quote_fee_venue_spends_the_reserve_and_returns_the_rest() -> None:
    server = KrakenServer()
    order = server.add_open_order("demo", BTC, "buy", "0.1", "60000")
    trade = server.fill("demo", order.id)  # a maker fill: cheaper than the reserved taker fee
    usdt = server.account("demo").balance("USDT")
    assert (trade.fee, trade.fee_currency) == (Decimal(6000) * server.fee_rates.maker, "USDT")
    assert usdt == Balance(Decimal(12500) - 6000 - trade.fee, Decimal(0))


def test_contract_fills_move_the_position_and_realise_profit_into_the_wallet() -> None:
    server = BinanceUsdmServer()
    opening = server.add_open_order("demo", BTC_PERP, "buy", "0.2", "60000", leverage=10)
    server.fill("demo", opening.id)
    closing = server.add_open_order("demo", BTC_PERP, "sell", "0.1", "65000", leverage=10)
    trade = server.fill("demo", closing.id)

    (position,) = server.account("demo").positions.values()
    fees = Decimal("0.2") * 60000 * server.fee_rates.maker + trade.fee
    assert (position.amount, position.entry_price) == (Decimal("0.1"), Decimal(60000))
    assert trade.realized_pnl == 500
    assert server.account("demo").balance("USDT") == Balance(12500 + 500 - fees, Decimal(0))
    assert_used_is_what_orders_hold(server)


def test_history_fills_record_a_done_order_and_move_no_money() -> None:
    server = BinanceServer()
    before = dict(server.account("demo").balances)
    trade = server.add_trade("demo", BTC, "sell", "0.1", "70000", time_ms=1_000)
    order = server.account("demo").orders[trade.order_id]
    assert (order.type, order.status, order.filled) == ("market", "closed", Decimal("0.1"))
    assert (trade.fee, trade.fee_currency, trade.time_ms) == (Decimal(7), "USDT", 1_000)
    assert server.account("demo").balances == before


# --- the trader's own transfers --------------------------------------------------------------


def test_deposits_and_withdrawals_move_free_funds_and_never_below_zero() -> None:
    server = BinanceServer()
    assert server.deposit("demo", "LTC", "2.5") == Balance(Decimal("2.5"))
    assert server.withdraw_funds("demo", "LTC", Decimal("2.5")) == Balance(Decimal(0))
    with pytest.raises(ValueError, match="only 0 LTC is free"):
        server.withdraw_funds("demo", "LTC", "0.1")
    server.add_open_order("demo", ETH, "sell", "4", "4500")
    with pytest.raises(ValueError, match=r"only 0\.182 ETH is free"):
        server.withdraw_funds("demo", "ETH", "1")
    assert server.account("demo").balance("ETH") == Balance(Decimal("0.182"), Decimal(4))


@pytest.mark.parametrize("amount", ["0", "-1", "NaN", "Infinity", "lots"])
def test_only_positive_amounts_move(amount: str) -> None:
    server = BinanceServer()
    with pytest.raises(ValueError):
        server.deposit("demo", "BTC", amount)
    with pytest.raises(ValueError):
        server.withdraw_funds("demo", "BTC", amount)
    assert server.account("demo").balance("BTC").total == DEMO_BALANCES["BTC"]


# --- positions -----------------------------------------------------------------------------


def test_positions_open_only_on_contracts_and_close_at_zero() -> None:
    server = BinanceUsdmServer()
    with pytest.raises(ValueError, match="perpetual"):
        server.open_position(BTC, "1", "70000")
    position = server.open_position(BTC_PERP, "-0.5", "70000", leverage=5)
    assert position is not None and (position.side, position.contracts) == ("short", 0.5)
    server.set_price(BTC_PERP, "69000")
    assert position.unrealized_pnl(server.mark_price(BTC_PERP)) == 500
    assert server.open_position(BTC_PERP, 0, 0) is None and server.positions["demo"] == {}


def test_the_simple_liquidation_rule_leaves_the_maintenance_margin() -> None:
    long = DemoPosition(BTC_PERP, Decimal(1), Decimal(100), 10, 0)
    short = DemoPosition(BTC_PERP, Decimal(-1), Decimal(100), 10, 0)
    rate = Decimal("0.005")
    for position in (long, short):
        price = position.liquidation_price(position.isolated_margin, rate)
        left = position.isolated_margin + position.unrealized_pnl(price)
        assert left == pytest.approx(rate * price)
    assert long.liquidation_price(Decimal(1000), rate) == 0  # the collateral covers it all


def test_moving_a_position_averages_reduces_closes_and_flips() -> None:
    held, realized = move_position(None, BTC_PERP, Decimal(1), Decimal(100), 10, 0)
    assert held is not None and realized == 0
    held, _ = move_position(held, BTC_PERP, Decimal(1), Decimal(200), 10, 1)
    assert held is not None and (held.amount, held.entry_price) == (2, 150)
    held, realized = move_position(held, BTC_PERP, Decimal(-1), Decimal(170), 10, 2)
    assert held is not None and (held.amount, held.entry_price, realized) == (1, 150, 20)
    flipped, realized = move_position(held, BTC_PERP, Decimal(-3), Decimal(140), 10, 3)
    assert flipped is not None and (flipped.amount, flipped.entry_price) == (-2, 140)
    assert realized == -10
    closed, realized = move_position(flipped, BTC_PERP, Decimal(2), Decimal(130), 10, 4)
    assert closed is None and realized == 20


# --- the seeded account ----------------------------------------------------------------------


def test_seeding_is_off_unless_asked() -> None:
    server = BinanceServer()
    account = server.account("demo")
    assert not account.orders and not account.trades
    assert {asset: b.free for asset, b in account.balances.items()} == dict(DEMO_BALANCES)


def test_a_seeded_spot_account_rests_two_orders_over_unchanged_totals() -> None:
    server = BinanceServer()
    server.seed_accounts = True
    account = server.account("alice")
    orders = account.open_orders()
    assert [(o.symbol, o.side, o.filled > 0) for o in orders] == [
        (ETH, "sell", True),
        (BTC, "buy", False),
    ]
    assert len(account.trades) == 3 and not account.positions
    assert {asset: b.total for asset, b in account.balances.items()} == dict(DEMO_BALANCES)
    assert_used_is_what_orders_hold(server, "alice")
    now = server.server_time_ms()
    assert all(trade.time_ms <= now for trade in account.trades)


def test_a_seeded_futures_account_holds_the_positions_its_fills_left() -> None:
    server = BinanceUsdmServer()
    server.seed_accounts = True
    positions = server.account("demo").positions
    assert {symbol: p.amount for symbol, p in positions.items()} == {
        BTC_PERP: Decimal("0.05"),
        "ETH/USDT:USDT": Decimal("1.0"),
    }
    assert_used_is_what_orders_hold(server)


# --- listing helpers ---------------------------------------------------------------------------


def test_listings_go_newest_first_and_page_after_a_cursor() -> None:
    server = BinanceServer()
    trades = [
        server.add_trade("demo", symbol, "buy", "0.01", "1000", time_ms=at)
        for symbol, at in ((BTC, 3), (ETH, 1), (BTC, 2), (BTC, 2))
    ]
    listed = newest_first(trades, symbol=BTC, since_ms=2)
    assert listed == [trades[0], trades[3], trades[2]]  # equal times: later record first
    first = page_after(listed, None, 2)
    assert first.items == listed[:2] and first.cursor == listed[1].id
    last = page_after(listed, first.cursor, 2)
    assert last.items == listed[2:] and last.cursor is None
    assert page_after(listed, "unknown", 2).items == []


def test_paging_parameters_are_checked_and_capped() -> None:
    def invalid(name: str) -> ValueError:
        return ValueError(name)

    assert bounded_int({}, "limit", default=20, high=50, invalid=invalid) == 20
    assert bounded_int({"limit": "500"}, "limit", default=20, high=50, invalid=invalid) == 50
    for bad in ("0", "-3", "ten"):
        with pytest.raises(ValueError, match="limit"):
            bounded_int({"limit": bad}, "limit", default=20, high=50, invalid=invalid)
    assert ms_param({"start": "1700000000000"}, "start", invalid) == 1_700_000_000_000
    assert ms_param({}, "start", invalid) is None
    with pytest.raises(ValueError, match="start"):
        ms_param({"start": "yesterday"}, "start", invalid)


def test_a_venues_parameter_names_make_one_query() -> None:
    server = BinanceServer()
    trades = [
        server.add_trade("demo", BTC, "buy", "0.01", "1000", time_ms=at) for at in (10, 20, 30)
    ]
    names = QueryNames(symbol="instId", since="begin", until="end", cursor="after", limits=(2, 5))
    query = names.parse(
        {"instId": "BTC-USDT", "begin": "15", "after": trades[2].id},
        symbol_of=lambda market_id: market_id.replace("-", "/"),
        invalid=ValueError,
    )
    assert (query.symbol, query.since_ms, query.until_ms, query.limit) == (BTC, 15, None, 2)
    assert query.page(trades).items == [trades[1]]
    with pytest.raises(ValueError, match="end"):
        names.parse({"end": "later"}, symbol_of=str, invalid=ValueError)
