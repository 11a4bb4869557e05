"""A local Bitget API that checks requests the way Bitget does: classic (v2) and unified (v3).

Private endpoints need ``ACCESS-KEY``, ``ACCESS-PASSPHRASE``, an ``ACCESS-TIMESTAMP`` in
milliseconds within 30 s of the server clock, and ``ACCESS-SIGN`` = base64(HMAC-SHA256(secret,
timestamp + METHOD + path [+ "?" + decoded query] + body)). Refusals carry Bitget's own code,
message and HTTP status, so ccxt raises what it raises against Bitget.

Two things set Bitget apart and are modelled here:

* Account mode. A unified trading account (UTA) answers classic v2 private endpoints with 40085
  and a classic account answers v3 with 40084 (``set_unified``). Public endpoints serve both.
* Demo trading. ccxt's sandbox mode keeps the live host and adds a ``PAPTRADING: 1`` header;
  demo keys (``issue_key(demo=True)``) work only with it and live keys only without it (40099).

No markets file exists for Bitget in ccxt's static data, so the spot symbols below follow the
v2 ``public/symbols`` shape; coins, balances and tickers follow recorded responses.

Spot orders run on the shared order engine, in both modes (v2 ``spot/trade`` classic, v3
``trade`` unified). Placing one answers with its ids only; ``orderInfo`` finds it by ``orderId``
or ``clientOid`` (an unknown one is an empty list, as on Bitget); a classic market buy's
``size`` is in the quote coin.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from bot.sandbox.exchanges.activity import (
    DemoOrder,
    DemoTrade,
    ListedT,
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
    PrivateHandler,
    VenueError,
    VenueServer,
    plain,
    random_alnum,
)
from bot.sandbox.exchanges.matching import OrderRejected, OrderRules, RejectReason, amount_for_funds

#: How far ``ACCESS-TIMESTAMP`` may be from the server clock, either way.
TIMESTAMP_WINDOW_MS = 30_000
SUCCESS_CODE = "00000"
UNIFIED_ONLY_CODE = "40085"  # classic endpoint, unified account
CLASSIC_ONLY_CODE = "40084"  # unified endpoint, classic account

_TIMESTAMP = re.compile(r"[0-9]{1,16}")
#: What order and fill lists take: the id cursor is ``idLessThan`` classic, ``cursor`` unified.
CLASSIC_QUERY = QueryNames(cursor="idLessThan")
UNIFIED_QUERY = QueryNames(cursor="cursor")
#: What ``clientOid`` may be: up to 50 printable ASCII characters, no spaces.
_CLIENT_OID = re.compile(r"[0-9A-Za-z_:#+.-]{1,50}")
_SIDES: Mapping[str, Side] = {"buy": "buy", "sell": "sell"}
_ORDER_TYPES: Mapping[str, OrderType] = {"limit": "limit", "market": "market"}
#: ``force`` (classic) and ``timeInForce`` (unified), in any case; post_only is not modelled.
_TIME_IN_FORCE: Mapping[str, TimeInForce] = {"gtc": "GTC", "ioc": "IOC", "fok": "FOK"}
#: Levels ``market/orderbook`` gives a side: by default and at most (classic, unified).
CLASSIC_BOOK_DEPTH = (150, 150)
UNIFIED_BOOK_DEPTH = (5, 200)

_GATEWAY_PAGE = (
    "<html>\r\n<head><title>{status}</title></head>\r\n<body>\r\n"
    "<center><h1>{status}</h1></center>\r\n</body>\r\n</html>\r\n"
)
_GATEWAY_STATUSES = {
    502: "502 Bad Gateway",
    503: "503 Service Unavailable",
    504: "504 Gateway Time-out",
}


@dataclass(frozen=True)
class SpotSymbol:
    """One spot market as ``/api/v2/spot/public/symbols`` describes it."""

    symbol: str
    price_precision: int
    quantity_precision: int
    min_trade_usdt: str = "1"
    borrowable: bool = False

    @property
    def base(self) -> str:
        return self.symbol.split("/")[0]

    @property
    def quote(self) -> str:
        return self.symbol.split("/")[1]

    @property
    def id(self) -> str:
        return self.base + self.quote

    @property
    def tick(self) -> Decimal:
        return Decimal(1).scaleb(-self.price_precision)

    @property
    def step(self) -> Decimal:
        return Decimal(1).scaleb(-self.quantity_precision)

    def price(self, value: Decimal) -> str:
        return plain(value.quantize(self.tick))

    def amount(self, value: Decimal) -> str:
        return plain(max(self.step, value.quantize(self.step)))

    def rules(self) -> OrderRules:
        """The precisions and ``minTradeUSDT`` :meth:`info` advertises, as the engine applies
        them (the demo pairs all quote in USDT)."""
        return OrderRules(
            amount_step=self.step,
            price_tick=self.tick,
            min_amount=Decimal(0),
            min_notional=Decimal(self.min_trade_usdt),
        )

    def info(self) -> dict[str, str]:
        return {
            "symbol": self.id,
            "baseCoin": self.base,
            "quoteCoin": self.quote,
            "minTradeAmount": "0",
            "maxTradeAmount": "900000000000000000000",
            "takerFeeRate": "0.001",
            "makerFeeRate": "0.001",
            "pricePrecision": str(self.price_precision),
            "quantityPrecision": str(self.quantity_precision),
            "quotePrecision": str(self.price_precision + self.quantity_precision),
            "status": "online",
            "minTradeUSDT": self.min_trade_usdt,
            "buyLimitPriceRatio": "0.05",
            "sellLimitPriceRatio": "0.05",
            "areaSymbol": "no",
            "orderQuantity": "200",
            "openTime": "1532454360000",
            "offTime": "",
        }


SPOT_SYMBOLS: tuple[SpotSymbol, ...] = (
    SpotSymbol("BTC/USDT", 2, 6, borrowable=True),
    SpotSymbol("ETH/USDT", 2, 4, borrowable=True),
    SpotSymbol("ADA/USDT", 4, 2),
    SpotSymbol("LTC/USDT", 2, 4),
    SpotSymbol("XRP/USDT", 4, 2),
    SpotSymbol("DOGE/USDT", 5, 2),
    SpotSymbol("TRX/USDT", 4, 2),
)


@dataclass(frozen=True)
class Chain:
    """One deposit/withdrawal network of a coin, as ``/api/v2/spot/public/coins`` lists it."""

    chain: str
    withdraw_fee: str
    min_withdraw: str
    confirmations: int
    browser_url: str
    contract: str = ""
    need_tag: bool = False

    def info(self) -> dict[str, str]:
        return {
            "chain": self.chain,
            "needTag": str(self.need_tag).lower(),
            "withdrawable": "true",
            "rechargeable": "true",
            "withdrawFee": self.withdraw_fee,
            "extraWithdrawFee": "0",
            "depositConfirm": str(self.confirmations),
            "withdrawConfirm": str(self.confirmations),
            "minDepositAmount": "0.0001",
            "minWithdrawAmount": self.min_withdraw,
            "browserUrl": self.browser_url,
            "contractAddress": self.contract,
            "withdrawStep": "0",
            "withdrawMinScale": "8",
            "congestion": "normal",
        }


#: Coin ids and networks (USDT comes verbatim from the recorded ``fetchCurrencies`` response).
COINS: Mapping[str, tuple[str, tuple[Chain, ...]]] = {
    "BTC": ("1", (Chain("BTC", "0.00005", "0.0005", 1, "https://mempool.space/tx/"),)),
    "ETH": (
        "3",
        (
            Chain("ERC20", "0.0008", "0.005", 64, "https://etherscan.io/tx/"),
            Chain("ArbitrumOne", "0.0001", "0.001", 24, "https://arbiscan.io/tx/"),
        ),
    ),
    "ADA": ("57", (Chain("Cardano", "0.8", "2", 30, "https://cardanoscan.io/transaction/"),)),
    "LTC": ("5", (Chain("LTC", "0.001", "0.002", 3, "https://blockchair.com/litecoin/tx/"),)),
    "XRP": ("7", (Chain("XRP", "0.2", "1", 1, "https://xrpscan.com/tx/", need_tag=True),)),
    "DOGE": ("43", (Chain("DOGE", "4", "10", 50, "https://dogechain.info/tx/"),)),
    "TRX": ("19", (Chain("TRC20", "1", "10", 1, "https://tronscan.org/#/transaction/"),)),
}


#: The fields a ``margin/currencies`` entry shares with the market's ``public/symbols`` entry.
_MARGIN_FIELDS = frozenset(
    {
        "symbol",
        "baseCoin",
        "quoteCoin",
        "minTradeAmount",
        "maxTradeAmount",
        "takerFeeRate",
        "makerFeeRate",
        "pricePrecision",
        "quantityPrecision",
        "minTradeUSDT",
        "status",
    }
)


@functools.cache
def load_recorded_usdt(reference_dir: Path) -> dict[str, Any]:
    """USDT's entry of the recorded ``/api/v2/spot/public/coins`` answer (read once)."""
    recorded = json.loads((reference_dir / "response" / "bitget.json").read_text())
    coins = recorded["methods"]["fetchCurrencies"][0]["httpResponse"]["data"]
    return next(coin for coin in coins if coin["coin"] == "USDT")


def _market_id(symbol: str) -> str:
    """``BTCUSDT`` for ``BTC/USDT``."""
    return symbol.replace("/", "")


def _status(order: DemoOrder) -> str:
    """Bitget's order states: ``live``, ``partially_filled``, ``filled``, ``cancelled``."""
    return {"new": "live", "canceled": "cancelled"}.get(order.state, order.state)


def _unified_order_entry(order: DemoOrder) -> dict[str, Any]:
    """An order of a unified account, as ``trade/unfilled-orders`` and ``trade/order-info``
    show it."""
    return {
        "orderId": order.id,
        "clientOid": order.client_order_id,
        "category": "SPOT",
        "symbol": _market_id(order.symbol),
        "orderType": order.type,
        "side": order.side,
        "price": plain(order.price) if order.type == "limit" else "0",
        "qty": plain(order.amount),
        "amount": plain(order.amount * order.price),
        "cumExecQty": plain(order.filled),
        "cumExecValue": plain(order.cost),
        "avgPrice": plain(order.average) if order.filled else "0",
        "timeInForce": order.time_in_force.lower(),
        "orderStatus": _status(order),
        "posSide": "",
        "holdMode": "",
        "reduceOnly": "NO",
        "feeDetail": [
            {"feeCoin": order.fee_currency, "fee": plain(order.fee) if order.fee else ""}
        ],
        "createdTime": str(order.created_ms),
        "updatedTime": str(order.updated_ms),
        "stpMode": "none",
    }


def _fee_detail(order: DemoOrder) -> str:
    """A classic order's ``feeDetail``: a JSON text, fees negative, one entry per fee coin."""
    if not order.fee:
        return "{}"
    fee = -order.fee
    return json.dumps(
        {
            "newFees": {"c": 0, "d": 0, "deduction": False, "r": fee, "t": fee},
            order.fee_currency: {
                "deduction": False,
                "feeCoinCode": order.fee_currency,
                "totalDeductionFee": 0,
                "totalFee": fee,
            },
        },
        default=float,
        separators=(",", ":"),
    )


def _unified_fill_entry(trade: DemoTrade) -> dict[str, Any]:
    """A fill of a unified account's ``trade/fills`` list (fees are positive here)."""
    return {
        "execId": trade.id,
        "orderId": trade.order_id,
        "category": "SPOT",
        "symbol": _market_id(trade.symbol),
        "orderType": trade.order_type,
        "side": trade.side,
        "execPrice": plain(trade.price),
        "execQty": plain(trade.amount),
        "execValue": plain(trade.cost),
        "tradeScope": "taker" if trade.taker else "maker",
        "feeDetail": [{"feeCoin": trade.fee_currency, "fee": plain(trade.fee)}],
        "createdTime": str(trade.time_ms),
        "updatedTime": str(trade.time_ms),
        "execPnl": "0",
    }


def _authorities(flags: DemoPermissions) -> list[str]:
    """Classic ``authorities`` for the flags, with Bitget's four-letter module codes."""
    codes = ["stor", "coor", "cpor"] if flags.read else []
    codes += ["stow"] if flags.spot_trade else []
    codes += ["coow", "cpow"] if flags.futures_trade else []
    codes += ["wtow"] if flags.internal_transfer else []
    codes += ["wwow"] if flags.withdraw else []
    return codes


def _unified_permissions(flags: DemoPermissions) -> tuple[str, list[str]]:
    """``permType`` and ``permissions`` of a unified account's key for the flags."""
    modules = ["uta_trade"] if flags.spot_trade or flags.futures_trade else []
    modules += ["uta_mgt"] if flags.internal_transfer else []
    modules += ["withdraw"] if flags.withdraw else []
    return ("read-and-write" if modules else "read-only"), modules


class BitgetServer(VenueServer):
    """Bitget spot: public market data and order books, classic v2 and unified v3 account
    endpoints, spot orders (place, look up by ``orderId`` or ``clientOid``, cancel)."""

    venue_id = "bitget"
    key_format = re.compile(r"bg_[0-9a-f]{32}")
    #: A clientOid it has seen is refused (40786 Duplicate clientOid).
    duplicate_client_ids = "refuse"

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, reference_dir: Path | None = None
    ) -> None:
        super().__init__(host=host, port=port, reference_dir=reference_dir)
        self.markets = SPOT_SYMBOLS
        self._markets_by_id = {market.id: market for market in self.markets}
        #: Accounts switched to unified trading mode (classic is Bitget's older default).
        self.unified_accounts: set[str] = set()
        self._demo_keys: set[str] = set()
        self._recorded_usdt = load_recorded_usdt(self.reference_dir)
        for market in self.markets:
            self.set_price(market.symbol, DEMO_PRICES[market.symbol])

    def order_rules(self, symbol: str) -> OrderRules:
        return self._market(_market_id(symbol)).rules()

    # ----- keys and accounts -----------------------------------------------------------------

    def new_key_material(self, with_passphrase: bool) -> DemoKey:
        """Bitget keys always come with the passphrase chosen at creation (8–32 letters/digits)."""
        return DemoKey(
            api_key="bg_" + secrets.token_hex(16),
            secret=secrets.token_hex(32),
            passphrase=random_alnum(16),
        )

    def issue_key(
        self,
        permissions: DemoPermissions | None = None,
        *,
        account: str = "demo",
        with_passphrase: bool = True,
        material: DemoKey | None = None,
        demo: bool = False,
    ) -> DemoKey:
        """As the base, plus ``demo=True`` for a demo-trading key (usable only with PAPTRADING)."""
        if material is not None and not material.passphrase:
            raise ValueError("a Bitget key always has a passphrase")
        key = super().issue_key(
            permissions, account=account, with_passphrase=with_passphrase, material=material
        )
        if demo:
            self._demo_keys.add(key.api_key)
        return key

    def set_unified(self, account: str, unified: bool = True) -> None:
        """Switch an account to unified trading mode (or back to classic)."""
        self.account(account)
        if unified:
            self.unified_accounts.add(account)
        else:
            self.unified_accounts.discard(account)

    # ----- routes ----------------------------------------------------------------------------

    def add_routes(self, router: web.UrlDispatcher) -> None:
        routes: dict[str, Callable[[web.Request], Awaitable[web.Response]]] = {
            "/api/v2/public/time": self.public(self._time),
            "/api/v2/spot/public/coins": self.public(self._coins),
            "/api/v2/spot/public/symbols": self.public(self._symbols),
            "/api/v2/margin/currencies": self.public(self._margin_currencies),
            "/api/v2/spot/market/tickers": self.public(self._tickers),
            "/api/v2/spot/market/orderbook": self.public(self._orderbook),
            "/api/v3/market/orderbook": self.public(self._unified_orderbook),
            "/api/v2/spot/trade/orderInfo": self._classic(self._order_info),
            "/api/v3/trade/order-info": self._unified(self._unified_order_info),
            "/api/v2/spot/account/info": self._classic(self._account_info),
            "/api/v2/spot/account/assets": self._classic(self._assets),
            "/api/v2/spot/trade/unfilled-orders": self._classic(self._unfilled_orders),
            "/api/v2/spot/trade/fills": self._classic(self._fills),
            # ccxt asks this once per client to learn the account mode, unless told (option uta).
            "/api/v3/account/settings": self._unified(self._settings),
            "/api/v3/account/info": self._unified(self._unified_info),
            "/api/v3/account/assets": self._unified(self._unified_assets),
            "/api/v3/trade/unfilled-orders": self._unified(self._unified_unfilled_orders),
            "/api/v3/trade/fills": self._unified(self._unified_fills),
        }
        for path, endpoint in routes.items():
            router.add_get(path, endpoint)
        trading: dict[str, Callable[[web.Request], Awaitable[web.Response]]] = {
            "/api/v2/spot/trade/place-order": self._classic(self._place_order, "spot_trade"),
            "/api/v2/spot/trade/cancel-order": self._classic(self._cancel_endpoint, "spot_trade"),
            "/api/v3/trade/place-order": self._unified(self._unified_place_order, "spot_trade"),
            "/api/v3/trade/cancel-order": self._unified(self._cancel_endpoint, "spot_trade"),
        }
        for path, endpoint in trading.items():
            router.add_post(path, endpoint)

    def _classic(
        self, handler: PrivateHandler, needs: Permission = "read"
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        return self.private(self._in_mode(handler, unified=False), needs)

    def _unified(
        self, handler: PrivateHandler, needs: Permission = "read"
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        return self.private(self._in_mode(handler, unified=True), needs)

    def _in_mode(self, handler: PrivateHandler, *, unified: bool) -> PrivateHandler:
        """Refuse the endpoint for keys of accounts in the other mode, as Bitget does."""

        async def checked(request: web.Request, record: KeyRecord) -> Any:
            if (record.account.name in self.unified_accounts) != unified:
                raise self._wrong_mode(unified)
            return await handler(request, record)

        return checked

    def _wrong_mode(self, endpoint_unified: bool) -> VenueError:
        if endpoint_unified:
            return self.error(
                400,
                CLASSIC_ONLY_CODE,
                "You are in Classic Account mode, and the Unified Account API is not supported "
                "at this time",
            )
        return self.error(
            400,
            UNIFIED_ONLY_CODE,
            "You are in Unified Account mode, and the Classic Account API is not supported "
            "at this time",
        )

    # ----- authentication --------------------------------------------------------------------

    async def authenticate(self, request: web.Request, needs: Permission) -> KeyRecord:
        headers = request.headers
        api_key = headers.get("ACCESS-KEY", "")
        signature = headers.get("ACCESS-SIGN", "")
        timestamp = headers.get("ACCESS-TIMESTAMP", "")
        passphrase = headers.get("ACCESS-PASSPHRASE", "")
        if not api_key:
            raise self.error(400, "40001", "ACCESS_KEY cannot be empty")
        if not signature:
            raise self.error(400, "40003", "Signature cannot be empty")
        if not _TIMESTAMP.fullmatch(timestamp):
            raise self.error(400, "40005", "Invalid ACCESS_TIMESTAMP")
        if abs(self.server_time_ms() - int(timestamp)) > TIMESTAMP_WINDOW_MS:
            raise self.error(400, "40008", "Request timestamp expired")
        if not passphrase:
            raise self.error(400, "40011", "ACCESS_PASSPHRASE cannot be empty")
        if not self.key_format.fullmatch(api_key):
            raise self.error(400, "40006", "Invalid ACCESS_KEY")
        record = self.key_record(api_key)
        if record is None or record.revoked:
            raise self.error(400, "40037", "Apikey does not exist")
        if not hmac.compare_digest(passphrase.encode(), (record.key.passphrase or "").encode()):
            raise self.error(400, "40012", "apikey/password is incorrect")

        raw_path, _, raw_query = request.raw_path.partition("?")
        # Bitget signs the decoded query string (ccxt's rawencode), not the percent-encoded one.
        prehash = timestamp + request.method.upper() + raw_path
        if raw_query:
            prehash += "?" + unquote(raw_query)
        if request.body_exists:
            prehash += await request.text()
        expected = base64.b64encode(
            hmac.new(record.key.secret.encode(), prehash.encode(), hashlib.sha256).digest()
        ).decode()
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise self.error(400, "40009", "sign signature error")

        if record.permissions.ip_restricted and request.remote not in record.trusted_ips:
            raise self.error(400, "40018", "Invalid IP")
        if (headers.get("PAPTRADING") == "1") != (api_key in self._demo_keys):
            raise self.error(400, "40099", "exchange environment is incorrect")
        if not self.authorize(record, request, needs):
            raise self.error(400, "40014", "Incorrect permissions")
        return record

    # ----- envelope and errors ---------------------------------------------------------------

    def error(self, status: int, code: str, msg: str) -> VenueError:
        """Bitget's error envelope: ``code``, ``msg``, ``requestTime`` and a null ``data``."""
        body = {"code": code, "msg": msg, "requestTime": self.server_time_ms(), "data": None}
        return VenueError(status, body)

    def render(self, payload: object) -> web.Response:
        return super().render(
            {
                "code": SUCCESS_CODE,
                "msg": "success",
                "requestTime": self.server_time_ms(),
                "data": payload,
            }
        )

    def fault(self, status: int) -> VenueError:
        if status == 429:
            return self.error(429, "429", "Too Many Requests")
        if status in _GATEWAY_STATUSES:
            # The gateway in front of the API answers these, in HTML, before any JSON is made.
            return VenueError(status, _GATEWAY_PAGE.format(status=_GATEWAY_STATUSES[status]))
        return self.error(status, "40015", "System is abnormal, please try again later")

    def not_found(self, request: web.Request) -> VenueError:
        return self.error(404, "40404", "Request URL NOT FOUND")

    # ----- public endpoints ------------------------------------------------------------------

    async def _time(self, request: web.Request) -> dict[str, str]:
        return {"serverTime": str(self.server_time_ms())}

    def _listed_assets(self) -> list[str]:
        listed = {m.base for m in self.markets} | {m.quote for m in self.markets}
        return sorted(listed)

    async def _coins(self, request: web.Request) -> list[dict[str, Any]]:
        wanted = request.query.get("coin")
        return [self._coin(asset) for asset in self._listed_assets() if wanted in (None, asset)]

    def _coin(self, asset: str) -> dict[str, Any]:
        if asset == "USDT":
            return self._recorded_usdt
        coin_id, chains = COINS[asset]
        return {
            "coinId": coin_id,
            "coin": asset,
            "transfer": "true",
            "chains": [chain.info() for chain in chains],
            "areaCoin": "no",
        }

    async def _symbols(self, request: web.Request) -> list[dict[str, str]]:
        if "symbol" in request.query:
            return [self._market(request.query["symbol"]).info()]
        return [market.info() for market in self.markets]

    async def _margin_currencies(self, request: web.Request) -> list[dict[str, Any]]:
        return [
            {
                **{k: v for k, v in market.info().items() if k in _MARGIN_FIELDS},
                "maxCrossedLeverage": "3",
                "maxIsolatedLeverage": "10",
                "warningRiskRatio": "0.8",
                "liquidationRiskRatio": "1",
                "isBorrowable": True,
                "userMinBorrow": "0.00000001",
                "isIsolatedBaseBorrowable": True,
                "isIsolatedQuoteBorrowable": True,
                "isCrossBorrowable": True,
            }
            for market in self.markets
            if market.borrowable
        ]

    def _market(self, market_id: str) -> SpotSymbol:
        market = self._markets_by_id.get(market_id)
        if market is None:
            raise self.error(400, "40034", f"Parameter {market_id} does not exist")
        return market

    async def _tickers(self, request: web.Request) -> list[dict[str, str]]:
        if "symbol" in request.query:
            markets: tuple[SpotSymbol, ...] = (self._market(request.query["symbol"]),)
        else:
            markets = self.markets
        return [self._ticker(market) for market in markets]

    def _ticker(self, market: SpotSymbol) -> dict[str, str]:
        stats = self.prices[market.symbol]
        ask = stats.last.quantize(market.tick)
        change = (stats.last - stats.open) / stats.open
        return {
            "open": market.price(stats.open),
            "symbol": market.id,
            "high24h": market.price(stats.high),
            "low24h": market.price(stats.low),
            "lastPr": market.price(stats.last),
            "quoteVolume": plain(stats.quote_volume.quantize(Decimal("1e-6"))),
            "baseVolume": market.amount(stats.volume),
            "usdtVolume": plain(stats.quote_volume.quantize(Decimal("1e-8"))),
            "ts": str(self.server_time_ms()),
            "bidPr": market.price(max(ask - market.tick, market.tick)),
            "askPr": market.price(ask),
            "bidSz": market.amount(stats.volume / 20000),
            "askSz": market.amount(stats.volume / 50000),
            "openUtc": market.price(stats.open),
            "changeUtc24h": plain(change.quantize(Decimal("1e-5"))),
            "change24h": plain(change.quantize(Decimal("1e-4"))),
        }

    def _book_depth(self, request: web.Request, depths: tuple[int, int]) -> int:
        default, high = depths
        limit = request.query.get("limit", str(default))
        if not limit.isdigit() or not 1 <= int(limit) <= high:
            raise self._invalid("limit")
        return int(limit)

    async def _orderbook(self, request: web.Request) -> dict[str, Any]:
        """The demo book the engine fills against (``type`` step0: unmerged)."""
        self._require(request, "symbol")
        market = self._market(request.query["symbol"])
        book = self.order_book(market.symbol, self._book_depth(request, CLASSIC_BOOK_DEPTH))
        return {
            "asks": [[market.price(lv.price), plain(lv.amount)] for lv in book.asks],
            "bids": [[market.price(lv.price), plain(lv.amount)] for lv in book.bids],
            "ts": str(self.server_time_ms()),
        }

    async def _unified_orderbook(self, request: web.Request) -> dict[str, Any]:
        self._require(request, "category")
        self._require(request, "symbol")
        if request.query["category"] != "SPOT":
            raise self._invalid("category")
        market = self._market(request.query["symbol"])
        book = self.order_book(market.symbol, self._book_depth(request, UNIFIED_BOOK_DEPTH))
        return {
            "a": [[market.price(lv.price), plain(lv.amount)] for lv in book.asks],
            "b": [[market.price(lv.price), plain(lv.amount)] for lv in book.bids],
            "ts": str(self.server_time_ms()),
        }

    # ----- classic account -------------------------------------------------------------------

    async def _account_info(self, request: web.Request, record: KeyRecord) -> dict[str, Any]:
        return {
            "userId": str(record.account.uid),
            "inviterId": "",
            "ips": self._ips(record),
            "authorities": _authorities(record.permissions),
            "parentId": record.account.uid,
            "traderType": "not_trader",
            "channelCode": "",
            "channel": "",
            "regisTime": str(record.created_ms),
        }

    def _ips(self, record: KeyRecord) -> str:
        return ",".join(sorted(record.trusted_ips)) if record.permissions.ip_restricted else ""

    async def _assets(self, request: web.Request, record: KeyRecord) -> list[dict[str, str]]:
        """``assetType=hold_only`` (the default) lists held coins; ``all`` every listed coin."""
        held = record.account.balances
        coin = request.query.get("coin")
        if coin:
            assets = [coin]
        elif request.query.get("assetType") == "all":
            assets = sorted(set(self._listed_assets()) | set(held))
        else:
            assets = [asset for asset, balance in held.items() if balance.total]
        updated = str(record.account.updated_ms)
        return [
            {
                "coin": asset,
                "available": f"{balance.free:.8f}",
                "limitAvailable": "0",
                "frozen": f"{balance.used:.8f}",
                "locked": "0.00000000",
                "uTime": updated,
            }
            for asset in assets
            for balance in (held.get(asset, Balance(Decimal(0))),)
        ]

    # ----- orders and fills (both account modes) ----------------------------------------------

    def _invalid(self, name: str) -> VenueError:
        return self.error(400, "40017", f"Parameter {name} error")

    def _require(self, request: web.Request, name: str) -> None:
        if not request.query.get(name):
            raise self.error(400, "40019", f"Parameter {name} cannot be empty")

    def _page(
        self, request: web.Request, items: Iterable[ListedT], names: QueryNames
    ) -> list[ListedT]:
        query = names.parse(
            request.query,
            symbol_of=lambda market_id: self._market(market_id).symbol,
            invalid=self._invalid,
        )
        return query.page(items).items

    async def _unfilled_orders(self, request: web.Request, record: KeyRecord) -> list[Any]:
        orders = self._page(request, record.account.open_orders(), CLASSIC_QUERY)
        return [self._order_entry(record, order) for order in orders]

    async def _fills(self, request: web.Request, record: KeyRecord) -> list[Any]:
        """One market's fills (classic accounts must name it)."""
        self._require(request, "symbol")
        fills = self._page(request, record.account.trades, CLASSIC_QUERY)
        return [self._fill_entry(record, trade) for trade in fills]

    async def _unified_unfilled_orders(
        self, request: web.Request, record: KeyRecord
    ) -> dict[str, Any]:
        """Spot orders of a unified account (``category`` SPOT; other categories are empty).
        Bitget's ``cursor`` is the last item's id, even on the last page."""
        self._require(request, "category")
        spot = request.query["category"] == "SPOT"
        orders = self._page(request, record.account.open_orders() if spot else [], UNIFIED_QUERY)
        return {
            "list": [_unified_order_entry(order) for order in orders],
            "cursor": orders[-1].id if orders else "",
        }

    async def _unified_fills(self, request: web.Request, record: KeyRecord) -> dict[str, Any]:
        fills = self._page(request, record.account.trades, UNIFIED_QUERY)
        return {
            "list": [_unified_fill_entry(trade) for trade in fills],
            "cursor": fills[-1].id if fills else "",
        }

    # ----- placing, finding and cancelling orders (both account modes) ------------------------

    async def _body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.text())
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise self.error(400, "40017", "Parameter verification failed")
        return body

    def _order_terms(
        self, body: dict[str, Any], tif_name: str
    ) -> tuple[SpotSymbol, Side, OrderType, TimeInForce, str | None]:
        """Market, side, type, time in force and client id of an order request."""
        market = self._market(str(body.get("symbol", "")))
        side = _SIDES.get(str(body.get("side", "")).lower())
        if side is None:
            raise self._invalid("side")
        kind = _ORDER_TYPES.get(str(body.get("orderType", "")).lower())
        if kind is None:
            raise self._invalid("orderType")
        time_in_force = _TIME_IN_FORCE.get(str(body.get(tif_name) or "gtc").lower())
        if time_in_force is None:
            raise self._invalid(tif_name)
        client_oid = body.get("clientOid") or None
        if client_oid is not None and not _CLIENT_OID.fullmatch(str(client_oid)):
            raise self.error(
                400,
                "40305",
                "Client_oid length is not greater than 50, and cannot be Martian characters",
            )
        return market, side, kind, time_in_force, None if client_oid is None else str(client_oid)

    def _positive(self, body: dict[str, Any], name: str) -> Decimal:
        try:
            value = Decimal(str(body.get(name, "")))
        except ArithmeticError:
            raise self._invalid(name) from None
        if not value.is_finite() or value <= 0:
            raise self._invalid(name)
        return value

    def _rejected(
        self, reason: RejectReason, market: SpotSymbol, amount: Decimal, price: Decimal | None
    ) -> VenueError:
        """Bitget's refusal (ccxt: InsufficientFunds for 43012, InvalidOrder for 40808 and
        45110, ExchangeError for a reused clientOid: 40786 is not in its table)."""

        def scale(name: str, value: Decimal | None, digits: int) -> VenueError:
            return self.error(
                400,
                "40808",
                f"Parameter verification exception {name} checkBDScale error "
                f"value={plain(value or Decimal(0))} checkScale={digits}",
            )

        if reason is RejectReason.AMOUNT_STEP:
            return scale("size", amount, market.quantity_precision)
        if reason is RejectReason.PRICE_TICK:
            return scale("price", price, market.price_precision)
        if reason in (RejectReason.MIN_AMOUNT, RejectReason.MIN_NOTIONAL):
            return self.error(
                400, "45110", f"less than the minimum amount {market.min_trade_usdt} USDT"
            )
        if reason is RejectReason.INSUFFICIENT_FUNDS:
            return self.error(400, "43012", "Insufficient balance")
        if reason is RejectReason.DUPLICATE_CLIENT_ID:
            return self.error(400, "40786", "Duplicate clientOid")
        if reason is RejectReason.UNKNOWN_MARKET:
            return self.error(400, "40034", f"Parameter {market.id} does not exist")
        return self._invalid("size")

    def _place(
        self,
        record: KeyRecord,
        terms: tuple[SpotSymbol, Side, OrderType, TimeInForce, str | None],
        amount: Decimal,
        price: Decimal | None,
    ) -> dict[str, str]:
        market, side, kind, time_in_force, client_oid = terms
        try:
            order = self.place_order(
                record.account.name,
                market.symbol,
                side,
                amount,
                price,
                kind=kind,
                time_in_force=time_in_force,
                client_order_id=client_oid,
            )
        except OrderRejected as rejected:
            raise self._rejected(rejected.reason, market, amount, price) from None
        return {"orderId": order.id, "clientOid": order.client_order_id}

    async def _place_order(self, request: web.Request, record: KeyRecord) -> dict[str, str]:
        """A classic spot order; a market buy's ``size`` is the quote coin to spend."""
        body = await self._body(request)
        terms = self._order_terms(body, "force")
        market, side, kind = terms[:3]
        size = self._positive(body, "size")
        price = self._positive(body, "price") if kind == "limit" else None
        if kind == "market" and side == "buy":
            if size < Decimal(market.min_trade_usdt):
                raise self._rejected(RejectReason.MIN_NOTIONAL, market, size, price)
            size = amount_for_funds(self.order_book(market.symbol), size, market.step)
        return self._place(record, terms, size, price)

    async def _unified_place_order(self, request: web.Request, record: KeyRecord) -> dict[str, str]:
        """A unified account's order; spot only here, ``qty`` in the base coin."""
        body = await self._body(request)
        if body.get("category") != "SPOT":
            raise self._invalid("category")
        terms = self._order_terms(body, "timeInForce")
        price = self._positive(body, "price") if terms[2] == "limit" else None
        return self._place(record, terms, self._positive(body, "qty"), price)

    def _named(self, params: Mapping[str, Any], record: KeyRecord) -> DemoOrder | None:
        """The order ``orderId`` or ``clientOid`` names (orderId wins if both are sent)."""
        order_id, client_oid = params.get("orderId") or None, params.get("clientOid") or None
        if order_id is None and client_oid is None:
            raise self.error(400, "40019", "Parameter orderId cannot be empty")
        return self.find_order(
            record.account.name,
            order_id=None if order_id is None else str(order_id),
            client_order_id=None if order_id is not None else str(client_oid),
        )

    async def _order_info(self, request: web.Request, record: KeyRecord) -> list[Any]:
        """A list of the one order named, open or done; empty if there is none."""
        order = self._named(request.query, record)
        return [] if order is None else [self._order_info_entry(record, order)]

    async def _unified_order_info(self, request: web.Request, record: KeyRecord) -> Any:
        order = self._named(request.query, record)
        if order is None:
            raise self.error(
                400,
                "40109",
                "The data of the order cannot be found, please confirm the order number",
            )
        return _unified_order_entry(order)

    async def _cancel_endpoint(self, request: web.Request, record: KeyRecord) -> dict[str, str]:
        """Cancel an open order, in either mode (the classic one names its market)."""
        body = await self._body(request)
        order = self._named(body, record)
        market_id = body.get("symbol")
        if (
            order is None
            or order.status != "open"
            or (market_id is not None and _market_id(order.symbol) != market_id)
        ):
            raise self.error(400, "43001", "The order does not exist")
        self.cancel_order(record.account.name, order.id)
        return {"orderId": order.id, "clientOid": order.client_order_id}

    def _order_info_entry(self, record: KeyRecord, order: DemoOrder) -> dict[str, Any]:
        """A classic order as ``orderInfo`` shows it: ``price`` the limit (0 for a market
        order), ``priceAvg`` the average fill, fees in a JSON text."""
        return {
            "userId": str(record.account.uid),
            "symbol": _market_id(order.symbol),
            "orderId": order.id,
            "clientOid": order.client_order_id,
            "price": plain(order.price) if order.type == "limit" else "0",
            "size": plain(order.amount),
            "orderType": order.type,
            "side": order.side,
            "status": _status(order),
            "priceAvg": plain(order.average),
            "baseVolume": plain(order.filled),
            "quoteVolume": plain(order.cost),
            "enterPointSource": "API",
            "feeDetail": _fee_detail(order),
            "orderSource": "market" if order.type == "market" else "normal",
            "cancelReason": "",
            "cTime": str(order.created_ms),
            "uTime": str(order.updated_ms),
        }

    def _order_entry(self, record: KeyRecord, order: DemoOrder) -> dict[str, Any]:
        """A classic spot order: ``priceAvg`` is the limit price, ``basePrice`` the average fill."""
        return {
            "userId": str(record.account.uid),
            "symbol": _market_id(order.symbol),
            "orderId": order.id,
            "clientOid": order.client_order_id,
            "priceAvg": plain(order.price),
            "size": plain(order.amount),
            "orderType": order.type,
            "side": order.side,
            "status": _status(order),
            "basePrice": plain(order.average),
            "baseVolume": plain(order.filled),
            "quoteVolume": plain(order.cost),
            "enterPointSource": "API",
            "orderSource": "normal",
            "tpslType": "normal",
            "cTime": str(order.created_ms),
            "uTime": str(order.updated_ms),
        }

    def _fill_entry(self, record: KeyRecord, trade: DemoTrade) -> dict[str, Any]:
        """A classic spot fill; Bitget writes the fee as a negative ``totalFee``."""
        return {
            "userId": str(record.account.uid),
            "symbol": _market_id(trade.symbol),
            "orderId": trade.order_id,
            "tradeId": trade.id,
            "orderType": trade.order_type,
            "side": trade.side,
            "priceAvg": plain(trade.price),
            "size": plain(trade.amount),
            "amount": plain(trade.cost),
            "feeDetail": {
                "deduction": "no",
                "feeCoin": trade.fee_currency,
                "totalDeductionFee": "",
                "totalFee": plain(-trade.fee),
            },
            "tradeScope": "taker" if trade.taker else "maker",
            "cTime": str(trade.time_ms),
            "uTime": str(trade.time_ms),
        }

    # ----- unified account -------------------------------------------------------------------

    async def _settings(self, request: web.Request, record: KeyRecord) -> dict[str, Any]:
        return {
            "assetMode": "union",
            "holdMode": "one_way_mode",
            "symbolConfigList": [],
            "coinConfigList": [],
        }

    async def _unified_info(self, request: web.Request, record: KeyRecord) -> dict[str, Any]:
        perm_type, permissions = _unified_permissions(record.permissions)
        return {
            "uid": str(record.account.uid),
            "inviterId": "",
            "parentId": "",
            "channelCode": "",
            "channel": "",
            "ips": self._ips(record),
            "permType": perm_type,
            "permissions": permissions,
            "regisTime": str(record.created_ms),
        }

    def _usd_value(self, asset: str, amount: Decimal) -> Decimal:
        if asset in {"USDT", "USDC"}:
            return amount
        stats = self.prices.get(f"{asset}/USDT")
        return amount * stats.last if stats else Decimal(0)

    async def _unified_assets(self, request: web.Request, record: KeyRecord) -> dict[str, Any]:
        """Only coins with a balance, as Bitget lists them; equities in USD and BTC."""
        held = {a: b for a, b in record.account.balances.items() if b.total}
        values = {asset: self._usd_value(asset, b.total) for asset, b in held.items()}
        equity = sum(values.values(), Decimal(0))
        btc = self.prices["BTC/USDT"].last
        return {
            "accountEquity": plain(equity.quantize(Decimal("1e-8"))),
            "usdtEquity": plain(equity.quantize(Decimal("1e-8"))),
            "btcEquity": plain((equity / btc).quantize(Decimal("1e-8"))),
            "unrealisedPnl": "0",
            "usdtUnrealisedPnl": "0",
            "btcUnrealizedPnl": "0",
            "effEquity": plain(equity.quantize(Decimal("1e-8"))),
            "mmr": "0",
            "imr": "0",
            "mgnRatio": "0",
            "positionMgnRatio": "0",
            "assets": [
                {
                    "coin": asset,
                    "equity": plain(balance.total),
                    "usdValue": plain(values[asset].quantize(Decimal("1e-8"))),
                    "balance": plain(balance.total),
                    "available": plain(balance.free),
                    "debt": "0",
                    "locked": plain(balance.used),
                }
                for asset, balance in held.items()
            ],
        }
