"""A local Coinbase Advanced Trade API that authenticates CDP keys the way Coinbase does.

A CDP key is a key *name* (``organizations/{org}/apiKeys/{id}``) plus an EC P-256 private key in
PEM. Each signed request carries ``Authorization: Bearer <JWT>``: ES256 over the header (``kid``
= key name, random ``nonce``) and claims ``sub`` (key name), ``iss``, ``nbf``, ``exp`` (two
minutes later) and ``uri`` = "METHOD host/path" without the query. The server keeps only the
public half of each issued key and checks signature, lifetime, ``sub`` and ``uri`` against the
request it arrived with; any failure is Coinbase's bare ``401 Unauthorized``.

``uri`` host: ccxt strips only ``https://`` from the URL, so after the endpoint rewrite it signs
"GET http://127.0.0.1:PORT/api/v3/…". The server accepts the host with or without a scheme but
it must be the host the request was sent to (Coinbase's own is ``api.coinbase.com``).

Markets, currencies and accounts follow the shapes in ccxt's coinbase source and static tests.

Orders run on the shared engine with each product's increments and minimums. Coinbase answers a
reused ``client_order_id`` with the order that already carries it (nothing new is placed), and
a refused order with HTTP 200, ``success: false`` and an ``error_response`` whose
``preview_failure_reason`` is what ccxt maps to an exception class.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from http import HTTPStatus
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from bot.sandbox.exchanges.activity import (
    DemoOrder,
    DemoTrade,
    OrderState,
    Query,
    Side,
    TimeInForce,
    bounded_int,
)
from bot.sandbox.exchanges.base import (
    DEMO_PRICES,
    Balance,
    DemoKey,
    DemoPermissions,
    FeeRates,
    KeyRecord,
    Permission,
    VenueError,
    VenueServer,
    plain,
)
from bot.sandbox.exchanges.matching import OrderRejected, OrderRules, RejectReason, amount_for_funds

#: How long ccxt (and Coinbase's own SDKs) make a token live: ``exp = nbf + 120``.
TOKEN_LIFETIME_S = 120
#: ``iss`` values in use: ccxt's ("coinbase-cloud") and the current SDKs' ("cdp").
ISSUERS = frozenset({"coinbase-cloud", "cdp"})

_NAMESPACE = uuid.UUID("5f0c6a52-2f6e-4c53-9a39-7b4a2d3f1c0e")  # stable demo ids per name
_KEY_NAME = re.compile(
    r"organizations/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    r"/apiKeys/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
)
_UNAUTHORIZED = "Unauthorized\n"
#: Orders or fills per page: by default, and at most.
PAGE_LIMIT = (100, 1000)
#: Book levels a side in a ``product_book`` answer when no ``limit`` is sent.
BOOK_DEPTH = 50
#: The smallest order value every product here takes, in its quote currency.
QUOTE_MIN_SIZE = Decimal(1)
#: The ``order_configuration`` shapes the engine serves, by time in force.
_LIMIT_CONFIGURATIONS: Mapping[str, TimeInForce] = {
    "limit_limit_gtc": "GTC",
    "sor_limit_ioc": "IOC",
    "limit_limit_fok": "FOK",
}
_TIME_IN_FORCE_NAMES: Mapping[TimeInForce, str] = {
    "GTC": "GOOD_UNTIL_CANCELLED",
    "IOC": "IMMEDIATE_OR_CANCEL",
    "FOK": "FILL_OR_KILL",
}
_ORDER_STATUS: Mapping[OrderState, str] = {
    "new": "OPEN",
    "partially_filled": "OPEN",
    "filled": "FILLED",
    "canceled": "CANCELLED",
}


@dataclass(frozen=True)
class Crypto:
    """A crypto currency as ``/v2/currencies/crypto`` lists it."""

    name: str
    exponent: int
    color: str
    address_regex: str

    def info(self, code: str, sort_index: int) -> dict[str, Any]:
        return {
            "asset_id": str(uuid.uuid5(_NAMESPACE, "asset/" + code)),
            "code": code,
            "name": self.name,
            "color": self.color,
            "sort_index": sort_index,
            "exponent": self.exponent,
            "type": "crypto",
            "address_regex": self.address_regex,
        }


_EVM = "^(?:0x)?[0-9a-fA-F]{40}$"
CRYPTO: Mapping[str, Crypto] = {
    "BTC": Crypto(
        "Bitcoin", 8, "#F7931A", "^([13][a-km-zA-HJ-NP-Z1-9]{25,34})|^(bc1[a-z0-9]{39,59})$"
    ),
    "ETH": Crypto("Ethereum", 8, "#627EEA", _EVM),
    "USDT": Crypto("Tether", 6, "#22A079", _EVM),
    "ADA": Crypto("Cardano", 6, "#0033AD", "^(([0-9A-Za-z]{57,59})|([0-9A-Za-z]{100,104}))$"),
    "LTC": Crypto(
        "Litecoin", 8, "#A6A9AA", "^((L|M)[a-km-zA-HJ-NP-Z1-9]{25,34})|^(ltc1[a-z0-9]{39,59})$"
    ),
    "XRP": Crypto("XRP", 6, "#222222", "^r[1-9a-km-zA-HJ-NP-Z]{24,34}$"),
    "DOGE": Crypto("Dogecoin", 8, "#BA9F33", "^((D|A|9)[1-9A-HJ-NP-Za-km-z]{33})$"),
}
FIAT: Mapping[str, tuple[str, str]] = {
    "USD": ("US Dollar", "0.01"),
    "EUR": ("Euro", "0.01"),
    "GBP": ("British Pound", "0.01"),
}


@dataclass(frozen=True)
class Product:
    """A spot product as ``/api/v3/brokerage/market/products`` lists it."""

    base: str
    quote: str
    price_increment: str
    base_increment: str

    @property
    def id(self) -> str:
        return f"{self.base}-{self.quote}"

    @property
    def symbol(self) -> str:
        return f"{self.base}/{self.quote}"

    def price(self, value: Decimal) -> str:
        return plain(value.quantize(Decimal(self.price_increment)))

    def rules(self) -> OrderRules:
        """``base_increment``, ``price_increment``, ``base_min_size`` and ``quote_min_size``:
        what ccxt reads as precision and limits."""
        return OrderRules(
            amount_step=Decimal(self.base_increment),
            price_tick=Decimal(self.price_increment),
            min_amount=Decimal(self.base_increment),
            min_notional=QUOTE_MIN_SIZE,
        )


PRODUCTS: tuple[Product, ...] = (
    Product("BTC", "USD", "0.01", "0.00000001"),
    Product("ETH", "USD", "0.01", "0.00000001"),
    Product("USDT", "USD", "0.00001", "0.01"),
    Product("BTC", "USDT", "0.01", "0.00000001"),
    Product("ETH", "USDT", "0.01", "0.00000001"),
    Product("ADA", "USDT", "0.0001", "0.00000001"),
    Product("LTC", "USDT", "0.01", "0.00000001"),
    Product("XRP", "USDT", "0.0001", "0.000001"),
    Product("DOGE", "USDT", "0.00001", "0.1"),
)
_USDT_IN_USD = Decimal("1.0001")


def _opening_price(product: Product) -> Decimal:
    """The demo price in USDT, or in USD at the demo USDT/USD rate."""
    if product.base not in {m.split("/")[0] for m in DEMO_PRICES}:
        return _USDT_IN_USD
    in_usdt = DEMO_PRICES[f"{product.base}/USDT"]
    return (
        in_usdt if product.quote == "USDT" else (in_usdt * _USDT_IN_USD).quantize(Decimal("0.01"))
    )


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def _iso_micro(ms: int) -> str:
    """Order timestamps, which Coinbase writes to the microsecond."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _invalid(name: str) -> VenueError:
    return coinbase_error(400, "INVALID_ARGUMENT", f"invalid {name}")


def _rfc3339_ms(params: Mapping[str, str], name: str) -> int | None:
    """An optional RFC 3339 time parameter in epoch milliseconds."""
    value = params.get(name, "")
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _invalid(name) from None
    if moment.tzinfo is None:
        raise _invalid(name)
    return int(moment.timestamp() * 1000)


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def public_key_of(secret_pem: str) -> ec.EllipticCurvePublicKey:
    """The public half of a CDP secret; ValueError unless it is a P-256 private key in PEM."""
    key = serialization.load_pem_private_key(secret_pem.encode(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError("a CDP secret is an EC P-256 private key")
    return key.public_key()


def coinbase_error(status: int, error: str, details: str) -> VenueError:
    """Advanced Trade's error shape: ``{"error", "error_details", "message"}``."""
    return VenueError(status, {"error": error, "error_details": details, "message": details})


def _unauthorized() -> VenueError:
    return VenueError(401, _UNAUTHORIZED, content_type="text/plain")


class CoinbaseServer(VenueServer):
    """Coinbase Advanced Trade (v3) plus the v2 public endpoints ccxt's ``load_markets`` uses."""

    venue_id = "coinbase"
    key_format = _KEY_NAME
    fee_rates = FeeRates(maker=Decimal("0.006"), taker=Decimal("0.012"))
    fee_in_quote = True
    duplicate_client_ids = "return_existing"

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, reference_dir: Path | None = None
    ) -> None:
        super().__init__(host=host, port=port, reference_dir=reference_dir)
        self.products = PRODUCTS
        self._products_by_id = {product.id: product for product in self.products}
        self._products_by_symbol = {product.symbol: product for product in self.products}
        self._public_keys: dict[str, ec.EllipticCurvePublicKey] = {}
        for product in self.products:
            self.set_price(product.symbol, _opening_price(product))

    # ----- keys ------------------------------------------------------------------------------

    def new_key_material(self, with_passphrase: bool) -> DemoKey:
        """A key name and a fresh P-256 private key in PEM, as the CDP portal hands them out."""
        private_key = ec.generate_private_key(ec.SECP256R1())
        pem = private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ).decode()
        name = f"organizations/{uuid.uuid4()}/apiKeys/{uuid.uuid4()}"
        return DemoKey(api_key=name, secret=pem)

    def issue_key(
        self,
        permissions: DemoPermissions | None = None,
        *,
        account: str = "demo",
        with_passphrase: bool = False,
        material: DemoKey | None = None,
    ) -> DemoKey:
        """As the base; the server then keeps the key's public half to check its tokens."""
        public_key = public_key_of(material.secret) if material is not None else None
        key = super().issue_key(
            permissions, account=account, with_passphrase=with_passphrase, material=material
        )
        self._public_keys[key.api_key] = public_key or public_key_of(key.secret)
        return key

    def new_order_id(self, seq: int) -> str:
        return str(uuid.uuid4())

    def new_trade_id(self, seq: int) -> str:
        return str(uuid.uuid4())

    def order_rules(self, symbol: str) -> OrderRules:
        return self._products_by_symbol[symbol].rules()

    def portfolio_uuid(self, account: str) -> str:
        """The default portfolio of an account (every CDP key is scoped to one portfolio)."""
        return str(uuid.uuid5(_NAMESPACE, "portfolio/" + account))

    # ----- routes ----------------------------------------------------------------------------

    def add_routes(self, router: web.UrlDispatcher) -> None:
        routes: dict[str, Callable[[web.Request], Awaitable[web.Response]]] = {
            "/v2/time": self.public(self._v2_time),
            "/v2/currencies": self.public(self._fiat_currencies),
            "/v2/currencies/crypto": self.public(self._crypto_currencies),
            "/v2/exchange-rates": self.public(self._exchange_rates),
            "/api/v3/brokerage/time": self.public(self._v3_time),
            "/api/v3/brokerage/market/products": self.public(self._products),
            "/api/v3/brokerage/market/products/{product_id}/ticker": self.public(self._ticker),
            "/api/v3/brokerage/key_permissions": self.private(self._key_permissions),
            "/api/v3/brokerage/transaction_summary": self.private(self._transaction_summary),
            "/api/v3/brokerage/accounts": self.private(self._accounts),
            "/api/v3/brokerage/orders/historical/batch": self.private(self._orders),
            "/api/v3/brokerage/orders/historical/fills": self.private(self._fills),
            "/api/v3/brokerage/orders/historical/{order_id}": self.private(self._order),
            "/api/v3/brokerage/market/product_book": self.public(self._product_book),
        }
        for path, endpoint in routes.items():
            router.add_get(path, endpoint)
        router.add_post("/api/v3/brokerage/orders", self.private(self._create_order, "spot_trade"))
        router.add_post(
            "/api/v3/brokerage/orders/batch_cancel", self.private(self._cancel_orders, "spot_trade")
        )

    # ----- authentication --------------------------------------------------------------------

    async def authenticate(self, request: web.Request, needs: Permission) -> KeyRecord:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or not token:
            raise _unauthorized()
        header, claims = self._verified(token)
        record = self.key_record(str(header["kid"]))
        if record is None:
            raise _unauthorized()
        now_s = self.server_time_ms() / 1000
        nbf, exp = claims.get("nbf"), claims.get("exp")
        if not (
            claims.get("sub") == record.key.api_key
            and claims.get("iss") in ISSUERS
            and isinstance(nbf, int)
            and isinstance(exp, int)
            and nbf <= now_s < exp
            and exp - nbf <= TOKEN_LIFETIME_S
            and self._uri_matches(claims.get("uri"), request)
        ):
            raise _unauthorized()
        if record.revoked or (
            record.permissions.ip_restricted and request.remote not in record.trusted_ips
        ):
            raise _unauthorized()
        if not self.authorize(record, request, needs):
            raise coinbase_error(403, "unknown", "Missing required scopes")
        return record

    def _verified(self, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """Header and claims of an ES256 token signed by an issued key, else 401."""
        try:
            header_b64, claims_b64, signature_b64 = token.split(".")
            header = json.loads(_b64url(header_b64))
            claims = json.loads(_b64url(claims_b64))
            signature = _b64url(signature_b64)
        except (ValueError, binascii.Error):
            raise _unauthorized() from None
        if not (isinstance(header, dict) and isinstance(claims, dict)):
            raise _unauthorized()
        public_key = self._public_keys.get(str(header.get("kid")))
        if header.get("alg") != "ES256" or public_key is None or len(signature) != 64:
            raise _unauthorized()
        der = encode_dss_signature(
            int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        )
        try:
            public_key.verify(der, f"{header_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise _unauthorized() from None
        return header, claims

    @staticmethod
    def _uri_matches(uri: object, request: web.Request) -> bool:
        """``uri`` names this request: same method, this server's host, same path, no query."""
        if not isinstance(uri, str):
            return False
        method, _, target = uri.partition(" ")
        target = target.removeprefix("https://").removeprefix("http://")
        host, slash, path = target.partition("/")
        raw_path = request.raw_path.partition("?")[0]
        return method == request.method and host == request.host and slash + path == raw_path

    # ----- errors ----------------------------------------------------------------------------

    def fault(self, status: int) -> VenueError:
        if status == 429:
            return VenueError(
                429, {"errors": [{"id": "rate_limit_exceeded", "message": "Too many requests"}]}
            )
        if status in {502, 503, 504}:
            # The edge answers these itself, in plain text, before the API sees the request.
            return VenueError(status, HTTPStatus(status).phrase + "\n", content_type="text/plain")
        return VenueError(
            status, {"errors": [{"id": "internal_server_error", "message": "Internal error"}]}
        )

    def not_found(self, request: web.Request) -> VenueError:
        return VenueError(404, "404 page not found\n", content_type="text/plain")

    # ----- public endpoints ------------------------------------------------------------------

    async def _v2_time(self, request: web.Request) -> dict[str, Any]:
        now = self.server_time_ms()
        return {"data": {"iso": _iso(now)[:-5] + "Z", "epoch": now // 1000}}

    async def _v3_time(self, request: web.Request) -> dict[str, str]:
        now = self.server_time_ms()
        return {"iso": _iso(now), "epochSeconds": str(now // 1000), "epochMillis": str(now)}

    async def _fiat_currencies(self, request: web.Request) -> dict[str, Any]:
        return {
            "data": [
                {"id": code, "name": name, "min_size": min_size}
                for code, (name, min_size) in FIAT.items()
            ]
        }

    async def _crypto_currencies(self, request: web.Request) -> dict[str, Any]:
        return {
            "data": [
                crypto.info(code, 100 + index)
                for index, (code, crypto) in enumerate(CRYPTO.items())
            ]
        }

    def _usd_value(self, asset: str) -> Decimal:
        """One unit of ``asset`` in USD, from the demo markets."""
        if asset == "USD":
            return Decimal(1)
        stats = self.prices.get(f"{asset}/USD") or self.prices.get(f"{asset}/USDT")
        return stats.last if stats else Decimal(0)

    async def _exchange_rates(self, request: web.Request) -> dict[str, Any]:
        """How much of each currency one ``currency`` (USD by default) buys."""
        base = request.query.get("currency", "USD").upper()
        base_usd = self._usd_value(base)
        if not base_usd:
            raise VenueError(
                400, {"errors": [{"id": "invalid_request", "message": "Invalid currency"}]}
            )
        rates = {
            code: plain((base_usd / usd).quantize(Decimal("1e-16")))
            for code in ("USD", *CRYPTO)
            if (usd := self._usd_value(code))
        }
        return {"data": {"currency": base, "rates": rates}}

    def _product(self, product_id: str) -> Product:
        product = self._products_by_id.get(product_id)
        if product is None:
            raise coinbase_error(404, "NOT_FOUND", f"ProductID {product_id} could not be found")
        return product

    async def _products(self, request: web.Request) -> dict[str, Any]:
        """Spot products; ``product_type=FUTURE`` lists none (no futures on this demo venue)."""
        if request.query.get("product_type", "SPOT") != "SPOT":
            return {"products": [], "num_products": 0}
        wanted = request.query.getall("product_ids", [])
        products = [self._product(pid) for pid in wanted] if wanted else list(self.products)
        entries = [self._product_info(product) for product in products]
        return {"products": entries, "num_products": len(entries)}

    def _product_info(self, product: Product) -> dict[str, Any]:
        stats = self.prices[product.symbol]
        change = (stats.last - stats.open) / stats.open * 100
        base, quote = CRYPTO[product.base], CRYPTO.get(product.quote)
        return {
            "product_id": product.id,
            "price": product.price(stats.last),
            "price_percentage_change_24h": plain(change.quantize(Decimal("1e-12"))),
            "volume_24h": plain(stats.volume),
            "volume_percentage_change_24h": "0",
            "base_increment": product.base_increment,
            "quote_increment": product.price_increment,
            "quote_min_size": plain(QUOTE_MIN_SIZE),
            "quote_max_size": "150000000",
            "base_min_size": plain(product.rules().min_amount),
            "base_max_size": "3400",
            "base_name": base.name,
            "quote_name": quote.name if quote else FIAT[product.quote][0],
            "watched": False,
            "is_disabled": False,
            "new": False,
            "status": "online",
            "cancel_only": False,
            "limit_only": False,
            "post_only": False,
            "trading_disabled": False,
            "auction_mode": False,
            "product_type": "SPOT",
            "quote_currency_id": product.quote,
            "base_currency_id": product.base,
            "fcm_trading_session_details": None,
            "mid_market_price": "",
            "alias": "",
            "alias_to": [],
            "base_display_symbol": product.base,
            "quote_display_symbol": product.quote,
            "view_only": False,
            "price_increment": product.price_increment,
            "display_name": product.id,
            "product_venue": "CBE",
            "approximate_quote_24h_volume": plain(stats.quote_volume.quantize(Decimal("0.01"))),
        }

    async def _ticker(self, request: web.Request) -> dict[str, Any]:
        product = self._product(request.match_info["product_id"])
        stats = self.prices[product.symbol]
        step = Decimal(product.price_increment)
        ask = stats.last.quantize(step)
        now = self.server_time_ms()
        return {
            "trades": [
                {
                    "trade_id": str(600_000_000 + stats.trades),
                    "product_id": product.id,
                    "price": product.price(stats.last),
                    "size": "0.01",
                    "time": _iso(now),
                    "side": "BUY",
                    "bid": "",
                    "ask": "",
                }
            ],
            "best_bid": product.price(ask - step),
            "best_ask": product.price(ask),
        }

    async def _product_book(self, request: web.Request) -> dict[str, Any]:
        """The book orders fill against, ``limit`` levels a side."""
        product = self._product(request.query.get("product_id", ""))
        depth = bounded_int(
            request.query, "limit", default=BOOK_DEPTH, high=BOOK_DEPTH, invalid=_invalid
        )
        book = self.order_book(product.symbol, depth)
        best_bid, best_ask = book.bids[0].price, book.asks[0].price
        spread = best_ask - best_bid
        mid = (best_bid + best_ask) / 2
        return {
            "pricebook": {
                "product_id": product.id,
                "bids": [{"price": plain(lv.price), "size": plain(lv.amount)} for lv in book.bids],
                "asks": [{"price": plain(lv.price), "size": plain(lv.amount)} for lv in book.asks],
                "time": _iso_micro(self.server_time_ms()),
            },
            "last": product.price(self.prices[product.symbol].last),
            "mid_market": plain(mid),
            "spread_bps": plain((spread / mid * 10_000).quantize(Decimal("0.0001"))),
            "spread_absolute": plain(spread),
        }

    # ----- signed endpoints ------------------------------------------------------------------

    async def _key_permissions(self, request: web.Request, record: KeyRecord) -> dict[str, Any]:
        """Transfer is CDP's one switch for sending funds off the account (withdraw included)."""
        flags = record.permissions
        return {
            "can_view": flags.read,
            "can_trade": flags.spot_trade or flags.futures_trade,
            "can_transfer": flags.withdraw or flags.internal_transfer,
            "portfolio_uuid": self.portfolio_uuid(record.account.name),
            "portfolio_type": "DEFAULT",
        }

    async def _transaction_summary(self, request: web.Request, record: KeyRecord) -> dict[str, Any]:
        return {
            "total_volume": 0,
            "total_fees": 0,
            "fee_tier": {
                "pricing_tier": "Advanced 1",
                "usd_from": "0",
                "usd_to": "1000",
                "taker_fee_rate": "0.012",
                "maker_fee_rate": "0.006",
                "aop_from": "",
                "aop_to": "",
            },
            "margin_rate": None,
            "goods_and_services_tax": None,
            "advanced_trade_only_volume": 0,
            "advanced_trade_only_fees": 0,
            "coinbase_pro_volume": 0,
            "coinbase_pro_fees": 0,
            "total_balance": "",
            "has_promo_fee": False,
        }

    async def _accounts(self, request: web.Request, record: KeyRecord) -> dict[str, Any]:
        """One wallet per currency (held or listed) plus the USD fiat account, paged by cursor."""
        try:
            limit = max(1, min(250, int(request.query.get("limit", "49"))))
            start = int(request.query.get("cursor") or 0)
        except ValueError:
            raise coinbase_error(400, "INVALID_ARGUMENT", "invalid limit or cursor") from None
        held = record.account.balances
        assets = ["USD", *sorted(set(CRYPTO) | set(held) - {"USD"})]
        page = assets[start : start + limit]
        following = start + len(page)
        return {
            "accounts": [self._wallet(record, asset, held.get(asset)) for asset in page],
            "has_next": following < len(assets),
            "cursor": str(following) if following < len(assets) else "",
            "size": len(page),
        }

    def _wallet(self, record: KeyRecord, asset: str, balance: Balance | None) -> dict[str, Any]:
        held = balance or Balance(Decimal(0))
        created = _iso(record.created_ms)
        return {
            "uuid": str(uuid.uuid5(_NAMESPACE, f"wallet/{record.account.name}/{asset}")),
            "name": "Cash (USD)" if asset == "USD" else f"{asset} Wallet",
            "currency": asset,
            "available_balance": {"value": f"{held.free:.16f}", "currency": asset},
            "default": asset == "USD",
            "active": True,
            "created_at": created,
            "updated_at": _iso(record.account.updated_ms),
            "deleted_at": None,
            "type": "ACCOUNT_TYPE_FIAT" if asset in FIAT else "ACCOUNT_TYPE_CRYPTO",
            "ready": True,
            "hold": {"value": f"{held.used:.16f}", "currency": asset},
            "retail_portfolio_id": self.portfolio_uuid(record.account.name),
            "platform": "ACCOUNT_PLATFORM_CONSUMER",
        }

    # ----- orders and fills ------------------------------------------------------------------

    def _wanted_symbols(self, request: web.Request) -> set[str]:
        """Markets named by ``product_ids`` (or the older single ``product_id``); none = all."""
        ids = request.query.getall("product_ids", []) + request.query.getall("product_id", [])
        return {self._product(product_id).symbol for product_id in ids}

    def _query(self, request: web.Request, since: str, until: str) -> Query:
        """A time window (named ``since`` and ``until``, in RFC 3339), cursor and page size."""
        params = request.query
        default, high = PAGE_LIMIT
        return Query(
            since_ms=_rfc3339_ms(params, since),
            until_ms=_rfc3339_ms(params, until),
            cursor=params.get("cursor"),
            limit=bounded_int(params, "limit", default=default, high=high, invalid=_invalid),
        )

    async def _orders(self, request: web.Request, record: KeyRecord) -> dict[str, Any]:
        """Orders newest first, narrowed by ``order_status`` and products, paged by cursor."""
        statuses = set(request.query.getall("order_status", []))
        symbols = self._wanted_symbols(request)
        page = self._query(request, "start_date", "end_date").page(
            order
            for order in record.account.orders.values()
            if (not statuses or _ORDER_STATUS[order.state] in statuses)
            and (not symbols or order.symbol in symbols)
        )
        return {
            "orders": [self._order_entry(record, order) for order in page.items],
            "sequence": "0",
            "has_next": page.cursor is not None,
            "cursor": page.cursor or "",
        }

    async def _fills(self, request: web.Request, record: KeyRecord) -> dict[str, Any]:
        """Fills newest first, narrowed by products, orders and sequence time, paged by cursor."""
        symbols = self._wanted_symbols(request)
        order_ids = set(
            request.query.getall("order_ids", []) + request.query.getall("order_id", [])
        )
        query = self._query(request, "start_sequence_timestamp", "end_sequence_timestamp")
        page = query.page(
            trade
            for trade in record.account.trades
            if (not symbols or trade.symbol in symbols)
            and (not order_ids or trade.order_id in order_ids)
        )
        return {
            "fills": [self._fill_entry(record, trade) for trade in page.items],
            "cursor": page.cursor or "",
        }

    async def _create_order(self, request: web.Request, record: KeyRecord) -> dict[str, Any]:
        """A spot order from its ``order_configuration``; the answer names it only, so a client
        learns how it went from the order endpoints."""
        body = await _json_body(request)
        client_id = body.get("client_order_id")
        if not isinstance(client_id, str) or not client_id:
            raise _invalid("client_order_id")
        side = body.get("side")
        if side not in ("BUY", "SELL"):
            raise _invalid("side")
        configuration = body.get("order_configuration")
        if not isinstance(configuration, dict) or len(configuration) != 1:
            raise _invalid("order_configuration")
        product = self._products_by_id.get(str(body.get("product_id")))
        if product is None:
            return _order_failure(_ORDER_FAILURES[RejectReason.UNKNOWN_MARKET], configuration)
        try:
            order = self._place(record, product, side, configuration, client_id)
        except OrderRejected as rejected:
            return _order_failure(_ORDER_FAILURES[rejected.reason], configuration)
        except _Unsupported:
            return _order_failure(_UNSUPPORTED, configuration)
        return {
            "success": True,
            "failure_reason": "UNKNOWN_FAILURE_REASON",
            "order_id": order.id,
            "success_response": {
                "order_id": order.id,
                "product_id": product.id,
                "side": order.side.upper(),
                "client_order_id": order.client_order_id,
            },
            "order_configuration": configuration,
        }

    def _place(
        self,
        record: KeyRecord,
        product: Product,
        side: str,
        configuration: Mapping[str, Any],
        client_id: str,
    ) -> DemoOrder:
        """Place what one ``order_configuration`` entry describes: OrderRejected if the engine
        refuses it, _Unsupported for shapes this demo venue does not trade."""
        [(shape, details)] = configuration.items()
        if not isinstance(details, dict) or details.get("post_only") is True:
            raise _Unsupported(shape)
        order_side: Side = "buy" if side == "BUY" else "sell"
        if shape == "market_market_ioc":
            if "quote_size" in details and order_side == "buy":
                # ccxt sends spot market buys as the quote to spend.
                book, step = self.order_book(product.symbol), product.rules().amount_step
                amount = amount_for_funds(book, _size(details, "quote_size"), step)
            else:
                amount = _size(details, "base_size")
            return self.place_order(
                record.account.name,
                product.symbol,
                order_side,
                amount,
                kind="market",
                client_order_id=client_id,
            )
        time_in_force = _LIMIT_CONFIGURATIONS.get(shape)
        if time_in_force is None:
            raise _Unsupported(shape)
        return self.place_order(
            record.account.name,
            product.symbol,
            order_side,
            _size(details, "base_size"),
            _size(details, "limit_price"),
            time_in_force=time_in_force,
            client_order_id=client_id,
        )

    async def _cancel_orders(self, request: web.Request, record: KeyRecord) -> dict[str, Any]:
        """Cancel each of ``order_ids``; every id gets its own result."""
        body = await _json_body(request)
        ids = body.get("order_ids")
        if not isinstance(ids, list) or not ids:
            raise _invalid("order_ids")
        return {"results": [self._cancel_one(record, str(order_id)) for order_id in ids]}

    def _cancel_one(self, record: KeyRecord, order_id: str) -> dict[str, Any]:
        order = self.find_order(record.account.name, order_id=order_id)
        if order is None:
            reason = "UNKNOWN_CANCEL_ORDER"
        elif order.status == "closed":
            reason = "ORDER_IS_FULLY_FILLED"
        elif order.status == "canceled":
            reason = "DUPLICATE_CANCEL_REQUEST"
        else:
            self.cancel_order(record.account.name, order.id)
            reason = "UNKNOWN_CANCEL_FAILURE_REASON"
        return {
            "success": reason == "UNKNOWN_CANCEL_FAILURE_REASON",
            "failure_reason": reason,
            "order_id": order_id,
        }

    async def _order(self, request: web.Request, record: KeyRecord) -> dict[str, Any]:
        """One order by its id, open or done."""
        order = self.find_order(record.account.name, order_id=request.match_info["order_id"])
        if order is None:
            raise coinbase_error(404, "NOT_FOUND", "order with this orderID was not found")
        return {"order": self._order_entry(record, order)}

    def _user_id(self, record: KeyRecord) -> str:
        return str(uuid.uuid5(_NAMESPACE, "user/" + record.account.name))

    def _order_entry(self, record: KeyRecord, order: DemoOrder) -> dict[str, Any]:
        product = self._products_by_symbol[order.symbol]
        fee, filled_value = order.fee, order.cost  # fees are in the quote on Coinbase
        return {
            "order_id": order.id,
            "product_id": product.id,
            "user_id": self._user_id(record),
            "order_configuration": _configuration(order),
            "side": order.side.upper(),
            "client_order_id": order.client_order_id,
            "status": _ORDER_STATUS[order.state],
            "time_in_force": _TIME_IN_FORCE_NAMES[order.time_in_force],
            "created_time": _iso_micro(order.created_ms),
            "completion_percentage": f"{order.filled / order.amount * 100:.2f}",
            "filled_size": plain(order.filled),
            "average_filled_price": plain(order.average),
            "fee": "",
            "number_of_fills": str(sum(1 for t in record.account.trades if t.order_id == order.id)),
            "filled_value": plain(filled_value),
            "pending_cancel": False,
            "size_in_quote": False,
            "total_fees": plain(fee),
            "size_inclusive_of_fees": False,
            "total_value_after_fees": plain(
                filled_value + fee if order.side == "buy" else filled_value - fee
            ),
            "trigger_status": "INVALID_ORDER_TYPE",
            "order_type": order.type.upper(),
            "reject_reason": "REJECT_REASON_UNSPECIFIED",
            "settled": order.status != "open",
            "product_type": "SPOT",
            "reject_message": "",
            "cancel_message": "",
            "order_placement_source": "RETAIL_ADVANCED",
            "outstanding_hold_amount": plain(self.hold_of(order)[1]),
            "is_liquidation": False,
            "last_fill_time": _iso(order.updated_ms) if order.filled else None,
            "edit_history": [],
            "leverage": "",
            "margin_type": "UNKNOWN_MARGIN_TYPE",
            "retail_portfolio_id": self.portfolio_uuid(record.account.name),
        }

    def _fill_entry(self, record: KeyRecord, trade: DemoTrade) -> dict[str, Any]:
        return {
            "entry_id": hashlib.sha256(trade.id.encode()).hexdigest(),
            "trade_id": trade.id,
            "order_id": trade.order_id,
            "trade_time": _iso(trade.time_ms),
            "trade_type": "FILL",
            "price": plain(trade.price),
            "size": plain(trade.amount),
            "commission": plain(trade.fee),
            "product_id": self._products_by_symbol[trade.symbol].id,
            "sequence_timestamp": _iso_micro(trade.time_ms),
            "liquidity_indicator": "TAKER" if trade.taker else "MAKER",
            "size_in_quote": False,
            "user_id": self._user_id(record),
            "side": trade.side.upper(),
            "retail_portfolio_id": self.portfolio_uuid(record.account.name),
        }


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.text() or "{}")
    except ValueError:
        raise coinbase_error(400, "INVALID_ARGUMENT", "invalid request body") from None
    if not isinstance(body, dict):
        raise coinbase_error(400, "INVALID_ARGUMENT", "invalid request body")
    return body


def _size(details: Mapping[str, Any], name: str) -> Decimal:
    """A decimal string of an ``order_configuration`` entry (``base_size``, ``limit_price``)."""
    try:
        value = Decimal(str(details[name]))
    except (KeyError, ArithmeticError):
        raise _invalid(name) from None
    if not value.is_finite():
        raise _invalid(name)
    return value


class _Unsupported(Exception):
    """An ``order_configuration`` this demo venue does not trade (stop, GTD, post-only): it is
    refused as Coinbase refuses one a product does not support."""


_UNSUPPORTED = (
    "UNSUPPORTED_ORDER_CONFIGURATION",
    "Order configuration is not supported",
    "PREVIEW_INVALID_ORDER_CONFIG",
)


#: Coinbase's ``error_response`` for each way the engine refuses an order: (``error``,
#: ``message``, ``preview_failure_reason``). ccxt raises InsufficientFunds for
#: PREVIEW_INSUFFICIENT_FUND and a plain ExchangeError for every other reason.
_ORDER_FAILURES: Mapping[RejectReason, tuple[str, str, str]] = {
    RejectReason.UNKNOWN_MARKET: (
        "INVALID_PRODUCT_ID",
        "Product ID is invalid",
        "PREVIEW_INVALID_PRODUCT_ID",
    ),
    RejectReason.BAD_ORDER: (
        "INVALID_REQUEST",
        "Order size and limit price must be positive",
        "UNKNOWN_PREVIEW_FAILURE_REASON",
    ),
    RejectReason.AMOUNT_STEP: (
        "INVALID_SIZE_PRECISION",
        "Too many decimals in order amount",
        "PREVIEW_INVALID_SIZE_PRECISION",
    ),
    RejectReason.PRICE_TICK: (
        "INVALID_PRICE_PRECISION",
        "Too many decimals in order price",
        "PREVIEW_INVALID_PRICE_PRECISION",
    ),
    RejectReason.MIN_AMOUNT: (
        "UNKNOWN_FAILURE_REASON",
        "Order size is too small",
        "PREVIEW_INVALID_BASE_SIZE_TOO_SMALL",
    ),
    RejectReason.MIN_NOTIONAL: (
        "UNKNOWN_FAILURE_REASON",
        "Order value is too small",
        "PREVIEW_INVALID_QUOTE_SIZE_TOO_SMALL",
    ),
    RejectReason.INSUFFICIENT_FUNDS: (
        "INSUFFICIENT_FUND",
        "Insufficient balance in source account",
        "PREVIEW_INSUFFICIENT_FUND",
    ),
    # Coinbase answers a reused client_order_id with the earlier order instead.
    RejectReason.DUPLICATE_CLIENT_ID: (
        "UNKNOWN_FAILURE_REASON",
        "Duplicate client_order_id",
        "UNKNOWN_PREVIEW_FAILURE_REASON",
    ),
}


def _order_failure(
    failure: tuple[str, str, str], configuration: Mapping[str, Any]
) -> dict[str, Any]:
    """A refused order: HTTP 200 and ``success: false``, as Coinbase answers it."""
    error, message, preview = failure
    return {
        "success": False,
        "failure_reason": "UNKNOWN_FAILURE_REASON",
        "order_id": "",
        "error_response": {
            "error": error,
            "message": message,
            "error_details": message,
            "preview_failure_reason": preview,
            "new_order_failure_reason": error,
        },
        "order_configuration": configuration,
    }


def _configuration(order: DemoOrder) -> dict[str, Any]:
    """The ``order_configuration`` an order was placed with (market orders by base size)."""
    size = plain(order.amount)
    if order.type == "market":
        return {"market_market_ioc": {"base_size": size}}
    shape = next(name for name, tif in _LIMIT_CONFIGURATIONS.items() if tif == order.time_in_force)
    details: dict[str, Any] = {"base_size": size, "limit_price": plain(order.price)}
    if order.time_in_force == "GTC":
        details["post_only"] = False
    return {shape: details}
