"""The order engine's venue-independent rules: a market's filters, the thin book every local
venue quotes around its last price, and which levels an incoming order takes.

``VenueServer.place_order`` applies these to an account; each venue only names its filters
(``order_rules``), says how it treats a reused client order id, and writes the answers in its
own format. Fills never move the price: the book refills at once, so one test's orders do not
depend on another's.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from enum import StrEnum
from typing import Literal

from bot.exchanges.book import BookLevel, OrderBook
from bot.sandbox.exchanges.activity import OrderType, Side, TimeInForce

#: How a venue treats a client order id it has seen: refuse it for ever (OKX, Bybit, KuCoin,
#: Bitget), refuse it only while that order is open (Binance), or answer with the earlier order
#: (Coinbase).
DuplicatePolicy = Literal["refuse", "refuse_while_open", "return_existing"]


class RejectReason(StrEnum):
    """Why a venue refuses an order; each venue answers each with its own code and text."""

    UNKNOWN_MARKET = "unknown_market"
    BAD_ORDER = "bad_order"  # a missing or non-positive amount or price
    AMOUNT_STEP = "amount_step"  # not a whole number of lot steps
    PRICE_TICK = "price_tick"  # not a whole number of ticks
    MIN_AMOUNT = "min_amount"
    MIN_NOTIONAL = "min_notional"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    DUPLICATE_CLIENT_ID = "duplicate_client_id"


class OrderRejected(ValueError):
    """The venue refuses the order; nothing changed."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class ResponseLost(Exception):
    """The order was executed but its answer never reaches the caller: the connection drops
    (``status`` None) or a gateway answers ``status`` instead (a timeout seen from outside)."""

    def __init__(self, status: int | None) -> None:
        super().__init__(status)
        self.status = status


@dataclass(frozen=True)
class OrderRules:
    """A market's filters as the venue enforces them; the markets endpoint must advertise the
    same figures, so ccxt's ``amount_to_precision`` and limits agree with the engine."""

    amount_step: Decimal = Decimal("1e-8")
    price_tick: Decimal = Decimal("1e-8")
    min_amount: Decimal = Decimal(0)
    min_notional: Decimal = Decimal(0)


@dataclass(frozen=True)
class BookShape:
    """How thin the demo book is: ``levels`` a side, ``gap`` apart (a fraction of the last
    price, the first level one gap away), each worth about ``level_value`` in the quote."""

    levels: int = 20
    gap: Decimal = Decimal("0.0005")
    level_value: Decimal = Decimal(25_000)

    def book(self, last: Decimal, rules: OrderRules) -> OrderBook:
        bids: list[BookLevel] = []
        asks: list[BookLevel] = []
        for n in range(1, self.levels + 1):
            ask = _on_grid(last * (1 + self.gap * n), rules.price_tick, ROUND_CEILING)
            bid = _on_grid(last * (1 - self.gap * n), rules.price_tick, ROUND_FLOOR)
            if asks and ask <= asks[-1].price:
                ask = asks[-1].price + rules.price_tick
            if bids and bid >= bids[-1].price:
                bid = bids[-1].price - rules.price_tick
            asks.append(BookLevel(ask, self._size(ask, rules)))
            if bid > 0:
                bids.append(BookLevel(bid, self._size(bid, rules)))
        return OrderBook(tuple(bids), tuple(asks))

    def _size(self, price: Decimal, rules: OrderRules) -> Decimal:
        size = _on_grid(self.level_value / price, rules.amount_step, ROUND_FLOOR)
        return max(size, rules.amount_step)


def _on_grid(value: Decimal, step: Decimal, rounding: str) -> Decimal:
    return (value / step).to_integral_value(rounding=rounding) * step


def check_order(
    rules: OrderRules, kind: OrderType, amount: Decimal, price: Decimal | None, last: Decimal
) -> None:
    """Raise :class:`OrderRejected` for the first filter the order breaks, as venues check."""
    if amount <= 0 or (kind == "limit" and (price is None or price <= 0)):
        raise OrderRejected(RejectReason.BAD_ORDER, "amount and price must be positive")
    if amount % rules.amount_step:
        raise OrderRejected(
            RejectReason.AMOUNT_STEP, f"amount is not a multiple of {rules.amount_step}"
        )
    if price is not None and price % rules.price_tick:
        raise OrderRejected(
            RejectReason.PRICE_TICK, f"price is not a multiple of {rules.price_tick}"
        )
    if amount < rules.min_amount:
        raise OrderRejected(RejectReason.MIN_AMOUNT, f"amount is below {rules.min_amount}")
    if amount * (price or last) < rules.min_notional:
        raise OrderRejected(RejectReason.MIN_NOTIONAL, f"value is below {rules.min_notional}")


def crossing(book: OrderBook, side: Side, limit: Decimal | None) -> Iterator[BookLevel]:
    """The levels an order of ``side`` takes, best first, up to its limit (all for a market
    order)."""
    levels = book.asks if side == "buy" else book.bids
    for level in levels:
        if limit is not None and (level.price > limit if side == "buy" else level.price < limit):
            return
        yield level


def fillable(book: OrderBook, side: Side, limit: Decimal | None) -> Decimal:
    return sum((level.amount for level in crossing(book, side, limit)), Decimal(0))


def market_limit(book: OrderBook, side: Side, amount: Decimal) -> Decimal:
    """The worst price a market order of ``amount`` reaches (the far end of the book if it
    is deeper than the book): it is held and filled like a limit order at that price."""
    levels = book.asks if side == "buy" else book.bids
    taken = Decimal(0)
    for level in levels:
        taken += level.amount
        if taken >= amount:
            return level.price
    return levels[-1].price


def amount_for_funds(book: OrderBook, funds: Decimal, step: Decimal) -> Decimal:
    """A market buy sized in the quote (Bybit's default spot market buy, Bitget's only one,
    KuCoin's ``funds``, Coinbase's ``quote_size``, OKX's ``tgtCcy``): the base amount
    ``funds`` buy, taking the asks best first, down to a whole number of ``step`` (all of the
    book if the funds reach past it); the engine counts in the base."""
    amount, left = Decimal(0), funds
    for level in book.asks:
        taken = min(level.amount, left / level.price)
        amount += taken
        left -= taken * level.price
        if left <= 0:
            break
    return (amount / step).to_integral_value(rounding=ROUND_FLOOR) * step


def time_in_force_of(kind: OrderType, time_in_force: TimeInForce) -> TimeInForce:
    """A market order never rests."""
    return "IOC" if kind == "market" and time_in_force == "GTC" else time_in_force
