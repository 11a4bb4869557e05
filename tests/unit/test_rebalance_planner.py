"""The rebalancing planner: plain holdings, prices and targets in, legs out. Each plan is also
replayed leg by leg here, independently of the planner's own arithmetic."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.exchanges.book import BookLevel, OrderBook
from bot.rules.rebalance.planner import (
    MIN_TRADE_BUFFER,
    Account,
    LeftOutReason,
    MarketRule,
    PriceSource,
    RebalancePlan,
    estimate_price,
    plan_rebalance,
)

D = Decimal
PRICES = {"BTC": D(50_000), "ETH": D(2_500), "SOL": D(100), "USDT": D(1), "XYZ": D(1)}


def market(
    symbol: str,
    last: str,
    *,
    step: str = "0.00001",
    tick: str = "0.01",
    min_amount: str = "0",
    min_cost: str = "5",
    fee: str = "0.001",
) -> MarketRule:
    base, quote = symbol.split("/")
    return MarketRule(
        symbol, base, quote, D(step), D(tick), D(min_amount), D(min_cost), D(fee), D(last)
    )


BTC_USDT = market("BTC/USDT", "50000")
ETH_USDT = market("ETH/USDT", "2500", step="0.0001")
ETH_BTC = market("ETH/BTC", "0.05", step="0.001", tick="0.00001", min_cost="0.0001")
SOL_USDT = market("SOL/USDT", "100", step="0.01")
VENUE = {m.symbol: m for m in (BTC_USDT, ETH_USDT, ETH_BTC, SOL_USDT)}
NO_DIRECT_PAIR = {m.symbol: m for m in (BTC_USDT, ETH_USDT, SOL_USDT)}


def account(
    connection_id: int,
    holdings: Mapping[str, str],
    markets: Mapping[str, MarketRule] = VENUE,
    blocked: str | None = None,
) -> Account:
    return Account(
        connection_id,
        f"C{connection_id}",
        {asset: D(amount) for asset, amount in holdings.items()},
        markets,
        blocked,
    )


def weights(**percent: int) -> dict[str, Decimal]:
    return {asset: D(share) for asset, share in percent.items()}


def replay(plan: RebalancePlan, accounts: Sequence[Account]) -> dict[int, dict[str, Decimal]]:
    """Each connection's holdings after its legs, in order, fees paid in the quote; fails the
    test at the first leg that spends more than the connection has at that moment."""
    by_id = {a.connection_id: a for a in accounts}
    balances = {a.connection_id: defaultdict(Decimal, a.holdings) for a in accounts}
    for leg in plan.legs:
        rule = by_id[leg.connection_id].markets[leg.symbol]
        held = balances[leg.connection_id]
        if leg.side == "sell":
            assert leg.amount <= held[rule.base], f"{leg} sells more than is held"
            held[rule.base] -= leg.amount
            held[rule.quote] += leg.amount * leg.price * (1 - rule.taker_fee)
        else:
            cost = leg.amount * leg.price * (1 + rule.taker_fee)
            assert cost <= held[rule.quote], f"{leg} spends more than is held"
            held[rule.quote] -= cost
            held[rule.base] += leg.amount
    return {cid: dict(held) for cid, held in balances.items()}


def allocation(
    balances: Mapping[int, Mapping[str, Decimal]],
    target: Mapping[str, Decimal],
    prices: Mapping[str, Decimal],
) -> dict[str, Decimal]:
    values = {
        asset: sum((held.get(asset, D(0)) * prices[asset] for held in balances.values()), D(0))
        for asset in target
    }
    total = sum(values.values(), D(0))
    return {asset: value / total * 100 for asset, value in values.items()}


def distance(allocation: Mapping[str, Decimal], target: Mapping[str, Decimal]) -> Decimal:
    """The sum of absolute deviations from the target, in percentage points."""
    total = sum(target.values(), D(0))
    return sum((abs(allocation[a] - w / total * 100) for a, w in target.items()), D(0))


def proportion_gap(allocation: Mapping[str, Decimal], target: Mapping[str, Decimal]) -> Decimal:
    """The same at the best scale of the target: an asset that cannot move (stuck on a blocked
    connection, no market) is not counted again in every other asset's deviation."""
    total = sum(target.values(), D(0))
    shares = {a: w / total * 100 for a, w in target.items()}
    return min(
        sum((abs(allocation[a] - scale * w) for a, w in shares.items()), D(0))
        for scale in [allocation[a] / w for a, w in shares.items() if w > 0]
    )


# -- one venue --------------------------------------------------------------------------------


def test_btc_only_to_half_usdt_sells_half_the_value_net_of_fees() -> None:
    main = account(1, {"BTC": "1"})
    plan = plan_rebalance([main], weights(BTC=50, USDT=50), PRICES)
    (leg,) = plan.legs
    assert (leg.symbol, leg.side, leg.price) == ("BTC/USDT", "sell", D(50_000))
    # 1 − A = A·(1 − fee): the sale leaves as much BTC as the USDT it brings after the fee.
    assert leg.amount == D("0.50025")  # 1 / 1.999 on the 0.00001 step
    assert leg.fee == leg.amount * 50_000 * D("0.001") == leg.value * D("0.001")
    assert plan.fees == leg.fee and plan.traded_value == leg.value
    assert plan.reached and plan.note is None
    assert abs(plan.after["BTC"] - 50) < D("0.01")
    assert plan.before == {"BTC": 100, "USDT": 0}


def test_a_listed_direct_pair_is_used_instead_of_two_legs() -> None:
    plan = plan_rebalance([account(1, {"BTC": "1"})], weights(BTC=50, ETH=50), PRICES)
    assert [(leg.symbol, leg.side) for leg in plan.legs] == [("ETH/BTC", "buy")]
    assert plan.reached


def test_without_a_direct_pair_it_routes_through_the_quote_asset_and_leaves_it_as_it_was() -> None:
    main = account(1, {"BTC": "1", "USDT": "120"}, NO_DIRECT_PAIR)
    plan = plan_rebalance([main], weights(BTC=50, ETH=50), PRICES)
    assert [(leg.symbol, leg.side) for leg in plan.legs] == [
        ("BTC/USDT", "sell"),
        ("ETH/USDT", "buy"),
    ]
    after = replay(plan, [main])[1]
    # USDT only routes: it ends where it started, give or take one lot of ETH.
    assert D(120) <= after["USDT"] <= D(120) + ETH_USDT.amount_step * 2500 * D("1.001")
    assert plan.reached


def test_leg_below_the_venue_minimum_times_the_buffer_is_left_out_and_said() -> None:
    # 12 USDT of BTC: half of it (6 USDT) is under 5 USDT × 1.5.
    plan = plan_rebalance([account(1, {"BTC": "0.00024"})], weights(BTC=50, USDT=50), PRICES)
    assert plan.legs == ()
    (too_small,) = plan.left_out
    assert too_small.reason is LeftOutReason.TOO_SMALL
    assert (too_small.connection_id, too_small.subject) == (1, "BTC/USDT")
    assert f"5 USDT × {MIN_TRADE_BUFFER}" in too_small.detail
    assert not plan.reached and plan.note is not None and "minimum" in plan.note


def test_amounts_are_rounded_down_to_the_lot_step() -> None:
    coarse = {"BTC/USDT": market("BTC/USDT", "50000", step="0.001")}
    plan = plan_rebalance(
        [account(1, {"BTC": "1.23456789"}, coarse)], weights(BTC=30, USDT=70), PRICES
    )
    (leg,) = plan.legs
    assert leg.amount % D("0.001") == 0
    assert leg.amount == D("0.864")  # 1.23456789 × 0.7 / (1 − 0.3 × 0.001) = 0.86446…
    assert plan.reached


def test_assets_not_in_the_target_are_neither_sold_nor_counted() -> None:
    main = account(1, {"BTC": "1", "SOL": "1000", "USDT": "50000"})
    plan = plan_rebalance([main], weights(BTC=25, USDT=75), PRICES)
    assert plan.total_value == 100_000  # SOL's 100,000 is not counted
    assert set(plan.before) == {"BTC", "USDT"}
    assert all("SOL" not in leg.symbol for leg in plan.legs)
    assert replay(plan, [main])[1]["SOL"] == 1000


def test_a_blocked_connection_counts_in_the_allocation_but_gets_no_legs() -> None:
    paused = account(1, {"BTC": "1"}, blocked="paused")
    active = account(2, {"USDT": "100000"})
    plan = plan_rebalance([paused, active], weights(BTC=50, USDT=50), PRICES)
    assert plan.before["BTC"] == D(100) / 3 * 1  # 50,000 of 150,000
    assert {leg.connection_id for leg in plan.legs} == {2}
    assert [(leg.symbol, leg.side) for leg in plan.legs] == [("BTC/USDT", "buy")]
    (left_out,) = plan.left_out
    assert (left_out.connection_id, left_out.reason, left_out.detail) == (
        1,
        LeftOutReason.BLOCKED,
        "paused",
    )
    assert plan.reached


def test_what_a_blocked_connection_holds_stays_and_the_rest_keeps_the_target_proportions() -> None:
    # BTC stuck at 77 % on a paused connection: USDT and ETH still go to 1 : 1 (40 : 40).
    paused = account(1, {"BTC": "1"}, blocked="paused")
    active = account(2, {"USDT": "10000", "ETH": "2"})
    plan = plan_rebalance([paused, active], weights(BTC=20, USDT=40, ETH=40), PRICES)
    assert [(leg.symbol, leg.side) for leg in plan.legs] == [("ETH/USDT", "buy")]
    assert abs(plan.after["USDT"] - plan.after["ETH"]) < D("0.01")
    assert not plan.reached
    assert plan.note is not None and "C1 cannot trade" in plan.note


def test_a_single_blocked_connection_gives_an_empty_plan_that_says_why() -> None:
    plan = plan_rebalance(
        [account(1, {"BTC": "1"}, blocked="no_trade_key")], weights(BTC=50, USDT=50), PRICES
    )
    assert plan.legs == () and not plan.reached
    assert plan.note == "Nothing can be traded: no connection in scope can trade."


def test_within_tolerance_nothing_is_traded() -> None:
    plan = plan_rebalance(
        [account(1, {"BTC": "1", "USDT": "50200"})], weights(BTC=50, USDT=50), PRICES
    )
    assert plan.legs == () and plan.reached
    assert plan.note is not None and "within" in plan.note


def test_weights_are_read_relative_to_their_sum() -> None:
    target = {"BTC": D("33.33"), "ETH": D("33.33"), "USDT": D("33.33")}
    plan = plan_rebalance([account(1, {"USDT": "90000"})], target, PRICES)
    assert abs(sum(plan.target.values(), D(0)) - 100) < D("1e-20")
    assert plan.reached
    assert all(abs(share - D(100) / 3) < D("0.1") for share in plan.after.values())


def test_an_unpriced_target_asset_gives_an_empty_plan_that_names_it() -> None:
    plan = plan_rebalance([account(1, {"BTC": "1"})], weights(BTC=50, DOGE=50), PRICES)
    assert plan.legs == () and not plan.reached
    assert [(i.subject, i.reason) for i in plan.left_out] == [("DOGE", LeftOutReason.UNPRICED)]


def test_a_target_asset_nobody_holds_yet_is_valued_from_its_market() -> None:
    prices = {"BTC": D(50_000), "USDT": D(1)}  # no SOL price: nobody holds it yet
    plan = plan_rebalance([account(1, {"BTC": "1"})], weights(BTC=50, SOL=50), prices)
    assert [(leg.symbol, leg.side) for leg in plan.legs] == [
        ("BTC/USDT", "sell"),
        ("SOL/USDT", "buy"),
    ]
    assert plan.reached


def test_a_routing_asset_nobody_holds_is_valued_from_its_market() -> None:
    prices = {"BTC": D(50_000), "ETH": D(2_500)}  # no USDT price: nobody holds it
    plan = plan_rebalance(
        [account(1, {"BTC": "1"}, NO_DIRECT_PAIR)], weights(BTC=50, ETH=50), prices
    )
    assert [leg.symbol for leg in plan.legs] == ["BTC/USDT", "ETH/USDT"]
    assert plan.reached


# -- several venues ---------------------------------------------------------------------------


def test_across_venues_the_least_traded_value_trades_on_one_venue_only() -> None:
    rich_in_btc = account(1, {"BTC": "3"})
    rich_in_usdt = account(2, {"USDT": "50000"})
    target = weights(BTC=50, USDT=50)
    plan = plan_rebalance([rich_in_btc, rich_in_usdt], target, PRICES)
    assert {leg.connection_id for leg in plan.legs} == {1}
    assert plan.reached
    # Bringing each venue to 50/50 on its own trades twice as much.
    per_venue = [plan_rebalance([a], target, PRICES) for a in (rich_in_btc, rich_in_usdt)]
    naive = sum((p.traded_value for p in per_venue), D(0))
    assert plan.traded_value < D("0.6") * naive
    assert abs(plan.traded_value - 50_000) < 100


def test_an_asset_no_tradable_connection_can_trade_is_reported_with_the_closest_allocation() -> (
    None
):
    main = account(1, {"BTC": "1"})
    plan = plan_rebalance([main], weights(BTC=40, USDT=40, XYZ=20), PRICES)
    no_market = [i for i in plan.left_out if i.reason is LeftOutReason.NO_MARKET]
    assert [(i.connection_id, i.subject) for i in no_market] == [(None, "XYZ")]
    assert not plan.reached
    assert plan.note is not None and "XYZ" in plan.note
    assert plan.after["XYZ"] == 0
    # The rest keeps the target's proportions: BTC and USDT half each.
    assert abs(plan.after["BTC"] - 50) < D("0.01") and abs(plan.after["USDT"] - 50) < D("0.01")


def test_each_venue_sells_before_it_buys() -> None:
    accounts = [
        account(1, {"BTC": "1", "SOL": "10"}, NO_DIRECT_PAIR),
        account(2, {"SOL": "400", "USDT": "10"}, NO_DIRECT_PAIR),
    ]
    plan = plan_rebalance(accounts, weights(BTC=30, ETH=40, SOL=30), PRICES)
    assert plan.reached
    for cid in (1, 2):
        sides = [leg.side for leg in plan.legs if leg.connection_id == cid]
        assert sides == sorted(sides, key=lambda side: side == "buy")
        assert "sell" in sides and "buy" in sides
    replay(plan, accounts)


def test_fees_are_reported_per_leg_and_in_total_in_the_valuation_currency() -> None:
    dear = {"BTC/USDT": market("BTC/USDT", "50000", fee="0.006")}
    plan = plan_rebalance([account(1, {"BTC": "2"}, dear)], weights(BTC=50, USDT=50), PRICES)
    (leg,) = plan.legs
    assert leg.fee == leg.amount * leg.price * D("0.006")
    assert plan.fees == leg.fee
    after = replay(plan, [account(1, {"BTC": "2"}, dear)])[1]
    assert after["USDT"] == leg.value - leg.fee


def test_when_the_sell_that_pays_for_a_buy_is_left_out_the_buy_is_too() -> None:
    # The BTC sale is below its venue minimum, so the ETH it would pay for cannot be bought,
    # and the USDT that only routes must not be spent instead.
    strict = {
        "BTC/USDT": market("BTC/USDT", "50000", min_cost="1000000"),
        "ETH/USDT": ETH_USDT,
    }
    plan = plan_rebalance(
        [account(1, {"BTC": "1", "USDT": "500000"}, strict)], weights(BTC=50, ETH=50), PRICES
    )
    assert plan.legs == ()
    reasons = {(i.subject, i.reason) for i in plan.left_out}
    assert ("BTC/USDT", LeftOutReason.TOO_SMALL) in reasons
    assert ("ETH/USDT", LeftOutReason.UNFUNDED) in reasons
    assert not plan.reached


def test_a_big_leg_walks_the_book_to_a_worse_price_than_last() -> None:
    main = account(1, {"USDT": "100000"})
    target = weights(BTC=50, USDT=50)
    first = plan_rebalance([main], target, PRICES)
    (leg,) = first.legs
    assert (leg.price_source, leg.slippage) == (PriceSource.LAST, 0)
    thin = OrderBook(
        bids=(BookLevel(D(49_990), D(1)),),
        asks=(BookLevel(D(50_010), D("0.3")), BookLevel(D(50_100), D("0.1"))),
    )
    again = plan_rebalance([main], target, PRICES, books={(1, "BTC/USDT"): thin})
    (priced,) = again.legs
    assert priced.price_source is PriceSource.BEYOND_BOOK  # ~1 BTC, the book shows 0.4
    assert priced.price > D(50_010) and priced.slippage > 0
    assert priced.amount < leg.amount  # the same USDT buys less at the worse price
    replay(again, [main])


def test_priced_against_books_the_plan_keeps_to_the_markets_that_were_quoted() -> None:
    # Two venues could equally sell the BTC; once one is quoted with a spread, the other's
    # last price must not look cheaper just because nobody fetched its book.
    twins = [account(cid, {"BTC": "1", "USDT": "50000"}) for cid in (1, 2)]
    target = weights(BTC=40, USDT=60)
    first = plan_rebalance(twins, target, PRICES)
    spread = OrderBook(
        bids=(BookLevel(D(49_950), D(10)),),
        asks=(BookLevel(D(50_050), D(10)),),
    )
    books = {(leg.connection_id, leg.symbol): spread for leg in first.legs}
    again = plan_rebalance(twins, target, PRICES, books=books)
    assert len(first.legs) == len(again.legs) == 1
    assert {(leg.connection_id, leg.symbol) for leg in again.legs} == set(books)
    assert all(leg.price_source is PriceSource.BOOK for leg in again.legs)
    assert again.reached


def test_a_leg_inside_the_book_is_priced_at_its_volume_weighted_price() -> None:
    book = OrderBook(
        bids=(BookLevel(D(100), D(1)), BookLevel(D(98), D(3))),
        asks=(BookLevel(D(101), D(2)),),
    )
    rule = market("SOL/USDT", "100")
    assert estimate_price(rule, "sell", D(2), book) == (D(99), PriceSource.BOOK)
    assert estimate_price(rule, "sell", D(5), book) == (
        (D(100) + D(294) + D(98)) / 5,
        PriceSource.BEYOND_BOOK,
    )
    assert estimate_price(rule, "buy", D(1), book) == (D(101), PriceSource.BOOK)
    assert estimate_price(rule, "buy", D(1), None) == (D(100), PriceSource.LAST)


def test_weights_must_be_non_negative() -> None:
    with pytest.raises(ValueError):
        plan_rebalance([account(1, {"BTC": "1"})], {"BTC": D(110), "USDT": D(-10)}, PRICES)


# -- properties over random portfolios --------------------------------------------------------

ASSETS = ("BTC", "ETH", "SOL", "USDT", "EUR", "DOGE")
CATALOGUE = (
    ("BTC", "USDT"),
    ("ETH", "USDT"),
    ("SOL", "USDT"),
    ("DOGE", "USDT"),
    ("ETH", "BTC"),
    ("SOL", "BTC"),
    ("BTC", "EUR"),
    ("ETH", "EUR"),
    ("USDT", "EUR"),
)


@st.composite
def scenarios(
    draw: st.DrawFn,
) -> tuple[list[Account], dict[str, Decimal], dict[str, Decimal]]:
    cents = st.integers(1, 10_000_000)
    prices = {asset: D(draw(cents)) / 100 for asset in ASSETS}
    prices["USDT"] = D(1)
    accounts = []
    for cid in range(1, draw(st.integers(1, 4)) + 1):
        pairs = draw(st.lists(st.sampled_from(CATALOGUE), min_size=1, unique=True))
        fee = D(draw(st.sampled_from(["0", "0.001", "0.0026", "0.006"])))
        min_cost = D(draw(st.sampled_from(["0", "1", "5", "10"])))
        markets = {}
        for base, quote in pairs:
            tick = D("1e-6")
            last = (prices[base] / prices[quote]).quantize(tick) or tick
            step = D(draw(st.sampled_from(["1e-8", "1e-4", "0.01", "1"])))
            markets[f"{base}/{quote}"] = MarketRule(
                f"{base}/{quote}", base, quote, step, tick, step, min_cost, fee, last
            )
        held = draw(st.lists(st.sampled_from(ASSETS), min_size=1, unique=True))
        holdings = {asset: D(draw(st.integers(0, 10**9))) / 10**4 for asset in held}
        blocked = draw(st.sampled_from([None] * 5 + ["paused"]))
        accounts.append(Account(cid, f"C{cid}", holdings, markets, blocked))
    named = draw(st.lists(st.sampled_from(ASSETS), min_size=2, max_size=4, unique=True))
    cuts = sorted(
        draw(st.lists(st.integers(0, 100), min_size=len(named) - 1, max_size=len(named) - 1))
    )
    shares = [b - a for a, b in zip([0, *cuts], [*cuts, 100], strict=True)]
    return accounts, {a: D(s) for a, s in zip(named, shares, strict=True)}, prices


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_every_plan_pays_for_itself_moves_nothing_between_venues_and_gets_closer(
    scenario: tuple[list[Account], dict[str, Decimal], dict[str, Decimal]],
) -> None:
    accounts, target, prices = scenario
    plan = plan_rebalance(accounts, target, prices)
    by_id = {a.connection_id: a for a in accounts}

    # (a) replaying the legs in order never spends more than is held at that moment
    after = replay(plan, accounts)

    # (b) only markets of the leg's own connection, never a blocked one; a connection's value
    # changes only by its fees (and the gap between market and valuation prices)
    for leg in plan.legs:
        assert by_id[leg.connection_id].blocked is None
        rule = by_id[leg.connection_id].markets[leg.symbol]
        assert leg.amount % rule.amount_step == 0 and leg.amount >= rule.min_amount
        assert leg.amount * leg.price >= rule.min_cost * MIN_TRADE_BUFFER
    for cid, held in after.items():
        legs = [leg for leg in plan.legs if leg.connection_id == cid]
        rules = [by_id[cid].markets[leg.symbol] for leg in legs]
        change = sum(
            ((held.get(a, D(0)) - by_id[cid].holdings.get(a, D(0))) * prices[a] for a in held),
            D(0),
        )
        fees = sum((leg.fee for leg in legs), D(0))
        mispricing = sum(
            (
                leg.amount * abs(leg.price * prices[rule.quote] - prices[rule.base])
                for leg, rule in zip(legs, rules, strict=True)
            ),
            D(0),
        )
        assert abs(change + fees) <= mispricing + D("1e-12")
        sides = [leg.side for leg in legs]
        assert sides == sorted(sides, key=lambda side: side == "buy")

    # (c) the allocation gets closer to the target, or the plan is empty or short and says
    # why (then it gets closer to the target's proportions among the assets that can move)
    if plan.legs:
        replayed = allocation(after, target, prices)
        assert all(abs(replayed[a] - plan.after[a]) < D("1e-9") for a in target)
        assert proportion_gap(replayed, target) <= proportion_gap(plan.before, target) + D("1e-9")
        if distance(replayed, target) > distance(plan.before, target) + D("1e-9"):
            assert not plan.reached and plan.note is not None
    else:
        assert plan.note is not None
    if not plan.reached:
        assert plan.note is not None

    # (d) assets outside the target end where they started, but for lot-step dust
    for cid, held in after.items():
        for asset in set(held) - set(target):
            dust = sum(
                (
                    by_id[cid].markets[leg.symbol].amount_step * leg.price * 2
                    for leg in plan.legs
                    if leg.connection_id == cid and by_id[cid].markets[leg.symbol].quote == asset
                ),
                D(0),
            )
            change = held[asset] - by_id[cid].holdings.get(asset, D(0))
            assert D(0) <= change <= dust, f"{asset} on C{cid} changed by {change}"
            assert all(
                by_id[cid].markets[leg.symbol].base != asset
                for leg in plan.legs
                if leg.connection_id == cid
            )


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(), st.integers(1, 3))
def test_priced_against_books_every_plan_still_pays_for_itself(
    scenario: tuple[list[Account], dict[str, Decimal], dict[str, Decimal]], depth: int
) -> None:
    accounts, target, prices = scenario
    first = plan_rebalance(accounts, target, prices)
    books = {}
    for leg in first.legs:
        rule = next(a for a in accounts if a.connection_id == leg.connection_id).markets[leg.symbol]
        levels = [(n, rule.last * n / 100, leg.amount / 2) for n in range(1, depth + 1)]
        books[(leg.connection_id, leg.symbol)] = OrderBook(
            bids=tuple(BookLevel(rule.last - gap, size) for _, gap, size in levels),
            asks=tuple(BookLevel(rule.last + gap, size) for _, gap, size in levels),
        )
    plan = plan_rebalance(accounts, target, prices, books=books)
    after = replay(plan, accounts)
    if plan.legs:
        gap_after = proportion_gap(allocation(after, target, prices), target)
        assert gap_after <= proportion_gap(plan.before, target) + D("1e-9")
    for leg in plan.legs:
        if (leg.connection_id, leg.symbol) in books:
            assert leg.price_source is not PriceSource.LAST
            assert leg.slippage >= 0
