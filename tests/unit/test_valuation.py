"""Valuation: which prices value an account's holdings, in the chat's currency, with no exchange
call; how a venue's tickers become prices; how ccxt's unified balance becomes ``Holdings``.

Price books are made by hand here (``PriceView`` is what a sweep freezes from the ``PriceBook``);
balance payloads are ccxt's own parsed responses, recorded from the real exchanges
(``bot/sandbox/reference/ccxt-static``), plus hand-made edge cases.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal, localcontext
from functools import cache
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from bot.exchanges.balances import AssetBalance, FuturesAccount, Holdings, parse_holdings
from bot.exchanges.catalogue import get_venue
from bot.exchanges.prices import (
    Pair,
    PriceSource,
    PriceView,
    Rate,
    prices_from_tickers,
    value_holdings,
)
from bot.sandbox.exchanges.base import find_reference_dir

D = Decimal
BINANCE = PriceSource("binance")
KRAKEN = PriceSource("kraken")
OKX = PriceSource("okx")
BINANCE_TESTNET = PriceSource("binance", sandbox=True)

Books = Mapping[PriceSource, Mapping[Pair, Decimal]]


def view(books: Books) -> PriceView:
    return PriceView({source: dict(book) for source, book in books.items()})


def holdings(**amounts: str) -> Holdings:
    return Holdings({asset: AssetBalance(D(amount)) for asset, amount in amounts.items()})


def values(valuation: Any) -> dict[str, tuple[Decimal | None, tuple[str, ...]]]:
    return {a.asset: (a.value, a.via) for a in valuation.assets}


# ----- PriceView.rate and value_holdings -------------------------------------------------------


def test_the_quote_currency_itself_is_worth_one_with_no_price_at_all() -> None:
    assert view({}).rate("usd", "USD", BINANCE) == Rate(D(1))


def test_a_direct_pair_on_the_home_venue() -> None:
    prices = view({KRAKEN: {("BTC", "USD"): D("60000.5")}})

    assert prices.rate("BTC", "USD", KRAKEN) == Rate(D("60000.5"), ("BTC/USD@kraken",))
    valuation = value_holdings(holdings(BTC="0.5"), prices, "USD", KRAKEN)
    [btc] = valuation.assets
    assert (btc.price, btc.value, btc.via) == (D("60000.5"), D("30000.25"), ("BTC/USD@kraken",))
    assert valuation.total == D("30000.25") and valuation.unpriced == ()


def test_an_inverse_pair_divides() -> None:
    """12,500 USDT in BTC, from the BTC/USDT book only."""
    prices = view({BINANCE: {("BTC", "USDT"): D("50000")}})

    rate = prices.rate("USDT", "BTC", BINANCE)

    assert rate is not None and (rate.price, rate.via) == (D("0.00002"), ("BTC/USDT@binance",))
    [usdt] = value_holdings(holdings(USDT="12500"), prices, "BTC", BINANCE).assets
    assert usdt.value == D("0.25")


def test_a_cross_through_usdt_on_the_home_venue_with_the_usdt_peg() -> None:
    """ADA on Binance in USD: ADA/USDT there, and USDT at 1:1 for want of a USDT/USD ticker."""
    prices = view({BINANCE: {("ADA", "USDT"): D("0.7210"), ("BTC", "USDT"): D("73369.84")}})

    rate = prices.rate("ADA", "USD", BINANCE)

    assert rate == Rate(D("0.7210"), ("ADA/USDT@binance", "USDT=USD peg"), pegged=True)
    [ada] = value_holdings(holdings(ADA="1000"), prices, "USD", BINANCE).assets
    assert ada.value == D("721.0000")
    assert ada.via == ("ADA/USDT@binance", "USDT=USD peg")


def test_with_no_stablecoin_ticker_anywhere_usdt_is_pegged_one_to_one() -> None:
    prices = view({BINANCE: {("BTC", "USDT"): D("50000")}, KRAKEN: {("BTC", "USD"): D("50100")}})

    rate = prices.rate("USDT", "USD", BINANCE)

    assert rate == Rate(D(1), ("USDT=USD peg",), pegged=True)
    [usdt] = value_holdings(holdings(USDT="1000"), prices, "USD", BINANCE).assets
    assert (usdt.price, usdt.value, usdt.via) == (D(1), D(1000), ("USDT=USD peg",))


def test_a_stablecoin_depeg_on_another_venue_shows_in_the_value() -> None:
    """A USDT/USD ticker of 0.98 on Kraken: 1,000 USDT held on Binance are worth 980 USD, and
    so is everything Binance prices in USDT."""
    prices = view(
        {
            BINANCE: {("BTC", "USDT"): D("50000")},
            KRAKEN: {("USDT", "USD"): D("0.98")},
        }
    )

    usdt = prices.rate("USDT", "USD", BINANCE)
    btc = prices.rate("BTC", "USD", BINANCE)

    assert usdt == Rate(D("0.98"), ("USDT/USD@kraken",), pegged=False)
    assert btc == Rate(D("49000.00"), ("BTC/USDT@binance", "USDT/USD@kraken"), pegged=False)
    valuation = value_holdings(holdings(USDT="1000", BTC="0.1"), prices, "USD", BINANCE)
    assert values(valuation) == {
        "USDT": (D("980"), ("USDT/USD@kraken",)),
        "BTC": (D("4900"), ("BTC/USDT@binance", "USDT/USD@kraken")),
    }


def test_a_stablecoin_quoted_the_other_way_round_is_inverted() -> None:
    prices = view({KRAKEN: {("USD", "USDT"): D("1.25")}})

    rate = prices.rate("USDT", "USD", BINANCE)
    assert rate is not None and (rate.price, rate.via) == (D("0.8"), ("USD/USDT@kraken",))


def test_a_euro_value_crosses_from_the_home_venue_to_a_venue_that_quotes_usdt_in_euro() -> None:
    prices = view(
        {
            BINANCE: {("BTC", "USDT"): D("50000")},
            KRAKEN: {("USDT", "EUR"): D("0.9")},
        }
    )

    rate = prices.rate("BTC", "EUR", BINANCE)

    assert rate == Rate(D("45000.0"), ("BTC/USDT@binance", "USDT/EUR@kraken"))
    [btc] = value_holdings(holdings(BTC="2"), prices, "EUR", BINANCE).assets
    assert btc.value == D("90000")


def test_values_in_btc_directly_inversely_and_through_a_bridge() -> None:
    prices = view(
        {
            BINANCE: {
                ("ETH", "BTC"): D("0.05"),
                ("BTC", "USDT"): D("50000"),
                ("ADA", "USDT"): D("0.75"),
            }
        }
    )

    valuation = value_holdings(
        holdings(BTC="0.5", ETH="4", USDT="12500", ADA="1000"), prices, "BTC", BINANCE
    )

    assert values(valuation) == {
        "BTC": (D("0.5"), ()),
        "USDT": (D("0.25"), ("BTC/USDT@binance",)),
        "ETH": (D("0.20"), ("ETH/BTC@binance",)),
        "ADA": (D("0.015"), ("ADA/USDT@binance", "BTC/USDT@binance")),
    }
    assert valuation.total == D("0.965")


def test_the_home_venue_price_wins_over_another_venue_quoting_the_same_pair() -> None:
    prices = view({BINANCE: {("BTC", "USDT"): D("50000")}, OKX: {("BTC", "USDT"): D("50100")}})

    assert prices.rate("BTC", "USDT", BINANCE) == Rate(D("50000"), ("BTC/USDT@binance",))
    assert prices.rate("BTC", "USDT", OKX) == Rate(D("50100"), ("BTC/USDT@okx",))


def test_a_cross_on_the_home_venue_wins_over_a_direct_pair_elsewhere() -> None:
    """Documented order: the asset's own venue first (direct, then a cross), other venues last."""
    prices = view({BINANCE: {("BTC", "USDT"): D("50000")}, KRAKEN: {("BTC", "USD"): D("50300")}})

    assert prices.rate("BTC", "USD", BINANCE) == Rate(
        D("50000"), ("BTC/USDT@binance", "USDT=USD peg"), pegged=True
    )
    assert prices.rate("BTC", "USD", KRAKEN) == Rate(D("50300"), ("BTC/USD@kraken",))


def test_another_venue_prices_what_the_home_venue_does_not_list() -> None:
    prices = view(
        {
            BINANCE: {("BTC", "USDT"): D("50000")},
            KRAKEN: {("DOT", "USD"): D("7.5")},
            OKX: {("DOT", "USDT"): D("7.6")},
        }
    )

    # Other venues in a fixed order (by id), so the same books always give the same price.
    assert prices.rate("DOT", "USD", BINANCE) == Rate(D("7.5"), ("DOT/USD@kraken",))
    [dot] = value_holdings(holdings(DOT="10"), prices, "USD", BINANCE).assets
    assert (dot.value, dot.via) == (D("75.0"), ("DOT/USD@kraken",))


def test_testnet_prices_never_value_live_holdings_nor_the_other_way_round() -> None:
    prices = view(
        {
            BINANCE_TESTNET: {("BTC", "USDT"): D("12345"), ("USDT", "USD"): D("0.5")},
            KRAKEN: {("ETH", "USD"): D("3000")},
        }
    )

    assert prices.rate("BTC", "USDT", BINANCE) is None
    assert prices.rate("USDT", "USD", BINANCE) == Rate(D(1), ("USDT=USD peg",), pegged=True)
    assert prices.rate("BTC", "USDT", BINANCE_TESTNET) == Rate(D("12345"), ("BTC/USDT@binance",))
    assert prices.rate("ETH", "USD", BINANCE_TESTNET) is None


def test_an_asset_with_no_price_anywhere_is_kept_unvalued_and_left_out_of_the_total() -> None:
    prices = view({BINANCE: {("BTC", "USDT"): D("50000")}})

    valuation = value_holdings(
        holdings(MYST="7", BTC="0.5", USDT="100", ABC="1"), prices, "USD", BINANCE
    )

    assert [a.asset for a in valuation.assets] == ["BTC", "USDT", "ABC", "MYST"]
    abc, myst = valuation.assets[2:]
    assert (myst.price, myst.value, myst.via) == (None, None, ())
    assert myst.balance == AssetBalance(D("7")) and abc.value is None
    assert valuation.unpriced == ("ABC", "MYST")
    assert valuation.total == D("25100")


def test_assets_are_ordered_biggest_value_first_then_by_name_unpriced_last() -> None:
    prices = view({BINANCE: {("BTC", "USDT"): D("50000"), ("ETH", "USDT"): D("2500")}})

    valuation = value_holdings(
        holdings(ZZZ="1", USDT="5000", ETH="2", BTC="0.01", AAA="3"), prices, "USDT", BINANCE
    )

    assert [(a.asset, a.value) for a in valuation.assets] == [
        ("ETH", D("5000")),
        ("USDT", D("5000")),
        ("BTC", D("500.00")),
        ("AAA", None),
        ("ZZZ", None),
    ]


#: A decimal of at most 12 significant digits between 1e-12 and 1e18: two of them multiply to
#: at most 24 digits, which the default 28-digit context holds exactly.
decimals = st.builds(
    lambda mantissa, exponent: D(mantissa).scaleb(exponent),
    st.integers(1, 10**12 - 1),
    st.integers(-12, 6),
)


@given(price=decimals, amount=decimals)
def test_a_direct_pair_values_exactly_amount_times_price(price: Decimal, amount: Decimal) -> None:
    prices = view({OKX: {("SOL", "USDT"): price}})

    [sol] = value_holdings(Holdings({"SOL": AssetBalance(amount)}), prices, "USDT", OKX).assets

    with localcontext() as exact:
        exact.prec = 100
        assert sol.value == amount * price
    assert (sol.price, sol.via) == (price, ("SOL/USDT@okx",))


def test_what_open_orders_hold_is_valued_too() -> None:
    prices = view({OKX: {("SOL", "USDT"): D("150.25")}})
    balance = Holdings({"SOL": AssetBalance(D("10"), D("2.5"))})

    [sol] = value_holdings(balance, prices, "USDT", OKX).assets

    assert sol.value == D("1878.125")


@given(price=decimals, amount=decimals)
@example(price=D(3), amount=D(3))
def test_an_inverse_pair_values_exactly_amount_divided_by_price(
    price: Decimal, amount: Decimal
) -> None:
    prices = view({OKX: {("USDT", "SOL"): price}})

    [sol] = value_holdings(Holdings({"SOL": AssetBalance(amount)}), prices, "USDT", OKX).assets

    assert sol.value == amount / price


@given(
    st.dictionaries(
        # No stablecoin or bridge can be spelt with these letters: each asset has one pair, or none.
        st.text("KLMNOPQWXYZ", min_size=2, max_size=4),
        st.tuples(decimals, st.none() | decimals),
        max_size=12,
    )
)
def test_every_held_asset_is_in_the_valuation_sorted_and_totalled(
    held: dict[str, tuple[Decimal, Decimal | None]],
) -> None:
    book = {(asset, "USD"): price for asset, (_, price) in held.items() if price is not None}
    prices = view({KRAKEN: book})

    valuation = value_holdings(
        Holdings({asset: AssetBalance(amount) for asset, (amount, _) in held.items()}),
        prices,
        "USD",
        KRAKEN,
    )

    assert sorted(a.asset for a in valuation.assets) == sorted(held)
    unpriced = sorted(asset for asset, (_, price) in held.items() if price is None)
    assert sorted(valuation.unpriced) == unpriced
    priced = [a for a in valuation.assets if a.value is not None]
    assert valuation.assets[: len(priced)] == tuple(priced)  # unpriced last
    amounts = [a.value for a in priced if a.value is not None]
    assert amounts == sorted(amounts, reverse=True)
    assert valuation.total == sum(amounts, D(0))


# ----- prices_from_tickers ---------------------------------------------------------------------

SPOT = {"base": "BTC", "quote": "USDT", "spot": True}
PERPETUAL = {"base": "BTC", "quote": "USDT", "spot": False, "swap": True}


def spot(base: str, quote: str) -> dict[str, Any]:
    return {"base": base, "quote": quote, "spot": True}


def test_a_ticker_gives_its_last_price_else_the_middle_of_the_book_else_the_close() -> None:
    markets = {f"{base}/USDT": spot(base, "USDT") for base in ("A", "B", "C", "D", "E", "F")}
    tickers = {
        "A/USDT": {"last": 1.5, "bid": 1.0, "ask": 3.0, "close": 9.0},
        "B/USDT": {"last": None, "bid": 1.0, "ask": 2.0, "close": 9.0},
        "C/USDT": {"last": 0, "bid": 0.25, "ask": 0.5},  # 0: no trade yet
        "D/USDT": {"last": None, "bid": 1.0, "ask": None, "close": 4.25},  # one-sided book
        "E/USDT": {"last": None, "bid": None, "ask": None, "close": None},
        "F/USDT": {"last": 0.0, "bid": 0, "ask": 0, "close": 0},
        "G/USDT": {"last": 5.0},  # no such market: skipped
    }

    assert prices_from_tickers(tickers, markets) == {
        ("A", "USDT"): D("1.5"),
        ("B", "USDT"): D("1.5"),
        ("C", "USDT"): D("0.375"),
        ("D", "USDT"): D("4.25"),
    }


def test_a_ticker_as_the_exchange_wrote_it_keeps_its_digits() -> None:
    prices = prices_from_tickers(
        {"BTC/USDT": {"last": 73369.84}, "SHIB/USDT": {"last": 1.234e-05}},
        {"BTC/USDT": SPOT, "SHIB/USDT": spot("SHIB", "USDT")},
    )

    assert prices == {("BTC", "USDT"): D("73369.84"), ("SHIB", "USDT"): D("0.00001234")}


@pytest.mark.parametrize("perpetual_first", [True, False])
def test_a_spot_pair_wins_over_a_perpetual_of_the_same_assets(perpetual_first: bool) -> None:
    entries = [("BTC/USDT:USDT", {"last": 73400.0}), ("BTC/USDT", {"last": 73369.84})]
    if not perpetual_first:
        entries.reverse()

    prices = prices_from_tickers(dict(entries), {"BTC/USDT": SPOT, "BTC/USDT:USDT": PERPETUAL})

    assert prices == {("BTC", "USDT"): D("73369.84")}


def test_a_perpetual_prices_its_pair_where_the_venue_has_no_spot_market() -> None:
    prices = prices_from_tickers({"BTC/USDT:USDT": {"last": 73400.1}}, {"BTC/USDT:USDT": PERPETUAL})

    assert prices == {("BTC", "USDT"): D("73400.1")}


def test_a_malformed_or_negative_ticker_is_skipped() -> None:
    markets = {"BTC/USDT": SPOT, "ETH/USDT": spot("ETH", "USDT")}

    prices = prices_from_tickers({"BTC/USDT": None, "ETH/USDT": {"last": -1.0}}, markets)

    assert prices == {}


# ----- parse_holdings --------------------------------------------------------------------------


@cache
def recorded_balances() -> list[tuple[str, str, dict[str, Any]]]:
    """Every ccxt-parsed fetchBalance answer recorded from a real exchange: (venue, case, it)."""
    found = []
    for path in sorted((find_reference_dir() / "response").glob("*.json")):
        recorded = json.loads(path.read_text())
        for case in recorded["methods"].get("fetchBalance", []):
            found.append((path.stem, case["description"], case["parsedResponse"]))
    return found


@pytest.mark.parametrize(
    ("venue_id", "parsed"),
    [(venue, parsed) for venue, _, parsed in recorded_balances()],
    ids=[f"{venue}: {case}" for venue, case, _ in recorded_balances()],
)
def test_every_recorded_balance_keeps_exactly_its_non_zero_assets(
    venue_id: str, parsed: dict[str, Any]
) -> None:
    rows = {
        asset: row
        for asset, row in parsed.items()
        if asset not in ("info", "free", "used", "total")
        and isinstance(row, dict)
        and {"free", "used", "total"} <= row.keys()
        # (isolated margin nests a balance per market: not what a balance read returns)
        and not any(isinstance(row[part], dict) for part in ("free", "used", "total"))
    }
    held = parse_holdings(parsed, get_venue(venue_id))

    non_zero = {asset for asset, row in rows.items() if row["total"] or row["free"] or row["used"]}
    assert set(held.assets) == non_zero
    for asset in non_zero:
        row, balance = rows[asset], held.assets[asset]
        if row["total"] is not None:
            assert balance.total == D(str(row["total"]))
        if row["free"] is not None:
            assert balance.free == D(str(row["free"]))


def test_binance_spot_drops_the_zero_rows_binance_lists() -> None:
    [parsed] = [p for v, case, p in recorded_balances() if case == "Spot balance"]

    held = parse_holdings(parsed, get_venue("binance"))

    assert held == Holdings(
        {"LTC": AssetBalance(D("0.919741")), "ETH": AssetBalance(D("0.02229833"))}
    )


def test_binanceusdm_futures_figures_are_read_from_the_account_payload() -> None:
    [parsed] = [p for v, case, p in recorded_balances() if case == "Linear swap balance"]

    futures = parse_holdings(parsed, get_venue("binanceusdm")).futures
    spot_reading = parse_holdings(parsed, get_venue("binance")).futures

    assert futures == FuturesAccount(
        settle="USDT",
        wallet_balance=D("31.02261200"),
        unrealised_pnl=D(0),
        margin_balance=D("31.02261200"),
        initial_margin=D(0),
        available=D("31.02261200"),
    )
    assert spot_reading is None  # only a futures venue reads futures figures


def test_futures_figures_as_binance_sends_them_with_a_position_open() -> None:
    info = {
        "totalWalletBalance": "12500.00000000",
        "totalUnrealizedProfit": "-41.27500000",
        "totalMarginBalance": "12458.72500000",
        "totalInitialMargin": "183.42460000",
        "availableBalance": "12275.30040000",
    }

    held = parse_holdings(
        {"info": info, "USDT": {"free": 12275.3004, "used": 183.4246, "total": 12458.725}},
        get_venue("binanceusdm"),
    )

    assert held.futures == FuturesAccount(
        "USDT",
        D("12500"),
        D("-41.275"),
        D("12458.725"),
        D("183.4246"),
        D("12275.3004"),
    )
    assert held.assets == {"USDT": AssetBalance(D("12275.3004"), D("183.4246"))}


def test_a_futures_payload_without_account_totals_has_no_futures_figures() -> None:
    held = parse_holdings({"info": [], "USDT": {"free": 5.0}}, get_venue("binanceusdm"))

    assert held.futures is None and held.assets == {"USDT": AssetBalance(D(5))}


@pytest.mark.parametrize(
    ("big", "small"),
    [(1e12, 1e-12), ("1000000000000", "0.000000000001"), (1_000_000_000_000, 1e-12)],
)
def test_very_large_and_very_small_amounts_are_exact(big: object, small: object) -> None:
    held = parse_holdings(
        {
            "PEPE": {"free": big, "used": 0, "total": big},
            "BTC": {"free": small, "used": 0.0, "total": small},
            "SATS": {"free": "123456789012.12345678", "used": "0.00000001"},
        },
        get_venue("okx"),
    )

    assert held.assets["PEPE"] == AssetBalance(D(10) ** 12, D(0))
    assert held.assets["BTC"] == AssetBalance(D(10) ** -12, D(0))
    assert held.assets["SATS"].total == D("123456789012.12345679")


def test_missing_figures_are_derived_from_the_others() -> None:
    held = parse_holdings(
        {
            "A": {"free": 1.5, "used": None, "total": 2.0},
            "B": {"free": None, "used": 0.5, "total": 2.0},
            "C": {"free": 3.0},
            "D": {"total": 4.0},
            "F": {"free": None, "used": None, "total": None},
            "G": {"free": 0.0, "used": 0.0, "total": 0.0},
            "H": {"free": "NaN", "used": "inf"},
        },
        get_venue("kraken"),
    )

    assert held.assets == {
        "A": AssetBalance(D("1.5"), D("0.5")),
        "B": AssetBalance(D("1.5"), D("0.5")),
        "C": AssetBalance(D(3), D(0)),
        "D": AssetBalance(D(4), D(0)),
    }


def test_an_amount_only_known_as_used_is_held_in_orders_not_owed() -> None:
    held = parse_holdings({"ETH": {"used": 0.25}}, get_venue("kraken"))

    assert held.assets == {"ETH": AssetBalance(D(0), D("0.25"))}


def test_the_unified_summary_keys_are_not_assets() -> None:
    held = parse_holdings(
        {
            "info": {"BTC": {"free": 1}},
            "free": {"BTC": 1.0},
            "used": {"BTC": 0.0},
            "total": {"BTC": 1.0},
            "timestamp": 1701856395927,
            "datetime": "2023-12-06T09:53:15.927Z",
            "debt": {"BTC": 0},
            "BTC": {"free": 1.0, "used": 0.0, "total": 1.0},
        },
        get_venue("binance"),
    )

    assert held.assets == {"BTC": AssetBalance(D(1), D(0))}


#: Amounts of up to 15 significant digits, as an exchange writes them.
fifteen_digits = st.builds(
    lambda mantissa, exponent: D(mantissa).scaleb(exponent),
    st.integers(1, 10**15 - 1),
    st.integers(-20, 10),
)


@given(free=fifteen_digits, used=fifteen_digits)
def test_floats_from_ccxt_come_back_as_the_exchange_wrote_them(
    free: Decimal, used: Decimal
) -> None:
    """ccxt parses the exchange's strings into floats; up to 15 significant digits survive."""
    held = parse_holdings(
        {"ETH": {"free": float(free), "used": float(used), "total": float(free + used)}},
        get_venue("bybit"),
    )

    assert held.assets["ETH"] == AssetBalance(free, used)
