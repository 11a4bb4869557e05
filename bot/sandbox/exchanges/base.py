"""What every local venue server shares: HTTP lifecycle, demo accounts and keys, prices, faults.

A venue subclass adds its routes, its way of authenticating a request and its error shapes; the
state here (keys, balances, orders, fills, positions, prices, injected faults) is
venue-independent, so a test drives every venue the same way. Servers bind 127.0.0.1 only and
are real HTTP, so ccxt runs unmodified.

Balances keep one invariant: an asset's ``used`` is what the account's open orders hold of it
(quote for a buy, base for a sell, margin for a contract order). Everything that moves money here
(deposits, withdrawals, resting orders, fills) keeps it; only ``set_balance`` writes figures as
given, for tests of a venue's balance shape.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import random
import re
import secrets
import string
import time
import uuid
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from http import HTTPStatus
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Literal, Self

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from bot.sandbox.exchanges.activity import (
    DemoOrder,
    DemoPosition,
    DemoTrade,
    MarginMode,
    OrderType,
    Pair,
    Side,
    TimeInForce,
    move_position,
    newest_first,
)
from bot.sandbox.exchanges.matching import (
    BookShape,
    DuplicatePolicy,
    OrderBook,
    OrderRejected,
    OrderRules,
    RejectReason,
    ResponseLost,
    check_order,
    crossing,
    fillable,
    market_limit,
    time_in_force_of,
)
from storage.credentials import mask

Permission = Literal["read", "spot_trade", "futures_trade", "withdraw", "internal_transfer"]
PublicHandler = Callable[[web.Request], Awaitable[Any]]
PrivateHandler = Callable[[web.Request, "KeyRecord"], Awaitable[Any]]

#: Where a caller of an IP-restricted demo key is trusted by default: this machine.
LOCAL_IPS = frozenset({"127.0.0.1", "::1"})

DEMO_BALANCES: Mapping[str, Decimal] = {
    "BTC": Decimal("0.52340000"),
    "ETH": Decimal("4.18200000"),
    "USDT": Decimal("12500.00000000"),
}

#: Last prices a demo market starts from (roughly real, so portfolio values look plausible).
DEMO_PRICES: Mapping[str, Decimal] = {
    "BTC/USDT": Decimal("73369.84"),
    "ETH/USDT": Decimal("3990.12"),
    "ADA/USDT": Decimal("0.7210"),
    "LTC/USDT": Decimal("98.52"),
    "XRP/USDT": Decimal("0.6213"),
    "DOGE/USDT": Decimal("0.17215"),
    "TRX/USDT": Decimal("0.1236"),
}

_DEMO_QUOTE_VOLUME = Decimal("250000000")  # 24 h turnover a market starts with, in quote units
_STEP_SIGMA = 0.002  # standard deviation of one step_prices move
_DAY_MS = 86_400_000
#: Leverage of a contract order or position when none is given (Binance's default is 20x).
DEFAULT_LEVERAGE = 20
#: Maintenance margin rate of the simple liquidation rule, where a venue has no tiers of its own.
DEFAULT_MAINTENANCE_RATE = Decimal("0.005")


def find_reference_dir() -> Path:
    """The recorded ccxt payloads shipped with this package (a copy of ``shared/reference``)."""
    path = Path(__file__).resolve().parents[1] / "reference" / "ccxt-static"
    if not path.is_dir():
        raise FileNotFoundError(f"no recorded exchange data at {path}; reinstall the package")
    return path


@dataclass(frozen=True)
class DemoPermissions:
    """What a demo key may do, named like the venues' key-creation screens."""

    read: bool = True
    spot_trade: bool = False
    futures_trade: bool = False
    withdraw: bool = False
    internal_transfer: bool = False
    ip_restricted: bool = False


@dataclass(frozen=True, repr=False)
class DemoKey:
    """Key material as a user would paste it; ``repr`` shows only a masked key id."""

    api_key: str
    secret: str
    passphrase: str | None = None

    def __repr__(self) -> str:
        return f"DemoKey(api_key={mask(self.api_key)!r}, secret=***, passphrase=***)"

    __str__ = __repr__


@dataclass(frozen=True)
class Balance:
    """One asset of an account; ``used`` is what open orders hold (Binance's ``locked``)."""

    free: Decimal
    used: Decimal = Decimal(0)

    @property
    def total(self) -> Decimal:
        return self.free + self.used


@dataclass
class DemoAccount:
    """One exchange account; several keys may point at it, as on a real venue.

    ``orders`` keeps every order by id, open or done; ``trades`` is the fill history, oldest
    first; ``positions`` the open derivatives positions by unified symbol.
    """

    name: str
    uid: int
    balances: dict[str, Balance]
    updated_ms: int
    orders: dict[str, DemoOrder] = field(default_factory=dict)
    trades: list[DemoTrade] = field(default_factory=list)
    positions: dict[str, DemoPosition] = field(default_factory=dict)

    def balance(self, asset: str) -> Balance:
        return self.balances.get(asset, Balance(Decimal(0)))

    def open_orders(self, symbol: str | None = None) -> list[DemoOrder]:
        """Resting orders (of one market without ``symbol``: all), newest first."""
        resting = (order for order in self.orders.values() if order.status == "open")
        return newest_first(resting, symbol=symbol)


@dataclass
class KeyRecord:
    """The server's view of an issued key."""

    key: DemoKey
    account: DemoAccount
    permissions: DemoPermissions
    created_ms: int
    revoked: bool = False
    trusted_ips: frozenset[str] = LOCAL_IPS


@dataclass
class PriceStats:
    """A market's rolling 24 h statistics, enough for any venue's ticker shape."""

    last: Decimal
    open: Decimal
    high: Decimal
    low: Decimal
    volume: Decimal
    trades: int

    def move_to(self, price: Decimal) -> None:
        self.last = price
        self.high = max(self.high, price)
        self.low = min(self.low, price)

    @property
    def quote_volume(self) -> Decimal:
        return self.volume * (self.open + self.last) / 2


@dataclass(frozen=True)
class FeeRates:
    """A venue's base-tier trading fees, as fractions of the traded value."""

    maker: Decimal
    taker: Decimal

    def rate(self, *, taker: bool) -> Decimal:
        return self.taker if taker else self.maker


@dataclass(frozen=True)
class LoggedRequest:
    """What the server remembers of a request: never headers, query strings, bodies or keys."""

    time: float
    method: str
    path: str
    status: int


class VenueError(Exception):
    """An answer in the venue's own error shape, raised from anywhere in a handler.

    ``body`` is JSON-serialisable, or a ``str`` sent as-is (HTML pages, plain-text gateway errors).
    """

    def __init__(
        self,
        status: int,
        body: object,
        headers: Mapping[str, str] | None = None,
        content_type: str = "text/html",
    ) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = dict(headers or {})
        self.content_type = content_type

    def response(self) -> web.Response:
        if isinstance(self.body, str):
            return web.Response(
                status=self.status,
                text=self.body,
                headers=self.headers,
                content_type=self.content_type,
            )
        return json_response(self.body, status=self.status, headers=self.headers)


def json_response(
    payload: object, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """Compact JSON, as exchanges send it."""
    return web.json_response(
        payload,
        status=status,
        headers=headers,
        dumps=lambda obj: json.dumps(obj, separators=(",", ":")),
    )


def plain(value: Decimal) -> str:
    """A decimal as most venues write numbers: no exponent, no trailing zeros."""
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def random_alnum(length: int) -> str:
    """Letters and digits from the OS's CSPRNG, the alphabet most venues use for key ids."""
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(length))


_ORDER_ID_BASE = 1_130_000_000_000_000_000  # 19-digit ids, as Bybit, Bitget and OKX use
_TRADE_ID_BASE = 2_260_000_000_000_000_000
_FEE_STEP = Decimal("1e-8")


def _number(value: Decimal | float | str) -> Decimal:
    """A finite number given by a caller; ValueError otherwise."""
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        raise ValueError(f"{value!r} is not a number") from None
    if not number.is_finite():
        raise ValueError(f"{value!r} is not a number")
    return number


def _positive(value: Decimal | float | str) -> Decimal:
    """An amount or price given by a caller; ValueError unless a positive finite number."""
    number = _number(value)
    if number <= 0:
        raise ValueError(f"{value!r} is not a positive amount")
    return number


def _add(deltas: dict[str, Decimal], asset: str, amount: Decimal) -> None:
    deltas[asset] = deltas.get(asset, Decimal(0)) + amount


def _round_price(value: Decimal) -> Decimal:
    """Four significant digits, down: a price every venue's tick size can express."""
    step = Decimal(1).scaleb(value.adjusted() - 3)
    return Decimal(f"{value.quantize(step, rounding=ROUND_DOWN):f}")


class VenueServer(ABC):
    """Base of the local venue servers; subclasses add routes, authentication and error shapes.

    Use as ``async with BinanceServer() as server:``; point ccxt at ``server.base_url``.
    """

    #: ccxt id of the venue this server imitates.
    venue_id: ClassVar[str]
    #: What the venue accepts as an API key id; issued and explicit keys must match it.
    key_format: ClassVar[re.Pattern[str]] = re.compile(r"[A-Za-z0-9]{64}")
    #: On stop, requests still in flight (e.g. held by ``set_delay``) get this long to finish.
    shutdown_timeout: ClassVar[float] = 0.5
    #: Base-tier fees charged on fills.
    fee_rates: ClassVar[FeeRates] = FeeRates(maker=Decimal("0.001"), taker=Decimal("0.001"))
    #: Spot fees in the quote currency (Kraken, Coinbase, KuCoin), else in what the fill brings
    #: in: the base for a buy, the quote for a sell. Contracts pay in their settlement asset.
    fee_in_quote: ClassVar[bool] = False
    #: What a reused client order id meets (see ``DuplicatePolicy``).
    duplicate_client_ids: ClassVar[DuplicatePolicy] = "refuse"

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, reference_dir: Path | None = None
    ) -> None:
        self.host = host
        self.port = port
        self.reference_dir = reference_dir or find_reference_dir()
        #: Added to the server's clock: positive means the venue runs ahead of this machine.
        self.clock_offset_ms = 0
        self.request_log: list[LoggedRequest] = []
        self.accounts: dict[str, DemoAccount] = {}
        self.prices: dict[str, PriceStats] = {}
        self._keys: dict[str, KeyRecord] = {}
        #: Open each new account with a few resting orders, past fills and (for derivatives)
        #: positions, so a newcomer has something to look at; the sandbox turns it on. Off, an
        #: account holds exactly the demo balances, which is what most tests want.
        self.seed_accounts = False
        self._faults: deque[VenueError] = deque()
        #: How thin the book is that orders fill against (tests make it thinner).
        self.book_shape = BookShape()
        self._lost_answers: deque[int | None] = deque()
        self._delay = 0.0
        self._runner: web.AppRunner | None = None
        self._sequence = itertools.count(1)

    # ----- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(middlewares=[self._middleware()])
        self.add_routes(app.router)
        # access_log=None: aiohttp's access log prints query strings, which carry signatures.
        runner = web.AppRunner(
            app,
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=self.shutdown_timeout,
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self._runner = runner
        self.port = runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        if self._runner is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return f"http://{self.host}:{self.port}"

    def server_time_ms(self) -> int:
        return int(time.time() * 1000) + self.clock_offset_ms

    # ----- accounts and keys -----------------------------------------------------------------

    def account(self, name: str) -> DemoAccount:
        """The named account, opened with the demo balances on first use (and seeded with some
        activity if ``seed_accounts`` is on)."""
        if name not in self.accounts:
            self.accounts[name] = DemoAccount(
                name=name,
                uid=secrets.randbelow(900_000_000) + 100_000_000,
                balances={asset: Balance(free) for asset, free in DEMO_BALANCES.items()},
                updated_ms=self.server_time_ms(),
            )
            if self.seed_accounts:
                self._seed(self.accounts[name])
        return self.accounts[name]

    def set_balance(
        self, account: str, asset: str, free: Decimal | float | str, used: Decimal | float | str = 0
    ) -> None:
        """Write an asset's figures as given, for tests of a venue's balance shape: ``used`` is
        not checked against open orders (the next order change counts from these figures)."""
        target = self.account(account)
        target.balances[asset] = Balance(Decimal(str(free)), Decimal(str(used)))
        target.updated_ms = self.server_time_ms()

    # ----- money and activity ----------------------------------------------------------------

    def deposit(self, account: str, asset: str, amount: Decimal | float | str) -> Balance:
        """Credit ``amount`` as if the trader moved it onto the exchange; the new balance."""
        target = self.account(account)
        self._move(target, free={asset: _positive(amount)})
        return target.balance(asset)

    def withdraw_funds(self, account: str, asset: str, amount: Decimal | float | str) -> Balance:
        """Take ``amount`` off as if the trader moved it out; only free funds can leave, so
        anything more is a ValueError and nothing moves. The new balance."""
        target = self.account(account)
        value, free = _positive(amount), target.balance(asset).free
        if value > free:
            raise ValueError(f"only {plain(free)} {asset} is free to withdraw")
        self._move(target, free={asset: -value})
        return target.balance(asset)

    def add_open_order(
        self,
        account: str,
        symbol: str,
        side: Side,
        amount: Decimal | float | str,
        price: Decimal | float | str,
        *,
        client_order_id: str | None = None,
        filled: Decimal | float | str = 0,
        created_ms: int | None = None,
        leverage: int = DEFAULT_LEVERAGE,
    ) -> DemoOrder:
        """A resting limit order on a market this server quotes. What it holds moves from free
        to used (ValueError if that much is not free). ``filled`` makes it part-filled already:
        that fill joins the history, which the balances are taken to include."""
        self._quoted(symbol)
        size, limit, done = _positive(amount), _positive(price), _number(filled)
        if not 0 <= done < size:
            raise ValueError("an open order's filled amount is at least 0 and below its amount")
        target = self.account(account)
        created = self.server_time_ms() if created_ms is None else created_ms
        order = self._new_order(symbol, side, "limit", size, limit, created, client_order_id)
        if Pair.of(symbol).settle:
            order.leverage = leverage
        asset, hold = self.hold_of(dataclasses.replace(order, filled=done))
        self._move(target, free={asset: -hold}, used={asset: hold})
        target.orders[order.id] = order
        if done:
            self._record_fill(target, order, done, taker=False, at=created)
        return order

    def add_trade(
        self,
        account: str,
        symbol: str,
        side: Side,
        amount: Decimal | float | str,
        price: Decimal | float | str,
        *,
        taker: bool = True,
        time_ms: int | None = None,
        client_order_id: str | None = None,
    ) -> DemoTrade:
        """A past fill for the history: a market order (a limit order if ``taker`` is False)
        filled at once. The balances are taken to include it, so nothing moves."""
        self._quoted(symbol)
        size, at = _positive(amount), self.server_time_ms() if time_ms is None else time_ms
        kind: OrderType = "market" if taker else "limit"
        order = self._new_order(symbol, side, kind, size, _positive(price), at, client_order_id)
        target = self.account(account)
        target.orders[order.id] = order
        return self._record_fill(target, order, size, taker=taker, at=at)

    def fill(
        self,
        account: str,
        order_id: str,
        amount: Decimal | float | str | None = None,
        *,
        taker: bool = False,
    ) -> DemoTrade:
        """Execute ``amount`` (by default all that remains) of an open order at its limit price,
        as the market trading through it would: its hold is released, the fill moves the
        balances and pays the fee, and a contract fill moves the position (what a reduction
        realises goes to the wallet). ValueError, nothing changed, if it cannot happen."""
        target = self.account(account)
        order = target.orders.get(order_id)
        if order is None or order.status != "open":
            raise ValueError(f"no open order {order_id}")
        size = order.remaining if amount is None else _positive(amount)
        if size > order.remaining:
            raise ValueError(f"only {plain(order.remaining)} of order {order_id} remains")
        return self._execute(target, order, size, order.price, taker=taker)

    def _execute(
        self, target: DemoAccount, order: DemoOrder, size: Decimal, price: Decimal, *, taker: bool
    ) -> DemoTrade:
        """Fill ``size`` of an open ``order`` at ``price``: release its hold, move the balances,
        charge the fee, move a contract's position. ValueError, nothing changed, if it cannot."""
        pair, now = Pair.of(order.symbol), self.server_time_ms()
        fee, fee_asset = self._fee(pair, order.side, size, price, taker=taker)
        hold_asset, hold = self.hold_of(order)
        _, hold_after = self.hold_of(dataclasses.replace(order, filled=order.filled + size))
        free = {hold_asset: hold - hold_after}
        used = {hold_asset: hold_after - hold}
        signed = size if order.side == "buy" else -size
        position: DemoPosition | None = None
        realized = Decimal(0)
        if pair.settle:
            position, realized = move_position(
                target.positions.get(order.symbol),
                order.symbol,
                signed,
                price,
                order.leverage,
                now,
            )
            _add(free, pair.settle, realized)
        else:
            _add(free, pair.base, signed)
            _add(free, pair.quote, -signed * price)
        _add(free, fee_asset, -fee)
        self._move(target, free=free, used=used)
        if pair.settle:
            if position is None:
                target.positions.pop(order.symbol, None)
            else:
                target.positions[order.symbol] = position
        return self._record_fill(
            target, order, size, taker=taker, at=now, realized=realized, price=price
        )

    def hold_of(self, order: DemoOrder) -> tuple[str, Decimal]:
        """What an open order keeps out of free funds: the quote a buy may spend (with the fee
        where fees are paid in it), the base a sell may deliver, or a contract's margin."""
        pair = Pair.of(order.symbol)
        remaining = order.remaining if order.status == "open" else Decimal(0)
        if pair.settle:
            return pair.settle, remaining * order.price / order.leverage
        if order.side == "sell":
            return pair.base, remaining
        reserve = 1 + self.fee_rates.taker if self.fee_in_quote else Decimal(1)
        return pair.quote, remaining * order.price * reserve

    # ----- the order engine ------------------------------------------------------------------

    def order_rules(self, symbol: str) -> OrderRules:
        """The filters of a market; venues override this with what their markets endpoint
        advertises."""
        return OrderRules()

    def order_book(self, symbol: str, depth: int = 20) -> OrderBook:
        """The book around ``symbol``'s last price that orders fill against, ``depth`` a side."""
        self._quoted(symbol)
        book = self.book_shape.book(self.prices[symbol].last, self.order_rules(symbol))
        return OrderBook(book.bids[:depth], book.asks[:depth])

    def place_order(
        self,
        account: str,
        symbol: str,
        side: Side,
        amount: Decimal | float | str,
        price: Decimal | float | str | None = None,
        *,
        kind: OrderType = "limit",
        time_in_force: TimeInForce = "GTC",
        client_order_id: str | None = None,
    ) -> DemoOrder:
        """A new order, as the venue's matching engine takes it: filters, then the client order
        id, then funds (OrderRejected, nothing changed); then it takes the book's levels up to
        its limit as taker. IOC cancels what is left, FOK expires whole unless the book fills it
        all, GTC rests the rest with its funds held. A market order is a limit order at the
        worst price it reaches. The venue's duplicate policy may answer with the earlier order.
        """
        if symbol not in self.prices:
            raise OrderRejected(RejectReason.UNKNOWN_MARKET, f"{self.venue_id} has no {symbol}")
        size = _number(amount)
        limit = None if price is None else _number(price)
        rules, last = self.order_rules(symbol), self.prices[symbol].last
        check_order(rules, kind, size, limit if kind == "limit" else None, last)
        target = self.account(account)
        if client_order_id is not None:
            earlier = self.find_order(account, client_order_id=client_order_id)
            if earlier is not None and self.duplicate_client_ids == "return_existing":
                return earlier
            if earlier is not None and (
                self.duplicate_client_ids == "refuse" or earlier.status == "open"
            ):
                raise OrderRejected(
                    RejectReason.DUPLICATE_CLIENT_ID, f"client order id {client_order_id} is used"
                )
        book = self.book_shape.book(last, rules)
        if kind == "market":
            limit = market_limit(book, side, size)
        assert limit is not None
        order = self._new_order(
            symbol, side, kind, size, limit, self.server_time_ms(), client_order_id
        )
        order.time_in_force = time_in_force_of(kind, time_in_force)
        hold_asset, hold = self.hold_of(order)
        if hold > target.balance(hold_asset).free:
            raise OrderRejected(
                RejectReason.INSUFFICIENT_FUNDS,
                f"not enough {hold_asset}: {plain(target.balance(hold_asset).free)} free",
            )
        target.orders[order.id] = order
        if order.time_in_force == "FOK" and fillable(book, side, limit) < size:
            order.status = "canceled"
        else:
            self._move(target, free={hold_asset: -hold}, used={hold_asset: hold})
            for level in crossing(book, side, limit):
                self._execute(
                    target, order, min(order.remaining, level.amount), level.price, taker=True
                )
                if not order.remaining:
                    break
            if order.status == "open" and order.time_in_force != "GTC":
                self._cancel(target, order)
        if self._lost_answers:
            raise ResponseLost(self._lost_answers.popleft())
        return order

    def find_order(
        self, account: str, *, order_id: str | None = None, client_order_id: str | None = None
    ) -> DemoOrder | None:
        """An order of the account by venue id or by client order id (the newest of those that
        share one), open or done."""
        orders = self.account(account).orders
        if order_id is not None:
            return orders.get(order_id)
        matching = [order for order in orders.values() if order.client_order_id == client_order_id]
        return max(matching, key=lambda order: order.seq, default=None)

    def cancel_order(self, account: str, order_id: str) -> DemoOrder:
        """Cancel an open order, releasing what it holds; ValueError if it is not open."""
        target = self.account(account)
        order = target.orders.get(order_id)
        if order is None or order.status != "open":
            raise ValueError(f"no open order {order_id}")
        self._cancel(target, order)
        return order

    def _cancel(self, target: DemoAccount, order: DemoOrder) -> None:
        hold_asset, hold = self.hold_of(order)
        order.status = "canceled"
        order.updated_ms = self.server_time_ms()
        self._move(target, free={hold_asset: hold}, used={hold_asset: -hold})

    def open_position(
        self,
        symbol: str,
        amount: Decimal | float | str,
        entry_price: Decimal | float | str,
        *,
        account: str = "demo",
        leverage: int = DEFAULT_LEVERAGE,
        margin_mode: MarginMode = "cross",
    ) -> DemoPosition | None:
        """Hold ``amount`` contracts of ``symbol`` (``BTC/USDT:USDT``), negative for a short, as
        if it had been opened at ``entry_price``; 0 closes it. Balances do not move: the venue
        shows the margin it takes."""
        if symbol not in self.prices or not Pair.of(symbol).settle:
            raise ValueError(f"{symbol} is not a perpetual or future this server lists")
        held = self.account(account).positions
        size = _number(amount)
        if size == 0:
            held.pop(symbol, None)
            return None
        held[symbol] = DemoPosition(
            symbol, size, _positive(entry_price), leverage, self.server_time_ms(), margin_mode
        )
        return held[symbol]

    @property
    def positions(self) -> dict[str, dict[str, DemoPosition]]:
        """Open positions by account name, then unified symbol."""
        return {name: account.positions for name, account in self.accounts.items()}

    def mark_price(self, symbol: str) -> Decimal:
        """The price positions are valued at: the market's last price, so it walks with it."""
        return self.prices[symbol].last

    def new_order_id(self, seq: int) -> str:
        """Order ids in the venue's format; numeric, as most venues use (override otherwise)."""
        return str(_ORDER_ID_BASE + seq)

    def new_trade_id(self, seq: int) -> str:
        """Trade ids in the venue's format; numeric by default."""
        return str(_TRADE_ID_BASE + seq)

    def _quoted(self, symbol: str) -> None:
        if symbol not in self.prices:
            raise ValueError(f"{self.venue_id} has no market {symbol}")

    def _new_order(
        self,
        symbol: str,
        side: Side,
        kind: OrderType,
        amount: Decimal,
        price: Decimal,
        at: int,
        client_order_id: str | None,
    ) -> DemoOrder:
        seq = next(self._sequence)
        return DemoOrder(
            seq=seq,
            id=self.new_order_id(seq),
            client_order_id=client_order_id or uuid.uuid4().hex,
            symbol=symbol,
            side=side,
            type=kind,
            price=price,
            amount=amount,
            created_ms=at,
            updated_ms=at,
        )

    def _fee(
        self, pair: Pair, side: Side, amount: Decimal, price: Decimal, *, taker: bool
    ) -> tuple[Decimal, str]:
        rate = self.fee_rates.rate(taker=taker)
        if side == "buy" and not (pair.settle or self.fee_in_quote):
            return (amount * rate).quantize(_FEE_STEP), pair.base
        return (amount * price * rate).quantize(_FEE_STEP), pair.settle or pair.quote

    def _record_fill(
        self,
        account: DemoAccount,
        order: DemoOrder,
        amount: Decimal,
        *,
        taker: bool,
        at: int,
        realized: Decimal = Decimal(0),
        price: Decimal | None = None,
    ) -> DemoTrade:
        """Book a fill of ``order`` (at its limit price unless ``price`` is given) in the history
        and on the order; no money moves here."""
        price = order.price if price is None else price
        fee, fee_asset = self._fee(Pair.of(order.symbol), order.side, amount, price, taker=taker)
        seq = next(self._sequence)
        trade = DemoTrade(
            seq=seq,
            id=self.new_trade_id(seq),
            order_id=order.id,
            client_order_id=order.client_order_id,
            symbol=order.symbol,
            side=order.side,
            order_type=order.type,
            price=price,
            amount=amount,
            fee=fee,
            fee_currency=fee_asset,
            taker=taker,
            time_ms=at,
            realized_pnl=realized,
        )
        order.filled += amount
        order.filled_cost += amount * price
        order.fee += fee
        order.fee_currency = fee_asset
        order.updated_ms = at
        if order.filled == order.amount:
            order.status = "closed"
        account.trades.append(trade)
        return trade

    def _move(
        self,
        account: DemoAccount,
        free: Mapping[str, Decimal],
        used: Mapping[str, Decimal] | None = None,
    ) -> None:
        """Change free and used amounts together, or nothing (ValueError) if one would go
        below zero. ``used`` changes only with what open orders hold."""
        used = used or {}
        changed: dict[str, Balance] = {}
        for asset in {*free, *used}:
            now = account.balance(asset)
            after = Balance(now.free + free.get(asset, 0), now.used + used.get(asset, 0))
            if after.free < 0 or after.used < 0:
                raise ValueError(f"not enough {asset}: {plain(now.free)} free")
            changed[asset] = after
        account.balances.update(changed)
        account.updated_ms = self.server_time_ms()

    def _seed(self, account: DemoAccount) -> None:
        """A lived-in account: fills over the past week, two resting orders (one part-filled)
        on the BTC and ETH markets, and on a derivatives venue the positions those fills left."""
        btc, eth = self._market_of("BTC/USDT"), self._market_of("ETH/USDT")
        if btc is None or eth is None:
            return
        now, name = self.server_time_ms(), account.name
        btc_fill = _round_price(self.mark_price(btc) * Decimal("0.97"))
        eth_fill = _round_price(self.mark_price(eth) * Decimal("0.98"))
        btc_bid = _round_price(self.mark_price(btc) * Decimal("0.95"))
        eth_ask = _round_price(self.mark_price(eth) * Decimal("1.05"))
        self.add_trade(name, btc, "buy", "0.05", btc_fill, time_ms=now - 5 * _DAY_MS)
        self.add_trade(name, eth, "buy", "1.2", eth_fill, time_ms=now - 3 * _DAY_MS)
        self.add_open_order(name, btc, "buy", "0.015", btc_bid, created_ms=now - 2 * _DAY_MS)
        self.add_open_order(
            name, eth, "sell", "0.5", eth_ask, filled="0.2", created_ms=now - _DAY_MS
        )
        if Pair.of(btc).settle:
            self.open_position(btc, "0.05", btc_fill, account=name)
            self.open_position(eth, "1.0", eth_fill, account=name)

    def _market_of(self, spot: str) -> str | None:
        """The market this server quotes for a spot pair: itself, or its perpetual."""
        return next((symbol for symbol in self.prices if Pair.of(symbol).spot == spot), None)

    def new_key_material(self, with_passphrase: bool) -> DemoKey:
        """Fresh random key material in the venue's format; subclasses override the shape."""
        return DemoKey(
            api_key=random_alnum(64),
            secret=random_alnum(64),
            passphrase=random_alnum(16) if with_passphrase else None,
        )

    def issue_key(
        self,
        permissions: DemoPermissions | None = None,
        *,
        account: str = "demo",
        with_passphrase: bool = False,
        material: DemoKey | None = None,
    ) -> DemoKey:
        """Create a key on ``account``; pass ``material`` to use chosen (canary) values."""
        key = material or self.new_key_material(with_passphrase)
        if not self.key_format.fullmatch(key.api_key):
            raise ValueError(f"{self.venue_id} would reject that API key format")
        if key.api_key in self._keys:
            raise ValueError("that API key is already issued")
        self._keys[key.api_key] = KeyRecord(
            key=key,
            account=self.account(account),
            permissions=permissions or DemoPermissions(),
            created_ms=self.server_time_ms(),
        )
        return key

    def key_record(self, api_key: str) -> KeyRecord | None:
        """The issued key with this id (revoked or not), for subclasses and tests."""
        return self._keys.get(api_key)

    def _issued(self, api_key: str) -> KeyRecord:
        record = self._keys.get(api_key)
        if record is None:
            raise KeyError("no such demo key")
        return record

    def revoke_key(self, api_key: str) -> None:
        self._issued(api_key).revoked = True

    def restore_key(self, api_key: str) -> None:
        self._issued(api_key).revoked = False

    def set_permissions(self, api_key: str, **flags: bool) -> DemoPermissions:
        """Change some flags of a key, e.g. ``set_permissions(key, withdraw=True)``."""
        record = self._issued(api_key)
        record.permissions = dataclasses.replace(record.permissions, **flags)
        return record.permissions

    def set_trusted_ips(self, api_key: str, ips: Iterable[str]) -> None:
        """Whitelist for an IP-restricted key; leave out 127.0.0.1 to refuse the local caller."""
        self._issued(api_key).trusted_ips = frozenset(ips)

    def authorize(self, record: KeyRecord | None, request: web.Request, needs: Permission) -> bool:
        """True if the key is live, may be used from the caller's IP and holds ``needs``."""
        if record is None or record.revoked:
            return False
        if record.permissions.ip_restricted and request.remote not in record.trusted_ips:
            return False
        return bool(getattr(record.permissions, needs))

    # ----- prices ----------------------------------------------------------------------------

    def set_price(self, symbol: str, price: Decimal | float | str) -> None:
        """Set the last price of a unified symbol (``BTC/USDT``); the first call opens its day."""
        value = Decimal(str(price))
        stats = self.prices.get(symbol)
        if stats is None:
            self.prices[symbol] = PriceStats(
                last=value,
                open=value,
                high=value,
                low=value,
                volume=(_DEMO_QUOTE_VOLUME / value).quantize(Decimal("1e-8")),
                trades=secrets.randbelow(2_000_000) + 500_000,
            )
        else:
            stats.move_to(value)

    def step_prices(self, rng: random.Random) -> None:
        """One small random-walk step for every market (a few tenths of a percent)."""
        for stats in self.prices.values():
            factor = Decimal(str(1 + rng.gauss(0, _STEP_SIGMA)))
            stats.move_to((stats.last * factor).quantize(Decimal("1e-8")))
            stats.volume += (stats.volume * Decimal(str(rng.uniform(0, 1e-4)))).quantize(
                Decimal("1e-8")
            )
            stats.trades += rng.randint(1, 50)

    # ----- fault injection -------------------------------------------------------------------

    def fail_next(self, times: int = 1, status: int = 503, body: object | None = None) -> None:
        """Answer the next ``times`` requests with ``status``: the venue's own body unless given."""
        error = self.fault(status) if body is None else VenueError(status, body)
        self._faults.extend([error] * times)

    def lose_next_order_responses(self, times: int = 1, status: int | None = None) -> None:
        """The next ``times`` orders execute, but their answers are lost: the connection drops
        (``status`` None) or a gateway answers ``status`` with the venue's fault body."""
        self._lost_answers.extend([status] * times)

    def set_delay(self, seconds: float) -> None:
        """Hold every response this long (0 to stop), to run clients into their timeouts."""
        self._delay = seconds

    # ----- hooks for venue subclasses --------------------------------------------------------

    @abstractmethod
    def add_routes(self, router: web.UrlDispatcher) -> None:
        """Register the venue's endpoints, wrapped with :meth:`public` or :meth:`private`."""

    @abstractmethod
    async def authenticate(self, request: web.Request, needs: Permission) -> KeyRecord:
        """Check the request's credentials the venue's way; raise :class:`VenueError` if refused."""

    def fault(self, status: int) -> VenueError:
        """The body the venue sends with ``status`` when it fails (override per venue)."""
        return VenueError(status, {"error": HTTPStatus(status).phrase})

    def not_found(self, request: web.Request) -> VenueError:
        """The venue's answer to a path it does not serve."""
        return VenueError(404, "Not Found", content_type="text/plain")

    def render(self, payload: object) -> web.Response:
        """Wrap a handler's payload (venues with an envelope override this)."""
        return json_response(payload)

    def public(self, handler: PublicHandler) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def endpoint(request: web.Request) -> web.Response:
            return self.render(await handler(request))

        return endpoint

    def private(
        self, handler: PrivateHandler, needs: Permission = "read"
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        """An endpoint that runs only for an authenticated key holding ``needs``."""

        async def endpoint(request: web.Request) -> web.Response:
            record = await self.authenticate(request, needs)
            return self.render(await handler(request, record))

        return endpoint

    # ----- request pipeline ------------------------------------------------------------------

    def _middleware(self) -> Middleware:
        @web.middleware
        async def log_and_answer(request: web.Request, handler: Handler) -> web.StreamResponse:
            status = 500
            try:
                response = await self._answer(request, handler)
                status = response.status
                return response
            except asyncio.CancelledError:
                status = 499  # the client gave up (its timeout) before the answer was ready
                raise
            finally:
                self.request_log.append(
                    LoggedRequest(time.time(), request.method, request.path, status)
                )

        return log_and_answer

    async def _answer(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Delay, injected faults and venue-shaped errors, around the endpoint itself."""
        if self._delay:
            await asyncio.sleep(self._delay)
        if self._faults:
            return self._faults.popleft().response()
        try:
            return await handler(request)
        except VenueError as error:
            return error.response()
        except ResponseLost as lost:
            if lost.status is not None:
                return self.fault(lost.status).response()
            if request.transport is not None:
                request.transport.abort()  # the caller sees the connection drop, no answer
            raise web.HTTPServiceUnavailable() from None
        except web.HTTPNotFound:
            return self.not_found(request).response()
