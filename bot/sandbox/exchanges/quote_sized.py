"""Market buys sized in the quote currency, which several venues take (Bybit's default for a
spot market buy, Bitget's only way, KuCoin's ``funds``): how much of the base those funds buy
on the demo book, so the order engine, which counts in the base, can take it.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal

from bot.exchanges.book import OrderBook


def amount_for_funds(book: OrderBook, funds: Decimal, step: Decimal) -> Decimal:
    """The base amount ``funds`` of the quote buy, taking the asks best first, down to a whole
    number of ``step`` (all of the book if the funds reach past it)."""
    amount, left = Decimal(0), funds
    for level in book.asks:
        taken = min(level.amount, left / level.price)
        amount += taken
        left -= taken * level.price
        if left <= 0:
            break
    return (amount / step).to_integral_value(rounding=ROUND_FLOOR) * step
