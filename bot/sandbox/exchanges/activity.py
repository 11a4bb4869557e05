"""What a demo account did, in no venue's format: orders, fills and derivatives positions.

The records are venue-independent so every server keeps them the same way and a test drives every
venue alike; each venue only writes them in its own payload shape. The listing helpers here hold
the filtering and paging that venue history endpoints share (by market, by time, newest first,
``limit`` at a time after a cursor): a venue names its parameters in a :class:`QueryNames` and
gets a :class:`Query` that pages its records.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Generic, Literal, Protocol, TypeVar

Side = Literal["buy", "sell"]
OrderType = Literal["limit", "market"]
#: Good till canceled, immediate or cancel (fill what the book allows now, cancel the rest),
#: fill or kill (all now or nothing).
TimeInForce = Literal["GTC", "IOC", "FOK"]
OrderStatus = Literal["open", "closed", "canceled"]
#: The lifecycle every venue names its own way (``NEW``, ``live``, ``PartiallyFilled``…).
OrderState = Literal["new", "partially_filled", "filled", "canceled"]
MarginMode = Literal["cross", "isolated"]


@dataclass(frozen=True)
class Pair:
    """A unified symbol's parts: ``BTC/USDT`` (spot) or ``BTC/USDT:USDT`` (settled in USDT)."""

    base: str
    quote: str
    settle: str | None = None

    @classmethod
    def of(cls, symbol: str) -> Pair:
        pair, _, settle = symbol.partition(":")
        base, slash, quote = pair.partition("/")
        if not (base and slash and quote):
            raise ValueError(f"{symbol!r} is not a unified symbol like BTC/USDT")
        return cls(base, quote, settle or None)

    @property
    def spot(self) -> str:
        """The spot pair's symbol (``BTC/USDT`` for ``BTC/USDT:USDT`` too)."""
        return f"{self.base}/{self.quote}"


@dataclass
class DemoOrder:
    """An order as every venue knows it. A resting order fills at its limit price; an order
    that takes liquidity fills at the book's prices, so ``average`` may beat ``price``.
    ``leverage`` matters for contracts only (margin held = notional / it)."""

    seq: int  # server-wide creation order: what cursors and ties sort by
    id: str  # in the venue's own id format
    client_order_id: str
    symbol: str
    side: Side
    type: OrderType
    price: Decimal
    amount: Decimal
    created_ms: int
    updated_ms: int
    filled: Decimal = Decimal(0)
    fee: Decimal = Decimal(0)  # paid by the fills so far, in ``fee_currency``
    fee_currency: str = ""
    status: OrderStatus = "open"
    leverage: int = 1
    time_in_force: TimeInForce = "GTC"
    filled_cost: Decimal = Decimal(0)  # the fills' value in the quote currency

    @property
    def remaining(self) -> Decimal:
        return self.amount - self.filled

    @property
    def state(self) -> OrderState:
        if self.status == "open":
            return "partially_filled" if self.filled else "new"
        return "filled" if self.status == "closed" else "canceled"

    @property
    def cost(self) -> Decimal:
        """Filled value in the quote currency."""
        return self.filled_cost

    @property
    def average(self) -> Decimal:
        """The volume-weighted fill price (0 before any fill, as venues report it)."""
        return self.filled_cost / self.filled if self.filled else Decimal(0)

    @property
    def time_ms(self) -> int:
        return self.created_ms


@dataclass(frozen=True)
class DemoTrade:
    """One fill of one order."""

    seq: int
    id: str
    order_id: str
    client_order_id: str
    symbol: str
    side: Side
    order_type: OrderType
    price: Decimal
    amount: Decimal
    fee: Decimal
    fee_currency: str
    taker: bool
    time_ms: int
    realized_pnl: Decimal = Decimal(0)  # what a contract fill that reduced a position realised

    @property
    def cost(self) -> Decimal:
        return self.price * self.amount


@dataclass
class DemoPosition:
    """A one-way (net) derivatives position; ``amount`` is in contracts, negative for a short."""

    symbol: str
    amount: Decimal
    entry_price: Decimal
    leverage: int
    updated_ms: int
    margin_mode: MarginMode = "cross"

    @property
    def side(self) -> Literal["long", "short"]:
        return "long" if self.amount > 0 else "short"

    @property
    def contracts(self) -> Decimal:
        return abs(self.amount)

    def notional(self, mark: Decimal) -> Decimal:
        """Signed value at ``mark``: negative for a short, as venues report it."""
        return self.amount * mark

    def unrealized_pnl(self, mark: Decimal) -> Decimal:
        return (mark - self.entry_price) * self.amount

    def initial_margin(self, mark: Decimal) -> Decimal:
        return abs(self.notional(mark)) / self.leverage

    @property
    def isolated_margin(self) -> Decimal:
        """What an isolated position put up when it opened."""
        return self.contracts * self.entry_price / self.leverage

    def liquidation_price(self, collateral: Decimal, maintenance_rate: Decimal) -> Decimal:
        """Where losses leave ``collateral`` at the maintenance margin (never below zero).

        ``collateral`` is the isolated margin, or for cross margin the wallet the position draws
        on; with Binance's maintenance amount added it is Binance's one-position formula.
        """
        size, entry = self.contracts, self.entry_price
        if self.amount > 0:
            price = (size * entry - collateral) / (size * (1 - maintenance_rate))
        else:
            price = (size * entry + collateral) / (size * (1 + maintenance_rate))
        return max(price, Decimal(0))


def move_position(
    held: DemoPosition | None, symbol: str, change: Decimal, price: Decimal, leverage: int, at: int
) -> tuple[DemoPosition | None, Decimal]:
    """``held`` after buying (``change`` > 0) or selling contracts at ``price``, and the profit
    realised by the part that closed exposure. Adding averages the entry; reducing keeps it;
    crossing zero opens the rest at ``price``."""
    if held is None or held.amount == 0:
        return DemoPosition(symbol, change, price, leverage, at), Decimal(0)
    amount = held.amount + change
    if (held.amount > 0) == (change > 0):
        entry = (held.entry_price * held.amount + price * change) / amount
        return DemoPosition(symbol, amount, entry, held.leverage, at, held.margin_mode), Decimal(0)
    closed = min(abs(change), held.contracts)
    realized = (price - held.entry_price) * closed * (1 if held.amount > 0 else -1)
    if amount == 0:
        return None, realized
    entry = held.entry_price if (amount > 0) == (held.amount > 0) else price
    return DemoPosition(symbol, amount, entry, held.leverage, at, held.margin_mode), realized


# --- what history endpoints share --------------------------------------------------------------


class Listed(Protocol):
    """What the listing helpers need of an order or a trade."""

    @property
    def seq(self) -> int: ...
    @property
    def id(self) -> str: ...
    @property
    def symbol(self) -> str: ...
    @property
    def time_ms(self) -> int: ...


ListedT = TypeVar("ListedT", bound=Listed)
T = TypeVar("T")


def newest_first(
    items: Iterable[ListedT],
    *,
    symbol: str | None = None,
    since_ms: int | None = None,
    until_ms: int | None = None,
) -> list[ListedT]:
    """``items`` of one market (all without ``symbol``) in ``[since_ms, until_ms]``, newest
    first, the filters most venue history endpoints take."""
    return sorted(
        (
            item
            for item in items
            if symbol in (None, item.symbol)
            and (since_ms is None or item.time_ms >= since_ms)
            and (until_ms is None or item.time_ms <= until_ms)
        ),
        key=lambda item: (item.time_ms, item.seq),
        reverse=True,
    )


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing; ``cursor`` (the last item's id) asks for the next, None at the end."""

    items: list[T]
    cursor: str | None


def page_after(items: Sequence[ListedT], cursor: str | None, limit: int) -> Page[ListedT]:
    """The ``limit`` items that follow the one whose id is ``cursor`` (from the start without
    one; none if no item has that id): id cursors, as ``after``, ``lastId`` or an opaque
    ``cursor`` page through OKX, KuCoin, Bybit, Bitget and Coinbase histories."""
    start = 0
    if cursor:
        start = next((i + 1 for i, item in enumerate(items) if item.id == cursor), len(items))
    chosen = list(items[start : start + limit])
    more = start + limit < len(items)
    return Page(chosen, chosen[-1].id if more and chosen else None)


def bounded_int(
    params: Mapping[str, str],
    name: str,
    *,
    default: int,
    high: int,
    invalid: Callable[[str], Exception],
) -> int:
    """A positive integer parameter (``limit``), capped at ``high`` as venues cap page sizes;
    ``invalid(name)`` is the venue's error for anything else."""
    value = params.get(name, "")
    if value == "":
        return default
    if not value.isdigit() or int(value) < 1:
        raise invalid(name)
    return min(int(value), high)


def ms_param(
    params: Mapping[str, str], name: str, invalid: Callable[[str], Exception]
) -> int | None:
    """An optional time parameter in epoch milliseconds; ``invalid(name)`` if malformed."""
    value = params.get(name, "")
    if value == "":
        return None
    if not value.isdigit() or len(value) > 16:
        raise invalid(name)
    return int(value)


@dataclass(frozen=True)
class Query:
    """A history request in the server's terms: one market (or all), a time window, and
    ``limit`` items after the ``cursor`` item."""

    symbol: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    cursor: str | None = None
    limit: int = 100

    def page(self, items: Iterable[ListedT]) -> Page[ListedT]:
        chosen = newest_first(
            items, symbol=self.symbol, since_ms=self.since_ms, until_ms=self.until_ms
        )
        return page_after(chosen, self.cursor, self.limit)


@dataclass(frozen=True)
class QueryNames:
    """What a venue calls the parameters of its history lists (None: it takes no such one)."""

    symbol: str = "symbol"
    since: str | None = "startTime"
    until: str | None = "endTime"
    cursor: str | None = None
    limits: tuple[int, int] = (100, 100)  # page size by default, and at most

    def parse(
        self,
        params: Mapping[str, str],
        *,
        symbol_of: Callable[[str], str],
        invalid: Callable[[str], Exception],
    ) -> Query:
        """The request's :class:`Query`; ``symbol_of`` turns a venue market id into a unified
        symbol (raising the venue's error), ``invalid(name)`` is its error for a bad value."""
        market = params.get(self.symbol)
        default, high = self.limits
        return Query(
            symbol=symbol_of(market) if market else None,
            since_ms=ms_param(params, self.since, invalid) if self.since else None,
            until_ms=ms_param(params, self.until, invalid) if self.until else None,
            cursor=params.get(self.cursor) if self.cursor else None,
            limit=bounded_int(params, "limit", default=default, high=high, invalid=invalid),
        )
