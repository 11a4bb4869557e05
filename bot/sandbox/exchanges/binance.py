"""A local Binance spot API that checks requests the way Binance does.

``BinanceApiServer`` holds what every Binance API family shares (the USDⓈ-M futures server builds
on it). Signed endpoints need ``X-MBX-APIKEY`` and an HMAC-SHA256 hex ``signature`` over the total
params (query string followed directly by the url-encoded body), a ``timestamp`` inside
``recvWindow`` of the server clock, and a key allowed from the caller's IP. Every refusal uses
Binance's own code, message and HTTP status, so ccxt maps it to the exception class it raises
against Binance. Markets are the recorded exchangeInfo entries from ccxt's static test data. HMAC
keys only (no Ed25519/RSA).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qsl

from aiohttp import web

from bot.sandbox.exchanges.activity import DemoOrder, DemoTrade, TimeInForce, newest_first
from bot.sandbox.exchanges.base import (
    DEMO_PRICES,
    Balance,
    KeyRecord,
    Permission,
    PriceStats,
    PrivateHandler,
    PublicHandler,
    VenueError,
    VenueServer,
)
from bot.sandbox.exchanges.matching import OrderRejected, OrderRules, RejectReason

DEFAULT_RECV_WINDOW_MS = 5000
MAX_RECV_WINDOW_MS = 60000
#: Trades per ``myTrades``/``userTrades`` answer: by default, and at most.
TRADES_LIMIT = (500, 1000)
_FUTURE_TOLERANCE_MS = 1000
_TRADING_AUTHORITY_MS = 90 * 24 * 3600 * 1000

RATE_LIMITS = [
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
    {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
    {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
]

_NOT_FOUND_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>Binance</title></head>"
    '<body><div class="info"><h3>404 Not Found</h3>'
    "<p>Sorry! The page you're looking for cannot be found.</p></div></body></html>"
)

_EVM = "^(0x)[0-9A-Fa-f]{40}$"
_TRON = "^T[1-9A-HJ-NP-Za-km-z]{33}$"
_BTC = "^[13][a-km-zA-HJ-NP-Z1-9]{25,34}$|^(bc1)[0-9A-Za-z]{39,59}$"
_ADA = "^(([0-9A-Za-z]{57,59})|([0-9A-Za-z]{100,104}))$"
_LTC = "^(L|M|3)[A-Za-z0-9]{33}$|^(ltc1)[0-9A-Za-z]{39}$"
_XRP = "^r[1-9A-HJ-NP-Za-km-z]{25,34}$"
_DOGE = "^(D|A|9)[a-km-zA-HJ-NP-Z1-9]{33,34}$"
_BEP20 = "BNB Smart Chain (BEP20)"


@dataclass(frozen=True)
class Network:
    """One withdrawal network of a coin, as ``capital/config/getall`` lists it."""

    network: str
    name: str
    withdraw_fee: str
    withdraw_min: str
    address_regex: str
    min_confirm: int


#: Names and networks of the recorded markets' assets (fees of the order Binance charges).
COINS: Mapping[str, tuple[str, tuple[Network, ...]]] = {
    "BTC": (
        "Bitcoin",
        (
            Network("BTC", "Bitcoin", "0.00002", "0.0001", _BTC, 1),
            Network("BSC", _BEP20, "0.0000035", "0.000007", _EVM, 15),
        ),
    ),
    "ETH": (
        "Ethereum",
        (
            Network("ETH", "Ethereum (ERC20)", "0.00064", "0.0013", _EVM, 64),
            Network("ARBITRUM", "Arbitrum One", "0.00004", "0.0002", _EVM, 120),
            Network("BSC", _BEP20, "0.000034", "0.000068", _EVM, 15),
        ),
    ),
    "USDT": (
        "TetherUS",
        (
            Network("ETH", "Ethereum (ERC20)", "2.5", "5", _EVM, 64),
            Network("TRX", "Tron (TRC20)", "1", "10", _TRON, 1),
            Network("BSC", _BEP20, "0.01", "0.02", _EVM, 15),
        ),
    ),
    "ADA": ("Cardano", (Network("ADA", "Cardano", "0.8", "1.6", _ADA, 30),)),
    "LTC": ("Litecoin", (Network("LTC", "Litecoin", "0.0001", "0.002", _LTC, 3),)),
    "XRP": ("Ripple", (Network("XRP", "Ripple", "0.2", "0.4", _XRP, 1),)),
    "DOGE": ("Dogecoin", (Network("DOGE", "DogeCoin", "4", "25", _DOGE, 50),)),
    "TRX": ("TRON", (Network("TRX", "Tron (TRC20)", "1", "10", _TRON, 1),)),
}


#: Which recorded markets a server lists: spot pairs, or USDⓈ-M (USDT-margined) perpetuals.
MarketKind = Literal["spot", "linear"]


@dataclass(frozen=True)
class BinanceMarket:
    """One market: ``info`` is the raw exchangeInfo symbol entry as Binance sends it."""

    symbol: str
    id: str
    base: str
    quote: str
    tick: Decimal
    step: Decimal
    info: Mapping[str, Any]

    def price(self, value: Decimal) -> Decimal:
        """``value`` rounded down to the market's tick size."""
        return (value // self.tick) * self.tick

    def amount(self, value: Decimal) -> Decimal:
        """``value`` rounded down to the lot step, never below one step."""
        return max(self.step, (value // self.step) * self.step)


@functools.cache
def load_markets(reference_dir: Path, kind: MarketKind) -> tuple[BinanceMarket, ...]:
    """The ``kind`` markets of ``markets/binance.json`` (read once per process)."""
    recorded = json.loads((reference_dir / "markets" / "binance.json").read_text())
    markets = []
    for market in recorded.values():
        wanted = market.get("spot") if kind == "spot" else market.get("swap") and market["linear"]
        if not wanted:
            continue
        info = market["info"]
        filters = {f["filterType"]: f for f in info["filters"]}
        markets.append(
            BinanceMarket(
                symbol=market["symbol"],
                id=info["symbol"],
                base=info["baseAsset"],
                quote=info["quoteAsset"],
                tick=Decimal(filters["PRICE_FILTER"]["tickSize"]).normalize(),
                step=Decimal(filters["LOT_SIZE"]["stepSize"]).normalize(),
                info=info,
            )
        )
    return tuple(markets)


def binance_error(
    status: int, code: int, msg: str, headers: Mapping[str, str] | None = None
) -> VenueError:
    """Binance's error shape: ``{"code": -1022, "msg": "..."}``."""
    return VenueError(status, {"code": code, "msg": msg}, headers)


def _rejected() -> VenueError:
    return binance_error(401, -2015, "Invalid API-key, IP, or permissions for action.")


def _mandatory(name: str) -> VenueError:
    return binance_error(
        400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


def _digits(params: Mapping[str, str], name: str, default: str | None = None) -> int | None:
    value = params.get(name, default)
    if value is None or value == "":
        return None
    if not value.isdigit() or len(value) > 20:
        raise binance_error(
            400,
            -1100,
            f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.",
        )
    return int(value)


def _without_signature(raw: str) -> str:
    return "&".join(part for part in raw.split("&") if part and not part.startswith("signature="))


def eight_decimals(value: Decimal) -> str:
    """Amounts and prices as Binance writes them in balances and spot tickers."""
    return f"{value:.8f}"


class BinanceApiServer(VenueServer):
    """What Binance's API families share: HMAC-signed requests checked the Binance way, error
    shapes, the wallet (``/sapi``) endpoints, recorded markets and ticker plumbing.

    A family (spot, USDⓈ-M futures) says which markets it lists and adds its own routes.
    """

    #: Which recorded markets this family lists.
    market_kind: ClassVar[MarketKind]

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, reference_dir: Path | None = None
    ) -> None:
        super().__init__(host=host, port=port, reference_dir=reference_dir)
        self.markets = load_markets(self.reference_dir, self.market_kind)
        self._markets_by_id = {market.id: market for market in self.markets}
        self._markets_by_symbol = {market.symbol: market for market in self.markets}
        for market in self.markets:
            # A perpetual starts at its spot pair's demo price.
            start = DEMO_PRICES.get(f"{market.base}/{market.quote}")
            if start is not None:
                self.set_price(market.symbol, start)

    def wallet_routes(self) -> dict[str, Callable[[web.Request], Awaitable[web.Response]]]:
        """The ``/sapi`` endpoints every Binance key can reach, whichever family it trades."""
        return {
            "/sapi/v1/account/apiRestrictions": self.private(self._api_restrictions),
            "/sapi/v1/capital/config/getall": self.private(self._coins),
        }

    # ----- authentication --------------------------------------------------------------------

    async def authenticate(self, request: web.Request, needs: Permission) -> KeyRecord:
        api_key = request.headers.get("X-MBX-APIKEY", "")
        if not self.key_format.fullmatch(api_key):
            raise binance_error(401, -2014, "API-key format invalid.")
        record = self.key_record(api_key)
        if record is None:
            raise self.rejected(request)
        query = request.raw_path.partition("?")[2]
        body = await request.text() if request.body_exists else ""
        params = dict(parse_qsl(query, keep_blank_values=True))
        params.update(parse_qsl(body, keep_blank_values=True))

        timestamp = _digits(params, "timestamp")
        if timestamp is None:
            raise _mandatory("timestamp")
        signature = params.get("signature")
        if not signature:
            raise _mandatory("signature")
        recv_window = _digits(params, "recvWindow", str(DEFAULT_RECV_WINDOW_MS))
        if recv_window is None or recv_window > MAX_RECV_WINDOW_MS:
            raise binance_error(400, -1131, "recvWindow must be less than 60000.")
        now = self.server_time_ms()
        if timestamp >= now + _FUTURE_TOLERANCE_MS:
            raise binance_error(
                400, -1021, "Timestamp for this request was 1000ms ahead of the server's time."
            )
        if now - timestamp > recv_window:
            raise binance_error(
                400, -1021, "Timestamp for this request is outside of the recvWindow."
            )

        total_params = _without_signature(query) + _without_signature(body)
        expected = hmac.new(
            record.key.secret.encode(), total_params.encode(), hashlib.sha256
        ).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            raise binance_error(400, -1022, "Signature for this request is not valid.")
        if not self.authorize(record, request, needs):
            raise self.rejected(request)
        return record

    def rejected(self, request: web.Request) -> VenueError:
        """Binance's -2015 for an unknown key, a caller IP not allowed or a missing permission."""
        return _rejected()

    # ----- errors ----------------------------------------------------------------------------

    def fault(self, status: int) -> VenueError:
        now = self.server_time_ms()
        if status == 429:
            return binance_error(
                429,
                -1003,
                "Too much request weight used; current limit is 6000 request weight per 1 MINUTE. "
                "Please use WebSocket Streams for live updates to avoid polling the API.",
                {"Retry-After": str(60 - (now // 1000) % 60)},
            )
        if status == 418:
            ban_s = 120
            return binance_error(
                418,
                -1003,
                f"Way too much request weight used; IP banned until {now + ban_s * 1000}. "
                "Please use WebSocket Streams for live updates to avoid bans.",
                {"Retry-After": str(ban_s)},
            )
        if status == 503:
            return binance_error(503, 1, "System is under maintenance.")
        if status == 504:
            return binance_error(
                504,
                -1007,
                "Timeout waiting for response from backend server. "
                "Send status unknown; execution status unknown.",
            )
        return binance_error(
            status, -1000, "An unknown error occurred while processing the request."
        )

    def not_found(self, request: web.Request) -> VenueError:
        return VenueError(404, _NOT_FOUND_PAGE)

    # ----- public endpoints ------------------------------------------------------------------

    async def _ping(self, request: web.Request) -> dict[str, Any]:
        return {}

    async def _time(self, request: web.Request) -> dict[str, Any]:
        return {"serverTime": self.server_time_ms()}

    def _market(self, market_id: object) -> BinanceMarket:
        market = self._markets_by_id.get(str(market_id))
        if market is None or market.symbol not in self.prices:
            raise binance_error(400, -1121, "Invalid symbol.")
        return market

    def _tickers(
        self, shape: Callable[[BinanceMarket, PriceStats], dict[str, Any]]
    ) -> PublicHandler:
        """A ticker endpoint: one object for ``symbol``, a list for ``symbols`` or for all."""

        async def handler(request: web.Request) -> Any:
            if "symbol" in request.query:
                market = self._market(request.query["symbol"])
                return shape(market, self.prices[market.symbol])
            if "symbols" in request.query:
                try:
                    ids = json.loads(request.query["symbols"])
                except ValueError:
                    raise _mandatory("symbols") from None
                if not isinstance(ids, list) or not ids:
                    raise _mandatory("symbols")
                markets = [self._market(market_id) for market_id in ids]
            else:
                markets = [m for m in self.markets if m.symbol in self.prices]
            return [shape(market, self.prices[market.symbol]) for market in markets]

        return handler

    def _ticker_price(self, market: BinanceMarket, stats: PriceStats) -> dict[str, Any]:
        """A last-price entry, as spot and USDⓈ-M futures both send it."""
        return {"symbol": market.id, "price": eight_decimals(market.price(stats.last))}

    def _book(self, market: BinanceMarket, stats: PriceStats) -> dict[str, str]:
        ask = market.price(stats.last)
        return {
            "bidPrice": eight_decimals(max(ask - market.tick, market.tick)),
            "bidQty": eight_decimals(market.amount(stats.volume / 20000)),
            "askPrice": eight_decimals(ask),
            "askQty": eight_decimals(market.amount(stats.volume / 50000)),
        }

    # ----- account activity ------------------------------------------------------------------

    def _open_orders(self, shape: Callable[[DemoOrder, BinanceMarket], Any]) -> PrivateHandler:
        """Open orders of one market, or of all without ``symbol`` (Binance weighs that more)."""

        async def handler(request: web.Request, record: KeyRecord) -> list[Any]:
            wanted = request.query.get("symbol")
            symbol = self._market(wanted).symbol if wanted else None
            return [
                shape(order, self._markets_by_symbol[order.symbol])
                for order in record.account.open_orders(symbol)
            ]

        return handler

    def _account_trades(self, shape: Callable[[DemoTrade, BinanceMarket], Any]) -> PrivateHandler:
        """One market's fills, oldest first: the latest ``limit``, or the first ``limit`` from
        ``startTime`` when only that is sent. Binance requires the market."""

        async def handler(request: web.Request, record: KeyRecord) -> list[Any]:
            params = request.query
            if not params.get("symbol"):
                raise _mandatory("symbol")
            market = self._market(params["symbol"])
            since, until = _digits(params, "startTime"), _digits(params, "endTime")
            limit = min(_digits(params, "limit") or TRADES_LIMIT[0], TRADES_LIMIT[1])
            trades = newest_first(
                record.account.trades, symbol=market.symbol, since_ms=since, until_ms=until
            )
            chosen = trades[-limit:] if since is not None and until is None else trades[:limit]
            return [shape(trade, market) for trade in reversed(chosen)]

        return handler

    # ----- signed endpoints ------------------------------------------------------------------

    async def _api_restrictions(self, request: web.Request, record: KeyRecord) -> dict[str, Any]:
        flags = record.permissions
        payload: dict[str, Any] = {
            "ipRestrict": flags.ip_restricted,
            "createTime": record.created_ms,
            "enableReading": flags.read,
            "enableWithdrawals": flags.withdraw,
            "enableInternalTransfer": flags.internal_transfer,
            "enableMargin": False,
            "enableFutures": flags.futures_trade,
            "permitsUniversalTransfer": False,
            "enableVanillaOptions": False,
            "enableFixApiTrade": False,
            "enableFixReadOnly": False,
            "enableSpotAndMarginTrading": flags.spot_trade,
            "enablePortfolioMarginTrading": False,
        }
        if flags.spot_trade and not flags.ip_restricted:
            # Binance lets trading rights of keys without an IP whitelist lapse.
            payload["tradingAuthorityExpirationTime"] = record.created_ms + _TRADING_AUTHORITY_MS
        return payload

    async def _coins(self, request: web.Request, record: KeyRecord) -> list[dict[str, Any]]:
        held = record.account.balances
        assets = {m.base for m in self.markets} | {m.quote for m in self.markets} | set(held)
        return [_coin(asset, held.get(asset, Balance(Decimal(0)))) for asset in sorted(assets)]


class BinanceServer(BinanceApiServer):
    """Binance spot (``/api/v3``) and the wallet/margin ``/sapi/v1`` endpoints ccxt needs."""

    venue_id = "binance"
    market_kind = "spot"
    duplicate_client_ids = "refuse_while_open"

    def add_routes(self, router: web.UrlDispatcher) -> None:
        routes: dict[str, Callable[[web.Request], Awaitable[web.Response]]] = {
            "/api/v3/ping": self.public(self._ping),
            "/api/v3/time": self.public(self._time),
            "/api/v3/exchangeInfo": self.public(self._exchange_info),
            "/api/v3/ticker/24hr": self.public(self._tickers(self._ticker_24hr)),
            "/api/v3/ticker/price": self.public(self._tickers(self._ticker_price)),
            "/api/v3/ticker/bookTicker": self.public(self._tickers(self._book_ticker)),
            "/api/v3/account": self.private(self._account),
            "/api/v3/openOrders": self.private(self._open_orders(_spot_order)),
            "/api/v3/myTrades": self.private(self._account_trades(_spot_trade)),
            **self.wallet_routes(),
            # ccxt's load_markets asks for these whenever a key is set (option fetchMargins).
            "/sapi/v1/margin/allPairs": self.private(self._cross_margin_pairs),
            "/sapi/v1/margin/isolated/allPairs": self.private(self._isolated_margin_pairs),
        }
        for path, endpoint in routes.items():
            router.add_get(path, endpoint)
        router.add_get("/api/v3/depth", self.public(self._depth))
        router.add_get("/api/v3/allOrders", self.private(self._all_orders))
        router.add_get("/api/v3/order", self.private(self._query_order))
        router.add_post("/api/v3/order", self.private(self._new_order_endpoint, "spot_trade"))
        router.add_delete("/api/v3/order", self.private(self._cancel_order, "spot_trade"))

    def order_rules(self, symbol: str) -> OrderRules:
        """LOT_SIZE, PRICE_FILTER and NOTIONAL of the recorded exchangeInfo entry."""
        market = self._markets_by_symbol[symbol]
        filters = {entry["filterType"]: entry for entry in market.info["filters"]}
        notional = filters.get("NOTIONAL") or filters.get("MIN_NOTIONAL") or {}
        return OrderRules(
            amount_step=market.step,
            price_tick=market.tick,
            min_amount=Decimal(filters["LOT_SIZE"]["minQty"]),
            min_notional=Decimal(notional.get("minNotional", "0")),
        )

    # ----- orders ----------------------------------------------------------------------------

    async def _depth(self, request: web.Request) -> dict[str, Any]:
        market = self._market(request.query.get("symbol", ""))
        depth = min(_digits(request.query, "limit") or 100, 5000)
        book = self.order_book(market.symbol, depth)
        return {
            "lastUpdateId": self.server_time_ms(),
            "bids": [[eight_decimals(lv.price), eight_decimals(lv.amount)] for lv in book.bids],
            "asks": [[eight_decimals(lv.price), eight_decimals(lv.amount)] for lv in book.asks],
        }

    async def _new_order_endpoint(self, request: web.Request, record: KeyRecord) -> dict[str, Any]:
        params = await _params(request)
        market = self._market(params.get("symbol", ""))
        side, kind = params.get("side", "").lower(), params.get("type", "").lower()
        if side not in ("buy", "sell"):
            raise _mandatory("side")
        if kind not in ("limit", "market"):
            raise binance_error(400, -1116, "Invalid orderType.")
        time_in_force = _TIME_IN_FORCE.get(params.get("timeInForce", "GTC"))
        if time_in_force is None:
            raise binance_error(400, -1115, "Invalid timeInForce.")
        client_id = params.get("newClientOrderId")
        if client_id is not None and not _CLIENT_ORDER_ID.fullmatch(client_id):
            raise binance_error(
                400,
                -1100,
                "Illegal characters found in parameter 'newClientOrderId'; "
                "legal range is '^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.",
            )
        try:
            order = self.place_order(
                record.account.name,
                market.symbol,
                "buy" if side == "buy" else "sell",
                _decimal(params, "quantity"),
                _decimal(params, "price") if kind == "limit" else None,
                kind="limit" if kind == "limit" else "market",
                time_in_force=time_in_force,
                client_order_id=client_id,
            )
        except OrderRejected as rejected:
            raise _order_error(rejected.reason) from None
        fills = [trade for trade in record.account.trades if trade.order_id == order.id]
        return {
            **_spot_order(order, market),
            "transactTime": order.created_ms,
            "fills": [
                {
                    "price": eight_decimals(trade.price),
                    "qty": eight_decimals(trade.amount),
                    "commission": eight_decimals(trade.fee),
                    "commissionAsset": trade.fee_currency,
                    "tradeId": int(trade.id),
                }
                for trade in fills
            ],
        }

    def _order_of(self, params: Mapping[str, str], record: KeyRecord) -> DemoOrder:
        """The order ``orderId`` or ``origClientOrderId`` names on ``symbol`` (-2013 if none)."""
        market = self._market(params.get("symbol", ""))
        order_id, client_id = params.get("orderId"), params.get("origClientOrderId")
        if not order_id and not client_id:
            raise binance_error(
                400,
                -1102,
                "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
            )
        order = self.find_order(
            record.account.name,
            order_id=order_id or None,
            client_order_id=None if order_id else client_id,
        )
        if order is None or order.symbol != market.symbol:
            raise binance_error(400, -2013, "Order does not exist.")
        return order

    async def _query_order(self, request: web.Request, record: KeyRecord) -> dict[str, Any]:
        order = self._order_of(await _params(request), record)
        return _spot_order(order, self._markets_by_symbol[order.symbol])

    async def _cancel_order(self, request: web.Request, record: KeyRecord) -> dict[str, Any]:
        params = await _params(request)
        try:
            order = self._order_of(params, record)
            self.cancel_order(record.account.name, order.id)
        except (VenueError, ValueError):
            raise binance_error(400, -2011, "Unknown order sent.") from None
        return _spot_order(order, self._markets_by_symbol[order.symbol])

    async def _all_orders(self, request: web.Request, record: KeyRecord) -> list[dict[str, Any]]:
        """One market's orders, oldest first: the latest ``limit``, or from ``startTime``."""
        params = request.query
        if not params.get("symbol"):
            raise _mandatory("symbol")
        market = self._market(params["symbol"])
        since, until = _digits(params, "startTime"), _digits(params, "endTime")
        limit = min(_digits(params, "limit") or 500, 1000)
        orders = newest_first(
            record.account.orders.values(), symbol=market.symbol, since_ms=since, until_ms=until
        )
        chosen = orders[-limit:] if since is not None and until is None else orders[:limit]
        return [_spot_order(order, market) for order in reversed(chosen)]

    # ----- public endpoints ------------------------------------------------------------------

    async def _exchange_info(self, request: web.Request) -> dict[str, Any]:
        return {
            "timezone": "UTC",
            "serverTime": self.server_time_ms(),
            "rateLimits": RATE_LIMITS,
            "exchangeFilters": [],
            "symbols": [market.info for market in self.markets],
        }

    def _ticker_24hr(self, market: BinanceMarket, stats: PriceStats) -> dict[str, Any]:
        now = self.server_time_ms()
        change = market.price(stats.last) - market.price(stats.open)
        first_id = 3_000_000_000
        book = self._book(market, stats)
        return {
            "symbol": market.id,
            "priceChange": eight_decimals(change),
            "priceChangePercent": f"{change / stats.open * 100:.3f}",
            "weightedAvgPrice": eight_decimals(market.price((stats.open + stats.last) / 2)),
            "prevClosePrice": eight_decimals(market.price(stats.open)),
            "lastPrice": book["askPrice"],
            "lastQty": eight_decimals(market.amount(stats.volume / 300000)),
            **book,
            "openPrice": eight_decimals(market.price(stats.open)),
            "highPrice": eight_decimals(market.price(stats.high)),
            "lowPrice": eight_decimals(market.price(stats.low)),
            "volume": eight_decimals(stats.volume),
            "quoteVolume": eight_decimals(stats.quote_volume),
            "openTime": now - 86_400_000,
            "closeTime": now,
            "firstId": first_id,
            "lastId": first_id + stats.trades - 1,
            "count": stats.trades,
        }

    def _book_ticker(self, market: BinanceMarket, stats: PriceStats) -> dict[str, Any]:
        return {"symbol": market.id, **self._book(market, stats)}

    # ----- signed endpoints ------------------------------------------------------------------

    async def _account(self, request: web.Request, record: KeyRecord) -> dict[str, Any]:
        """``canTrade``/``canWithdraw`` follow the calling key's permissions, as Binance reports."""
        account = record.account
        omit_zero = request.query.get("omitZeroBalances") == "true"
        return {
            "makerCommission": 10,
            "takerCommission": 10,
            "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {
                "maker": "0.00100000",
                "taker": "0.00100000",
                "buyer": "0.00000000",
                "seller": "0.00000000",
            },
            "canTrade": record.permissions.spot_trade,
            "canWithdraw": record.permissions.withdraw,
            "canDeposit": True,
            "brokered": False,
            "requireSelfTradePrevention": False,
            "preventSor": False,
            "updateTime": account.updated_ms,
            "accountType": "SPOT",
            "balances": [
                {
                    "asset": asset,
                    "free": eight_decimals(balance.free),
                    "locked": eight_decimals(balance.used),
                }
                for asset, balance in account.balances.items()
                if not (omit_zero and balance.total == 0)
            ],
            "permissions": ["SPOT"],
            "uid": account.uid,
        }

    async def _cross_margin_pairs(
        self, request: web.Request, record: KeyRecord
    ) -> list[dict[str, Any]]:
        return [
            {"id": 351637150141315861 + index, **_margin_pair(market)}
            for index, market in enumerate(self._margin_markets())
        ]

    async def _isolated_margin_pairs(
        self, request: web.Request, record: KeyRecord
    ) -> list[dict[str, Any]]:
        return [_margin_pair(market) for market in self._margin_markets()]

    def _margin_markets(self) -> list[BinanceMarket]:
        return [m for m in self.markets if m.info.get("isMarginTradingAllowed")]


_CLIENT_ORDER_ID = re.compile(r"[.A-Z:/a-z0-9_-]{1,36}")
_TIME_IN_FORCE: dict[str | None, TimeInForce] = {"GTC": "GTC", "IOC": "IOC", "FOK": "FOK"}


async def _params(request: web.Request) -> dict[str, str]:
    """A signed request's parameters: the query string and the form body together."""
    params = dict(request.query)
    if request.body_exists:
        params.update(parse_qsl(await request.text(), keep_blank_values=True))
    return params


def _decimal(params: Mapping[str, str], name: str) -> Decimal:
    try:
        return Decimal(params[name])
    except (KeyError, ArithmeticError):
        raise _mandatory(name) from None


def _order_error(reason: RejectReason) -> VenueError:
    """Binance's answer to each way the matching engine refuses an order."""
    code, message = {
        RejectReason.UNKNOWN_MARKET: (-1121, "Invalid symbol."),
        RejectReason.BAD_ORDER: (-1013, "Invalid quantity."),
        RejectReason.AMOUNT_STEP: (-1013, "Filter failure: LOT_SIZE"),
        RejectReason.MIN_AMOUNT: (-1013, "Filter failure: LOT_SIZE"),
        RejectReason.PRICE_TICK: (-1013, "Filter failure: PRICE_FILTER"),
        RejectReason.MIN_NOTIONAL: (-1013, "Filter failure: NOTIONAL"),
        RejectReason.INSUFFICIENT_FUNDS: (
            -2010,
            "Account has insufficient balance for requested action.",
        ),
        RejectReason.DUPLICATE_CLIENT_ID: (-2010, "Duplicate order sent."),
    }[reason]
    return binance_error(400, code, message)


def _order_status(order: DemoOrder) -> str:
    """NEW, PARTIALLY_FILLED, FILLED, CANCELED; an IOC or FOK order the book did not fill
    completely is EXPIRED, as Binance reports it."""
    if order.state == "canceled" and order.time_in_force != "GTC":
        return "EXPIRED"
    return order.state.upper()


def _spot_order(order: DemoOrder, market: BinanceMarket) -> dict[str, Any]:
    """An order of the spot API (``openOrders``, ``order``, ``allOrders``)."""
    return {
        "symbol": market.id,
        "orderId": int(order.id),
        "orderListId": -1,
        "clientOrderId": order.client_order_id,
        "price": eight_decimals(order.price),
        "origQty": eight_decimals(order.amount),
        "executedQty": eight_decimals(order.filled),
        "cummulativeQuoteQty": eight_decimals(order.cost),
        "status": _order_status(order),
        "timeInForce": order.time_in_force,
        "type": order.type.upper(),
        "side": order.side.upper(),
        "stopPrice": "0.00000000",
        "icebergQty": "0.00000000",
        "time": order.created_ms,
        "updateTime": order.updated_ms,
        "isWorking": True,
        "workingTime": order.created_ms,
        "origQuoteOrderQty": "0.00000000",
        "selfTradePreventionMode": "EXPIRE_MAKER",
    }


def _spot_trade(trade: DemoTrade, market: BinanceMarket) -> dict[str, Any]:
    """A ``myTrades`` entry: the side is ``isBuyer``, the fee is ``commission``."""
    return {
        "symbol": market.id,
        "id": int(trade.id),
        "orderId": int(trade.order_id),
        "orderListId": -1,
        "price": eight_decimals(trade.price),
        "qty": eight_decimals(trade.amount),
        "quoteQty": eight_decimals(trade.cost),
        "commission": eight_decimals(trade.fee),
        "commissionAsset": trade.fee_currency,
        "time": trade.time_ms,
        "isBuyer": trade.side == "buy",
        "isMaker": not trade.taker,
        "isBestMatch": True,
    }


def _margin_pair(market: BinanceMarket) -> dict[str, Any]:
    return {
        "base": market.base,
        "isBuyAllowed": True,
        "isMarginTrade": True,
        "isSellAllowed": True,
        "quote": market.quote,
        "symbol": market.id,
    }


def _coin(asset: str, balance: Balance) -> dict[str, Any]:
    """One ``capital/config/getall`` entry; unknown assets get a single native network."""
    name, networks = COINS.get(asset, (asset, (Network(asset, asset, "0", "0", "", 1),)))
    return {
        "coin": asset,
        "depositAllEnable": True,
        "withdrawAllEnable": True,
        "name": name,
        "free": eight_decimals(balance.free),
        "locked": eight_decimals(balance.used),
        "freeze": "0",
        "withdrawing": "0",
        "ipoing": "0",
        "ipoable": "0",
        "storage": "0",
        "isLegalMoney": False,
        "trading": True,
        "networkList": [
            {
                "network": network.network,
                "coin": asset,
                "withdrawIntegerMultiple": "0.00000001",
                "isDefault": index == 0,
                "depositEnable": True,
                "withdrawEnable": True,
                "depositDesc": "",
                "withdrawDesc": "",
                "specialTips": "",
                "specialWithdrawTips": "",
                "name": network.name,
                "resetAddressStatus": False,
                "addressRegex": network.address_regex,
                "addressRule": "",
                "memoRegex": "",
                "withdrawFee": network.withdraw_fee,
                "withdrawMin": network.withdraw_min,
                "withdrawMax": "9999999999.99999999",
                "depositDust": "0.00000001",
                "minConfirm": network.min_confirm,
                "unLockConfirm": 0,
                "sameAddress": False,
                "estimatedArrivalTime": 5,
                "busy": False,
            }
            for index, network in enumerate(networks)
        ],
    }
