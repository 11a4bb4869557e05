"""A local Bybit v5 API that checks requests the way Bybit does.

Private endpoints need ``X-BAPI-API-KEY``, ``X-BAPI-TIMESTAMP`` (ms), ``X-BAPI-RECV-WINDOW`` and
``X-BAPI-SIGN``: the hex HMAC-SHA256 of ``timestamp + apiKey + recvWindow + payload``, where the
payload is the query string as sent (GET) or the JSON body (POST).
The timestamp must lie in ``[server - recvWindow, server + 1 s)``. Refusals use Bybit's envelope
(``{"retCode":10003,"retMsg":"API key is invalid.","result":{},"retExtInfo":{},"time":...}``),
mostly with HTTP 200 as Bybit sends them, so ccxt raises what it raises against Bybit.

Demo accounts are unified trading accounts (UTA 2.0). Keys without an IP bound lapse after
90 days, as Bybit's do. HMAC keys only (no RSA).

Spot orders run on the shared order engine. As on Bybit, placing one answers only with its ids
(the fills are read back through ``order/realtime``), a spot order cancelled after a partial fill
(an IOC's rest) is ``PartiallyFilledCanceled`` (ccxt calls it ``closed``), and a market buy's
``qty`` is in the quote coin unless ``marketUnit`` says ``baseCoin``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.sandbox.exchanges.activity import (
    DemoOrder,
    DemoTrade,
    ListedT,
    OrderState,
    OrderType,
    Pair,
    Query,
    QueryNames,
    Side,
    TimeInForce,
    newest_first,
)
from bot.sandbox.exchanges.base import (
    DEMO_PRICES,
    DemoKey,
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

DEFAULT_RECV_WINDOW_MS = 5000
_FUTURE_TOLERANCE_MS = 1000
#: Bybit lets keys without an IP bound lapse after 90 days.
UNBOUND_KEY_LIFETIME_MS = 90 * 24 * 3600 * 1000
_DAY_MS = 24 * 3600 * 1000
#: How far back (and how wide) an execution-list window reaches.
EXECUTION_WINDOW_MS = 7 * _DAY_MS
#: What the open-order and execution lists take (``cursor``: an id), and their page sizes.
ORDERS_QUERY = QueryNames(since=None, until=None, cursor="cursor", limits=(20, 50))
EXECUTIONS_QUERY = QueryNames(cursor="cursor", limits=(50, 100))
#: What ``order/history`` takes (done orders of a seven-day window).
HISTORY_QUERY = QueryNames(cursor="cursor", limits=(20, 50))
#: ``order/realtime`` keeps this many recent done orders of an account findable by id.
RECENT_DONE_ORDERS = 500
#: Depth ``market/orderbook`` gives a spot market: by default, and at most.
SPOT_BOOK_DEPTH = (1, 200)
#: What ``orderLinkId`` may be: letters, digits, dashes and underscores, up to 36 of them.
_ORDER_LINK_ID = re.compile(r"[A-Za-z0-9_-]{1,36}")
_SIDES: Mapping[str, Side] = {"Buy": "buy", "Sell": "sell"}
_ORDER_TYPES: Mapping[str, OrderType] = {"Limit": "limit", "Market": "market"}
_TIME_IN_FORCE: Mapping[str, TimeInForce] = {"GTC": "GTC", "IOC": "IOC", "FOK": "FOK"}
#: Bybit's spot codes for what the order engine refuses (ccxt: InsufficientFunds for 170131,
#: InvalidOrder for the filters and for a reused orderLinkId, BadRequest for 10001).
_REJECTIONS: Mapping[RejectReason, tuple[int, str]] = {
    RejectReason.UNKNOWN_MARKET: (170121, "Invalid symbol."),
    RejectReason.BAD_ORDER: (10001, "Request parameter error."),
    RejectReason.AMOUNT_STEP: (170137, "Order quantity has too many decimals."),
    RejectReason.PRICE_TICK: (170134, "Order price has too many decimals."),
    RejectReason.MIN_AMOUNT: (170136, "Order quantity lower than the minimum."),
    RejectReason.MIN_NOTIONAL: (170140, "Order value exceeded lower limit."),
    RejectReason.INSUFFICIENT_FUNDS: (170131, "Insufficient balance."),
    RejectReason.DUPLICATE_CLIENT_ID: (110072, "OrderLinkedID is duplicate"),
}
_ORDER_STATUS: Mapping[OrderState, str] = {
    "new": "New",
    "partially_filled": "PartiallyFilled",
    "filled": "Filled",
    "canceled": "Cancelled",
}

#: The smallest spot order value (in the quote coin) Bybit takes on these pairs.
MIN_ORDER_VALUE = "1"

_SERVICE_UNAVAILABLE_PAGE = (
    "<html><head><title>503 Service Temporarily Unavailable</title></head><body>"
    "<center><h1>503 Service Temporarily Unavailable</h1></center></body></html>"
)
_FORBIDDEN_PAGE = (
    "<html><head><title>403 Forbidden</title></head><body>"
    "<center><h1>403 Forbidden</h1></center></body></html>"
)


@dataclass(frozen=True)
class SpotInstrument:
    """One spot pair as ``/v5/market/instruments-info?category=spot`` lists it."""

    base: str
    quote: str
    tick: str
    base_precision: str
    min_qty: str
    max_qty: str
    margin: str = "utaOnly"

    @property
    def id(self) -> str:
        return self.base + self.quote

    @property
    def symbol(self) -> str:
        return f"{self.base}/{self.quote}"

    def price(self, value: Decimal) -> str:
        """``value`` rounded down to the tick, printed with the tick's decimals."""
        tick = Decimal(self.tick)
        return str((value // tick) * tick)

    def rules(self) -> OrderRules:
        """The filters the lot-size and price filters below advertise, as the engine applies
        them (``minOrderAmt`` is the minimum order value)."""
        return OrderRules(
            amount_step=Decimal(self.base_precision),
            price_tick=Decimal(self.tick),
            min_amount=Decimal(self.min_qty),
            min_notional=Decimal(MIN_ORDER_VALUE),
        )

    def info(self) -> dict[str, Any]:
        return {
            "symbol": self.id,
            "baseCoin": self.base,
            "quoteCoin": self.quote,
            "innovation": "0",
            "status": "Trading",
            "marginTrading": self.margin,
            "stTag": "0",
            "lotSizeFilter": {
                "basePrecision": self.base_precision,
                "quotePrecision": "0.00000001",
                "minOrderQty": self.min_qty,
                "maxOrderQty": self.max_qty,
                "minOrderAmt": MIN_ORDER_VALUE,
                "maxOrderAmt": "2000000",
            },
            "priceFilter": {"tickSize": self.tick},
            "riskParameters": {"priceLimitRatioX": "0.005", "priceLimitRatioY": "0.01"},
        }


#: The demo spot pairs, with Bybit's filters for them (of the order Bybit lists).
SPOT_INSTRUMENTS: tuple[SpotInstrument, ...] = (
    SpotInstrument("BTC", "USDT", "0.01", "0.000001", "0.000048", "71.73956243", "both"),
    SpotInstrument("ETH", "USDT", "0.01", "0.00001", "0.00062", "1229.2336343", "both"),
    SpotInstrument("ADA", "USDT", "0.0001", "0.01", "1.21", "1447826.73"),
    SpotInstrument("LTC", "USDT", "0.01", "0.00001", "0.0092", "12305.0891"),
    SpotInstrument("XRP", "USDT", "0.0001", "0.01", "1.6", "1010572.8", "both"),
    SpotInstrument("DOGE", "USDT", "0.00001", "0.1", "5.8", "3800000"),
    SpotInstrument("TRX", "USDT", "0.0001", "0.1", "8.3", "3125000"),
)


def bybit_error(
    ret_code: int,
    message: str,
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    now_ms: int,
) -> VenueError:
    """Bybit's error envelope; most refusals come with HTTP 200, the code is in ``retCode``."""
    body = {"retCode": ret_code, "retMsg": message, "result": {}, "retExtInfo": {}, "time": now_ms}
    return VenueError(status, body, headers)


def _fmt(value: Decimal) -> str:
    return f"{value:.8f}"


def _order_status(order: DemoOrder) -> str:
    """Bybit's state of an order; a spot order cancelled after a partial fill has its own."""
    if order.status == "canceled" and order.filled:
        return "PartiallyFilledCanceled"
    return _ORDER_STATUS[order.state]


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class BybitServer(VenueServer):
    """Bybit v5: market data and order book, API key info, unified wallet balance, coin info,
    and spot orders (place, cancel, look up by ``orderId`` or ``orderLinkId``, history)."""

    venue_id = "bybit"
    key_format = re.compile(r"[A-Za-z0-9]{18}")
    #: An orderLinkId is never reusable, open or done (110072).
    duplicate_client_ids = "refuse"

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, reference_dir: Path | None = None
    ) -> None:
        super().__init__(host=host, port=port, reference_dir=reference_dir)
        self.instruments = SPOT_INSTRUMENTS
        self._instruments_by_id = {item.id: item for item in self.instruments}
        recorded = json.loads((self.reference_dir / "response" / "bybit.json").read_text())
        rows = recorded["methods"]["fetchCurrencies"][0]["httpResponse"]["result"]["rows"]
        self._recorded_coins: dict[str, dict[str, Any]] = {row["coin"]: row for row in rows}
        for item in self.instruments:
            self.set_price(item.symbol, DEMO_PRICES[item.symbol])

    def new_key_material(self, with_passphrase: bool) -> DemoKey:
        """18-character key ids and 36-character secrets, as Bybit issues HMAC keys."""
        return DemoKey(
            api_key=random_alnum(18),
            secret=random_alnum(36),
            passphrase=random_alnum(16) if with_passphrase else None,
        )

    def error(self, ret_code: int, message: str, *, status: int = 200) -> VenueError:
        return bybit_error(ret_code, message, status=status, now_ms=self.server_time_ms())

    def order_rules(self, symbol: str) -> OrderRules:
        return self._instrument_of(symbol).rules()

    def add_routes(self, router: web.UrlDispatcher) -> None:
        routes: dict[str, Callable[[web.Request], Awaitable[web.Response]]] = {
            "/v5/market/time": self.public(self._time),
            "/v5/market/instruments-info": self.public(self._instruments_info),
            "/v5/market/tickers": self.public(self._tickers),
            "/v5/market/orderbook": self.public(self._orderbook),
            "/v5/user/query-api": self.private(self._query_api),
            "/v5/account/info": self.private(self._account_info),
            "/v5/account/wallet-balance": self.private(self._wallet_balance),
            "/v5/asset/coin/query-info": self.private(self._coin_info),
            "/v5/order/realtime": self.private(self._realtime_orders),
            "/v5/order/history": self.private(self._order_history),
            "/v5/execution/list": self.private(self._executions),
        }
        for path, endpoint in routes.items():
            router.add_get(path, endpoint)
        router.add_post("/v5/order/create", self.private(self._create_order, "spot_trade"))
        router.add_post("/v5/order/cancel", self.private(self._cancel_order, "spot_trade"))

    # ----- authentication --------------------------------------------------------------------

    async def authenticate(self, request: web.Request, needs: Permission) -> KeyRecord:
        api_key = request.headers.get("X-BAPI-API-KEY", "")
        record = self.key_record(api_key) if self.key_format.fullmatch(api_key) else None
        if record is None or record.revoked:
            raise self.error(10003, "API key is invalid.", status=401)

        now = self.server_time_ms()
        timestamp = request.headers.get("X-BAPI-TIMESTAMP", "")
        recv_window = request.headers.get("X-BAPI-RECV-WINDOW", str(DEFAULT_RECV_WINDOW_MS))
        if not (timestamp.isdigit() and recv_window.isdigit()) or not (
            now - int(recv_window) <= int(timestamp) < now + _FUTURE_TOLERANCE_MS
        ):
            raise self.error(
                10002,
                "invalid request, please check your server timestamp or recv_window param. "
                f"req_timestamp[{timestamp}],server_timestamp[{now}],recv_window[{recv_window}]",
            )

        # A GET is signed over its query as sent (aiohttp's is decoded), a POST over its body.
        if request.method == "POST":
            payload = await request.text()
        else:
            payload = request.raw_path.partition("?")[2]
        expected = hmac.new(
            record.key.secret.encode(),
            f"{timestamp}{api_key}{recv_window}{payload}".encode(),
            hashlib.sha256,
        ).hexdigest()
        signature = request.headers.get("X-BAPI-SIGN", "").lower()
        if not hmac.compare_digest(expected, signature):
            # Bybit echoes the signed string with its key-bearing prefix masked.
            raise self.error(
                10004,
                "Error sign, please check your signature generation algorithm: "
                f"origin_string[***{payload}]",
            )

        flags = record.permissions
        if not flags.ip_restricted and now > record.created_ms + UNBOUND_KEY_LIFETIME_MS:
            raise self.error(33004, "Your api key has expired.")
        if flags.ip_restricted and request.remote not in record.trusted_ips:
            raise self.error(10010, "Unmatched IP, please check your API key's bound IP addresses.")
        if not getattr(flags, needs):
            raise self.error(10005, "Permission denied, please check your API key permissions.")
        return record

    # ----- envelope and errors ---------------------------------------------------------------

    def render(self, payload: object) -> web.Response:
        return json_response(
            {
                "retCode": 0,
                "retMsg": "OK",
                "result": payload,
                "retExtInfo": {},
                "time": self.server_time_ms(),
            }
        )

    def fault(self, status: int) -> VenueError:
        now = self.server_time_ms()
        if status == 429:
            return bybit_error(
                10006,
                "Too many visits!",
                status=429,
                headers={
                    "X-Bapi-Limit": "10",
                    "X-Bapi-Limit-Status": "0",
                    "X-Bapi-Limit-Reset-Timestamp": str(now + 1000),
                },
                now_ms=now,
            )
        if status == 403:  # the gateway's IP rate limit: a bare page, no envelope
            return VenueError(403, _FORBIDDEN_PAGE)
        if status == 503:
            return VenueError(503, _SERVICE_UNAVAILABLE_PAGE)
        return bybit_error(10016, "Internal System Error.", status=status, now_ms=now)

    # ----- public endpoints ------------------------------------------------------------------

    async def _time(self, request: web.Request) -> dict[str, Any]:
        now = self.server_time_ms()
        return {"timeSecond": str(now // 1000), "timeNano": str(now * 1_000_000)}

    def _category(self, request: web.Request) -> str:
        category = request.query.get("category", "")
        if category not in ("spot", "linear", "inverse", "option"):
            raise self.error(10001, "Illegal category")
        return category

    async def _instruments_info(self, request: web.Request) -> dict[str, Any]:
        category = self._category(request)
        listed = self.instruments if category == "spot" else ()
        if "symbol" in request.query:
            listed = tuple(item for item in listed if item.id == request.query["symbol"])
        return {
            "category": category,
            "list": [item.info() for item in listed],
            "nextPageCursor": "",
        }

    async def _tickers(self, request: web.Request) -> dict[str, Any]:
        category = self._category(request)
        if category != "spot":
            return {"category": category, "list": []}
        if "symbol" in request.query:
            item = self._instruments_by_id.get(request.query["symbol"])
            if item is None:
                raise self.error(10001, "Not supported symbols")
            listed: tuple[SpotInstrument, ...] = (item,)
        else:
            listed = self.instruments
        return {
            "category": "spot",
            "list": [self._ticker(item, self.prices[item.symbol]) for item in listed],
        }

    async def _orderbook(self, request: web.Request) -> dict[str, Any]:
        """The demo book the order engine fills against, ``limit`` levels a side."""
        if self._category(request) != "spot":
            raise self.error(10001, "Not supported symbols")
        item = self._instruments_by_id.get(request.query.get("symbol", ""))
        if item is None:
            raise self.error(10001, "Not supported symbols")
        default, high = SPOT_BOOK_DEPTH
        limit = request.query.get("limit", str(default))
        if not limit.isdigit() or not 1 <= int(limit) <= high:
            raise self._invalid("limit")
        book = self.order_book(item.symbol, int(limit))
        now = self.server_time_ms()
        return {
            "s": item.id,
            "b": [[item.price(level.price), plain(level.amount)] for level in book.bids],
            "a": [[item.price(level.price), plain(level.amount)] for level in book.asks],
            "ts": now,
            "u": self.prices[item.symbol].trades,
            "seq": self.prices[item.symbol].trades,
            "cts": now,
        }

    def _ticker(self, item: SpotInstrument, stats: PriceStats) -> dict[str, str]:
        tick = Decimal(item.tick)
        change = (stats.last - stats.open) / stats.open
        return {
            "symbol": item.id,
            "bid1Price": item.price(max(stats.last - tick, tick)),
            "bid1Size": _fmt(stats.volume / 20000),
            "ask1Price": item.price(stats.last),
            "ask1Size": _fmt(stats.volume / 50000),
            "lastPrice": item.price(stats.last),
            "prevPrice24h": item.price(stats.open),
            "price24hPcnt": f"{change:.4f}",
            "highPrice24h": item.price(stats.high),
            "lowPrice24h": item.price(stats.low),
            "turnover24h": _fmt(stats.quote_volume),
            "volume24h": _fmt(stats.volume),
            "usdIndexPrice": _fmt(stats.last),
        }

    # ----- signed endpoints ------------------------------------------------------------------

    async def _query_api(self, request: web.Request, record: KeyRecord) -> dict[str, Any]:
        """The key's own description, built from its demo permissions as Bybit would show it."""
        flags = record.permissions
        wallet = (["SubMemberTransfer"] if flags.internal_transfer else []) + (
            ["Withdraw"] if flags.withdraw else []
        )
        writable = flags.spot_trade or flags.futures_trade or bool(wallet)
        if flags.ip_restricted:
            ips, expires, days_left = sorted(record.trusted_ips), "", 0
        else:
            expires_ms = record.created_ms + UNBOUND_KEY_LIFETIME_MS
            left_ms = max(0, expires_ms - self.server_time_ms())
            ips, expires, days_left = ["*"], _iso(expires_ms), left_ms // _DAY_MS
        return {
            "id": str(13_000_000 + record.account.uid % 1_000_000),
            "note": "coinwarden",
            "apiKey": record.key.api_key,
            "readOnly": 0 if writable else 1,
            "secret": "",
            "permissions": {
                "ContractTrade": ["Order", "Position"] if flags.futures_trade else [],
                "Spot": ["SpotTrade"] if flags.spot_trade else [],
                "Wallet": wallet,
                "Options": [],
                "Derivatives": ["DerivativesTrade"] if flags.futures_trade else [],
                "CopyTrading": [],
                "BlockTrade": [],
                "Exchange": [],
                "NFT": [],
                "Affiliate": [],
                "Earn": [],
            },
            "ips": ips,
            "type": 1,
            "deadlineDay": days_left,
            "expiredAt": expires,
            "createdAt": _iso(record.created_ms),
            "unified": 0,
            "uta": 1,
            "userID": record.account.uid,
            "inviterID": 0,
            "vipLevel": "No VIP",
            "mktMakerLevel": "0",
            "affiliateID": 0,
            "rsaPublicKey": "",
            "isMaster": True,
            "parentUid": "0",
            "kycLevel": "LEVEL_1",
            "kycRegion": "",
        }

    async def _account_info(self, request: web.Request, record: KeyRecord) -> dict[str, Any]:
        return {
            "marginMode": "REGULAR_MARGIN",
            "updatedTime": str(record.account.updated_ms),
            "unifiedMarginStatus": 6,  # UTA 2.0 Pro
            "dcpStatus": "OFF",
            "timeWindow": 10,
            "smpGroup": 0,
            "isMasterTrader": False,
            "spotHedgingStatus": "OFF",
        }

    def _usd_price(self, asset: str) -> Decimal:
        if asset in ("USDT", "USDC"):
            return Decimal(1)
        stats = self.prices.get(f"{asset}/USDT")
        return stats.last if stats else Decimal(0)

    async def _wallet_balance(self, request: web.Request, record: KeyRecord) -> dict[str, Any]:
        """A unified account; ``availableToWithdraw`` is empty, as Bybit leaves it on UTA 2.0."""
        if request.query.get("accountType") != "UNIFIED":
            raise self.error(10001, "accountType only support UNIFIED.")
        wanted = {c for c in request.query.get("coin", "").split(",") if c}
        coins = []
        total_usd = Decimal(0)
        for asset, balance in record.account.balances.items():
            if wanted and asset not in wanted:
                continue
            usd = (balance.total * self._usd_price(asset)).quantize(Decimal("1e-8"))
            total_usd += usd
            coins.append(
                {
                    "availableToBorrow": "",
                    "bonus": "0",
                    "accruedInterest": "0",
                    "availableToWithdraw": "",
                    "totalOrderIM": "0",
                    "equity": _fmt(balance.total),
                    "totalPositionMM": "0",
                    "usdValue": _fmt(usd),
                    "unrealisedPnl": "0",
                    "collateralSwitch": True,
                    "spotHedgingQty": "0",
                    "borrowAmount": "0.000000000000000000",
                    "totalPositionIM": "0",
                    "walletBalance": _fmt(balance.total),
                    "cumRealisedPnl": "0",
                    "locked": _fmt(balance.used),
                    "marginCollateral": True,
                    "coin": asset,
                }
            )
        usd_text = _fmt(total_usd)
        return {
            "list": [
                {
                    "totalEquity": usd_text,
                    "accountIMRate": "0",
                    "totalMarginBalance": usd_text,
                    "totalInitialMargin": "0",
                    "accountType": "UNIFIED",
                    "totalAvailableBalance": usd_text,
                    "accountMMRate": "0",
                    "totalPerpUPL": "0",
                    "totalWalletBalance": usd_text,
                    "accountLTV": "0",
                    "totalMaintenanceMargin": "0",
                    "coin": coins,
                }
            ]
        }

    async def _coin_info(self, request: web.Request, record: KeyRecord) -> dict[str, Any]:
        """The recorded USDT entry; other coins get one native chain of the same shape."""
        assets = {item.base for item in self.instruments} | {i.quote for i in self.instruments}
        assets |= set(record.account.balances)
        if "coin" in request.query:
            assets &= {request.query["coin"]}
        return {"rows": [self._coin_row(asset) for asset in sorted(assets)]}

    def _coin_row(self, asset: str) -> dict[str, Any]:
        if asset in self._recorded_coins:
            return self._recorded_coins[asset]
        return {
            "name": asset,
            "coin": asset,
            "remainAmount": "1000000",
            "chains": [
                {
                    "chainType": asset,
                    "confirmation": "6",
                    "withdrawFee": "0",
                    "depositMin": "0",
                    "withdrawMin": "0",
                    "chain": asset,
                    "chainDeposit": "1",
                    "chainWithdraw": "1",
                    "minAccuracy": "8",
                    "withdrawPercentageFee": "0",
                    "contractAddress": "",
                }
            ],
        }

    # ----- orders and executions -------------------------------------------------------------

    def _invalid(self, name: str) -> VenueError:
        return self.error(10001, f"params error: {name} invalid")

    def _symbol_of(self, market_id: str) -> str:
        item = self._instruments_by_id.get(market_id)
        if item is None:
            raise self.error(10001, "Not supported symbols")
        return item.symbol

    def _in_category(self, request: web.Request, items: list[ListedT]) -> tuple[str, list[ListedT]]:
        """The ``category`` asked for and the items of it (spot here; contracts otherwise)."""
        category = self._category(request)
        spot = category == "spot"
        return category, [item for item in items if (Pair.of(item.symbol).settle is None) == spot]

    async def _realtime_orders(self, request: web.Request, record: KeyRecord) -> dict[str, Any]:
        """Open orders; with ``orderId`` or ``orderLinkId`` that order whatever its state (among
        the account's recent done orders), with ``openOnly=1`` the recent done orders."""
        query = ORDERS_QUERY.parse(request.query, symbol_of=self._symbol_of, invalid=self._invalid)
        order_id = request.query.get("orderId", "")
        link_id = request.query.get("orderLinkId", "")
        recent = self._recent(record)
        if order_id:
            orders = [order for order in recent if order.id == order_id]
        elif link_id:
            orders = [order for order in recent if order.client_order_id == link_id]
        elif request.query.get("openOnly", "0") == "1":
            orders = [order for order in recent if order.status != "open"]
        else:
            orders = record.account.open_orders()
        category, chosen = self._in_category(request, orders)
        page = query.page(chosen)
        return {
            "list": [self._order_entry(order) for order in page.items],
            "nextPageCursor": page.cursor or "",
            "category": category,
        }

    def _recent(self, record: KeyRecord) -> list[DemoOrder]:
        """The open orders and the recent done ones ``order/realtime`` still knows."""
        orders = newest_first(record.account.orders.values())
        done = [order.id for order in orders if order.status != "open"][:RECENT_DONE_ORDERS]
        kept = set(done)
        return [order for order in orders if order.status == "open" or order.id in kept]

    async def _order_history(self, request: web.Request, record: KeyRecord) -> dict[str, Any]:
        """Done orders of a seven-day window, by ``orderId``, ``orderLinkId`` or
        ``orderStatus`` if asked."""
        query = self._week(
            HISTORY_QUERY.parse(request.query, symbol_of=self._symbol_of, invalid=self._invalid)
        )
        wanted = {
            "orderId": lambda order: order.id,
            "orderLinkId": lambda order: order.client_order_id,
            "orderStatus": _order_status,
        }
        done = [order for order in record.account.orders.values() if order.status != "open"]
        for name, field_of in wanted.items():
            if request.query.get(name):
                done = [order for order in done if field_of(order) == request.query[name]]
        category, orders = self._in_category(request, done)
        page = query.page(orders)
        return {
            "list": [self._order_entry(order) for order in page.items],
            "nextPageCursor": page.cursor or "",
            "category": category,
        }

    async def _executions(self, request: web.Request, record: KeyRecord) -> dict[str, Any]:
        """Fills of a seven-day window: the last seven days, or seven from the one bound sent."""
        query = self._week(
            EXECUTIONS_QUERY.parse(request.query, symbol_of=self._symbol_of, invalid=self._invalid)
        )
        category, trades = self._in_category(request, record.account.trades)
        page = query.page(trades)
        orders = record.account.orders
        return {
            "nextPageCursor": page.cursor or "",
            "category": category,
            "list": [self._execution_entry(trade, orders[trade.order_id]) for trade in page.items],
        }

    def _week(self, query: Query) -> Query:
        """A history query's window as Bybit bounds it: the last seven days, or seven from the
        one bound sent."""
        since, until = query.since_ms, query.until_ms
        if since is None:
            until = self.server_time_ms() if until is None else until
            since = until - EXECUTION_WINDOW_MS
        elif until is None:
            until = since + EXECUTION_WINDOW_MS
        return dataclasses.replace(query, since_ms=since, until_ms=until)

    async def _body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.text())
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise self.error(10001, "Request parameter error.")
        return body

    def _spot_item(self, body: Mapping[str, Any]) -> SpotInstrument:
        """The spot pair an order request names (only spot trades here)."""
        if body.get("category") not in ("spot", "linear", "inverse", "option"):
            raise self.error(10001, "Illegal category")
        item = self._instruments_by_id.get(str(body.get("symbol", "")))
        if body["category"] != "spot" or item is None:
            raise self.error(170121, "Invalid symbol.")
        return item

    def _positive(self, body: Mapping[str, Any], name: str) -> Decimal:
        try:
            value = Decimal(str(body.get(name, "")))
        except ArithmeticError:
            raise self._invalid(name) from None
        if not value.is_finite() or value <= 0:
            raise self._invalid(name)
        return value

    def _rejected(self, reason: RejectReason) -> VenueError:
        return self.error(*_REJECTIONS[reason])

    async def _create_order(self, request: web.Request, record: KeyRecord) -> dict[str, str]:
        """A spot limit or market order. Bybit answers with the ids only."""
        body = await self._body(request)
        item = self._spot_item(body)
        side = _SIDES.get(str(body.get("side")))
        kind = _ORDER_TYPES.get(str(body.get("orderType")))
        if side is None or kind is None:
            raise self._invalid("side" if side is None else "orderType")
        time_in_force = _TIME_IN_FORCE.get(str(body.get("timeInForce", "GTC")))
        if time_in_force is None:
            raise self.error(170115, "Invalid timeInForce.")
        link_id = body.get("orderLinkId") or None
        if link_id is not None and not _ORDER_LINK_ID.fullmatch(str(link_id)):
            raise self._invalid("orderLinkId")
        qty = self._positive(body, "qty")
        price = self._positive(body, "price") if kind == "limit" else None
        unit = body.get("marketUnit") or ("quoteCoin" if side == "buy" else "baseCoin")
        if kind == "market" and unit == "quoteCoin":
            rules = item.rules()
            if qty < rules.min_notional:
                raise self._rejected(RejectReason.MIN_NOTIONAL)
            qty = amount_for_funds(self.order_book(item.symbol), qty, rules.amount_step)
        try:
            order = self.place_order(
                record.account.name,
                item.symbol,
                side,
                qty,
                price,
                kind=kind,
                time_in_force=time_in_force,
                client_order_id=None if link_id is None else str(link_id),
            )
        except OrderRejected as rejected:
            raise self._rejected(rejected.reason) from None
        return {"orderId": order.id, "orderLinkId": order.client_order_id}

    async def _cancel_order(self, request: web.Request, record: KeyRecord) -> dict[str, str]:
        body = await self._body(request)
        item = self._spot_item(body)
        order_id, link_id = body.get("orderId") or None, body.get("orderLinkId") or None
        if order_id is None and link_id is None:
            raise self._invalid("orderId")
        order = self.find_order(
            record.account.name,
            order_id=None if order_id is None else str(order_id),
            client_order_id=None if link_id is None else str(link_id),
        )
        if order is None or order.symbol != item.symbol or order.status != "open":
            raise self.error(170213, "Order does not exist.")
        self.cancel_order(record.account.name, order.id)
        return {"orderId": order.id, "orderLinkId": order.client_order_id}

    def _order_entry(self, order: DemoOrder) -> dict[str, Any]:
        """An order as Bybit lists it. What an IOC or FOK order leaves is cancelled by its time
        in force (``EC_CancelForNoFullFill``), a resting one by its owner."""
        item = self._instrument_of(order.symbol)
        leaves = order.remaining if order.status == "open" else Decimal(0)
        cancel_type, reject_reason = "UNKNOWN", "EC_NoError"
        if order.status == "canceled" and order.time_in_force == "GTC":
            cancel_type, reject_reason = "CancelByUser", "EC_PerCancelRequest"
        elif order.status == "canceled":
            reject_reason = "EC_CancelForNoFullFill"
        return {
            "orderId": order.id,
            "orderLinkId": order.client_order_id,
            "blockTradeId": "",
            "symbol": item.id,
            "price": plain(order.price) if order.type == "limit" else "0",
            "qty": plain(order.amount),
            "side": order.side.capitalize(),
            "isLeverage": "0",
            "positionIdx": 0,
            "orderStatus": _order_status(order),
            "cancelType": cancel_type,
            "rejectReason": reject_reason,
            "avgPrice": plain(order.average) if order.filled else "0",
            "leavesQty": plain(leaves),
            "leavesValue": plain(leaves * order.price),
            "cumExecQty": plain(order.filled),
            "cumExecValue": plain(order.cost),
            "cumExecFee": plain(order.fee),
            "cumFeeDetail": {order.fee_currency: plain(order.fee)} if order.fee else {},
            "timeInForce": order.time_in_force,
            "orderType": order.type.capitalize(),
            "stopOrderType": "",
            "orderIv": "",
            "marketUnit": "baseCoin" if order.type == "market" else "",
            "triggerPrice": "0.00",
            "takeProfit": "0.00",
            "stopLoss": "0.00",
            "tpslMode": "",
            "tpLimitPrice": "",
            "slLimitPrice": "",
            "tpTriggerBy": "",
            "slTriggerBy": "",
            "triggerDirection": 0,
            "triggerBy": "",
            "lastPriceOnCreated": "",
            "reduceOnly": False,
            "closeOnTrigger": False,
            "placeType": "",
            "smpType": "None",
            "smpGroup": 0,
            "smpOrderId": "",
            "createdTime": str(order.created_ms),
            "updatedTime": str(order.updated_ms),
        }

    def _execution_entry(self, trade: DemoTrade, order: DemoOrder) -> dict[str, Any]:
        rate = self.fee_rates.rate(taker=trade.taker)
        return {
            "symbol": self._instrument_of(trade.symbol).id,
            "orderType": trade.order_type.capitalize(),
            "underlyingPrice": "",
            "orderLinkId": trade.client_order_id,
            "orderId": trade.order_id,
            "stopOrderType": "",
            "execTime": str(trade.time_ms),
            "feeCurrency": trade.fee_currency,
            "feeRate": plain(rate),
            "tradeIv": "",
            "blockTradeId": "",
            "markPrice": "",
            "execPrice": plain(trade.price),
            "markIv": "",
            "orderQty": plain(order.amount),
            "orderPrice": plain(order.price),
            "execValue": plain(trade.cost),
            "closedSize": "",
            "execType": "Trade",
            "seq": trade.seq,
            "side": trade.side.capitalize(),
            "indexPrice": "",
            "leavesQty": plain(order.remaining),
            "isMaker": not trade.taker,
            "execFee": plain(trade.fee),
            "execId": trade.id,
            "marketUnit": "",
            "execQty": plain(trade.amount),
        }

    def _instrument_of(self, symbol: str) -> SpotInstrument:
        return self._instruments_by_id[Pair.of(symbol).base + Pair.of(symbol).quote]
