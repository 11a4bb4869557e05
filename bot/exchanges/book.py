"""An order book, best first: what the planner prices a leg against and what the local venues
serve and fill orders from."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class BookLevel:
    price: Decimal
    amount: Decimal


@dataclass(frozen=True)
class OrderBook:
    """Bids descending, asks ascending."""

    bids: tuple[BookLevel, ...]
    asks: tuple[BookLevel, ...]
