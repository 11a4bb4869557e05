"""A local OKX v5 API that checks requests the way OKX does.

Private endpoints need ``OK-ACCESS-KEY``, ``OK-ACCESS-PASSPHRASE``, an ``OK-ACCESS-TIMESTAMP`` in
ISO 8601 with milliseconds within 30 s of the server clock, and ``OK-ACCESS-SIGN``: base64 of
HMAC-SHA256(secret, timestamp + method + request path with its query + body). Keys belong to live
or demo trading: a request's ``x-simulated-trading: 1`` header must match the key's environment.
Every refusal uses OKX's own code, message and HTTP status, so ccxt raises the exception class it
raises against OKX. Success answers carry OKX's envelope ``{"code": "0", "data": [...]}``.
Instruments are the recorded ones from ccxt's static test data.

Orders run on the shared engine with each instrument's ``lotSz``, ``tickSz`` and ``minSz``. ccxt
places them through ``trade/batch-orders`` (a list of one); a refused order is HTTP 200 with
``"code": "1"`` and the reason in the entry's ``sCode``, which ccxt maps. A ``clOrdId`` OKX has
seen is refused for good (51016).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import re
import secrets
import string
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

from aiohttp import web

from bot.exchanges.book import BookLevel
from bot.sandbox.exchanges.activity import (
    DemoOrder,
    DemoTrade,
    ListedT,
    Pair,
    Query,
    QueryNames,
    TimeInForce,
)
from bot.sandbox.exchanges.base import (
    DEMO_PRICES,
    Balance,
    DemoAccount,
    DemoKey,
    DemoPermissions,
    FeeRates,
    KeyRecord,
    Permission,
    PriceStats,
    VenueError,
    VenueServer,
    json_response,
    random_alnum,
)
from bot.sandbox.exchanges.matching import OrderRejected, OrderRules, RejectReason, amount_for_funds

#: OKX refuses a request whose timestamp is further than this from its clock, either way.
TIMESTAMP_TOLERANCE_MS = 30_000
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
_INST_TYPES = frozenset({"SPOT", "MARGIN", "SWAP", "FUTURES", "OPTION"})
_PASSPHRASE_SPECIALS = "!@#$%^&*()-_+="
#: What ``orders-pending`` and ``fills-history`` call their filters (``after``: an id).
QUERY = QueryNames(symbol="instId", since="begin", until="end", cursor="after")
#: Orders one ``trade/batch-orders`` call may carry.
BATCH_MAX = 20
#: Book levels a side in a ``market/books`` answer: by default, and at most.
BOOK_DEPTHS = (1, 400)
#: A ``clOrdId``: up to 32 letters and digits, case-sensitive.
_CL_ORD_ID = re.compile(r"[A-Za-z0-9]{1,32}")
#: ``ordType`` values of plain orders the engine serves (no post-only, no optimal_limit_ioc).
_ORD_TYPES: Mapping[str, TimeInForce] = {
    "limit": "GTC",
    "ioc": "IOC",
    "fok": "FOK",
    "market": "IOC",
}

#: Withdrawal networks of the recorded spot markets' assets: (chain, fee, minimum withdrawal).
CHAINS: Mapping[str, tuple[str, tuple[tuple[str, str, str], ...]]] = {
    "BTC": ("Bitcoin", (("BTC-Bitcoin", "0.0001", "0.0005"),)),
    "ETH": (
        "Ethereum",
        (("ETH-ERC20", "0.00035", "0.001"), ("ETH-Arbitrum One", "0.0001", "0.0001")),
    ),
    "USDT": ("Tether", (("USDT-TRC20", "1.5", "0.1"), ("USDT-ERC20", "1.7", "2"))),
    "ADA": ("Cardano", (("ADA-Cardano", "0.8", "2"),)),
    "LTC": ("Litecoin", (("LTC-Litecoin", "0.001", "0.001"),)),
    "XRP": ("Ripple", (("XRP-Ripple", "0.2", "1"),)),
    "DOGE": ("Dogecoin", (("DOGE-Dogecoin", "4", "5"),)),
    "TRX": ("TRON", (("TRX-TRC20", "1", "10"),)),
}


@dataclass(frozen=True)
class Instrument:
    """One instrument: ``info`` is the raw ``public/instruments`` entry as OKX sends it."""

    symbol: str
    info: Mapping[str, Any]

    @property
    def inst_id(self) -> str:
        return str(self.info["instId"])

    @property
    def tick(self) -> Decimal:
        return Decimal(self.info["tickSz"])

    @property
    def lot(self) -> Decimal:
        return Decimal(self.info["lotSz"])

    def price(self, value: Decimal) -> Decimal:
        """``value`` rounded down to the tick size."""
        return (value // self.tick) * self.tick

    def rules(self) -> OrderRules:
        """``lotSz``, ``tickSz`` and ``minSz``: ccxt's amount and price precision and minimum
        amount. OKX spot has no minimum order value."""
        return OrderRules(
            amount_step=self.lot, price_tick=self.tick, min_amount=Decimal(self.info["minSz"])
        )

    def size(self, value: Decimal) -> Decimal:
        """``value`` rounded down to the lot size, never below one lot."""
        return max(self.lot, (value // self.lot) * self.lot)


@functools.cache
def load_instruments(reference_dir: Path) -> tuple[Instrument, ...]:
    """Every instrument of ``markets/okx.json`` (spot, swap, option), read once per process."""
    recorded = json.loads((reference_dir / "markets" / "okx.json").read_text())
    return tuple(Instrument(symbol, market["info"]) for symbol, market in recorded.items())


def okx_error(status: int, code: str, msg: str, *, with_data: bool = True) -> VenueError:
    """OKX's error shape. Its API gateway (authentication, rate limits) answers without ``data``:
    ``{"msg": "Invalid Sign", "code": "50113"}``; the services behind it add ``"data": []``.
    """
    body = {"code": code, "data": [], "msg": msg} if with_data else {"msg": msg, "code": code}
    return VenueError(status, body)


def _gateway(code: str, msg: str, status: int = 401) -> VenueError:
    return okx_error(status, code, msg, with_data=False)


def _header_missing(code: str, name: str) -> VenueError:
    return _gateway(code, f"Request header “{name}“ can't be empty.")


def _param_missing(name: str) -> VenueError:
    return okx_error(400, "50014", f"Parameter {name} can't be empty.")


def _param_error(name: str) -> VenueError:
    return okx_error(400, "51000", f"Parameter {name} error")


def _num(value: Decimal) -> str:
    """Decimals the way OKX prints them: no exponent, no trailing zeros."""
    return format(value.normalize(), "f")


def _sign(secret: str, prehash: str) -> str:
    digest = hmac.new(secret.encode(), prehash.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _parse_timestamp(value: str) -> int | None:
    """Milliseconds since the epoch of ``2024-04-04T17:05:48.676Z``; None if malformed."""
    if not _TIMESTAMP.fullmatch(value):
        return None
    try:
        moment = datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return None
    return int(moment.timestamp() * 1000)


def new_passphrase() -> str:
    """A passphrase OKX's key form accepts: 8–32 characters mixing cases, digits and a symbol."""
    rng = secrets.SystemRandom()
    chars = [
        rng.choice(string.ascii_uppercase),
        rng.choice(string.ascii_lowercase),
        rng.choice(string.digits),
        rng.choice(_PASSPHRASE_SPECIALS),
        *random_alnum(10),
    ]
    rng.shuffle(chars)
    return "".join(chars)


class OkxServer(VenueServer):
    """OKX's public market data and the account/asset endpoints ccxt needs for a key check."""

    venue_id = "okx"
    key_format: ClassVar[re.Pattern[str]] = re.compile(
        r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    )
    fee_rates = FeeRates(maker=Decimal("0.0008"), taker=Decimal("0.001"))
    duplicate_client_ids = "refuse"

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, reference_dir: Path | None = None
    ) -> None:
        super().__init__(host=host, port=port, reference_dir=reference_dir)
        self.instruments = load_instruments(self.reference_dir)
        self._by_id = {instrument.inst_id: instrument for instrument in self.instruments}
        self._by_symbol = {instrument.symbol: instrument for instrument in self.instruments}
        self._demo_trading_keys: set[str] = set()
        for instrument in self.instruments:
            if instrument.symbol in DEMO_PRICES:
                self.set_price(instrument.symbol, DEMO_PRICES[instrument.symbol])

    def add_routes(self, router: web.UrlDispatcher) -> None:
        routes: dict[str, Callable[[web.Request], Awaitable[web.Response]]] = {
            "/api/v5/public/time": self.public(self._time),
            "/api/v5/public/instruments": self.public(self._instruments),
            "/api/v5/market/tickers": self.public(self._tickers),
            "/api/v5/market/ticker": self.public(self._ticker),
            "/api/v5/account/config": self.private(self._config),
            "/api/v5/account/balance": self.private(self._balance),
            "/api/v5/asset/currencies": self.private(self._currencies),
            "/api/v5/trade/orders-pending": self.private(self._orders_pending),
            "/api/v5/trade/fills-history": self.private(self._fills_history),
            "/api/v5/trade/order": self.private(self._order),
            "/api/v5/market/books": self.public(self._books),
        }
        for path, endpoint in routes.items():
            router.add_get(path, endpoint)
        posts = {
            "/api/v5/trade/order": self._place_one,
            "/api/v5/trade/batch-orders": self._place_batch,
            "/api/v5/trade/cancel-order": self._cancel_order,
        }
        for path, handler in posts.items():
            router.add_post(path, self.private(handler, "spot_trade"))

    def order_rules(self, symbol: str) -> OrderRules:
        return self._by_symbol[symbol].rules()

    # ----- keys ------------------------------------------------------------------------------

    def new_key_material(self, with_passphrase: bool) -> DemoKey:
        """A UUID key, a 32-hex-digit uppercase secret and a passphrase: every OKX key has one."""
        return DemoKey(
            api_key=str(uuid.uuid4()),
            secret=secrets.token_hex(16).upper(),
            passphrase=new_passphrase(),
        )

    def issue_key(
        self,
        permissions: DemoPermissions | None = None,
        *,
        account: str = "demo",
        with_passphrase: bool = True,
        material: DemoKey | None = None,
        demo_trading: bool = False,
    ) -> DemoKey:
        """As the base, plus ``demo_trading``: a key made under Demo Trading, usable only with
        ``x-simulated-trading: 1`` (ccxt's sandbox mode), as live keys are only without it.
        """
        if material is not None and not material.passphrase:
            raise ValueError("okx keys always have a passphrase")
        key = super().issue_key(
            permissions, account=account, with_passphrase=with_passphrase, material=material
        )
        if demo_trading:
            self._demo_trading_keys.add(key.api_key)
        return key

    # ----- authentication --------------------------------------------------------------------

    async def authenticate(self, request: web.Request, needs: Permission) -> KeyRecord:
        headers = request.headers
        api_key = headers.get("OK-ACCESS-KEY", "")
        if not api_key:
            raise _header_missing("50103", "OK_ACCESS_KEY")
        signature = headers.get("OK-ACCESS-SIGN", "")
        if not signature:
            raise _header_missing("50106", "OK_ACCESS_SIGN")
        timestamp = headers.get("OK-ACCESS-TIMESTAMP", "")
        if not timestamp:
            raise _header_missing("50107", "OK_ACCESS_TIMESTAMP")
        passphrase = headers.get("OK-ACCESS-PASSPHRASE", "")
        if not passphrase:
            raise _header_missing("50104", "OK_ACCESS_PASSPHRASE")

        sent_ms = _parse_timestamp(timestamp)
        if sent_ms is None:
            raise _gateway("50112", "Invalid OK-ACCESS-TIMESTAMP")
        if abs(self.server_time_ms() - sent_ms) > TIMESTAMP_TOLERANCE_MS:
            raise _gateway("50102", "Timestamp request expired")

        record = self.key_record(api_key)
        if record is None or record.revoked:
            raise _gateway("50111", "Invalid OK-ACCESS-KEY")
        simulated = headers.get("x-simulated-trading") == "1"
        if simulated is not (api_key in self._demo_trading_keys):
            raise _gateway("50101", "APIKey does not match current environment.")
        expected = record.key.passphrase or ""  # issue_key refuses keys without one
        if not hmac.compare_digest(passphrase.encode(), expected.encode()):
            raise _gateway("50105", "Request header “OK_ACCESS_PASSPHRASE“ incorrect.")

        body = await request.text() if request.body_exists else ""
        prehash = timestamp + request.method + request.raw_path + body
        if not hmac.compare_digest(_sign(record.key.secret, prehash), signature):
            raise _gateway("50113", "Invalid Sign")

        if record.permissions.ip_restricted and request.remote not in record.trusted_ips:
            raise _gateway(
                "50110",
                f"Your IP {request.remote} is not included in your API key's IP whitelist.",
            )
        if not self.authorize(record, request, needs):
            raise _gateway("50120", "API key doesn't have permission.")
        return record

    # ----- envelope and errors ---------------------------------------------------------------

    def render(self, payload: object) -> web.Response:
        return json_response({"code": "0", "data": payload, "msg": ""})

    def fault(self, status: int) -> VenueError:
        if status == 429:
            return _gateway("50011", "Too Many Requests", 429)
        if status == 503:
            return okx_error(
                503, "50001", "Service temporarily unavailable. Please try again later."
            )
        return okx_error(status, "50026", "System error. Try again later.")

    # ----- public endpoints ------------------------------------------------------------------

    async def _time(self, request: web.Request) -> list[dict[str, Any]]:
        return [{"ts": str(self.server_time_ms())}]

    def _inst_type(self, request: web.Request) -> str:
        inst_type = request.query.get("instType", "")
        if not inst_type:
            raise _param_missing("instType")
        if inst_type not in _INST_TYPES:
            raise okx_error(400, "51000", "Parameter instType error")
        return inst_type

    async def _instruments(self, request: web.Request) -> list[Mapping[str, Any]]:
        """By ``instType`` (required), narrowed by ``uly``, ``instFamily``, ``instId`` if sent."""
        wanted = {"instType": self._inst_type(request)}
        wanted.update(
            (name, request.query[name])
            for name in ("uly", "instFamily", "instId")
            if request.query.get(name)
        )
        return [
            instrument.info
            for instrument in self.instruments
            if all(instrument.info.get(name) == value for name, value in wanted.items())
        ]

    async def _tickers(self, request: web.Request) -> list[dict[str, Any]]:
        inst_type = self._inst_type(request)
        return [
            self._ticker_entry(instrument, self.prices[instrument.symbol])
            for instrument in self.instruments
            if instrument.info["instType"] == inst_type and instrument.symbol in self.prices
        ]

    async def _ticker(self, request: web.Request) -> list[dict[str, Any]]:
        inst_id = request.query.get("instId", "")
        if not inst_id:
            raise _param_missing("instId")
        instrument = self._instrument(inst_id)
        return [self._ticker_entry(instrument, self.prices[instrument.symbol])]

    def _instrument(self, inst_id: str) -> Instrument:
        instrument = self._by_id.get(inst_id)
        if instrument is None or instrument.symbol not in self.prices:
            raise okx_error(200, "51001", "Instrument ID doesn't exist.")
        return instrument

    def _ticker_entry(self, instrument: Instrument, stats: PriceStats) -> dict[str, Any]:
        ask = instrument.price(stats.last)
        return {
            "instType": instrument.info["instType"],
            "instId": instrument.inst_id,
            "last": _num(ask),
            "lastSz": _num(instrument.size(stats.volume / 300000)),
            "askPx": _num(ask),
            "askSz": _num(instrument.size(stats.volume / 50000)),
            "bidPx": _num(max(ask - instrument.tick, instrument.tick)),
            "bidSz": _num(instrument.size(stats.volume / 20000)),
            "open24h": _num(instrument.price(stats.open)),
            "high24h": _num(instrument.price(stats.high)),
            "low24h": _num(instrument.price(stats.low)),
            "volCcy24h": _num(stats.quote_volume.quantize(Decimal("1e-8"))),
            "vol24h": _num(stats.volume),
            "ts": str(self.server_time_ms()),
            "sodUtc0": _num(instrument.price(stats.open)),
            "sodUtc8": _num(instrument.price(stats.open)),
        }

    # ----- private endpoints -----------------------------------------------------------------

    async def _config(self, request: web.Request, record: KeyRecord) -> list[dict[str, Any]]:
        """``perm`` and ``ip`` describe the calling key; the rest is a spot-mode account."""
        flags = record.permissions
        perm = [
            name
            for name, granted in (
                ("read_only", flags.read),
                ("withdraw", flags.withdraw),
                ("trade", flags.spot_trade or flags.futures_trade),
            )
            if granted
        ]
        uid = str(record.account.uid)
        return [
            {
                "acctLv": "1",
                "acctStpMode": "cancel_maker",
                "autoLoan": False,
                "ctIsoMode": "automatic",
                "enableSpotBorrow": False,
                "greeksType": "PA",
                "ip": ",".join(sorted(record.trusted_ips)) if flags.ip_restricted else "",
                "kycLv": "2",
                "label": f"{record.account.name}-api",
                "level": "Lv1",
                "levelTmp": "",
                "liquidationGear": "-1",
                "mainUid": uid,
                "mgnIsoMode": "automatic",
                "opAuth": "0",
                "perm": ",".join(perm),
                "posMode": "net_mode",
                "roleType": "0",
                "spotBorrowAutoRepay": False,
                "spotOffsetType": "",
                "spotRoleType": "0",
                "spotTraderInsts": [],
                "traderInsts": [],
                "type": "0",
                "uid": uid,
            }
        ]

    async def _balance(self, request: web.Request, record: KeyRecord) -> list[dict[str, Any]]:
        """The trading account: non-zero assets only, ``ccy`` (comma list) narrows it."""
        account = record.account
        wanted = {ccy for ccy in request.query.get("ccy", "").split(",") if ccy}
        held = {
            ccy: balance
            for ccy, balance in account.balances.items()
            if balance.total and (not wanted or ccy in wanted)
        }
        details = [self._balance_detail(account, ccy, balance) for ccy, balance in held.items()]
        total_usd = sum(
            (self._usd(ccy, balance.total) for ccy, balance in held.items()), Decimal(0)
        )
        return [
            {
                "adjEq": "",
                "availEq": "",
                "borrowFroz": "",
                "details": details,
                "imr": "",
                "isoEq": "0",
                "mgnRatio": "",
                "mmr": "",
                "notionalUsd": "",
                "notionalUsdForBorrow": "",
                "notionalUsdForFutures": "",
                "notionalUsdForOption": "",
                "notionalUsdForSwap": "",
                "ordFroz": "",
                "totalEq": _num(total_usd),
                "uTime": str(account.updated_ms),
                "upl": "0",
            }
        ]

    def _usd(self, ccy: str, amount: Decimal) -> Decimal:
        """Dollar value at the demo USDT price (USDT at par, unpriced assets at zero)."""
        if ccy == "USDT":
            return amount
        stats = self.prices.get(f"{ccy}/USDT")
        return (amount * stats.last).quantize(Decimal("1e-8")) if stats else Decimal(0)

    def _balance_detail(self, account: DemoAccount, ccy: str, balance: Balance) -> dict[str, Any]:
        usd = _num(self._usd(ccy, balance.total))
        return {
            "accAvgPx": "",
            "availBal": _num(balance.free),
            "availEq": _num(balance.free),
            "borrowFroz": "",
            "cashBal": _num(balance.total),
            "ccy": ccy,
            "clSpotInUseAmt": "",
            "crossLiab": "",
            "disEq": usd,
            "eq": _num(balance.total),
            "eqUsd": usd,
            "fixedBal": "0",
            "frozenBal": _num(balance.used),
            "imr": "",
            "interest": "",
            "isoEq": "",
            "isoLiab": "",
            "isoUpl": "",
            "liab": "",
            "maxLoan": "",
            "maxSpotInUse": "",
            "mgnRatio": "",
            "mmr": "",
            "notionalLever": "",
            "openAvgPx": "",
            "ordFrozen": _num(balance.used),
            "rewardBal": "0",
            "smtSyncEq": "0",
            "spotBal": _num(balance.total),
            "spotCopyTradingEq": "0",
            "spotInUseAmt": "",
            "spotIsoBal": "0",
            "spotUpl": "",
            "spotUplRatio": "",
            "stgyEq": "0",
            "totalPnl": "",
            "totalPnlRatio": "",
            "twap": "0",
            "uTime": str(account.updated_ms),
            "upl": "",
            "uplLiab": "",
        }

    def _query(self, request: web.Request) -> Query:
        return QUERY.parse(
            request.query,
            symbol_of=lambda inst_id: self._instrument(inst_id).symbol,
            invalid=_param_error,
        )

    def _of_type(self, request: web.Request, items: list[ListedT]) -> list[ListedT]:
        """The items of the ``instType`` sent (all without one)."""
        inst_type = self._inst_type(request) if "instType" in request.query else None
        return [
            item
            for item in items
            if inst_type in (None, self._by_symbol[item.symbol].info["instType"])
        ]

    async def _orders_pending(self, request: web.Request, record: KeyRecord) -> list[Any]:
        page = self._query(request).page(self._of_type(request, record.account.open_orders()))
        return [self._order_entry(record.account, order) for order in page.items]

    def _order_entry(self, account: DemoAccount, order: DemoOrder) -> dict[str, Any]:
        fills = [trade for trade in account.trades if trade.order_id == order.id]
        return _order_entry(order, self._by_symbol[order.symbol], fills[-1] if fills else None)

    # ----- orders ----------------------------------------------------------------------------

    async def _place_one(self, request: web.Request, record: KeyRecord) -> list[Any]:
        """``trade/order``: one order, answered as a list of one entry."""
        spec = await _json_body(request)
        if not isinstance(spec, dict):
            raise okx_error(400, "50002", "Json data format error")
        return _outcome([self._placed(record, spec)])

    async def _place_batch(self, request: web.Request, record: KeyRecord) -> list[Any]:
        """``trade/batch-orders``: up to 20 orders, each answered in its own entry."""
        specs = await _json_body(request)
        if not isinstance(specs, list) or not all(isinstance(spec, dict) for spec in specs):
            raise okx_error(400, "50002", "Json data format error")
        if not 0 < len(specs) <= BATCH_MAX:
            raise okx_error(400, "51000", "Parameter batch orders error")
        return _outcome([self._placed(record, spec) for spec in specs])

    def _placed(self, record: KeyRecord, spec: Mapping[str, Any]) -> dict[str, Any]:
        """The entry for one order: its ids and sCode 0, or the code and message it was
        refused with."""
        client_id, tag = str(spec.get("clOrdId") or ""), str(spec.get("tag") or "")
        try:
            order = self._place(record, spec, client_id)
        except _Refused as refused:
            return _entry(client_id, "", refused.code, refused.msg, tag, self.server_time_ms())
        return _entry(client_id, order.id, "0", "Order placed", tag, self.server_time_ms())

    def _place(self, record: KeyRecord, spec: Mapping[str, Any], client_id: str) -> DemoOrder:
        """Check one order's parameters as OKX does, then let the engine take it."""
        instrument = self._instrument(_text(spec, "instId"))
        td_mode, side, ord_type = (_text(spec, name) for name in ("tdMode", "side", "ordType"))
        if side not in ("buy", "sell"):
            raise _param_error("side")
        time_in_force = _ORD_TYPES.get(ord_type)
        if time_in_force is None:
            raise _Refused("51000", "Parameter ordType error")
        if td_mode != "cash" or instrument.info["instType"] != "SPOT":
            raise _Refused("51000", "Parameter tdMode error")
        if client_id and not _CL_ORD_ID.fullmatch(client_id):
            raise _Refused("51000", "Parameter clOrdId error")
        market, size = ord_type == "market", _amount(spec, "sz")
        if market and side == "buy" and spec.get("tgtCcy") == "quote_ccy":
            # A spot market buy may give sz as the quote to spend (ccxt sends base_ccy).
            book, step = self.order_book(instrument.symbol), instrument.rules().amount_step
            size = amount_for_funds(book, size, step)
        try:
            return self.place_order(
                record.account.name,
                instrument.symbol,
                "buy" if side == "buy" else "sell",
                size,
                None if market else _amount(spec, "px"),
                kind="market" if market else "limit",
                time_in_force=time_in_force,
                client_order_id=client_id or None,
            )
        except OrderRejected as rejected:
            quote, base = Pair.of(instrument.symbol).quote, Pair.of(instrument.symbol).base
            raise _order_error(rejected.reason, quote if side == "buy" else base) from None

    async def _order(self, request: web.Request, record: KeyRecord) -> list[Any]:
        """``trade/order``: one order of ``instId`` by ``ordId`` or ``clOrdId``, open or done."""
        instrument = self._instrument(_text(request.query, "instId"))
        order = self._order_named(record, instrument, request.query)
        if order is None:
            raise okx_error(200, "51603", "Order does not exist")
        return [self._order_entry(record.account, order)]

    def _order_named(
        self, record: KeyRecord, instrument: Instrument, params: Mapping[str, Any]
    ) -> DemoOrder | None:
        """The order ``ordId`` (or, without one, ``clOrdId``) names on ``instrument``."""
        order_id, client_id = str(params.get("ordId") or ""), str(params.get("clOrdId") or "")
        if not order_id and not client_id:
            raise _param_missing("ordId")
        order = self.find_order(
            record.account.name,
            order_id=order_id or None,
            client_order_id=None if order_id else client_id,
        )
        return order if order is not None and order.symbol == instrument.symbol else None

    async def _cancel_order(self, request: web.Request, record: KeyRecord) -> list[Any]:
        """``trade/cancel-order``: 51400 if there is no such order, 51401 if it is canceled
        already, 51402 if it is filled."""
        spec = await _json_body(request)
        if not isinstance(spec, dict):
            raise okx_error(400, "50002", "Json data format error")
        instrument = self._instrument(_text(spec, "instId"))
        order = self._order_named(record, instrument, spec)
        client_id, now = str(spec.get("clOrdId") or ""), self.server_time_ms()
        if order is None:
            code, msg = "51400", "Order cancellation failed as the order does not exist."
        elif order.status == "canceled":
            code, msg = "51401", "Order has been canceled."
        elif order.status == "closed":
            code, msg = "51402", "Order has been completed."
        else:
            self.cancel_order(record.account.name, order.id)
            code, msg = "0", ""
        order_id = order.id if order is not None else str(spec.get("ordId") or "")
        return _outcome([_entry(client_id, order_id, code, msg, "", now)])

    async def _books(self, request: web.Request) -> list[dict[str, Any]]:
        """``market/books``: the book orders fill against, ``sz`` levels a side (1 by default,
        400 at most); rows are price, size, "0" (deprecated) and the number of orders."""
        instrument = self._instrument(_text(request.query, "instId"))
        sz = request.query.get("sz", "")
        default, high = BOOK_DEPTHS
        if sz and (not sz.isdigit() or not 0 < int(sz) <= high):
            raise _param_error("sz")
        book = self.order_book(instrument.symbol, int(sz) if sz else default)

        def rows(levels: tuple[BookLevel, ...]) -> list[list[str]]:
            return [[_num(level.price), _num(level.amount), "0", "1"] for level in levels]

        return [
            {"asks": rows(book.asks), "bids": rows(book.bids), "ts": str(self.server_time_ms())}
        ]

    async def _fills_history(self, request: web.Request, record: KeyRecord) -> list[Any]:
        """The last three months' fills; OKX requires ``instType`` here."""
        self._inst_type(request)
        page = self._query(request).page(self._of_type(request, record.account.trades))
        return [
            _fill_entry(
                trade, self._by_symbol[trade.symbol], self.fee_rates.rate(taker=trade.taker)
            )
            for trade in page.items
        ]

    async def _currencies(self, request: web.Request, record: KeyRecord) -> list[dict[str, Any]]:
        """One entry per (currency, chain); ``ccy`` (comma list) narrows it."""
        wanted = {ccy for ccy in request.query.get("ccy", "").split(",") if ccy}
        return [
            _chain_entry(ccy, name, chain, fee, min_wd, main=index == 0)
            for ccy, (name, chains) in CHAINS.items()
            if not wanted or ccy in wanted
            for index, (chain, fee, min_wd) in enumerate(chains)
        ]


class _Refused(Exception):
    """One order refused: the ``sCode`` and ``sMsg`` its entry carries."""

    def __init__(self, code: str, msg: str) -> None:
        super().__init__(code, msg)
        self.code = code
        self.msg = msg


def _order_error(reason: RejectReason, held: str) -> _Refused:
    """OKX's code for each way the engine refuses an order; ``held`` is what the order would
    spend. ccxt maps 51008 to InsufficientFunds, 51020, 51121 and 51016 to InvalidOrder, 51000
    to BadRequest and 51001 to BadSymbol."""
    code, msg = {
        RejectReason.UNKNOWN_MARKET: ("51001", "Instrument ID doesn't exist."),
        RejectReason.BAD_ORDER: ("51000", "Parameter sz error"),
        RejectReason.AMOUNT_STEP: ("51121", "Order quantity must be a multiple of the lot size."),
        RejectReason.PRICE_TICK: ("51000", "Parameter px error"),
        RejectReason.MIN_AMOUNT: (
            "51020",
            "Your order should meet or exceed the minimum order amount.",
        ),
        RejectReason.MIN_NOTIONAL: (
            "51020",
            "Your order should meet or exceed the minimum order amount.",
        ),
        RejectReason.INSUFFICIENT_FUNDS: (
            "51008",
            f"Order failed. Insufficient {held} balance in account.",
        ),
        RejectReason.DUPLICATE_CLIENT_ID: ("51016", "Duplicated clOrdId"),
    }[reason]
    return _Refused(code, msg)


def _entry(
    client_id: str, order_id: str, code: str, msg: str, tag: str, now: int
) -> dict[str, Any]:
    """One entry of a place or cancel answer."""
    return {
        "clOrdId": client_id,
        "ordId": order_id,
        "sCode": code,
        "sMsg": msg,
        "tag": tag,
        "ts": str(now),
    }


def _outcome(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Entries as the envelope's ``data``: code 0 if all succeeded; otherwise the answer is
    still HTTP 200 but code 1 (all failed) or 2 (some did), raised as a VenueError so that
    the envelope carries that code."""
    failed = sum(entry["sCode"] != "0" for entry in entries)
    if not failed:
        return entries
    if failed == len(entries):
        body = {"code": "1", "data": entries, "msg": "All operations failed"}
    else:
        body = {"code": "2", "data": entries, "msg": "Bulk operation partially succeeded"}
    raise VenueError(200, body)


async def _json_body(request: web.Request) -> object:
    try:
        return json.loads(await request.text())
    except ValueError:
        raise okx_error(400, "50002", "Json data format error") from None


def _text(params: Mapping[str, Any], name: str) -> str:
    """A required parameter (50014 if it is missing or empty)."""
    value = params.get(name)
    if value is None or value == "":
        raise _param_missing(name)
    return str(value)


def _amount(spec: Mapping[str, Any], name: str) -> Decimal:
    """``sz`` or ``px``: a required decimal string (51000 if it is not a number)."""
    try:
        value = Decimal(_text(spec, name))
    except ArithmeticError:
        raise _param_error(name) from None
    if not value.is_finite():
        raise _param_error(name)
    return value


#: Why OKX canceled an order (``cancelSource``): the user, or the rest of an IOC or FOK order.
_CANCEL_SOURCES: Mapping[TimeInForce, str] = {"GTC": "1", "IOC": "14", "FOK": "13"}


def _ord_type(order: DemoOrder) -> str:
    if order.type == "market":
        return "market"
    return {"GTC": "limit", "IOC": "ioc", "FOK": "fok"}[order.time_in_force]


def _order_entry(
    order: DemoOrder, instrument: Instrument, last_fill: DemoTrade | None
) -> dict[str, Any]:
    """An order as ``orders-pending`` and ``trade/order`` write it; OKX writes fees as negative
    amounts (charged), ``avgPx`` is the average fill price, ``fillPx`` the last fill's."""
    quote = Pair.of(instrument.symbol).quote
    canceled = order.status == "canceled"
    return {
        "accFillSz": _num(order.filled),
        "algoClOrdId": "",
        "algoId": "",
        "attachAlgoClOrdId": "",
        "attachAlgoOrds": [],
        "avgPx": _num(order.average) if order.filled else "",
        "cTime": str(order.created_ms),
        "cancelSource": _CANCEL_SOURCES[order.time_in_force] if canceled else "",
        "cancelSourceReason": "",
        "category": "normal",
        "ccy": "",
        "clOrdId": order.client_order_id,
        "fee": _num(-order.fee),
        "feeCcy": order.fee_currency or quote,
        "fillPx": _num(last_fill.price) if last_fill else "",
        "fillSz": _num(last_fill.amount) if last_fill else "0",
        "fillTime": str(order.updated_ms) if order.filled else "",
        "instId": instrument.inst_id,
        "instType": instrument.info["instType"],
        "lever": str(order.leverage) if order.leverage > 1 else "",
        "ordId": order.id,
        "ordType": _ord_type(order),
        "pnl": "0",
        "posSide": "net",
        "px": _num(order.price) if order.type == "limit" else "",
        "pxType": "",
        "pxUsd": "",
        "pxVol": "",
        "quickMgnType": "",
        "rebate": "0",
        "rebateCcy": quote,
        "reduceOnly": "false",
        "side": order.side,
        "slOrdPx": "",
        "slTriggerPx": "",
        "slTriggerPxType": "",
        "source": "",
        "state": "live" if order.state == "new" else order.state,
        "stpId": "",
        "stpMode": "cancel_maker",
        "sz": _num(order.amount),
        "tag": "",
        "tdMode": "cross" if order.leverage > 1 else "cash",
        "tgtCcy": "",
        "tpOrdPx": "",
        "tpTriggerPx": "",
        "tpTriggerPxType": "",
        "tradeId": last_fill.id if last_fill else "",
        "uTime": str(order.updated_ms),
    }


def _fill_entry(trade: DemoTrade, instrument: Instrument, rate: Decimal) -> dict[str, Any]:
    """A ``fills-history`` entry; pages go by ``billId``, here the trade id."""
    return {
        "side": trade.side,
        "fillSz": _num(trade.amount),
        "fillPx": _num(trade.price),
        "fillPxVol": "",
        "fillFwdPx": "",
        "fee": _num(-trade.fee),
        "fillPnl": _num(trade.realized_pnl),
        "ordId": trade.order_id,
        "feeRate": _num(-rate),
        "instType": instrument.info["instType"],
        "fillPxUsd": "",
        "instId": instrument.inst_id,
        "clOrdId": trade.client_order_id,
        "posSide": "net",
        "billId": trade.id,
        "fillMarkVol": "",
        "tag": "",
        "fillTime": str(trade.time_ms),
        "execType": "T" if trade.taker else "M",
        "fillIdxPx": "",
        "tradeId": trade.id,
        "fillMarkPx": "",
        "feeCcy": trade.fee_currency,
        "ts": str(trade.time_ms),
    }


def _chain_entry(
    ccy: str, name: str, chain: str, fee: str, min_wd: str, *, main: bool
) -> dict[str, Any]:
    return {
        "burningFeeRate": "",
        "canDep": True,
        "canInternal": True,
        "canWd": True,
        "ccy": ccy,
        "chain": chain,
        "ctAddr": "",
        "depEstOpenTime": "",
        "depQuotaFixed": "",
        "depQuoteDailyLayer2": "",
        "fee": fee,
        "logoLink": "",
        "mainNet": main,
        "maxFee": fee,
        "maxWd": "10000000",
        "minDep": "0.00000001",
        "minDepArrivalConfirm": "2",
        "minFee": fee,
        "minWd": min_wd,
        "minWdUnlockConfirm": "4",
        "name": name,
        "needTag": ccy == "XRP",
        "usedDepQuotaFixed": "",
        "usedWdQuota": "0",
        "wdEstOpenTime": "",
        "wdQuota": "10000000",
        "wdTickSz": "8",
    }
