"""A local Kraken spot REST API that checks requests the way Kraken does.

Private methods are ``POST /0/private/<Method>`` with headers ``API-Key`` and ``API-Sign``, where
``API-Sign`` is base64(HMAC-SHA512(base64-decoded secret, path + SHA256(nonce + body))) and the
body's ``nonce`` must exceed the last one the key used. Kraken answers errors as ``{"error":
["EAPI:Invalid key"]}`` with HTTP 200, and ccxt maps those strings to its exception classes, so
the strings here are Kraken's. Assets are Kraken's own ids (``XXBT``, ``ZUSD``, ``USDT``); markets
are the recorded AssetPairs entries from ccxt's static test data.

Orders (``AddOrder``) run on the shared engine with the pair's AssetPairs filters. A ``cl_ord_id``
must be unique among the account's *open* orders only (Kraken's documented rule), so a done IOC
order's id can be used again: only never resending guards a done order.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import re
import secrets
import string
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from bot.exchanges.book import BookLevel
from bot.sandbox.exchanges.activity import DemoOrder, DemoTrade, TimeInForce, newest_first
from bot.sandbox.exchanges.base import (
    DEMO_PRICES,
    DemoAccount,
    DemoKey,
    DemoPermissions,
    FeeRates,
    KeyRecord,
    Permission,
    PriceStats,
    PrivateHandler,
    VenueError,
    VenueServer,
)
from bot.sandbox.exchanges.matching import OrderRejected, OrderRules, RejectReason

#: Kraken API keys are 42 random bytes in base64 (56 characters, no padding).
API_KEY_FORMAT = re.compile(r"[A-Za-z0-9+/]{56}")
_API_KEY_BYTES = 42
#: The private key ("secret") is 64 random bytes in base64: 88 characters ending in ``==``.
_SECRET_BYTES = 64
_MAX_NONCE = 2**64 - 1
#: Trades per ``TradesHistory`` answer, closed orders per ``ClosedOrders`` one (page with ``ofs``).
TRADES_PAGE = 50
#: Book levels a side in a ``Depth`` answer: by default, and at most.
DEPTH_LIMITS = (100, 500)
#: Orders one ``QueryOrders`` call may name.
QUERY_ORDERS_MAX = 50
#: A ``cl_ord_id`` is a UUID (with or without dashes) or free text of up to 18 characters.
_CL_ORD_ID = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|[0-9a-fA-F]{32}|[\x21-\x7e]{1,18}"
)
#: ``timeinforce`` values the engine serves (Kraken also has GTD; it has no FOK on spot).
_TIME_IN_FORCE: Mapping[str, TimeInForce] = {"GTC": "GTC", "IOC": "IOC"}
#: Average fill prices are written to this step (fills at several levels average unevenly).
_AVERAGE_STEP = Decimal("1e-8")
_TXID_ALPHABET = string.ascii_uppercase + string.digits

#: What each demo flag grants, in Kraken's permission names (``GetApiKeyInfo``).
_KRAKEN_PERMISSIONS: Mapping[str, tuple[str, ...]] = {
    "read": ("query-funds", "query-open-trades", "query-closed-trades", "query-ledger"),
    "spot_trade": ("modify-trades", "close-trades"),
    "withdraw": ("withdraw-funds",),
    # Kraken has no transfer right of its own: wallet/subaccount transfers need Withdraw Funds.
    "internal_transfer": ("withdraw-funds",),
}


@dataclass(frozen=True)
class Asset:
    """One Kraken asset: ``id`` is what balances use (``XXBT``), ``altname`` the short name."""

    id: str
    altname: str
    decimals: int
    display_decimals: int

    def amount(self, value: Decimal) -> str:
        return f"{value:.{self.decimals}f}"

    def info(self) -> dict[str, Any]:
        """The ``/0/public/Assets`` entry."""
        return {
            "aclass": "currency",
            "altname": self.altname,
            "decimals": self.decimals,
            "display_decimals": self.display_decimals,
            "collateral_value": 1.0,
            "status": "enabled",
        }


#: Unified code → Kraken asset, for the recorded markets' assets and the demo balances.
ASSETS: Mapping[str, Asset] = {
    "BTC": Asset("XXBT", "XBT", 10, 5),
    "ETH": Asset("XETH", "ETH", 10, 5),
    "LTC": Asset("XLTC", "LTC", 10, 5),
    "XRP": Asset("XXRP", "XRP", 8, 5),
    "DOGE": Asset("XXDG", "XDG", 8, 2),
    "ADA": Asset("ADA", "ADA", 8, 6),
    "USDT": Asset("USDT", "USDT", 8, 4),
    "USD": Asset("ZUSD", "USD", 4, 2),
    "EUR": Asset("ZEUR", "EUR", 4, 2),
}


def asset(code: str) -> Asset:
    """Kraken's asset for a unified code; newer listings carry no X/Z prefix (``SOL``)."""
    return ASSETS.get(code) or Asset(code, code, 10, 5)


@dataclass(frozen=True)
class SpotPair:
    """One tradable pair: ``info`` is the raw AssetPairs entry as Kraken sends it."""

    symbol: str
    id: str
    altname: str
    base: str
    quote: str
    tick: Decimal
    decimals: int
    info: Mapping[str, Any]

    def price(self, value: Decimal) -> str:
        """``value`` rounded down to the tick; Kraken writes ticker prices with 5+ decimals."""
        return f"{(value // self.tick) * self.tick:.{max(self.decimals, 5)}f}"

    def rules(self) -> OrderRules:
        """``lot_decimals``, ``tick_size``, ``ordermin`` and ``costmin``: what ccxt reads as the
        market's amount precision, price precision, minimum amount and minimum cost."""
        return OrderRules(
            amount_step=Decimal(1).scaleb(-int(self.info["lot_decimals"])),
            price_tick=self.tick,
            min_amount=Decimal(self.info["ordermin"]),
            min_notional=Decimal(self.info.get("costmin", "0")),
        )


@functools.cache
def load_pairs(reference_dir: Path) -> tuple[SpotPair, ...]:
    """The pairs of ``markets/kraken.json`` (read once per process)."""
    recorded = json.loads((reference_dir / "markets" / "kraken.json").read_text())
    return tuple(
        SpotPair(
            symbol=market["symbol"],
            id=market["id"],
            altname=market["info"]["altname"],
            base=market["base"],
            quote=market["quote"],
            tick=Decimal(market["info"]["tick_size"]),
            decimals=int(market["info"]["pair_decimals"]),
            info=market["info"],
        )
        for market in recorded.values()
    )


def kraken_error(message: str, status: int = 200) -> VenueError:
    """Kraken's error shape; HTTP 200 unless the failure is below the API (gateway, limits)."""
    return VenueError(status, {"error": [message]})


def _invalid_key() -> VenueError:
    """Unknown, deleted or mis-signed keys all get this (Kraken: signature mismatch = bad key)."""
    return kraken_error("EAPI:Invalid key")


def _permission_denied() -> VenueError:
    return kraken_error("EGeneral:Permission denied")


def _cloudflare_page(status: int) -> str:
    """What Kraken's CDN sends when the API behind it is unreachable."""
    try:
        title = f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        title = f"{status} Unknown Error"
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
        "</body>\r\n</html>\r\n"
    )


def _invalid_arguments(name: str | None = None) -> VenueError:
    """``EGeneral:Invalid arguments``, naming the argument where Kraken does."""
    return kraken_error("EGeneral:Invalid arguments" + (f":{name}" if name else ""))


def _body_params(body: str, content_type: str) -> dict[str, str]:
    """A private call's parameters from a url-encoded or JSON body (Kraken accepts both)."""
    if content_type != "application/json":
        return dict(parse_qsl(body, keep_blank_values=True))
    try:
        params = json.loads(body or "{}")
    except ValueError:
        raise _invalid_arguments() from None
    if not isinstance(params, dict):
        raise _invalid_arguments()
    return {name: str(value) for name, value in params.items()}


def _nonce(params: Mapping[str, str]) -> int:
    value = params.get("nonce", "")
    if not value.isdigit() or int(value) > _MAX_NONCE:
        raise kraken_error("EAPI:Invalid nonce")
    return int(value)


def _seconds(params: Mapping[str, str], name: str) -> int | None:
    """A unix-seconds bound (``start``/``end``); Kraken also takes trade ids there, not served."""
    value = params.get(name, "")
    if value == "":
        return None
    if not value.isdigit():
        raise _invalid_arguments()
    return int(value)


def _window(params: Mapping[str, str]) -> tuple[int | None, int | None]:
    """``start`` (exclusive) and ``end`` (inclusive) in unix seconds as a window in epoch ms:
    Kraken compares them with its fractional times, so an entry at 12.3 s is after start=12."""
    start, end = _seconds(params, "start"), _seconds(params, "end")
    return (
        None if start is None else start * 1000 + 1,
        None if end is None else end * 1000,
    )


def _flag(params: Mapping[str, str], name: str) -> bool:
    """A boolean parameter: ccxt sends ``True``, other clients ``true`` or ``1``."""
    return params.get(name, "").lower() in {"true", "1"}


def _userref_matches(params: Mapping[str, str]) -> bool:
    """Whether orders placed without a ``userref`` (all of them here: 0) match the ``userref``
    filter sent; Kraken's ``userref`` is a 32-bit integer, so anything else is refused."""
    value = params.get("userref", "")
    if value == "":
        return True
    if not re.fullmatch(r"-?\d{1,10}", value):
        raise _invalid_arguments("userref")
    return int(value) == 0


def _decimal(params: Mapping[str, str], name: str) -> Decimal:
    try:
        value = Decimal(params[name])
    except (KeyError, ArithmeticError):
        raise _invalid_arguments(name) from None
    if not value.is_finite():
        raise _invalid_arguments(name)
    return value


def _txid(first: str) -> str:
    """A Kraken transaction id: ``OXCZ7B-EMVZQ-MTJTQJ`` for orders, ``T…`` for trades."""
    chars = first + "".join(secrets.choice(_TXID_ALPHABET) for _ in range(16))
    return f"{chars[:6]}-{chars[6:11]}-{chars[11:]}"


def _fixed(value: Decimal, places: int) -> str:
    """``value`` with at least ``places`` decimals, never rounding a digit away."""
    exponent = value.normalize().as_tuple().exponent
    digits = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    return f"{value:.{max(places, digits)}f}"


def _iiban(uid: int) -> str:
    """An account's Kraken IIBAN (``AA88 N84G WOAK NMOI``), stable for the account."""
    digits = ""
    rest = uid * 7_919_003
    while len(digits) < 12:
        rest, index = divmod(rest, 36)
        digits += "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[index]
    return f"AA{uid % 90 + 10} {digits[:4]} {digits[4:8]} {digits[8:]}"


class KrakenServer(VenueServer):
    """Kraken spot ``/0/public`` and the ``/0/private`` methods a key check, a sweep and the
    account reads use."""

    venue_id = "kraken"
    key_format = API_KEY_FORMAT
    fee_rates = FeeRates(maker=Decimal("0.0025"), taker=Decimal("0.004"))
    fee_in_quote = True
    duplicate_client_ids = "refuse_while_open"

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, reference_dir: Path | None = None
    ) -> None:
        super().__init__(host=host, port=port, reference_dir=reference_dir)
        self.pairs = load_pairs(self.reference_dir)
        # False answers GetApiKeyInfo without "permissions", as older or partial answers do.
        self.reports_permissions = True
        self._pairs_by_name = {name: p for p in self.pairs for name in (p.id, p.altname)}
        self._pairs_by_symbol = {pair.symbol: pair for pair in self.pairs}
        #: Highest nonce each key has used, and when (unix s): Kraken refuses anything lower.
        self._last_nonce: dict[str, tuple[int, int]] = {}
        for pair in self.pairs:
            price = DEMO_PRICES.get(pair.symbol) or DEMO_PRICES.get(f"{pair.base}/USDT")
            if price is not None:
                self.set_price(pair.symbol, price)

    def new_order_id(self, seq: int) -> str:
        return _txid("O")

    def order_rules(self, symbol: str) -> OrderRules:
        return self._pairs_by_symbol[symbol].rules()

    def new_trade_id(self, seq: int) -> str:
        return _txid("T")

    def new_key_material(self, with_passphrase: bool) -> DemoKey:
        """Kraken keys have no passphrase; ``with_passphrase`` is ignored."""
        return DemoKey(
            api_key=base64.b64encode(secrets.token_bytes(_API_KEY_BYTES)).decode(),
            secret=base64.b64encode(secrets.token_bytes(_SECRET_BYTES)).decode(),
        )

    def issue_key(
        self,
        permissions: DemoPermissions | None = None,
        *,
        account: str = "demo",
        with_passphrase: bool = False,
        material: DemoKey | None = None,
    ) -> DemoKey:
        """As the base, but chosen (canary) secrets must be a private key Kraken could issue."""
        if material is not None:
            try:
                secret = base64.b64decode(material.secret, validate=True)
            except binascii.Error:
                secret = b""
            if len(secret) != _SECRET_BYTES:
                raise ValueError("Kraken private keys are 64 bytes in base64 (88 characters)")
        return super().issue_key(
            permissions, account=account, with_passphrase=with_passphrase, material=material
        )

    def add_routes(self, router: web.UrlDispatcher) -> None:
        public: dict[str, Callable[[web.Request], Awaitable[web.Response]]] = {
            "Time": self.public(self._time),
            "Assets": self.public(self._assets),
            "AssetPairs": self.public(self._asset_pairs),
            "Ticker": self.public(self._ticker),
            "Depth": self.public(self._depth),
        }
        private: dict[str, Callable[[web.Request], Awaitable[web.Response]]] = {
            "Balance": self.private(self._balance),
            "BalanceEx": self.private(self._balance_ex),
            "OpenOrders": self.private(self._open_orders),
            "ClosedOrders": self.private(self._closed_orders),
            "QueryOrders": self.private(self._query_orders),
            "TradesHistory": self.private(self._trades_history),
            "AddOrder": self.private(self._add_order, "spot_trade"),
            "CancelOrder": self.private(self._cancel_order, "spot_trade"),
            # Kraken: "API Key Permissions Required: None".
            "GetApiKeyInfo": self._any_key(self._api_key_info),
        }
        for method, endpoint in public.items():
            router.add_get(f"/0/public/{method}", endpoint)
        for method, endpoint in private.items():
            router.add_post(f"/0/private/{method}", endpoint)

    # ----- authentication --------------------------------------------------------------------

    async def _verify(self, request: web.Request) -> KeyRecord:
        """Key, signature, nonce and IP allow-list, in that order; the permission comes after."""
        record = self.key_record(request.headers.get("API-Key", ""))
        if record is None or record.revoked:
            raise _invalid_key()
        try:
            signature = base64.b64decode(request.headers.get("API-Sign", ""), validate=True)
        except binascii.Error:
            signature = b""
        if len(signature) != hashlib.sha512().digest_size:
            raise kraken_error("EAPI:Invalid signature")

        body = await request.text() if request.body_exists else ""
        nonce = _nonce(_body_params(body, request.content_type))
        message = request.path.encode() + hashlib.sha256(f"{nonce}{body}".encode()).digest()
        expected = hmac.new(base64.b64decode(record.key.secret), message, hashlib.sha512).digest()
        if not hmac.compare_digest(expected, signature):
            raise _invalid_key()

        last_nonce, _ = self._last_nonce.get(record.key.api_key, (0, 0))
        if nonce <= last_nonce:
            raise kraken_error("EAPI:Invalid nonce")
        self._last_nonce[record.key.api_key] = (nonce, self.server_time_ms() // 1000)

        if record.permissions.ip_restricted and request.remote not in record.trusted_ips:
            raise _permission_denied()
        return record

    async def authenticate(self, request: web.Request, needs: Permission) -> KeyRecord:
        record = await self._verify(request)
        if not self.authorize(record, request, needs):
            raise _permission_denied()
        return record

    def _any_key(self, handler: PrivateHandler) -> Callable[[web.Request], Awaitable[web.Response]]:
        """A private method every live key may call, whatever permissions it holds."""

        async def endpoint(request: web.Request) -> web.Response:
            return self.render(await handler(request, await self._verify(request)))

        return endpoint

    # ----- envelope and errors ---------------------------------------------------------------

    def render(self, payload: object) -> web.Response:
        return super().render({"error": [], "result": payload})

    def fault(self, status: int) -> VenueError:
        if status == 429:
            return kraken_error("EAPI:Rate limit exceeded", status)
        if status == 503:
            return kraken_error("EService:Unavailable", status)
        if status == 500:
            return kraken_error("EGeneral:Internal error", status)
        return VenueError(status, _cloudflare_page(status))

    def not_found(self, request: web.Request) -> VenueError:
        return kraken_error("EGeneral:Unknown method", 404)

    # ----- public endpoints ------------------------------------------------------------------

    async def _time(self, request: web.Request) -> dict[str, Any]:
        seconds = self.server_time_ms() // 1000
        rfc1123 = time.strftime("%a, %d %b %y %H:%M:%S +0000", time.gmtime(seconds))
        return {"unixtime": seconds, "rfc1123": rfc1123}

    async def _assets(self, request: web.Request) -> dict[str, Any]:
        codes = {p.base for p in self.pairs} | {p.quote for p in self.pairs}
        codes |= {code for account in self.accounts.values() for code in account.balances}
        return {asset(code).id: asset(code).info() for code in sorted(codes)}

    async def _asset_pairs(self, request: web.Request) -> dict[str, Any]:
        return {pair.id: pair.info for pair in self.pairs}

    def _pair(self, name: str) -> SpotPair:
        """A pair by id or altname, case-insensitive, as Kraken accepts in ``pair=``."""
        pair = self._pairs_by_name.get(name.upper())
        if pair is None or pair.symbol not in self.prices:
            raise kraken_error("EQuery:Unknown asset pair")
        return pair

    async def _ticker(self, request: web.Request) -> dict[str, Any]:
        """All quoted pairs, or those named in ``pair=`` (comma-separated), keyed by pair id."""
        names = request.query.get("pair")
        if names:
            pairs = [self._pair(name) for name in names.split(",")]
        else:
            pairs = [p for p in self.pairs if p.symbol in self.prices]
        return {pair.id: self._ticker_of(pair, self.prices[pair.symbol]) for pair in pairs}

    def _ticker_of(self, pair: SpotPair, stats: PriceStats) -> dict[str, Any]:
        """Kraken's ticker arrays: ``[today, last 24 h]`` pairs, ask/bid as price + lot volumes."""
        since_midnight = self.server_time_ms() % 86_400_000 / 86_400_000  # "today" is UTC
        today = Decimal(str(max(since_midnight, 0.01)))
        volume = stats.volume.quantize(Decimal("1e-8"))
        vwap = pair.price((stats.open + stats.last) / 2)
        last = pair.price(stats.last)
        return {
            "a": [pair.price(stats.last + pair.tick), "1", "1.000"],
            "b": [last, "2", "2.000"],
            "c": [last, f"{volume / 300_000:.8f}"],
            "v": [f"{volume * today:.8f}", f"{volume:.8f}"],
            "p": [vwap, vwap],
            "t": [int(stats.trades * today), stats.trades],
            "l": [pair.price(stats.low)] * 2,
            "h": [pair.price(stats.high)] * 2,
            "o": pair.price(stats.open),
        }

    async def _depth(self, request: web.Request) -> dict[str, Any]:
        """The book orders fill against, ``count`` levels a side (100 by default, 500 at most):
        ``[price, volume, timestamp]`` rows keyed by pair id."""
        pair = self._pair(request.query.get("pair", ""))
        count = request.query.get("count", "")
        default, high = DEPTH_LIMITS
        if count and (not count.isdigit() or int(count) < 1):
            raise _invalid_arguments("count")
        book = self.order_book(pair.symbol, min(int(count) if count else default, high))
        now = self.server_time_ms() // 1000

        def rows(levels: tuple[BookLevel, ...]) -> list[list[Any]]:
            return [[_fixed(lv.price, pair.decimals), f"{lv.amount:.8f}", now] for lv in levels]

        return {pair.id: {"asks": rows(book.asks), "bids": rows(book.bids)}}

    # ----- private endpoints -----------------------------------------------------------------

    async def _balance(self, request: web.Request, record: KeyRecord) -> dict[str, str]:
        return {
            asset(code).id: asset(code).amount(balance.total)
            for code, balance in record.account.balances.items()
        }

    async def _balance_ex(self, request: web.Request, record: KeyRecord) -> dict[str, Any]:
        """``hold_trade`` is what open orders hold; ``balance`` includes it."""
        return {
            asset(code).id: {
                "balance": asset(code).amount(balance.total),
                "hold_trade": asset(code).amount(balance.used),
            }
            for code, balance in record.account.balances.items()
        }

    async def _api_key_info(self, request: web.Request, record: KeyRecord) -> dict[str, Any]:
        flags = record.permissions
        granted = {
            name
            for flag, names in _KRAKEN_PERMISSIONS.items()
            if getattr(flags, flag)
            for name in names
        }
        nonce, last_used = self._last_nonce[record.key.api_key]
        created = str(record.created_ms // 1000)
        return {
            "apiKeyName": f"{record.account.name}-{created}",
            "apiKey": record.key.api_key,
            "nonce": str(nonce),
            "nonceWindow": 0,
            **({"permissions": sorted(granted)} if self.reports_permissions else {}),
            "iban": _iiban(record.account.uid),
            "validUntil": "0",
            "queryFrom": "0",
            "queryTo": "0",
            "createdTime": created,
            "modifiedTime": created,
            "ipAllowlist": sorted(record.trusted_ips) if flags.ip_restricted else [],
            "lastUsed": str(last_used),
        }

    # ----- orders ----------------------------------------------------------------------------

    async def _add_order(self, request: web.Request, record: KeyRecord) -> dict[str, Any]:
        """A spot limit or market order; the answer names it only (``descr`` and ``txid``), so
        a client learns how it went from ``QueryOrders`` or the order lists."""
        params = _body_params(await request.text(), request.content_type)
        pair = self._pair(params.get("pair", ""))
        side, kind = params.get("type"), params.get("ordertype")
        if side not in ("buy", "sell"):
            raise _invalid_arguments("type")
        if kind not in ("limit", "market"):
            raise _invalid_arguments("ordertype")
        time_in_force = _TIME_IN_FORCE.get(params.get("timeinforce", "GTC"))
        if time_in_force is None:
            raise _invalid_arguments("timeinforce")
        client_id = params.get("cl_ord_id")
        if client_id is not None and (not _CL_ORD_ID.fullmatch(client_id) or "userref" in params):
            raise _invalid_arguments("cl_ord_id")
        try:
            order = self.place_order(
                record.account.name,
                pair.symbol,
                "buy" if side == "buy" else "sell",
                _decimal(params, "volume"),
                _decimal(params, "price") if kind == "limit" else None,
                kind="limit" if kind == "limit" else "market",
                time_in_force=time_in_force,
                client_order_id=client_id,
            )
        except OrderRejected as rejected:
            raise _order_error(rejected.reason, pair) from None
        return {"descr": {"order": self._description(order, pair)}, "txid": [order.id]}

    async def _cancel_order(self, request: web.Request, record: KeyRecord) -> dict[str, Any]:
        """Cancel the open order ``txid`` (or ``cl_ord_id``) names; the answer is a count."""
        params = _body_params(await request.text(), request.content_type)
        txid, client_id = params.get("txid", ""), params.get("cl_ord_id", "")
        if not txid and not client_id:
            raise _invalid_arguments()
        order = self.find_order(
            record.account.name, order_id=txid or None, client_order_id=client_id or None
        )
        if order is None or order.status != "open":
            raise kraken_error("EOrder:Unknown order")
        self.cancel_order(record.account.name, order.id)
        return {"count": 1}

    async def _open_orders(self, request: web.Request, record: KeyRecord) -> dict[str, Any]:
        """Resting orders, narrowed by ``cl_ord_id`` or ``userref``."""
        params = _body_params(await request.text(), request.content_type)
        chosen = self._matching(params, record.account.open_orders())
        return {"open": self._entries(chosen, params, record.account)}

    async def _closed_orders(self, request: web.Request, record: KeyRecord) -> dict[str, Any]:
        """Done orders (filled or canceled) newest first, 50 at a time from offset ``ofs``,
        narrowed by ``cl_ord_id`` or ``userref``; ``start`` exclusive and ``end`` inclusive,
        in unix seconds."""
        params = _body_params(await request.text(), request.content_type)
        since_ms, until_ms = _window(params)
        offset = _seconds(params, "ofs") or 0
        done = newest_first(
            (order for order in record.account.orders.values() if order.status != "open"),
            since_ms=since_ms,
            until_ms=until_ms,
        )
        chosen = self._matching(params, done)
        page = chosen[offset : offset + TRADES_PAGE]
        return {"closed": self._entries(page, params, record.account), "count": len(chosen)}

    async def _query_orders(self, request: web.Request, record: KeyRecord) -> dict[str, Any]:
        """The orders ``txid`` names (comma-separated, open or done); Kraken answers ``Invalid
        order`` if one of them is not the account's."""
        params = _body_params(await request.text(), request.content_type)
        ids = [txid for txid in params.get("txid", "").split(",") if txid]
        if not ids or len(ids) > QUERY_ORDERS_MAX:
            raise _invalid_arguments("txid")
        orders = [self.find_order(record.account.name, order_id=txid) for txid in ids]
        found = [order for order in orders if order is not None]
        if len(found) < len(ids):
            raise kraken_error("EOrder:Invalid order")
        return self._entries(self._matching(params, found), params, record.account)

    def _matching(self, params: Mapping[str, str], orders: list[DemoOrder]) -> list[DemoOrder]:
        client_id = params.get("cl_ord_id")
        if not _userref_matches(params):
            return []
        return [order for order in orders if client_id in (None, order.client_order_id)]

    def _entries(
        self, orders: list[DemoOrder], params: Mapping[str, str], account: DemoAccount
    ) -> dict[str, Any]:
        """Orders keyed by txid; with ``trades`` set, each lists its fills' ids."""
        fills: dict[str, list[str]] | None = None
        if _flag(params, "trades"):
            fills = {order.id: [] for order in orders}
            for trade in account.trades:
                fills.get(trade.order_id, []).append(trade.id)
        return {
            order.id: self._order_entry(order, None if fills is None else fills[order.id])
            for order in orders
        }

    def _description(self, order: DemoOrder, pair: SpotPair) -> str:
        """``buy 0.01000000 XBTUSDT @ limit 73400.0``; a market order names no price."""
        where = f"limit {_fixed(order.price, pair.decimals)}" if order.type == "limit" else "market"
        return f"{order.side} {order.amount:.8f} {pair.altname} @ {where}"

    def _order_entry(self, order: DemoOrder, trades: list[str] | None = None) -> dict[str, Any]:
        """An order as the order lists and ``QueryOrders`` write it: ``price`` is the average
        fill price, ``cost`` the filled value, ``fee`` in the quote (``fciq``)."""
        pair = self._pairs_by_symbol[order.symbol]
        limit = _fixed(order.price, pair.decimals) if order.type == "limit" else "0"
        entry: dict[str, Any] = {
            "refid": None,
            "userref": 0,
            "cl_ord_id": order.client_order_id,
            "status": order.status,
            "opentm": order.created_ms / 1000,
            "starttm": 0,
            "expiretm": 0,
            "descr": {
                "pair": pair.altname,
                "type": order.side,
                "ordertype": order.type,
                "price": limit,
                "price2": "0",
                "leverage": "none",
                "order": self._description(order, pair),
                "close": "",
            },
            "vol": f"{order.amount:.8f}",
            "vol_exec": f"{order.filled:.8f}",
            "cost": _fixed(order.cost, 5),
            "fee": _fixed(order.fee, 5),
            "price": _fixed(order.average.quantize(_AVERAGE_STEP), pair.decimals),
            "stopprice": "0.00000",
            "limitprice": "0.00000",
            "misc": "",
            "oflags": "fciq",
        }
        if order.status != "open":
            user_canceled = order.status == "canceled" and order.time_in_force == "GTC"
            entry["reason"] = "User requested" if user_canceled else None
            entry["closetm"] = order.updated_ms / 1000
        if trades is not None:
            entry["trades"] = trades
        return entry

    async def _trades_history(self, request: web.Request, record: KeyRecord) -> dict[str, Any]:
        """Newest first, 50 at a time from offset ``ofs``; ``start`` is exclusive and ``end``
        inclusive, in unix seconds."""
        params = _body_params(await request.text(), request.content_type)
        since_ms, until_ms = _window(params)
        offset = _seconds(params, "ofs") or 0
        trades = newest_first(record.account.trades, since_ms=since_ms, until_ms=until_ms)
        page = trades[offset : offset + TRADES_PAGE]
        return {"trades": {t.id: self._trade_entry(t) for t in page}, "count": len(trades)}

    def _trade_entry(self, trade: DemoTrade) -> dict[str, Any]:
        pair = self._pairs_by_symbol[trade.symbol]
        return {
            "ordertxid": trade.order_id,
            "postxid": _txid("T"),
            "pair": pair.id,
            "time": trade.time_ms / 1000,
            "type": trade.side,
            "ordertype": trade.order_type,
            "price": _fixed(trade.price, pair.decimals),
            "cost": _fixed(trade.cost, 5),
            "fee": _fixed(trade.fee, 5),
            "vol": f"{trade.amount:.8f}",
            "margin": "0.00000",
            "leverage": "0",
            "misc": "",
            "trade_id": trade.seq,
            "maker": not trade.taker,
        }


def _order_error(reason: RejectReason, pair: SpotPair) -> VenueError:
    """Kraken's answer to each way the matching engine refuses an order. ccxt maps ``Order
    minimum not met`` to InvalidOrder, ``Insufficient funds`` to InsufficientFunds and
    ``Invalid arguments:volume`` (broadly) to InvalidOrder; the cost minimum, price precision
    and duplicate texts are unmapped, so ccxt raises a plain ExchangeError for them."""
    message = {
        RejectReason.UNKNOWN_MARKET: "EQuery:Unknown asset pair",
        RejectReason.BAD_ORDER: "EGeneral:Invalid arguments:volume",
        RejectReason.AMOUNT_STEP: "EGeneral:Invalid arguments:volume",
        RejectReason.PRICE_TICK: (
            f"EOrder:Invalid price:{pair.id} price can only be specified up to "
            f"{pair.decimals} decimals."
        ),
        RejectReason.MIN_AMOUNT: "EOrder:Order minimum not met",
        RejectReason.MIN_NOTIONAL: "EOrder:Cost minimum not met",
        RejectReason.INSUFFICIENT_FUNDS: "EOrder:Insufficient funds",
        RejectReason.DUPLICATE_CLIENT_ID: "EOrder:Duplicate order",
    }[reason]
    return kraken_error(message)
