"""The local Binance server through real ccxt over HTTP: what key checks and sweeps will meet."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import random
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from functools import partial
from urllib.parse import urlencode

import aiohttp
import ccxt.async_support as ccxt
import pytest

from bot.exchanges.catalogue import get_venue
from bot.exchanges.probes.binance import summarize
from bot.sandbox.exchanges import BinanceServer, DemoKey, DemoPermissions, LoggedRequest
from bot.sandbox.exchanges.base import DEMO_BALANCES, random_alnum
from storage.credentials import Credentials
from tests.integration.venue_client import assert_faults_surface_then_clear, venue_client


@pytest.fixture
async def server() -> AsyncIterator[BinanceServer]:
    async with BinanceServer() as running:
        yield running


binance = partial(venue_client, get_venue("binance"))


def signed_path(key: DemoKey, path: str, **params: str | int) -> str:
    """A request signed by hand, to check the wire details ccxt hides."""
    query = urlencode({"timestamp": int(time.time() * 1000), **params})
    signature = hmac.new(key.secret.encode(), query.encode(), hashlib.sha256).hexdigest()
    return f"{path}?{query}&signature={signature}"


async def test_valid_key_reads_markets_balance_restrictions_and_tickers(
    server: BinanceServer,
) -> None:
    key = server.issue_key(DemoPermissions(spot_trade=True))
    server.set_balance("demo", "LTC", "3.5", used="0.5")
    server.set_price("ETH/USDT", "3012.34")
    async with binance(server, key) as client:
        markets = await client.load_markets()
        balance = await client.fetch_balance()
        restrictions = await client.sapi_get_account_apirestrictions()
        tickers = await client.fetch_tickers()
        eth = await client.fetch_ticker("ETH/USDT")

    assert set(markets) == {market.symbol for market in server.markets}
    assert balance["total"]["BTC"] == float(DEMO_BALANCES["BTC"])
    assert balance["LTC"] == {"free": 3.5, "used": 0.5, "total": 4.0}
    assert restrictions["enableReading"] and restrictions["enableSpotAndMarginTrading"]
    assert not restrictions["enableWithdrawals"]
    assert set(tickers) == set(markets)
    assert eth["last"] == 3012.34 and eth["bid"] < eth["ask"]


async def test_load_markets_makes_one_public_call_with_our_catalogue_options(
    server: BinanceServer,
) -> None:
    """Currencies and margin pairs are switched off: a key is never sent just to load markets."""
    key = server.issue_key()
    async with binance(server, key) as client:
        await client.load_markets()
        coins = await client.sapi_get_capital_config_getall()
    assert {coin["coin"] for coin in coins} >= {"BTC", "USDT"}
    assert [entry.path for entry in server.request_log] == [
        "/api/v3/exchangeInfo",
        "/sapi/v1/capital/config/getall",
    ]


@pytest.mark.parametrize(
    ("permissions", "spot", "moves_funds_out", "expires"),
    [
        (DemoPermissions(), False, False, False),
        (DemoPermissions(spot_trade=True), True, False, True),
        (DemoPermissions(spot_trade=True, ip_restricted=True), True, False, False),
        (DemoPermissions(withdraw=True, ip_restricted=True), False, True, False),
        (DemoPermissions(internal_transfer=True), False, True, False),
    ],
)
async def test_permission_probe_reads_the_keys_flags(
    server: BinanceServer,
    permissions: DemoPermissions,
    spot: bool,
    moves_funds_out: bool,
    expires: bool,
) -> None:
    key = server.issue_key(permissions)
    async with binance(server, key) as client:
        summary = await get_venue("binance").probe(client)

    assert summary.read and summary.spot_trade is spot
    assert summary.can_move_funds_out is moves_funds_out
    assert summary.ip_restricted is permissions.ip_restricted
    assert (summary.expires_at is not None) is expires


async def test_summarize_reads_the_servers_own_restrictions_payload(server: BinanceServer) -> None:
    key = server.issue_key(DemoPermissions(futures_trade=True, ip_restricted=True))
    async with (
        aiohttp.ClientSession(server.base_url) as http,
        http.get(
            signed_path(key, "/sapi/v1/account/apiRestrictions"),
            headers={"X-MBX-APIKEY": key.api_key},
        ) as response,
    ):
        payload = await response.json()

    summary = summarize(payload)
    assert summary.derivatives_trade and summary.ip_restricted and not summary.withdraw


async def test_wrong_secret_is_an_authentication_error(server: BinanceServer) -> None:
    key = server.issue_key()
    async with binance(server, Credentials(key.api_key, random_alnum(64))) as client:
        with pytest.raises(ccxt.AuthenticationError, match="-1022"):
            await client.fetch_balance()


async def test_unknown_key_is_an_authentication_error(server: BinanceServer) -> None:
    async with binance(server, DemoKey(random_alnum(64), random_alnum(64))) as client:
        with pytest.raises(ccxt.AuthenticationError, match="-2015"):
            await client.fetch_balance()
    assert server.request_log[-1].status == 401


async def test_revoked_key_is_refused_until_restored(server: BinanceServer) -> None:
    key = server.issue_key()
    server.revoke_key(key.api_key)
    async with binance(server, key) as client:
        with pytest.raises(ccxt.AuthenticationError, match="-2015"):
            await client.fetch_balance()
    server.restore_key(key.api_key)
    async with binance(server, key) as client:
        assert (await client.fetch_balance())["total"]["ETH"] == float(DEMO_BALANCES["ETH"])


async def test_key_revoked_under_a_client_that_already_succeeded_raises_ddos_protection(
    server: BinanceServer,
) -> None:
    """ccxt quirk: after one good private call, binance turns -2015 into DDoSProtection."""
    key = server.issue_key()
    async with binance(server, key) as client:
        await client.fetch_balance()
        server.revoke_key(key.api_key)
        with pytest.raises(ccxt.DDoSProtection, match="-2015"):
            await client.fetch_balance()


async def test_key_without_read_permission_or_from_an_untrusted_ip_is_refused(
    server: BinanceServer,
) -> None:
    unreadable = server.issue_key(DemoPermissions(read=False))
    pinned = server.issue_key(DemoPermissions(ip_restricted=True))
    server.set_trusted_ips(pinned.api_key, ["203.0.113.7"])
    for key in (unreadable, pinned):
        async with binance(server, key) as client:
            with pytest.raises(ccxt.AuthenticationError, match="-2015"):
                await client.fetch_balance()

    server.set_trusted_ips(pinned.api_key, ["203.0.113.7", "127.0.0.1"])
    async with binance(server, pinned) as client:
        await client.fetch_balance()


@pytest.mark.parametrize("offset_ms", [30_000, -5_000])
async def test_clock_skew_is_invalid_nonce_until_the_client_syncs(
    server: BinanceServer, offset_ms: int
) -> None:
    """Server ahead by more than recvWindow (ccxt sends 10 s), or client ahead by over 1 s."""
    key = server.issue_key()
    server.clock_offset_ms = offset_ms
    async with binance(server, key) as client:
        with pytest.raises(ccxt.InvalidNonce, match="-1021"):
            await client.fetch_balance()
        await client.load_time_difference()
        assert (await client.fetch_balance())["total"]["USDT"] == float(DEMO_BALANCES["USDT"])


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (429, None, ccxt.DDoSProtection),  # not RateLimitExceeded: binance maps 418/429 first
        (418, None, ccxt.DDoSProtection),
        (503, None, ccxt.OnMaintenance),
        (503, "Service Unavailable", ccxt.ExchangeNotAvailable),
        (500, None, ccxt.OperationFailed),  # -1000; not a NetworkError subclass
    ],
)
async def test_injected_failures_map_to_ccxt_errors_and_then_clear(
    server: BinanceServer, status: int, body: str | None, error: type[Exception]
) -> None:
    await assert_faults_surface_then_clear(get_venue("binance"), server, status, body, error)


async def test_rate_limit_answers_carry_retry_after(server: BinanceServer) -> None:
    server.fail_next(status=429)
    async with (
        aiohttp.ClientSession(server.base_url) as http,
        http.get("/api/v3/ping") as response,
    ):
        assert response.status == 429
        assert 0 < int(response.headers["Retry-After"]) <= 60
        assert (await response.json())["code"] == -1003


async def test_slow_server_is_a_request_timeout(server: BinanceServer) -> None:
    key = server.issue_key()
    async with binance(server, key, timeout_ms=200) as client:
        server.set_delay(2.0)
        started = time.monotonic()
        with pytest.raises(ccxt.RequestTimeout):
            await client.fetch_time()
        assert time.monotonic() - started < 1.5
        server.set_delay(0)
        assert await client.fetch_time() > 0

    assert [entry.status for entry in server.request_log] == [499, 200]


@pytest.mark.parametrize(
    ("path", "headers", "status", "code"),
    [
        ("/api/v3/account", {}, 401, -2014),
        ("/api/v3/account?signature=00", {"X-MBX-APIKEY": "KEY"}, 400, -1102),
        ("/api/v3/account?timestamp=1", {"X-MBX-APIKEY": "KEY"}, 400, -1102),
        ("/api/v3/account?timestamp=1e3&signature=00", {"X-MBX-APIKEY": "KEY"}, 400, -1100),
        ("/api/v3/ticker/price?symbol=BTCEUR", {}, 400, -1121),
    ],
)
async def test_malformed_requests_get_binance_codes(
    server: BinanceServer, path: str, headers: dict[str, str], status: int, code: int
) -> None:
    key = server.issue_key()
    sent = {name: key.api_key if value == "KEY" else value for name, value in headers.items()}
    async with (
        aiohttp.ClientSession(server.base_url) as http,
        http.get(path, headers=sent) as response,
    ):
        assert response.status == status
        assert (await response.json())["code"] == code


async def test_recv_window_above_a_minute_is_refused(server: BinanceServer) -> None:
    key = server.issue_key()
    async with (
        aiohttp.ClientSession(server.base_url) as http,
        http.get(
            signed_path(key, "/api/v3/account", recvWindow=60001),
            headers={"X-MBX-APIKEY": key.api_key},
        ) as response,
    ):
        assert response.status == 400
        assert (await response.json())["code"] == -1131


async def test_unknown_path_is_binances_html_404(server: BinanceServer) -> None:
    async with (
        aiohttp.ClientSession(server.base_url) as http,
        http.get("/api/v3/allOrderList") as response,
    ):
        assert response.status == 404
        assert response.content_type == "text/html"


async def test_tickers_by_symbol_list_and_price_walk(server: BinanceServer) -> None:
    before = {symbol: stats.last for symbol, stats in server.prices.items()}
    server.step_prices(random.Random(7))
    async with aiohttp.ClientSession(server.base_url) as http:
        async with http.get(
            "/api/v3/ticker/bookTicker", params={"symbols": '["BTCUSDT","ETHUSDT"]'}
        ) as response:
            books = await response.json()
        async with http.get("/api/v3/ticker/price") as response:
            prices = await response.json()

    assert [book["symbol"] for book in books] == ["BTCUSDT", "ETHUSDT"]
    assert len(prices) == len(server.markets)
    for symbol, stats in server.prices.items():
        assert stats.last != before[symbol]
        assert abs(stats.last / before[symbol] - 1) < Decimal("0.02")


async def test_request_log_keeps_no_credentials(server: BinanceServer) -> None:
    canary = DemoKey("CANARYKEY" + random_alnum(55), "CANARYSECRET" + random_alnum(52))
    key = server.issue_key(material=canary)
    async with binance(server, key) as client:
        await client.fetch_balance()
        server.fail_next(status=429)
        with pytest.raises(ccxt.DDoSProtection):
            await client.fetch_balance()
    async with binance(server, Credentials(key.api_key, "wrong" + key.secret[5:])) as client:
        with pytest.raises(ccxt.AuthenticationError):
            await client.fetch_balance()

    assert [f.name for f in dataclasses.fields(LoggedRequest)] == [
        "time",
        "method",
        "path",
        "status",
    ]
    logged = repr(server.request_log)
    assert "CANARY" not in logged and key.secret[10:] not in logged
    assert all("?" not in entry.path for entry in server.request_log)
    assert "signature" not in logged and "timestamp" not in logged
    assert "CANARY" not in repr(key)


def test_demo_keys_are_random_and_accounts_start_funded() -> None:
    server = BinanceServer()
    first, second = server.issue_key(), server.issue_key(account="alice")
    assert first.api_key != second.api_key and first.secret != second.secret
    assert len(first.api_key) == len(first.secret) == 64
    assert server.issue_key(with_passphrase=True).passphrase
    assert {asset: b.free for asset, b in server.accounts["alice"].balances.items()} == dict(
        DEMO_BALANCES
    )
    with pytest.raises(ValueError, match="format"):
        server.issue_key(material=DemoKey("too-short", "secret"))
    assert server.set_permissions(first.api_key, withdraw=True).withdraw
