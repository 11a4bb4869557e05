"""Where the local venue servers differ: one ``VenueCase`` row per venue of ``SERVERS``.

``test_venue_contract.py`` runs one suite over these rows; what a venue alone has (its signature
scheme, its malformed-request codes, its quirks) lives in its own ``test_<venue>_server.py``.
Each row records what the venue answers and which ccxt error the bot meets, so a new venue is a
new row here, not a new copy of the suite.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import ccxt.async_support as ccxt

from bot.exchanges.permissions import PermissionSummary
from bot.sandbox.exchanges import SERVERS, DemoPermissions, VenueServer

Facts = Mapping[str, object]
#: Requests ("GET /path") in order; a frozenset is a group the client makes at once.
Calls = tuple[str | frozenset[str], ...]

#: A key as the user should make it for Binance USDⓈ-M: reading plus "Enable Futures".
FUTURES_KEY = DemoPermissions(futures_trade=True)

READ_ONLY = DemoPermissions()
WITHDRAWS = DemoPermissions(withdraw=True, ip_restricted=True)
TRANSFERS = DemoPermissions(internal_transfer=True)
TRADES_AND_MOVES = DemoPermissions(spot_trade=True, withdraw=True, internal_transfer=True)
#: Where each permission that moves funds out shows in the summary of its own.
EVERY_MOVER = (
    (WITHDRAWS, ("withdraw",)),
    (TRANSFERS, ("transfer_out",)),
    (TRADES_AND_MOVES, ("withdraw", "transfer_out")),
)


def probe_rows(names: str, *table: tuple[Any, ...]) -> tuple[tuple[DemoPermissions, Facts], ...]:
    """Probe expectations as a table: each row a key's permissions, then the named facts."""
    fields = names.split()
    return tuple(
        (permissions, dict(zip(fields, values, strict=True))) for permissions, *values in table
    )


def describe(permissions: DemoPermissions) -> str:
    """A test id for a key's permissions: "spot_trade+ip_restricted", "no-read+spot_trade"."""
    on = [name for name, value in vars(permissions).items() if value and name != "read"]
    return "+".join(on if permissions.read else ["no-read", *on]) or "read-only"


def facts(summary: PermissionSummary) -> dict[str, object]:
    """A probe's summary as plain facts; ``expires`` is whether the key has an end date."""
    return {
        **vars(summary),
        "can_trade": summary.can_trade,
        "can_move_funds_out": summary.can_move_funds_out,
        "expires": summary.expires_at is not None,
    }


def picked(actual: Mapping[str, object], wanted: Facts) -> dict[str, object]:
    """The fields of ``actual`` that ``wanted`` names, to compare with it."""
    return {name: actual.get(name) for name in wanted}


def holds(actual: Any, expected: Any) -> bool:
    """Whether ``actual`` has every field of ``expected`` (recursively for mappings)."""
    if isinstance(expected, Mapping):
        return isinstance(actual, Mapping) and all(
            name in actual and holds(actual[name], value) for name, value in expected.items()
        )
    return bool(actual == expected)


@dataclass(frozen=True)
class Refusal:
    """How the venue refuses a call: exactly ``error`` from ccxt with ``code`` in its message,
    and the HTTP status of the refused request. For the bot's key check, ``message`` starts the
    diagnosis's exchange message and ``suspect`` is the pasted value it blames (None: unpinned).
    """

    error: type[ccxt.BaseError]
    code: str
    status: int | None = None
    message: str | None = None
    suspect: str | None = None


@dataclass(frozen=True)
class Fault:
    """An injected failure (``body`` None: the venue's own fault body) and ccxt's error for it."""

    status: int
    error: type[ccxt.BaseError]
    body: str | None = None


@dataclass(frozen=True)
class Answer:
    """A raw answer: the request ("GET /path?query"), its status, content type and body (a
    mapping: these JSON fields; a string: text the body contains)."""

    request: str
    status: int
    body: Mapping[str, Any] | str
    content_type: str = "application/json"


@dataclass(frozen=True)
class UnknownPair:
    """A pair the venue does not list, asked raw and through ccxt's implicit ``method``."""

    answer: Answer
    method: str
    params: Mapping[str, str]
    error: type[ccxt.BaseError]


@dataclass(frozen=True)
class RateLimited:
    """A 429's body fields and, where the venue sends one, a header of seconds or ms to wait."""

    body: Mapping[str, Any]
    header: str | None = None
    at_most: int = 0


@dataclass(frozen=True)
class Skew:
    """Clock offsets (server minus client, ms) the venue refuses, and its code for that."""

    offsets: tuple[int, ...]
    code: str


@dataclass(frozen=True)
class Sandbox:
    """Test mode: ``issue_key`` flags for a key that works there, how the ccxt client shows the
    switch, the paths a probe and a balance read call, and the probe's facts. ``wrong_mode``:
    how a test-mode key in live mode, and a live key in test mode, are refused (None: the venue
    takes live keys in test mode)."""

    key: Mapping[str, Any]
    switched: Callable[[ccxt.Exchange], object]
    calls: Calls
    facts: Facts
    wrong_mode: Refusal | None = None


@dataclass(frozen=True)
class VenueCase:
    id: str
    #: The unified symbols the server lists (what ``load_markets`` must return).
    listed: Callable[[Any], set[str]]
    #: The key check's calls for a read key.
    check_calls: Calls
    #: ``fetch_time``'s path, which ``load_time_difference`` also calls.
    time_path: str
    probes: tuple[tuple[DemoPermissions, Facts], ...]
    #: Keys the check refuses after the probe alone, and the summary flags that say why.
    movers: tuple[tuple[DemoPermissions, tuple[str, ...]], ...]
    wrong_secret: Refusal
    unknown_key: Refusal  # also a revoked key
    untrusted_ip: Refusal
    no_read: Refusal  # DemoPermissions(read=False, spot_trade=True)
    faults: tuple[Fault, ...]
    rate_limited: RateLimited
    not_found: Answer
    unknown_pair: UnknownPair
    read_key: DemoPermissions = READ_ONLY
    #: The key the check contract uses, where it is not ``read_key``, and what its check says.
    check_key: DemoPermissions | None = None
    check_facts: Facts = field(default_factory=dict)
    eth: str = "ETH/USDT"
    every_market: Facts = field(default_factory=lambda: {"spot": True, "active": True})
    market_facts: Mapping[str, Facts] = field(default_factory=dict)
    quotes_book_in_ticker: bool = True
    reports_ip: bool = True  # False: the probe's ip_restricted is None
    probe_needs_read: bool = True
    wrong_passphrase: Refusal | None = None
    #: What a key revoked under a client that already made a good private call raises.
    revoked_in_use: type[ccxt.BaseError] = ccxt.AuthenticationError
    skew: Skew | None = None
    #: Paths ``fetch_currencies`` calls, for venues whose list carries deposit networks.
    currencies: tuple[str, ...] | None = None
    sandbox: Sandbox | None = None


def _symbols(items: Any) -> set[str]:
    return {item.symbol for item in items}


BINANCE_FAULTS = (
    Fault(429, ccxt.DDoSProtection),  # not RateLimitExceeded: binance maps 418/429 first
    Fault(418, ccxt.DDoSProtection),
    Fault(500, ccxt.OperationFailed),  # -1000; not a NetworkError subclass
)
BINANCE_HTML_404 = "<h3>404 Not Found</h3>"

BINANCE = VenueCase(
    id="binance",
    listed=lambda server: _symbols(server.markets),
    check_calls=(
        "GET /sapi/v1/account/apiRestrictions",
        "GET /api/v3/exchangeInfo",  # one public call: no currencies, no margin pairs
        "GET /api/v3/account",
    ),
    time_path="/api/v3/time",
    probes=probe_rows(
        "spot_trade can_move_funds_out expires",
        (DemoPermissions(), False, False, False),
        (DemoPermissions(spot_trade=True), True, False, True),
        (DemoPermissions(spot_trade=True, ip_restricted=True), True, False, False),
        (WITHDRAWS, False, True, False),
        (TRANSFERS, False, True, False),
    ),
    movers=EVERY_MOVER,
    wrong_secret=Refusal(
        ccxt.AuthenticationError, "-1022", 400, "Signature for this request is not valid.", "secret"
    ),
    # USDⓈ-M's balance read adds ", request ip: 127.0.0.1" to the message.
    unknown_key=Refusal(
        ccxt.AuthenticationError,
        "-2015",
        401,
        "Invalid API-key, IP, or permissions for action",
        "api_key",
    ),
    untrusted_ip=Refusal(ccxt.AuthenticationError, "-2015", 401),
    no_read=Refusal(ccxt.AuthenticationError, "-2015", 401),
    # ccxt quirk: after one good private call, binance turns -2015 into DDoSProtection.
    revoked_in_use=ccxt.DDoSProtection,
    skew=Skew((30_000, -5_000), "-1021"),  # past recvWindow (ccxt: 10 s), or 1 s ahead
    faults=(
        *BINANCE_FAULTS,
        Fault(503, ccxt.OnMaintenance),
        Fault(503, ccxt.ExchangeNotAvailable, "Service Unavailable"),
    ),
    rate_limited=RateLimited({"code": -1003}, "Retry-After", 60),
    not_found=Answer("GET /api/v3/allOrderList", 404, BINANCE_HTML_404, "text/html"),
    unknown_pair=UnknownPair(
        Answer("GET /api/v3/ticker/price?symbol=BTCEUR", 400, {"code": -1121}),
        "public_get_ticker_price",
        {"symbol": "BTCEUR"},
        ccxt.BadSymbol,
    ),
)

#: Binance's futures API answers as its spot API does, but for these.
BINANCE_USDM = dataclasses.replace(
    BINANCE,
    id="binanceusdm",
    read_key=FUTURES_KEY,
    check_calls=(
        "GET /sapi/v1/account/apiRestrictions",
        "GET /fapi/v1/exchangeInfo",  # no currencies, no margin pairs
        "GET /fapi/v3/account",
    ),
    check_facts={"derivatives_trade": True, "spot_trade": False},
    time_path="/fapi/v1/time",
    eth="ETH/USDT:USDT",
    every_market={"swap": True, "linear": True, "active": True},
    market_facts={"BTC/USDT:USDT": {"settle": "USDT"}},
    quotes_book_in_ticker=False,  # fapi's 24 h ticker has no bid or ask
    probes=probe_rows(
        "spot_trade derivatives_trade can_move_funds_out expires",
        (FUTURES_KEY, False, True, False, False),
        (DemoPermissions(spot_trade=True, ip_restricted=True), True, False, False, False),
    ),
    movers=(
        (DemoPermissions(futures_trade=True, withdraw=True, ip_restricted=True), ("withdraw",)),
        (DemoPermissions(futures_trade=True, internal_transfer=True), ("transfer_out",)),
    ),
    # Unlike spot, ccxt never turns a fapi -2015 into DDoSProtection.
    revoked_in_use=ccxt.AuthenticationError,
    faults=(
        *BINANCE_FAULTS,
        Fault(503, ccxt.ExchangeNotAvailable),  # fapi's gateway body carries no code
    ),
    not_found=Answer("GET /fapi/v1/allOpenOrders", 404, BINANCE_HTML_404, "text/html"),
    unknown_pair=UnknownPair(
        Answer("GET /fapi/v1/ticker/24hr?symbol=BTCEUR", 400, {"code": -1121}),
        "fapipublic_get_ticker_24hr",
        {"symbol": "BTCEUR"},
        ccxt.BadSymbol,
    ),
    sandbox=Sandbox(
        key={},
        # ccxt has no testnet URL for the wallet API: the probe reads the account config.
        switched=lambda client: "sapi" not in client.urls["api"],
        calls=(
            "GET /fapi/v1/accountConfig",
            "GET /fapi/v1/exchangeInfo",
            "GET /fapi/v3/account",
        ),
        facts={
            "derivatives_trade": True,
            "ip_restricted": None,
            "can_move_funds_out": False,
            "withdraw_known": True,
        },
    ),
)

BITGET = VenueCase(
    id="bitget",
    listed=lambda server: _symbols(server.markets),
    check_calls=(
        "GET /api/v2/spot/account/info",  # classic account: the mode is never asked again
        frozenset(
            {
                "GET /api/v2/spot/public/coins",
                "GET /api/v2/spot/public/symbols",
                "GET /api/v2/margin/currencies",
            }
        ),
        "GET /api/v2/spot/account/assets",
    ),
    time_path="/api/v2/public/time",
    market_facts={
        "BTC/USDT": {"margin": True, "precision": {"amount": 1e-06, "price": 0.01}},
        "ADA/USDT": {"margin": False},
    },
    probes=probe_rows(
        "spot_trade derivatives_trade can_move_funds_out",
        (DemoPermissions(), False, False, False),
        (DemoPermissions(spot_trade=True, ip_restricted=True), True, False, False),
        (DemoPermissions(futures_trade=True), False, True, False),
        (WITHDRAWS, False, False, True),
        (TRANSFERS, False, False, True),
    ),
    movers=(
        (DemoPermissions(withdraw=True), ("withdraw",)),
        (TRANSFERS, ("transfer_out",)),
    ),
    wrong_secret=Refusal(ccxt.AuthenticationError, "40009", 400, "sign signature error", "secret"),
    wrong_passphrase=Refusal(
        ccxt.AuthenticationError, "40012", 400, "apikey/password is incorrect", "passphrase"
    ),
    unknown_key=Refusal(ccxt.AuthenticationError, "40037", 400, "Apikey does not exist", "api_key"),
    untrusted_ip=Refusal(ccxt.PermissionDenied, "40018", 400),
    no_read=Refusal(ccxt.PermissionDenied, "40014", 400),
    skew=Skew((45_000, -45_000), "40008"),  # Bitget allows 30 s either way
    faults=(
        Fault(429, ccxt.DDoSProtection),  # Bitget's "429" code: mapped before the status
        Fault(503, ccxt.ExchangeNotAvailable),  # the gateway's HTML page
        Fault(500, ccxt.ExchangeError),  # 40015 "System is abnormal"
    ),
    rate_limited=RateLimited({"code": "429", "msg": "Too Many Requests", "data": None}),
    not_found=Answer(
        "GET /api/v2/spot/trade/no-such-endpoint", 404, {"code": "40404", "data": None}
    ),
    unknown_pair=UnknownPair(
        Answer(
            "GET /api/v2/spot/market/tickers?symbol=BTCEUR",
            400,
            {"code": "40034", "data": None},
        ),
        "public_spot_get_v2_spot_market_tickers",
        {"symbol": "BTCEUR"},
        ccxt.ExchangeError,
    ),
    currencies=("/api/v2/spot/public/coins",),
    sandbox=Sandbox(
        key={"demo": True},
        # ccxt's sandbox adds the PAPTRADING: 1 header on the live host.
        switched=lambda client: client.options["sandboxMode"],
        calls=(
            "GET /api/v2/spot/account/info",
            frozenset(
                {
                    "GET /api/v2/spot/public/coins",
                    "GET /api/v2/spot/public/symbols",
                    "GET /api/v2/margin/currencies",
                }
            ),
            "GET /api/v2/spot/account/assets",
        ),
        facts={"spot_trade": True},
        wrong_mode=Refusal(ccxt.ExchangeError, "40099"),
    ),
)

BYBIT = VenueCase(
    id="bybit",
    listed=lambda server: _symbols(server.instruments),
    check_calls=(
        # The probe tells ccxt the account is unified: the balance read does not ask again.
        "GET /v5/user/query-api",
        "GET /v5/market/instruments-info",
        "GET /v5/account/wallet-balance",
    ),
    check_facts={"can_trade": False, "expires": True},  # no IP bound: 90 days
    time_path="/v5/market/time",
    probes=probe_rows(
        "spot_trade derivatives_trade can_move_funds_out expires",
        (DemoPermissions(), False, False, False, True),  # no IP bound: 90 days
        (DemoPermissions(spot_trade=True), True, False, False, True),
        (DemoPermissions(futures_trade=True, ip_restricted=True), False, True, False, False),
    ),
    movers=EVERY_MOVER,
    wrong_secret=Refusal(ccxt.AuthenticationError, "10004", 200, "Error sign", "secret"),
    unknown_key=Refusal(ccxt.AuthenticationError, "10003", 401, "API key is invalid", "api_key"),
    untrusted_ip=Refusal(ccxt.PermissionDenied, "10010", 200),
    no_read=Refusal(ccxt.PermissionDenied, "10005", 200),
    skew=Skew((30_000, -5_000), "10002"),  # past recv_window (ccxt: 5 s), or 1 s ahead
    faults=(
        Fault(429, ccxt.RateLimitExceeded),  # retCode 10006
        Fault(403, ccxt.RateLimitExceeded),  # the gateway's IP limit: a bare 403 page
        Fault(503, ccxt.ExchangeNotAvailable),
        Fault(500, ccxt.ExchangeError),  # retCode 10016
    ),
    rate_limited=RateLimited({"retCode": 10006, "retMsg": "Too many visits!"}),
    not_found=Answer("GET /v5/asset/no-such-endpoint", 404, "Not Found", "text/plain"),
    unknown_pair=UnknownPair(
        Answer(
            "GET /v5/market/tickers?category=spot&symbol=ETHBTC",
            200,
            {"retCode": 10001, "retMsg": "Not supported symbols", "result": {}},
        ),
        "public_get_v5_market_tickers",
        {"category": "spot", "symbol": "ETHBTC"},
        ccxt.BadSymbol,
    ),
    # Our catalogue skips coin info, but ccxt's default load_markets signs it with any key.
    currencies=("/v5/asset/coin/query-info",),
    sandbox=Sandbox(
        key={},
        # ccxt swaps in the api-testnet URLs; the endpoint rewrite still lands calls here.
        switched=lambda client: client.urls["test"],
        calls=(
            "GET /v5/user/query-api",
            "GET /v5/market/instruments-info",
            "GET /v5/account/wallet-balance",
        ),
        facts={"read": True},
    ),
)

COINBASE = VenueCase(
    id="coinbase",
    listed=lambda server: _symbols(server.products),
    check_calls=(
        "GET /api/v3/brokerage/key_permissions",
        "GET /v2/currencies",
        "GET /v2/currencies/crypto",
        "GET /v2/exchange-rates",
        "GET /api/v3/brokerage/market/products",  # spot
        "GET /api/v3/brokerage/transaction_summary",  # fees: signed whenever a key is set
        "GET /api/v3/brokerage/market/products",  # product_type=FUTURE, none here
        "GET /api/v3/brokerage/accounts",
    ),
    time_path="/v2/time",
    market_facts={
        # the taker fee comes from the signed transaction_summary
        "BTC/USDT": {"precision": {"amount": 1e-08, "price": 0.01}, "taker": 0.012},
    },
    reports_ip=False,
    probes=probe_rows(
        "spot_trade can_move_funds_out",
        (DemoPermissions(), False, False),
        (DemoPermissions(spot_trade=True), True, False),
    ),
    # Coinbase has one "Transfer" scope: it withdraws and transfers alike.
    movers=(
        (DemoPermissions(withdraw=True), ("withdraw", "transfer_out")),
        (TRANSFERS, ("withdraw", "transfer_out")),
    ),
    # Another key's private key: the token does not verify, and Coinbase says no more.
    wrong_secret=Refusal(ccxt.AuthenticationError, "401", 401, suspect="api_key"),
    unknown_key=Refusal(ccxt.AuthenticationError, "401", 401, suspect="api_key"),
    untrusted_ip=Refusal(ccxt.AuthenticationError, "401", 401),
    no_read=Refusal(ccxt.ExchangeError, "Missing required scopes", 403),  # "unknown": unmapped
    faults=(
        Fault(429, ccxt.RateLimitExceeded),  # {"errors": [{"id": "rate_limit_exceeded"}]}
        Fault(503, ccxt.ExchangeNotAvailable),  # the edge's plain-text answer
        Fault(500, ccxt.ExchangeError),  # internal_server_error
    ),
    rate_limited=RateLimited(
        {"errors": [{"id": "rate_limit_exceeded", "message": "Too many requests"}]}
    ),
    not_found=Answer("GET /api/v3/brokerage/portfolios", 404, "404 page not found\n", "text/plain"),
    unknown_pair=UnknownPair(
        Answer("GET /api/v3/brokerage/market/products/BTC-EUR/ticker", 404, {"error": "NOT_FOUND"}),
        "v3_public_get_brokerage_market_products_product_id_ticker",
        {"product_id": "BTC-EUR"},
        ccxt.ExchangeError,
    ),
)

KRAKEN = VenueCase(
    id="kraken",
    listed=lambda server: _symbols(server.pairs),
    check_key=DemoPermissions(ip_restricted=True),
    check_calls=(
        "POST /0/private/GetApiKeyInfo",
        "GET /0/public/Assets",
        "GET /0/public/AssetPairs",
        "POST /0/private/BalanceEx",
    ),
    check_facts={"can_trade": False},
    time_path="/0/public/Time",
    market_facts={"BTC/USD": {"id": "XXBTZUSD", "info": {"base": "XXBT"}}},
    probe_needs_read=False,  # GetApiKeyInfo needs no permission
    probes=probe_rows(
        "spot_trade derivatives_trade can_move_funds_out expires",
        (DemoPermissions(), False, False, False, False),
        (DemoPermissions(spot_trade=True), True, False, False, False),
        (DemoPermissions(spot_trade=True, ip_restricted=True), True, False, False, False),
        (DemoPermissions(read=False, spot_trade=True), True, False, False, False),
        (DemoPermissions(futures_trade=True), False, False, False, False),  # Futures keys: apart
    ),
    # Kraken needs "Withdraw Funds" to transfer out: every mover is a withdraw key.
    movers=(
        (DemoPermissions(withdraw=True), ("withdraw",)),
        (DemoPermissions(spot_trade=True, withdraw=True, ip_restricted=True), ("withdraw",)),
        (TRANSFERS, ("withdraw",)),
    ),
    # Another key's secret: Kraken calls any signature it cannot check an invalid key.
    wrong_secret=Refusal(
        ccxt.AuthenticationError, "EAPI:Invalid key", 200, "EAPI:Invalid key", "api_key"
    ),
    unknown_key=Refusal(
        ccxt.AuthenticationError, "EAPI:Invalid key", 200, "EAPI:Invalid key", "api_key"
    ),
    untrusted_ip=Refusal(ccxt.PermissionDenied, "EGeneral:Permission denied", 200),
    no_read=Refusal(ccxt.PermissionDenied, "EGeneral:Permission denied", 200),
    faults=(
        Fault(429, ccxt.DDoSProtection),  # EAPI:Rate limit exceeded
        Fault(429, ccxt.RateLimitExceeded, "<html>error code: 1015</html>"),  # the CDN's
        Fault(503, ccxt.ExchangeNotAvailable),  # EService:Unavailable
        Fault(500, ccxt.ExchangeNotAvailable),  # EGeneral:Internal error
        Fault(502, ccxt.ExchangeNotAvailable),  # the CDN's page
        Fault(520, ccxt.ExchangeNotAvailable),
    ),
    rate_limited=RateLimited({"error": ["EAPI:Rate limit exceeded"]}),
    not_found=Answer("POST /0/private/Withdraw", 404, {"error": ["EGeneral:Unknown method"]}),
    unknown_pair=UnknownPair(
        Answer(
            "GET /0/public/Ticker?pair=XBTUSDT,BTCEUR",
            200,
            {"error": ["EQuery:Unknown asset pair"]},
        ),
        "public_get_ticker",
        {"pair": "XBTUSDT,BTCEUR"},
        ccxt.ExchangeError,
    ),
)

KUCOIN = VenueCase(
    id="kucoin",
    listed=lambda server: _symbols(server.symbols),
    check_calls=(
        "GET /api/v1/user/api-key",
        # load_markets asks these at once: spot pairs, margin pairs and the HF account flag
        frozenset(
            {
                "GET /api/v2/symbols",
                "GET /api/v3/margin/symbols",
                "GET /api/v1/isolated/symbols",
                "GET /api/v1/hf/accounts/opened",
            }
        ),
        "GET /api/ua/v1/account/mode",
        "GET /api/v1/accounts",  # the HF trade account
    ),
    check_facts={"can_trade": False, "expires": False},
    time_path="/api/v1/timestamp",
    market_facts={"BTC/USDT": {"margin": True}, "DOGE/USDT": {"margin": False}},
    probes=probe_rows(
        "spot_trade derivatives_trade can_move_funds_out expires",
        (DemoPermissions(), False, False, False, False),
        (DemoPermissions(spot_trade=True), True, False, False, False),
        (DemoPermissions(futures_trade=True, ip_restricted=True), False, True, False, False),
    ),
    movers=EVERY_MOVER,
    wrong_secret=Refusal(ccxt.AuthenticationError, "400005", 401, "Invalid KC-API-SIGN", "secret"),
    wrong_passphrase=Refusal(
        ccxt.AuthenticationError, "400004", 401, "Invalid KC-API-PASSPHRASE", "passphrase"
    ),
    unknown_key=Refusal(
        ccxt.AuthenticationError, "400003", 401, "KC-API-KEY not exists", "api_key"
    ),
    untrusted_ip=Refusal(ccxt.AuthenticationError, "400006", 403),
    no_read=Refusal(ccxt.AuthenticationError, "400007", 403),
    skew=Skew((30_000, -30_000), "400002"),
    faults=(
        Fault(429, ccxt.RateLimitExceeded),  # 429000
        Fault(503, ccxt.ExchangeNotAvailable),
        Fault(500, ccxt.ExchangeNotAvailable),  # 500000
    ),
    rate_limited=RateLimited(
        {"code": "429000", "msg": "Too Many Requests"}, "gw-ratelimit-reset", 30_000
    ),
    not_found=Answer("GET /api/v1/market/histories?symbol=BTC-USDT", 404, {"code": "404000"}),
    unknown_pair=UnknownPair(
        Answer(
            "GET /api/v1/market/stats?symbol=ETH-BTC",
            400,
            {"code": "400100", "msg": "Unsupported trading pair."},
        ),
        "public_get_market_stats",
        {"symbol": "ETH-BTC"},
        ccxt.BadSymbol,
    ),
    # Our catalogue skips them; ccxt's default load_markets asks (after the account mode).
    currencies=("/api/ua/v1/account/mode", "/api/v3/currencies"),
)

OKX = VenueCase(
    id="okx",
    listed=lambda server: {i.symbol for i in server.instruments if i.info["instType"] == "SPOT"},
    check_key=DemoPermissions(ip_restricted=True),
    # Options keep market loading to SPOT; the signed currency list comes with any live key.
    check_calls=(
        "GET /api/v5/account/config",
        "GET /api/v5/asset/currencies",
        "GET /api/v5/public/instruments",
        "GET /api/v5/account/balance",
    ),
    time_path="/api/v5/public/time",
    # OKX's "trade" covers spot and derivatives alike.
    probes=probe_rows(
        "spot_trade derivatives_trade can_move_funds_out expires",
        (DemoPermissions(), False, False, False, False),
        (DemoPermissions(spot_trade=True), True, True, False, False),
        (DemoPermissions(futures_trade=True, ip_restricted=True), True, True, False, False),
        (WITHDRAWS, False, False, True, False),
        (DemoPermissions(spot_trade=True, withdraw=True), True, True, True, False),
    ),
    movers=((DemoPermissions(withdraw=True), ("withdraw",)),),
    wrong_secret=Refusal(ccxt.AuthenticationError, "50113", 401, "Invalid Sign", "secret"),
    wrong_passphrase=Refusal(
        ccxt.AuthenticationError, "50105", 401, "Request header", "passphrase"
    ),
    unknown_key=Refusal(ccxt.AuthenticationError, "50111", 401, "Invalid OK-ACCESS-KEY", "api_key"),
    untrusted_ip=Refusal(ccxt.PermissionDenied, "50110", 401),
    no_read=Refusal(ccxt.ExchangeError, "50120", 401),
    skew=Skew((45_000, -45_000), "50102"),  # OKX allows 30 s either way
    faults=(
        Fault(429, ccxt.RateLimitExceeded),  # 50011
        Fault(429, ccxt.ExchangeNotAvailable, "Too Many Requests"),  # ccxt maps a bare 429
        Fault(503, ccxt.OnMaintenance),  # 50001, an ExchangeNotAvailable
        Fault(503, ccxt.ExchangeNotAvailable, "Service Unavailable"),
        Fault(500, ccxt.ExchangeNotAvailable),  # 50026
    ),
    rate_limited=RateLimited({"code": "50011", "msg": "Too Many Requests"}),
    not_found=Answer("GET /api/v5/asset/no-such-endpoint", 404, "Not Found", "text/plain"),
    unknown_pair=UnknownPair(
        Answer("GET /api/v5/market/ticker?instId=BTC-EUR", 200, {"code": "51001"}),
        "public_get_market_ticker",
        {"instId": "BTC-EUR"},
        ccxt.BadSymbol,
    ),
    currencies=("/api/v5/asset/currencies",),
    sandbox=Sandbox(
        key={"demo_trading": True},
        switched=lambda client: client.headers["x-simulated-trading"] == "1",
        # ccxt skips the currency list in demo trading: one public call loads the markets.
        calls=(
            "GET /api/v5/account/config",
            "GET /api/v5/public/instruments",
            "GET /api/v5/account/balance",
        ),
        facts={"spot_trade": True},
        wrong_mode=Refusal(ccxt.AuthenticationError, "50101"),
    ),
)

CASES: tuple[VenueCase, ...] = (BINANCE, BINANCE_USDM, BITGET, BYBIT, COINBASE, KRAKEN, KUCOIN, OKX)

CASE = {case.id: case for case in CASES}


def server_for(case: VenueCase) -> VenueServer:
    """A new (not started) server for the case's venue."""
    return SERVERS[case.id]()
