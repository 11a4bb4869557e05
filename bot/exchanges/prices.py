"""Public prices, shared: one ticker call per venue per sweep, then valuation in the chat's
currency with no further exchange call.

How an asset is priced, first match wins (``PriceView.rate``):
1. the quote currency itself is worth 1;
2. a US-dollar stablecoin against USD or another one: its own ticker on any venue (so a depeg
   shows), else the 1:1 peg;
3. the direct pair on the asset's own venue;
4. a cross on that venue through a bridge asset (a stablecoin, BTC, ETH, USD, EUR);
5. the direct pair, then a cross, on another venue.
An asset with none of these has *no price*: it is shown as such, never valued at 0.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import ccxt.async_support as ccxt

from bot.clock import Clock, utc_now
from bot.exchanges.balances import AssetBalance, Holdings, to_decimal
from bot.exchanges.pool import ClientPool

log = logging.getLogger(__name__)

#: Currencies a chat can value its holdings in (/settings).
QUOTE_CURRENCIES = ("USD", "USDT", "EUR", "BTC")
DEFAULT_QUOTE = "USD"
#: US-dollar stablecoins: priced by their own ticker where one exists, else 1:1 with USD.
USD_FAMILY = frozenset({"USD", "USDT", "USDC", "FDUSD", "DAI", "TUSD", "USDP", "BUSD", "PYUSD"})
#: Assets a cross may go through, most liquid first.
BRIDGES = ("USDT", "USDC", "USD", "BTC", "ETH", "EUR")
#: Prices of a venue not refreshed for this long are not used any more.
DEFAULT_MAX_AGE = timedelta(minutes=15)
#: Prices this fresh are not fetched again (a Refresh tapped twice, a sweep right after it).
FRESH_FOR = timedelta(seconds=10)

Pair = tuple[str, str]  # (base, quote)


@dataclass(frozen=True)
class PriceSource:
    """Where prices come from: a venue, live or testnet (testnet prices are not real ones)."""

    venue_id: str
    sandbox: bool = False


@dataclass(frozen=True)
class Rate:
    """How many units of the quote one unit of an asset is worth (``times`` / ``per``: an
    inverse pair divides, so a value is computed with one rounding, not two), and the pairs
    that said so."""

    times: Decimal
    via: tuple[str, ...] = ()
    pegged: bool = False  # somewhere a stablecoin was taken at 1:1 for want of a ticker
    per: Decimal = Decimal(1)

    @property
    def price(self) -> Decimal:
        return self.times / self.per

    def value(self, amount: Decimal) -> Decimal:
        return amount * self.times / self.per

    def then(self, other: Rate) -> Rate:
        return Rate(
            self.times * other.times,
            self.via + other.via,
            self.pegged or other.pegged,
            self.per * other.per,
        )


async def fetch_prices(client: ccxt.Exchange) -> dict[Pair, Decimal]:
    """Every market's price from one public call (markets already loaded): the venue's
    last-price list where ccxt has one (Binance: weight 4 instead of 80 for all 24 h tickers),
    else ``fetch_tickers``."""
    if client.has.get("fetchLastPrices"):
        last = await client.fetch_last_prices()
        tickers = {symbol: {"last": entry.get("price")} for symbol, entry in last.items()}
    else:
        tickers = await client.fetch_tickers()
    return prices_from_tickers(tickers, client.markets or {})


def prices_from_tickers(
    tickers: Mapping[str, Any], markets: Mapping[str, Any]
) -> dict[Pair, Decimal]:
    """(base, quote) → price: the last trade, else the middle of the book."""
    prices: dict[Pair, Decimal] = {}
    for symbol, ticker in tickers.items():
        market = markets.get(symbol)
        if market is None or not isinstance(ticker, Mapping):
            continue
        price = to_decimal(ticker.get("last"))
        if not price:
            bid, ask = to_decimal(ticker.get("bid")), to_decimal(ticker.get("ask"))
            price = (bid + ask) / 2 if bid and ask else to_decimal(ticker.get("close"))
        if price and price > 0:
            # A spot pair wins over a perpetual of the same assets.
            pair = (str(market["base"]), str(market["quote"]))
            if pair not in prices or market.get("spot"):
                prices[pair] = price
    return prices


@dataclass
class _Entry:
    prices: dict[Pair, Decimal]
    at: datetime


class PriceBook:
    """The latest prices of each source, kept between sweeps; ``view`` freezes them for one
    valuation pass."""

    def __init__(self, max_age: timedelta = DEFAULT_MAX_AGE) -> None:
        self.max_age = max_age
        self._entries: dict[PriceSource, _Entry] = {}

    def update(self, source: PriceSource, prices: dict[Pair, Decimal], at: datetime) -> None:
        self._entries[source] = _Entry(prices, at)

    def age(self, source: PriceSource, now: datetime) -> timedelta | None:
        entry = self._entries.get(source)
        return None if entry is None else now - entry.at

    def view(self, now: datetime) -> PriceView:
        fresh = {
            source: entry.prices
            for source, entry in self._entries.items()
            if now - entry.at <= self.max_age
        }
        return PriceView(fresh)


class PriceFeed:
    """Fills the price book: one public ticker call per source when asked (once per sweep)."""

    def __init__(self, pool: ClientPool, book: PriceBook | None = None, clock: Clock = utc_now):
        self.book = book or PriceBook()
        self._pool = pool
        self._clock = clock

    async def refresh(self, source: PriceSource) -> bool:
        """Fetch the source's prices unless they are fresh already; on failure its last
        prices stay (until too old). True if fresh prices are in the book."""
        age = self.book.age(source, self._clock())
        if age is not None and age < FRESH_FOR:
            return True
        try:
            client = await self._pool.public(source.venue_id, source.sandbox)
            prices = await fetch_prices(client)
        except ccxt.BaseError as exc:
            # The class only: a message may carry the URL, and an endpoint may embed a login.
            log.warning("prices of %s not refreshed: %s", source.venue_id, type(exc).__name__)
            return False
        self.book.update(source, prices, self._clock())
        return True

    def view(self) -> PriceView:
        return self.book.view(self._clock())


@dataclass
class PriceView:
    """Prices of every fresh source at one moment; rates are memoised for the pass."""

    prices: Mapping[PriceSource, Mapping[Pair, Decimal]]
    _memo: dict[tuple[str, str, PriceSource, int], Rate | None] = field(default_factory=dict)

    def rate(self, asset: str, quote: str, home: PriceSource) -> Rate | None:
        return self._search(asset.upper(), quote.upper(), home, 2)

    def _search(self, asset: str, quote: str, home: PriceSource, depth: int) -> Rate | None:
        key = (asset, quote, home, depth)
        if key not in self._memo:
            self._memo[key] = None  # a cycle back here finds nothing
            self._memo[key] = self._find(asset, quote, home, depth)
        return self._memo[key]

    def _find(self, asset: str, quote: str, home: PriceSource, depth: int) -> Rate | None:
        if asset == quote:
            return Rate(Decimal(1))
        sources = [home, *self._others(home)]
        if asset in USD_FAMILY and quote in USD_FAMILY:
            for source in sources:
                own = self._pair(asset, quote, source)
                if own is not None:
                    return own
            return Rate(Decimal(1), (f"{asset}={quote} peg",), pegged=True)
        for source in sources:
            direct = self._pair(asset, quote, source)
            if direct is not None:
                return direct
            if depth == 0:
                continue
            for bridge in BRIDGES:
                if bridge in (asset, quote):
                    continue
                first = self._pair(asset, bridge, source)
                if first is None:
                    continue
                rest = self._search(bridge, quote, source, depth - 1)
                if rest is not None:
                    return first.then(rest)
        return None

    def _others(self, home: PriceSource) -> Iterable[PriceSource]:
        return sorted(
            (s for s in self.prices if s != home and s.sandbox == home.sandbox),
            key=lambda s: s.venue_id,
        )

    def _pair(self, asset: str, quote: str, source: PriceSource) -> Rate | None:
        book = self.prices.get(source)
        if not book:
            return None
        price = book.get((asset, quote))
        if price is not None:
            return Rate(price, (f"{asset}/{quote}@{source.venue_id}",))
        inverse = book.get((quote, asset))
        if inverse:
            return Rate(Decimal(1), (f"{quote}/{asset}@{source.venue_id}",), per=inverse)
        return None


@dataclass(frozen=True)
class AssetValue:
    """One asset of a valuation; ``price``/``value`` None means no price was found."""

    asset: str
    balance: AssetBalance
    price: Decimal | None
    value: Decimal | None
    via: tuple[str, ...] = ()


@dataclass(frozen=True)
class Valuation:
    """Holdings valued in ``quote``: the biggest first, unpriced assets last."""

    quote: str
    assets: tuple[AssetValue, ...]

    @property
    def total(self) -> Decimal:
        """The sum of what could be priced (see ``unpriced``)."""
        return sum((a.value for a in self.assets if a.value is not None), Decimal(0))

    @property
    def unpriced(self) -> tuple[str, ...]:
        return tuple(a.asset for a in self.assets if a.value is None)


def value_holdings(holdings: Holdings, view: PriceView, quote: str, home: PriceSource) -> Valuation:
    valued = []
    for asset, balance in holdings.assets.items():
        rate = view.rate(asset, quote, home)
        if rate is None:
            valued.append(AssetValue(asset, balance, None, None))
        else:
            valued.append(
                AssetValue(asset, balance, rate.price, rate.value(balance.total), rate.via)
            )
    valued.sort(key=lambda a: (a.value is None, -(a.value or 0), a.asset))
    return Valuation(quote, tuple(valued))
