"""A local KuCoin spot API that checks requests the way KuCoin does.

Private endpoints need ``KC-API-KEY``, ``KC-API-TIMESTAMP`` (ms, within 5 s of the server),
``KC-API-SIGN`` = base64 HMAC-SHA256 of ``timestamp + method + endpoint + body`` (the endpoint is
the path with its query string as sent), and ``KC-API-PASSPHRASE``: with ``KC-API-KEY-VERSION``
2 or 3 it is the base64 HMAC-SHA256 of the passphrase under the secret, with version 1 the
passphrase itself. Refusals use KuCoin's ``{"code": "400005", "msg": "..."}`` and HTTP status,
so ccxt raises what it raises against KuCoin.

Demo accounts are high-frequency (``trade_hf``) classic accounts, as KuCoin migrated them.
Their spot orders run on the shared order engine through the high-frequency order endpoints:
placing one answers with its ids only, an order is read back by ``orderId`` or ``clientOid``,
and one that was cancelled with anything left (an IOC's rest) says ``cancelExist``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.sandbox.exchanges.activity import (
    DemoOrder,
    DemoTrade,
    OrderType,
    QueryNames,
    Side,
    TimeInForce,
)
from bot.sandbox.exchanges.base import (
    DEMO_PRICES,
    Balance,
    DemoKey,
    DemoPermissions,
    KeyRecord,
    Permission,
    PriceStats,
    VenueError,
    VenueServer,
    json_response,
    plain,
    random_alnum,
)
from bot.sandbox.exchanges.matching import OrderRejected, OrderRules, RejectReason, amount_for_funds

TIMESTAMP_TOLERANCE_MS = 5000
SUCCESS = "200000"
#: KuCoin moved every classic spot account to high-frequency trading accounts.
TRADE_ACCOUNT = "trade_hf"
#: What ``hf/fills`` takes (``lastId``: an id), and its page sizes.
FILLS_QUERY = QueryNames(since="startAt", until="endAt", cursor="lastId", limits=(20, 100))
#: The smallest order value (``minFunds``, in the quote currency) on the demo pairs.
MIN_FUNDS = "0.1"
#: What ``clientOid`` may be: letters, digits, underscores and hyphens, up to 40 of them.
_CLIENT_OID = re.compile(r"[A-Za-z0-9_-]{1,40}")
_SIDES: Mapping[str, Side] = {"buy": "buy", "sell": "sell"}
_ORDER_TYPES: Mapping[str, OrderType] = {"limit": "limit", "market": "market"}
_TIME_IN_FORCE: Mapping[str, TimeInForce] = {"GTC": "GTC", "IOC": "IOC", "FOK": "FOK"}
#: KuCoin's answers to what the order engine refuses: HTTP status, code, message. ccxt matches
#: the message first: InvalidOrder for the size filters, BadRequest (code 400100) for the price
#: increment and a reused clientOid, InvalidOrder for 600101, InsufficientFunds for 200004.
_REJECTIONS: Mapping[RejectReason, tuple[int, str, str]] = {
    RejectReason.UNKNOWN_MARKET: (400, "400100", "Unsupported trading pair."),
    RejectReason.BAD_ORDER: (400, "400100", "Parameter [size] is invalid or missing"),
    RejectReason.AMOUNT_STEP: (400, "400100", "Order size increment invalid."),
    RejectReason.PRICE_TICK: (400, "400100", "Price increment invalid."),
    RejectReason.MIN_AMOUNT: (400, "400100", "Order size below the minimum requirement."),
    RejectReason.MIN_NOTIONAL: (200, "600101", "The order funds should more then {funds}."),
    RejectReason.INSUFFICIENT_FUNDS: (200, "200004", "Balance insufficient!"),
    RejectReason.DUPLICATE_CLIENT_ID: (
        400,
        "400100",
        "validation.createOrder.clientOidDuplicated",
    ),
}

_SERVICE_UNAVAILABLE_PAGE = (
    "<html><head><title>503 Service Temporarily Unavailable</title></head><body>"
    "<center><h1>503 Service Temporarily Unavailable</h1></center></body></html>"
)


@dataclass(frozen=True)
class SpotSymbol:
    """One spot pair as ``/api/v2/symbols`` lists it."""

    base: str
    quote: str
    price_increment: str
    base_increment: str
    base_min: str
    margin: bool = True

    @property
    def id(self) -> str:
        return f"{self.base}-{self.quote}"

    @property
    def symbol(self) -> str:
        return f"{self.base}/{self.quote}"

    def price(self, value: Decimal) -> str:
        """``value`` rounded down to the price increment."""
        step = Decimal(self.price_increment)
        return str((value // step) * step)

    def rules(self) -> OrderRules:
        """The increments and minimums :meth:`info` advertises, as the engine applies them."""
        return OrderRules(
            amount_step=Decimal(self.base_increment),
            price_tick=Decimal(self.price_increment),
            min_amount=Decimal(self.base_min),
            min_notional=Decimal(MIN_FUNDS),
        )

    def info(self) -> dict[str, Any]:
        return {
            "symbol": self.id,
            "name": self.id,
            "baseCurrency": self.base,
            "quoteCurrency": self.quote,
            "feeCurrency": self.quote,
            "market": "USDS",
            "baseMinSize": self.base_min,
            "quoteMinSize": "0.1",
            "baseMaxSize": "10000000000",
            "quoteMaxSize": "99999999",
            "baseIncrement": self.base_increment,
            "quoteIncrement": "0.000001",
            "priceIncrement": self.price_increment,
            "priceLimitRate": "0.1",
            "minFunds": MIN_FUNDS,
            "isMarginEnabled": self.margin,
            "enableTrading": True,
            "feeCategory": 1,
            "makerFeeCoefficient": "1.00",
            "takerFeeCoefficient": "1.00",
            "st": False,
            "callauctionIsEnabled": False,
            "callauctionPriceFloor": None,
            "callauctionPriceCeiling": None,
            "callauctionFirstStageStartTime": None,
            "callauctionSecondStageStartTime": None,
            "callauctionThirdStageStartTime": None,
            "tradingStartTime": None,
        }


#: The demo spot pairs with KuCoin's increments for them (of the order KuCoin lists).
SPOT_SYMBOLS: tuple[SpotSymbol, ...] = (
    SpotSymbol("BTC", "USDT", "0.1", "0.00000001", "0.00001"),
    SpotSymbol("ETH", "USDT", "0.01", "0.0000001", "0.0001"),
    SpotSymbol("ADA", "USDT", "0.0001", "0.0001", "0.1"),
    SpotSymbol("LTC", "USDT", "0.01", "0.000001", "0.001"),
    SpotSymbol("XRP", "USDT", "0.00001", "0.0001", "0.1"),
    SpotSymbol("DOGE", "USDT", "0.00001", "0.0001", "1", margin=False),
    SpotSymbol("TRX", "USDT", "0.00001", "0.0001", "1", margin=False),
)

#: Full names and the main withdrawal chain (name, id, minimum fee, confirmations).
COINS: Mapping[str, tuple[str, str, str, str, int]] = {
    "BTC": ("Bitcoin", "BTC", "btc", "0.0001", 3),
    "ETH": ("Ethereum", "ERC20", "eth", "0.0012", 64),
    "USDT": ("Tether", "TRC20", "trx", "1", 20),
    "ADA": ("Cardano", "ADA", "ada", "1", 30),
    "LTC": ("Litecoin", "LTC", "ltc", "0.001", 4),
    "XRP": ("XRP", "XRP", "xrp", "0.5", 1),
    "DOGE": ("Dogecoin", "DOGE", "doge", "5", 40),
    "TRX": ("TRON", "TRC20", "trx", "1.5", 20),
}


#: The fields ``/api/v3/margin/symbols`` lists per pair (a subset of the spot symbol entry).
MARGIN_SYMBOL_FIELDS = (
    "symbol",
    "name",
    "enableTrading",
    "market",
    "baseCurrency",
    "quoteCurrency",
    "baseIncrement",
    "baseMinSize",
    "baseMaxSize",
    "quoteIncrement",
    "quoteMinSize",
    "quoteMaxSize",
    "priceIncrement",
    "feeCurrency",
    "priceLimitRate",
    "minFunds",
)


def kucoin_error(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> VenueError:
    """KuCoin's error shape: ``{"code": "400003", "msg": "KC-API-KEY not exists"}``."""
    return VenueError(status, {"code": code, "msg": message}, headers)


def passphrase_header(secret: str, passphrase: str) -> str:
    """``KC-API-PASSPHRASE`` for key version 2 and later."""
    digest = hmac.new(secret.encode(), passphrase.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _fmt(value: Decimal) -> str:
    return f"{value:.8f}"


def _masked(ip: str) -> str:
    """KuCoin shows whitelisted IPs with their middle masked: ``203.**.154``."""
    parts = re.split(r"[.:]", ip)
    return f"{parts[0]}.**.{parts[-1]}" if len(parts) > 2 else ip


def _account_id(uid: int, currency: str) -> str:
    """A stable 24-hex account id per (account, currency), like KuCoin's object ids."""
    return hashlib.sha256(f"{uid}:{currency}:{TRADE_ACCOUNT}".encode()).hexdigest()[:24]


class KucoinServer(VenueServer):
    """KuCoin spot: market data and order books, API key info, high-frequency trade account
    balances, orders (place, look up, cancel, list open) and fills (the high-frequency
    endpoints want a market per call)."""

    venue_id = "kucoin"
    key_format = re.compile(r"[0-9a-f]{24}")
    fee_in_quote = True
    #: A clientOid it has seen is refused (400100 validation.createOrder.clientOidDuplicated).
    duplicate_client_ids = "refuse"

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, reference_dir: Path | None = None
    ) -> None:
        super().__init__(host=host, port=port, reference_dir=reference_dir)
        self.symbols = SPOT_SYMBOLS
        self._symbols_by_id = {item.id: item for item in self.symbols}
        for item in self.symbols:
            self.set_price(item.symbol, DEMO_PRICES[item.symbol])

    # ----- keys ------------------------------------------------------------------------------

    def new_key_material(self, with_passphrase: bool) -> DemoKey:
        """24-hex key ids, UUID secrets and always a passphrase: KuCoin keys cannot lack one."""
        return DemoKey(
            api_key=uuid.uuid4().hex[:24],
            secret=str(uuid.uuid4()),
            passphrase=random_alnum(16),
        )

    def issue_key(
        self,
        permissions: DemoPermissions | None = None,
        *,
        account: str = "demo",
        with_passphrase: bool = True,
        material: DemoKey | None = None,
    ) -> DemoKey:
        if material is not None and not material.passphrase:
            raise ValueError("KuCoin keys always have a passphrase")
        return super().issue_key(
            permissions, account=account, with_passphrase=with_passphrase, material=material
        )

    def new_order_id(self, seq: int) -> str:
        """24 hex digits, like KuCoin's object ids."""
        return uuid.uuid4().hex[:24]

    def order_rules(self, symbol: str) -> OrderRules:
        return self._symbols_by_id[symbol.replace("/", "-")].rules()

    # ----- routes ----------------------------------------------------------------------------

    def add_routes(self, router: web.UrlDispatcher) -> None:
        routes: dict[str, Callable[[web.Request], Awaitable[web.Response]]] = {
            "/api/v1/timestamp": self.public(self._timestamp),
            "/api/v3/currencies": self.public(self._currencies),
            "/api/v2/symbols": self.public(self._symbols),
            "/api/v1/market/allTickers": self.public(self._all_tickers),
            "/api/v1/market/stats": self.public(self._stats),
            "/api/v1/market/orderbook/level1": self.public(self._level1),
            "/api/v1/market/orderbook/level2_20": self.public(self._book(20)),
            "/api/v1/market/orderbook/level2_100": self.public(self._book(100)),
            "/api/v3/market/orderbook/level2": self.private(self._book(None)),
            "/api/v1/user/api-key": self.private(self._api_key),
            "/api/ua/v1/account/mode": self.private(self._account_mode),
            "/api/v1/hf/accounts/opened": self.private(self._hf_opened),
            "/api/v1/accounts": self.private(self._accounts),
            "/api/v1/hf/orders/active": self.private(self._active_orders),
            "/api/v1/hf/fills": self.private(self._fills),
            # ccxt's load_markets asks for these whenever a key is set.
            "/api/v3/margin/symbols": self.private(self._margin_symbols),
            "/api/v1/isolated/symbols": self.private(self._isolated_symbols),
        }
        for path, endpoint in routes.items():
            router.add_get(path, endpoint)
        # After hf/orders/active, which the order id pattern would otherwise take.
        order_paths = ("/api/v1/hf/orders/{orderId}", "/api/v1/hf/orders/client-order/{clientOid}")
        router.add_post("/api/v1/hf/orders", self.private(self._place_endpoint, "spot_trade"))
        for path in order_paths:
            router.add_get(path, self.private(self._order_endpoint))
            router.add_delete(path, self.private(self._cancel_endpoint, "spot_trade"))

    # ----- authentication --------------------------------------------------------------------

    async def authenticate(self, request: web.Request, needs: Permission) -> KeyRecord:
        headers = request.headers
        api_key = headers.get("KC-API-KEY", "")
        signature = headers.get("KC-API-SIGN", "")
        timestamp = headers.get("KC-API-TIMESTAMP", "")
        passphrase = headers.get("KC-API-PASSPHRASE", "")
        if not (api_key and signature and timestamp and passphrase):
            raise kucoin_error(
                401,
                "400001",
                "Please check the header of your request for KC-API-KEY, KC-API-SIGN, "
                "KC-API-TIMESTAMP, KC-API-PASSPHRASE",
            )
        if not timestamp.isdigit() or (
            abs(self.server_time_ms() - int(timestamp)) > TIMESTAMP_TOLERANCE_MS
        ):
            raise kucoin_error(400, "400002", "Invalid KC-API-TIMESTAMP")

        record = self.key_record(api_key) if self.key_format.fullmatch(api_key) else None
        if record is None or record.revoked:
            raise kucoin_error(401, "400003", "KC-API-KEY not exists")
        secret = record.key.secret
        body = await request.text() if request.body_exists else ""
        prehash = f"{timestamp}{request.method}{request.raw_path}{body}"
        expected = base64.b64encode(
            hmac.new(secret.encode(), prehash.encode(), hashlib.sha256).digest()
        ).decode()
        if not hmac.compare_digest(expected, signature):
            raise kucoin_error(401, "400005", "Invalid KC-API-SIGN")

        expected_passphrase = record.key.passphrase or ""
        if headers.get("KC-API-KEY-VERSION", "1") != "1":
            expected_passphrase = passphrase_header(secret, expected_passphrase)
        if not hmac.compare_digest(expected_passphrase, passphrase):
            raise kucoin_error(401, "400004", "Invalid KC-API-PASSPHRASE")

        if record.permissions.ip_restricted and request.remote not in record.trusted_ips:
            raise kucoin_error(
                403, "400006", f"Invalid request ip, the current clientIp is:{request.remote}"
            )
        if not getattr(record.permissions, needs):
            raise kucoin_error(403, "400007", "Access denied, require more permission.")
        return record

    # ----- envelope and errors ---------------------------------------------------------------

    def render(self, payload: object) -> web.Response:
        return json_response({"code": SUCCESS, "data": payload})

    def fault(self, status: int) -> VenueError:
        if status == 429:
            reset_ms = 30_000 - self.server_time_ms() % 30_000
            return kucoin_error(
                429,
                "429000",
                "Too Many Requests",
                {
                    "gw-ratelimit-limit": "4000",
                    "gw-ratelimit-remaining": "0",
                    "gw-ratelimit-reset": str(reset_ms),
                },
            )
        if status == 503:  # maintenance: the gateway's page, no envelope
            return VenueError(503, _SERVICE_UNAVAILABLE_PAGE)
        return kucoin_error(status, "500000", "Internal Server Error")

    def not_found(self, request: web.Request) -> VenueError:
        return kucoin_error(404, "404000", "Url Not Found")

    def _symbol(self, request: web.Request) -> tuple[SpotSymbol, PriceStats]:
        item = self._symbols_by_id.get(request.query.get("symbol", ""))
        if item is None:
            raise kucoin_error(400, "400100", "Unsupported trading pair.")
        return item, self.prices[item.symbol]

    def _required_symbol(self, request: web.Request) -> SpotSymbol:
        """The market the high-frequency order and fill lists require."""
        if not request.query.get("symbol"):
            raise _invalid("symbol")
        return self._symbol(request)[0]

    # ----- public endpoints ------------------------------------------------------------------

    async def _timestamp(self, request: web.Request) -> int:
        return self.server_time_ms()

    async def _currencies(self, request: web.Request) -> list[dict[str, Any]]:
        assets = {item.base for item in self.symbols} | {item.quote for item in self.symbols}
        return [_currency(asset) for asset in sorted(assets)]

    async def _symbols(self, request: web.Request) -> list[dict[str, Any]]:
        market = request.query.get("market")
        return [item.info() for item in self.symbols if market in (None, "USDS")]

    def _ticker(self, item: SpotSymbol, stats: PriceStats) -> dict[str, Any]:
        """The 24 h stats shape shared by ``market/stats`` and ``market/allTickers``."""
        step = Decimal(item.price_increment)
        change = stats.last - stats.open
        return {
            "symbol": item.id,
            "buy": item.price(max(stats.last - step, step)),  # KuCoin's "buy" is the best bid
            "sell": item.price(stats.last),
            "changeRate": f"{change / stats.open:.4f}",
            "changePrice": item.price(change) if change >= 0 else "-" + item.price(-change),
            "high": item.price(stats.high),
            "low": item.price(stats.low),
            "vol": _fmt(stats.volume),
            "volValue": _fmt(stats.quote_volume),
            "last": item.price(stats.last),
            "averagePrice": item.price((stats.open + stats.last) / 2),
            "takerFeeRate": "0.001",
            "makerFeeRate": "0.001",
            "takerCoefficient": "1",
            "makerCoefficient": "1",
        }

    async def _all_tickers(self, request: web.Request) -> dict[str, Any]:
        tickers = []
        for item in self.symbols:
            stats = self.prices[item.symbol]
            ticker = self._ticker(item, stats)
            tickers.append(
                {
                    "symbol": item.id,
                    "symbolName": item.id,
                    "buy": ticker["buy"],
                    "bestBidSize": _fmt(stats.volume / 20000),
                    "sell": ticker["sell"],
                    "bestAskSize": _fmt(stats.volume / 50000),
                    **{k: v for k, v in ticker.items() if k not in ("symbol", "buy", "sell")},
                }
            )
        return {"time": self.server_time_ms(), "ticker": tickers}

    async def _stats(self, request: web.Request) -> dict[str, Any]:
        item, stats = self._symbol(request)
        return {"time": self.server_time_ms(), **self._ticker(item, stats)}

    async def _level1(self, request: web.Request) -> dict[str, Any]:
        item, stats = self._symbol(request)
        ticker = self._ticker(item, stats)
        return {
            "time": self.server_time_ms(),
            "sequence": str(stats.trades),
            "price": ticker["last"],
            "size": _fmt(stats.volume / 300000),
            "bestBid": ticker["buy"],
            "bestBidSize": _fmt(stats.volume / 20000),
            "bestAsk": ticker["sell"],
            "bestAskSize": _fmt(stats.volume / 50000),
        }

    # ----- signed endpoints ------------------------------------------------------------------

    async def _api_key(self, request: web.Request, record: KeyRecord) -> dict[str, Any]:
        """The key's own description, built from its demo permissions as KuCoin shows it."""
        flags = record.permissions
        granted = [
            name
            for name, on in (
                ("General", flags.read),
                ("Spot", flags.spot_trade),
                ("Futures", flags.futures_trade),
                ("Transfer", flags.internal_transfer),
                ("Withdrawal", flags.withdraw),
            )
            if on
        ]
        whitelist = sorted(record.trusted_ips) if flags.ip_restricted else []
        return {
            "remark": "coinwarden",
            "apiKey": record.key.api_key,
            "apiVersion": 3,
            "permission": ",".join(granted),
            "ipWhitelist": ",".join(_masked(ip) for ip in whitelist),
            "createdAt": record.created_ms,
            "uid": record.account.uid,
            "isMaster": True,
        }

    async def _account_mode(self, request: web.Request, record: KeyRecord) -> dict[str, str]:
        return {"selfAccountMode": "CLASSIC"}

    async def _hf_opened(self, request: web.Request, record: KeyRecord) -> bool:
        return True

    async def _accounts(self, request: web.Request, record: KeyRecord) -> list[dict[str, Any]]:
        """Balances live in the ``trade_hf`` account; other account types are empty here."""
        wanted_type = request.query.get("type", TRADE_ACCOUNT)
        wanted_currency = request.query.get("currency")
        if wanted_type != TRADE_ACCOUNT:
            return []
        return [
            _account_entry(record.account.uid, currency, balance)
            for currency, balance in record.account.balances.items()
            if wanted_currency in (None, currency)
        ]

    async def _active_orders(self, request: web.Request, record: KeyRecord) -> list[Any]:
        """One market's open spot orders; margin trade types have none here."""
        item = self._required_symbol(request)
        if request.query.get("tradeType", "TRADE") != "TRADE":
            return []
        return [_order_entry(order, item) for order in record.account.open_orders(item.symbol)]

    async def _fills(self, request: web.Request, record: KeyRecord) -> dict[str, Any]:
        """One market's fills (of one order, with ``orderId``), newest first, below ``lastId``."""
        item = self._required_symbol(request)
        query = FILLS_QUERY.parse(request.query, symbol_of=lambda _: item.symbol, invalid=_invalid)
        order_id = request.query.get("orderId")
        page = query.page(t for t in record.account.trades if order_id in (None, t.order_id))
        return {
            "items": [
                _fill_entry(trade, item, self.fee_rates.rate(taker=trade.taker))
                for trade in page.items
            ],
            "lastId": int(page.items[-1].id) if page.items else 0,
        }

    # ----- orders ----------------------------------------------------------------------------

    def _book(self, depth: int | None) -> Callable[..., Awaitable[dict[str, Any]]]:
        """A level-2 book endpoint: the demo book the engine fills against, ``depth`` levels a
        side (the full book without one, which is a signed call)."""

        async def book(request: web.Request, record: KeyRecord | None = None) -> dict[str, Any]:
            item, stats = self._symbol(request)
            levels = self.order_book(item.symbol, depth or self.book_shape.levels)
            return {
                "time": self.server_time_ms(),
                "sequence": str(stats.trades),
                "bids": [[item.price(lv.price), plain(lv.amount)] for lv in levels.bids],
                "asks": [[item.price(lv.price), plain(lv.amount)] for lv in levels.asks],
            }

        return book

    async def _place_endpoint(self, request: web.Request, record: KeyRecord) -> dict[str, str]:
        """A high-frequency spot order; KuCoin answers with its ids only."""
        body = _json_body(await request.text())
        client_oid = str(body.get("clientOid") or "")
        if not client_oid:
            raise kucoin_error(400, "400100", "validation.createOrder.clientOidIsRequired")
        if not _CLIENT_OID.fullmatch(client_oid):
            raise _invalid("clientOid")
        item = self._symbols_by_id.get(str(body.get("symbol", "")))
        if item is None:
            raise kucoin_error(400, "400100", "Unsupported trading pair.")
        side = _SIDES.get(str(body.get("side")))
        if side is None:
            raise _invalid("side")
        kind = _ORDER_TYPES.get(str(body.get("type")))
        if kind is None:
            raise _invalid("type")
        time_in_force = _TIME_IN_FORCE.get(str(body.get("timeInForce", "GTC")))
        if time_in_force is None:  # GTT (cancel after n seconds) is not modelled here
            raise _invalid("timeInForce")
        if body.get("postOnly") in (True, "true"):
            raise _invalid("postOnly")  # nor are maker-only orders
        price = _positive(body, "price") if kind == "limit" else None
        if kind == "market" and body.get("funds") is not None:
            funds = _positive(body, "funds")
            if funds < Decimal(MIN_FUNDS):
                raise self._rejected(RejectReason.MIN_NOTIONAL, item)
            step = Decimal(item.base_increment)
            size = amount_for_funds(self.order_book(item.symbol), funds, step)
        else:
            size = _positive(body, "size")
        try:
            order = self.place_order(
                record.account.name,
                item.symbol,
                side,
                size,
                price,
                kind=kind,
                time_in_force=time_in_force,
                client_order_id=client_oid,
            )
        except OrderRejected as rejected:
            raise self._rejected(rejected.reason, item) from None
        return {"orderId": order.id, "clientOid": order.client_order_id}

    def _rejected(self, reason: RejectReason, item: SpotSymbol) -> VenueError:
        status, code, message = _REJECTIONS[reason]
        return kucoin_error(status, code, message.format(funds=f"{MIN_FUNDS} {item.quote}"))

    def _named_order(self, request: web.Request, record: KeyRecord) -> tuple[DemoOrder, SpotSymbol]:
        """The order the path names by ``orderId`` or ``clientOid`` on the required market."""
        item = self._required_symbol(request)
        order_id = request.match_info.get("orderId")
        order = self.find_order(
            record.account.name,
            order_id=order_id,
            client_order_id=None if order_id else request.match_info["clientOid"],
        )
        if order is None or order.symbol != item.symbol:
            raise kucoin_error(400, "400100", "order not exist.")
        return order, item

    async def _order_endpoint(self, request: web.Request, record: KeyRecord) -> dict[str, Any]:
        """One order, open or done."""
        return _order_entry(*self._named_order(request, record))

    async def _cancel_endpoint(self, request: web.Request, record: KeyRecord) -> dict[str, str]:
        """Cancel an open order; KuCoin echoes the id it was named by."""
        order, _ = self._named_order(request, record)
        if order.status != "open":
            raise kucoin_error(400, "400100", "order_not_exist_or_not_allow_to_cancel")
        self.cancel_order(record.account.name, order.id)
        if "orderId" in request.match_info:
            return {"orderId": order.id}
        return {"clientOid": order.client_order_id}

    async def _margin_symbols(self, request: web.Request, record: KeyRecord) -> dict[str, Any]:
        infos = [item.info() for item in self.symbols if item.margin]
        items = [{key: info[key] for key in MARGIN_SYMBOL_FIELDS} for info in infos]
        return {"timestamp": self.server_time_ms(), "items": items}

    async def _isolated_symbols(
        self, request: web.Request, record: KeyRecord
    ) -> list[dict[str, Any]]:
        return [
            {
                "symbol": item.id,
                "symbolName": item.id,
                "baseCurrency": item.base,
                "quoteCurrency": item.quote,
                "maxLeverage": 10,
                "flDebtRatio": "0.97",
                "tradeEnable": True,
                "autoRenewMaxDebtRatio": "0.96",
                "baseBorrowEnable": True,
                "quoteBorrowEnable": True,
                "baseTransferInEnable": True,
                "quoteTransferInEnable": True,
                "baseBorrowCoefficient": "1",
                "quoteBorrowCoefficient": "1",
            }
            for item in self.symbols
            if item.margin
        ]


def _invalid(name: str) -> VenueError:
    return kucoin_error(400, "400100", f"Parameter [{name}] is invalid or missing")


def _json_body(text: str) -> dict[str, Any]:
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise kucoin_error(415, "415000", "Unsupported Media Type")
    return body


def _positive(body: dict[str, Any], name: str) -> Decimal:
    """A positive number of an order request (strings, as ccxt sends them, or numbers)."""
    try:
        value = Decimal(str(body.get(name, "")))
    except ArithmeticError:
        raise _invalid(name) from None
    if not value.is_finite() or value <= 0:
        raise _invalid(name)
    return value


def _order_entry(order: DemoOrder, item: SpotSymbol) -> dict[str, Any]:
    """A high-frequency order, as ``hf/orders/active`` and the order details show it: what was
    left when it was cancelled moves from ``remain`` to ``cancelled``."""
    left = order.remaining
    remain = left if order.status == "open" else Decimal(0)
    cancelled = left if order.status == "canceled" else Decimal(0)
    return {
        "id": order.id,
        "clientOid": order.client_order_id,
        "symbol": item.id,
        "opType": "DEAL",
        "type": order.type,
        "side": order.side,
        "price": plain(order.price) if order.type == "limit" else "0",
        "size": plain(order.amount),
        "funds": "0",
        "dealSize": plain(order.filled),
        "dealFunds": plain(order.cost),
        "remainSize": plain(remain),
        "remainFunds": plain(remain * order.price),
        "cancelledSize": plain(cancelled),
        "cancelledFunds": plain(cancelled * order.price),
        "fee": plain(order.fee),
        "feeCurrency": item.quote,
        "stp": "",
        "timeInForce": order.time_in_force,
        "postOnly": False,
        "hidden": False,
        "iceberg": False,
        "visibleSize": "0",
        "cancelAfter": 0,
        "channel": "API",
        "remark": None,
        "tags": None,
        "cancelExist": order.status == "canceled",
        "tradeType": "TRADE",
        "inOrderBook": order.status == "open",
        "active": order.status == "open",
        "tax": "0",
        "createdAt": order.created_ms,
        "lastUpdatedAt": order.updated_ms,
    }


def _fill_entry(trade: DemoTrade, item: SpotSymbol, rate: Decimal) -> dict[str, Any]:
    """A high-frequency fill; ``id`` is what ``lastId`` pages by."""
    return {
        "id": int(trade.id),
        "symbol": item.id,
        "tradeId": trade.id,
        "orderId": trade.order_id,
        "counterOrderId": uuid.uuid4().hex[:24],
        "side": trade.side,
        "liquidity": "taker" if trade.taker else "maker",
        "forceTaker": False,
        "price": plain(trade.price),
        "size": plain(trade.amount),
        "funds": plain(trade.cost),
        "fee": plain(trade.fee),
        "feeRate": plain(rate),
        "feeCurrency": trade.fee_currency,
        "stop": "",
        "tradeType": "TRADE",
        "taxRate": "0",
        "tax": "0",
        "type": trade.order_type,
        "createdAt": trade.time_ms,
    }


def _account_entry(uid: int, currency: str, balance: Balance) -> dict[str, Any]:
    return {
        "id": _account_id(uid, currency),
        "currency": currency,
        "type": TRADE_ACCOUNT,
        "balance": _fmt(balance.total),
        "available": _fmt(balance.free),
        "holds": _fmt(balance.used),
    }


def _currency(asset: str) -> dict[str, Any]:
    """One ``/api/v3/currencies`` entry; unknown assets get a native chain of their own name."""
    name, chain, chain_id, fee, confirms = COINS.get(asset, (asset, asset, asset.lower(), "0", 1))
    return {
        "currency": asset,
        "name": asset,
        "fullName": name,
        "precision": 8,
        "confirms": None,
        "contractAddress": None,
        "isMarginEnabled": True,
        "isDebitEnabled": True,
        "chains": [
            {
                "chainName": chain,
                "withdrawalMinSize": str(Decimal(fee) * 2),
                "depositMinSize": None,
                "withdrawFeeRate": "0",
                "withdrawalMinFee": fee,
                "isWithdrawEnabled": True,
                "isDepositEnabled": True,
                "confirms": confirms,
                "preConfirms": confirms,
                "contractAddress": "",
                "withdrawPrecision": 8,
                "maxWithdraw": None,
                "maxDeposit": None,
                "needTag": asset == "XRP",
                "chainId": chain_id,
            }
        ],
    }
