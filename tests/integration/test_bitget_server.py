"""The local Bitget server through real ccxt over HTTP: what key checks and sweeps will meet."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import random
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from functools import partial
from urllib.parse import quote

import aiohttp
import ccxt.async_support as ccxt
import pytest

from bot.clock import utc_now
from bot.exchanges.catalogue import get_venue
from bot.exchanges.key_check import KeyAccepted, KeyCheck, KeyRefused, KeyRejected, check_key
from bot.sandbox.exchanges import DemoKey, DemoPermissions, LoggedRequest
from bot.sandbox.exchanges.base import DEMO_BALANCES, random_alnum
from bot.sandbox.exchanges.bitget import BitgetServer
from storage.connections import ConnectionStatus
from storage.credentials import Credentials
from tests.integration.venue_client import venue_client

BITGET = get_venue("bitget")

LOAD_MARKETS_PATHS = {
    "/api/v2/spot/public/coins",
    "/api/v2/spot/public/symbols",
    "/api/v2/margin/currencies",
}


@pytest.fixture
async def server() -> AsyncIterator[BitgetServer]:
    async with BitgetServer() as running:
        yield running


def credentials(key: DemoKey) -> Credentials:
    return Credentials(key.api_key, key.secret, key.passphrase)


async def check(server: BitgetServer, creds: Credentials, *, sandbox: bool = False) -> KeyCheck:
    """The bot's own key check, pointed at the server."""
    return await check_key(BITGET, creds, endpoint=server.base_url, sandbox=sandbox, clock=utc_now)


bitget = partial(venue_client, BITGET)


def signed_headers(key: DemoKey, method: str, path_and_query: str, **extra: str) -> dict[str, str]:
    """Headers signed by hand, to check the wire details ccxt hides."""
    timestamp = str(int(time.time() * 1000))
    prehash = (timestamp + method + path_and_query).encode()
    digest = hmac.new(key.secret.encode(), prehash, hashlib.sha256).digest()
    return {
        "ACCESS-KEY": key.api_key,
        "ACCESS-SIGN": base64.b64encode(digest).decode(),
        "ACCESS-TIMESTAMP": timestamp,
        "ACCESS-PASSPHRASE": key.passphrase or "",
        **extra,
    }


async def test_valid_key_reads_markets_balance_account_info_and_tickers(
    server: BitgetServer,
) -> None:
    key = server.issue_key(DemoPermissions(spot_trade=True))
    server.set_balance("demo", "LTC", "3.5", used="0.5")
    server.set_price("ETH/USDT", "3012.34")
    async with bitget(server, key) as client:
        markets = await client.load_markets()
        balance = await client.fetch_balance()
        info = await client.private_spot_get_v2_spot_account_info()
        tickers = await client.fetch_tickers()
        eth = await client.fetch_ticker("ETH/USDT")

    assert set(markets) == {market.symbol for market in server.markets}
    assert markets["BTC/USDT"]["margin"] and not markets["ADA/USDT"]["margin"]
    assert markets["BTC/USDT"]["precision"] == {"amount": 1e-06, "price": 0.01}
    assert balance["total"]["BTC"] == float(DEMO_BALANCES["BTC"])
    assert balance["LTC"] == {"free": 3.5, "used": 0.5, "total": 4.0}
    assert info["code"] == "00000" and "stow" in info["data"]["authorities"]
    assert set(tickers) == set(markets)
    assert eth["last"] == 3012.34 and eth["bid"] < eth["ask"]


async def test_key_checks_accept_read_keys_of_every_kind_with_few_calls(
    server: BitgetServer,
) -> None:
    """Probe, public market lists, one balance read; the account mode is never asked again.

    The three checks run at once: ccxt spaces calls after account/info by its 1 s rate cost.
    """
    server.set_unified("unified")
    server.set_balance("unified", "USDT", "0")
    classic = server.issue_key()
    unified = server.issue_key(account="unified")
    demo = server.issue_key(DemoPermissions(spot_trade=True), demo=True)
    outcomes = await asyncio.gather(
        check(server, credentials(classic)),
        check(server, credentials(unified)),
        check(server, credentials(demo), sandbox=True),
    )

    assert all(isinstance(outcome, KeyAccepted) for outcome in outcomes)
    accepted = [outcome for outcome in outcomes if isinstance(outcome, KeyAccepted)]
    assert [outcome.assets_held for outcome in accepted] == [3, 2, 3]
    assert accepted[2].permissions.spot_trade
    calls = [[(c.endpoint, c.http_status) for c in outcome.calls] for outcome in accepted]
    public = {(f"GET {path}", 200) for path in LOAD_MARKETS_PATHS}
    for wallet, made in zip(("v2/spot", "v3"), (calls[0], calls[1]), strict=True):
        assert made[0] == ("GET /api/v2/spot/account/info", 200 if wallet == "v2/spot" else 400)
        assert set(made[-4:-1]) == public
        assert made[-1] == (f"GET /api/{wallet}/account/assets", 200)
    assert calls[1][1] == ("GET /api/v3/account/info", 200)  # after 40085 from classic v2
    assert len(calls[0]) == len(calls[2]) == 5 and len(calls[1]) == 6


@pytest.mark.parametrize(
    ("permissions", "spot", "derivatives", "moves_funds_out"),
    [
        (DemoPermissions(), False, False, False),
        (DemoPermissions(spot_trade=True, ip_restricted=True), True, False, False),
        (DemoPermissions(futures_trade=True), False, True, False),
        (DemoPermissions(withdraw=True, ip_restricted=True), False, False, True),
        (DemoPermissions(internal_transfer=True), False, False, True),
    ],
)
@pytest.mark.parametrize("unified", [False, True])
async def test_permission_probe_reads_the_keys_flags_in_either_account_mode(
    server: BitgetServer,
    permissions: DemoPermissions,
    spot: bool,
    derivatives: bool,
    moves_funds_out: bool,
    unified: bool,
) -> None:
    server.set_unified("demo", unified)
    key = server.issue_key(permissions)
    async with bitget(server, key) as client:
        summary = await BITGET.probe(client)
        assert client.options["uta"] is unified

    assert summary.read and summary.withdraw_known
    assert summary.spot_trade is (spot or (unified and derivatives))
    assert summary.derivatives_trade is (derivatives or (unified and spot))
    assert summary.can_move_funds_out is moves_funds_out
    assert summary.ip_restricted is permissions.ip_restricted


@pytest.mark.parametrize("unified", [False, True])
async def test_a_client_that_skipped_the_probe_finds_the_account_mode_itself(
    server: BitgetServer, unified: bool
) -> None:
    """Sweep clients: ccxt asks v3 account/settings once; classic accounts answer 40084."""
    server.set_unified("demo", unified)
    key = server.issue_key()
    async with bitget(server, key) as client:
        first = await client.fetch_balance()
        second = await client.fetch_balance()

    assert first["total"] == second["total"] and first["total"]["ETH"] == 4.182
    settings = [e for e in server.request_log if e.path == "/api/v3/account/settings"]
    assert [e.status for e in settings] == [200 if unified else 400]
    wallet = "/api/v3/account/assets" if unified else "/api/v2/spot/account/assets"
    assert [e.path for e in server.request_log].count(wallet) == 2


@pytest.mark.parametrize(
    "permissions", [DemoPermissions(withdraw=True), DemoPermissions(internal_transfer=True)]
)
async def test_keys_that_can_move_funds_out_are_refused_before_any_balance_read(
    server: BitgetServer, permissions: DemoPermissions
) -> None:
    """Unified accounts' transfer and withdraw keys: see the permission probe test."""
    key = server.issue_key(permissions)
    outcome = await check(server, credentials(key))

    assert isinstance(outcome, KeyRefused) and outcome.permissions.can_move_funds_out
    assert not any("assets" in entry.path for entry in server.request_log)


@pytest.mark.parametrize("wrong", ["secret", "passphrase"])
async def test_wrong_secret_or_passphrase_is_rejected_as_reauth(
    server: BitgetServer, wrong: str
) -> None:
    key = server.issue_key()
    bad = dataclasses.replace(credentials(key), **{wrong: random_alnum(16)})
    outcome = await check(server, bad)

    assert isinstance(outcome, KeyRejected)
    assert outcome.diagnosis.status == ConnectionStatus.REAUTH and outcome.diagnosis.final
    expected = "sign signature error" if wrong == "secret" else "apikey/password is incorrect"
    assert outcome.diagnosis.exchange_message == expected


@pytest.mark.parametrize(
    ("wrong", "code", "error"),
    [
        ("secret", "40009", ccxt.AuthenticationError),
        ("passphrase", "40012", ccxt.AuthenticationError),
    ],
)
async def test_wrong_secret_or_passphrase_raise_bitgets_codes(
    server: BitgetServer, wrong: str, code: str, error: type[Exception]
) -> None:
    key = server.issue_key()
    bad = dataclasses.replace(credentials(key), **{wrong: random_alnum(16)})
    async with bitget(server, bad) as client:
        with pytest.raises(error, match=code) as raised:
            await client.fetch_balance()
    assert type(raised.value) is error


async def test_unknown_or_revoked_key_is_an_authentication_error(server: BitgetServer) -> None:
    key = server.issue_key()
    server.revoke_key(key.api_key)
    stranger = DemoKey("bg_" + "0" * 32, "1" * 64, "passphrase1")
    for candidate in (key, stranger):
        async with bitget(server, candidate) as client:
            with pytest.raises(ccxt.AuthenticationError, match="40037") as raised:
                await BITGET.probe(client)
        assert type(raised.value) is ccxt.AuthenticationError

    server.restore_key(key.api_key)
    async with bitget(server, key) as client:
        assert (await BITGET.probe(client)).read


async def test_untrusted_ip_or_missing_permission_is_permission_denied(
    server: BitgetServer,
) -> None:
    pinned = server.issue_key(DemoPermissions(ip_restricted=True))
    server.set_trusted_ips(pinned.api_key, ["203.0.113.7"])
    unreadable = server.issue_key(DemoPermissions(read=False))
    for key, code in ((pinned, "40018"), (unreadable, "40014")):
        async with bitget(server, key) as client:
            with pytest.raises(ccxt.PermissionDenied, match=code):
                await client.fetch_balance()

    outcome = await check(server, credentials(pinned))
    assert isinstance(outcome, KeyRejected) and outcome.diagnosis.status == ConnectionStatus.REAUTH


@pytest.mark.parametrize("offset_ms", [45_000, -45_000])
async def test_clock_skew_is_invalid_nonce_until_the_client_syncs(
    server: BitgetServer, offset_ms: int
) -> None:
    key = server.issue_key()
    server.clock_offset_ms = offset_ms
    async with bitget(server, key) as client:
        with pytest.raises(ccxt.InvalidNonce, match="40008"):
            await BITGET.probe(client)
        await client.load_time_difference()
        assert (await BITGET.probe(client)).read


async def test_demo_trading_keys_work_only_in_sandbox_mode(server: BitgetServer) -> None:
    """ccxt's sandbox adds PAPTRADING: 1 on the live host; each kind of key needs its own mode."""
    demo = server.issue_key(DemoPermissions(spot_trade=True), demo=True)
    live = server.issue_key()
    async with bitget(server, demo, sandbox=True) as client:
        assert (await client.fetch_balance())["total"]["BTC"] == float(DEMO_BALANCES["BTC"])
    for key, sandbox in ((demo, False), (live, True)):
        async with bitget(server, key, sandbox=sandbox) as client:
            with pytest.raises(ccxt.ExchangeError, match="40099"):
                await BITGET.probe(client)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (429, ccxt.DDoSProtection),  # Bitget's "429" code; ccxt maps it before the HTTP status
        (503, ccxt.ExchangeNotAvailable),  # the gateway's HTML page
        (500, ccxt.ExchangeError),  # 40015 "System is abnormal"
    ],
)
async def test_injected_failures_map_to_ccxt_errors_and_then_clear(
    server: BitgetServer, status: int, error: type[Exception]
) -> None:
    key = server.issue_key()
    async with bitget(server, key) as client:
        await client.load_markets()
        server.fail_next(times=2, status=status)
        for _ in range(2):
            with pytest.raises(error) as raised:
                await BITGET.probe(client)
            assert type(raised.value) is error
        await BITGET.probe(client)

    assert [entry.status for entry in server.request_log[-3:]] == [status, status, 200]


async def test_slow_server_is_a_request_timeout(server: BitgetServer) -> None:
    key = server.issue_key()
    async with bitget(server, key, timeout_ms=200) as client:
        server.set_delay(2.0)
        with pytest.raises(ccxt.RequestTimeout):
            await client.fetch_time()
        server.set_delay(0)
        assert await client.fetch_time() > 0

    assert [entry.status for entry in server.request_log] == [499, 200]


async def test_hand_signed_query_is_checked_on_its_decoded_form(server: BitgetServer) -> None:
    key = server.issue_key()
    server.set_balance("demo", "BTC", "0")
    query = "assetType=all&coin=BTC"
    async with aiohttp.ClientSession(server.base_url) as http:
        path = "/api/v2/spot/account/assets?" + query
        async with http.get(path, headers=signed_headers(key, "GET", path)) as response:
            assert response.status == 200
            assets = (await response.json())["data"]
        # A percent-encoded signature base is not what Bitget signs.
        encoded = "/api/v2/spot/account/assets?coin=" + quote("BTC,ETH", safe="")
        wrong = signed_headers(key, "GET", encoded)
        async with http.get(encoded, headers=wrong) as response:
            assert response.status == 400
            assert (await response.json())["code"] == "40009"

    assert assets == [
        {
            "coin": "BTC",
            "available": "0.00000000",
            "limitAvailable": "0",
            "frozen": "0.00000000",
            "locked": "0.00000000",
            "uTime": assets[0]["uTime"],
        }
    ]


@pytest.mark.parametrize(
    ("path", "headers", "status", "code"),
    [
        ("/api/v2/spot/account/info", {}, 400, "40001"),
        ("/api/v2/spot/account/info", {"ACCESS-KEY": "KEY"}, 400, "40003"),
        (
            "/api/v2/spot/account/info",
            {"ACCESS-KEY": "KEY", "ACCESS-SIGN": "x", "ACCESS-TIMESTAMP": "1e12"},
            400,
            "40005",
        ),
        (
            "/api/v2/spot/account/info",
            {"ACCESS-KEY": "KEY", "ACCESS-SIGN": "x", "ACCESS-TIMESTAMP": "NOW"},
            400,
            "40011",
        ),
        (
            "/api/v2/spot/account/info",
            {
                "ACCESS-KEY": "not-a-key",
                "ACCESS-SIGN": "x",
                "ACCESS-TIMESTAMP": "NOW",
                "ACCESS-PASSPHRASE": "p",
            },
            400,
            "40006",
        ),
        ("/api/v2/spot/market/tickers?symbol=BTCEUR", {}, 400, "40034"),
        ("/api/v2/spot/trade/no-such-endpoint", {}, 404, "40404"),
    ],
)
async def test_malformed_requests_get_bitget_codes(
    server: BitgetServer, path: str, headers: dict[str, str], status: int, code: str
) -> None:
    key = server.issue_key()
    now = str(int(time.time() * 1000))
    sent = {
        name: {"KEY": key.api_key, "NOW": now}.get(value, value) for name, value in headers.items()
    }
    async with aiohttp.ClientSession(server.base_url) as http, http.get(path, headers=sent) as r:
        assert r.status == status
        body = await r.json()
    assert body["code"] == code and body["data"] is None and isinstance(body["requestTime"], int)


async def test_rate_limit_and_gateway_answers_have_bitgets_shapes(server: BitgetServer) -> None:
    server.fail_next(status=429)
    server.fail_next(status=503)
    async with aiohttp.ClientSession(server.base_url) as http:
        async with http.get("/api/v2/public/time") as response:
            assert response.status == 429
            assert (await response.json())["msg"] == "Too Many Requests"
        async with http.get("/api/v2/public/time") as response:
            assert response.status == 503 and response.content_type == "text/html"


async def test_tickers_and_coins_follow_the_price_walk(server: BitgetServer) -> None:
    before = {symbol: stats.last for symbol, stats in server.prices.items()}
    server.step_prices(random.Random(7))
    async with bitget(server, server.issue_key()) as client:
        tickers = await client.fetch_tickers(["BTC/USDT", "XRP/USDT"])
        currencies = await client.fetch_currencies()

    assert set(tickers) == {"BTC/USDT", "XRP/USDT"}
    btc = server.prices["BTC/USDT"].last
    assert tickers["BTC/USDT"]["last"] == float(btc.quantize(Decimal("0.01")))
    assert {"BTC", "ETH", "USDT", "XRP"} <= set(currencies)
    assert "TRC20" in currencies["USDT"]["networks"]
    for symbol, stats in server.prices.items():
        assert stats.last != before[symbol]
        assert abs(stats.last / before[symbol] - 1) < Decimal("0.02")


async def test_request_log_keeps_no_credentials(server: BitgetServer) -> None:
    canary = DemoKey("bg_" + "cafe" * 8, "CANARYSECRET" + random_alnum(52), "CANARYPASS42")
    key = server.issue_key(material=canary)
    async with bitget(server, key) as client:
        await client.fetch_balance()
        server.fail_next(status=429)
        with pytest.raises(ccxt.DDoSProtection):
            await client.fetch_balance()
    wrong = Credentials(key.api_key, "wrong" + key.secret[5:], "CANARYPASS00")
    async with bitget(server, wrong) as client:
        with pytest.raises(ccxt.AuthenticationError):
            await client.fetch_balance()

    assert [f.name for f in dataclasses.fields(LoggedRequest)] == [
        "time",
        "method",
        "path",
        "status",
    ]
    logged = repr(server.request_log)
    assert "cafe" not in logged and "CANARY" not in logged
    assert all("?" not in entry.path for entry in server.request_log)
    assert "CANARY" not in repr(key)


def test_demo_keys_look_like_bitgets_and_always_have_a_passphrase() -> None:
    server = BitgetServer()
    first, second = server.issue_key(), server.issue_key(account="alice", with_passphrase=False)
    assert first.api_key.startswith("bg_") and len(first.api_key) == 35
    assert len(first.secret) == 64 and int(first.secret, 16) >= 0
    assert first.passphrase and second.passphrase and first.passphrase != second.passphrase
    with pytest.raises(ValueError, match="format"):
        server.issue_key(material=DemoKey("bg_short", "secret", "passphrase"))
    with pytest.raises(ValueError, match="passphrase"):
        server.issue_key(material=DemoKey("bg_" + "a" * 32, "secret"))
