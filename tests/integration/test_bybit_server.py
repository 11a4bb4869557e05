"""The local Bybit server through real ccxt over HTTP: what key checks and sweeps will meet."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from functools import partial

import aiohttp
import ccxt.async_support as ccxt
import pytest

from bot.clock import utc_now
from bot.exchanges.catalogue import get_venue
from bot.exchanges.key_check import KeyAccepted, KeyCheck, KeyRefused, KeyRejected, check_key
from bot.sandbox.exchanges.base import (
    DEMO_BALANCES,
    DemoKey,
    DemoPermissions,
    LoggedRequest,
    random_alnum,
)
from bot.sandbox.exchanges.bybit import UNBOUND_KEY_LIFETIME_MS, BybitServer
from storage.connections import ConnectionStatus
from storage.credentials import Credentials
from tests.integration.venue_client import venue_client

BYBIT = get_venue("bybit")


@pytest.fixture
async def server() -> AsyncIterator[BybitServer]:
    async with BybitServer() as running:
        yield running


bybit = partial(venue_client, BYBIT)


async def check(server: BybitServer, key: DemoKey | Credentials) -> KeyCheck:
    """The bot's own key check against the server."""
    credentials = Credentials(key.api_key, key.secret)
    return await check_key(
        BYBIT, credentials, endpoint=server.base_url, sandbox=False, clock=utc_now
    )


def signed_headers(key: DemoKey, query: str, **overrides: str) -> dict[str, str]:
    """Bybit v5 headers signed by hand, to check the wire details ccxt hides."""
    timestamp, window = str(int(time.time() * 1000)), "5000"
    signature = hmac.new(
        key.secret.encode(), f"{timestamp}{key.api_key}{window}{query}".encode(), hashlib.sha256
    ).hexdigest()
    return {
        "X-BAPI-API-KEY": key.api_key,
        "X-BAPI-TIMESTAMP": timestamp,
        "X-BAPI-RECV-WINDOW": window,
        "X-BAPI-SIGN": signature,
        **overrides,
    }


async def test_valid_key_reads_markets_balance_permissions_and_tickers(
    server: BybitServer,
) -> None:
    key = server.issue_key(DemoPermissions(spot_trade=True))
    server.set_balance("demo", "LTC", "3.5", used="0.5")
    server.set_price("ETH/USDT", "3012.34")
    async with bybit(server, key) as client:
        markets = await client.load_markets()
        summary = await BYBIT.probe(client)
        balance = await client.fetch_balance()
        tickers = await client.fetch_tickers()
        eth = await client.fetch_ticker("ETH/USDT")

    assert set(markets) == {item.symbol for item in server.instruments}
    assert all(market["spot"] and market["active"] for market in markets.values())
    assert summary.read and summary.spot_trade and not summary.can_move_funds_out
    assert balance["total"]["BTC"] == float(DEMO_BALANCES["BTC"])
    assert balance["LTC"]["free"] == 3.5 and balance["LTC"]["used"] == 0.5
    assert set(tickers) == set(markets)
    assert eth["last"] == 3012.34 and eth["bid"] < eth["ask"]


async def test_key_check_makes_three_calls_and_accepts_a_read_key(server: BybitServer) -> None:
    """The probe tells ccxt the account is unified, so fetch_balance does not ask again."""
    key = server.issue_key()
    result = await check(server, key)

    assert isinstance(result, KeyAccepted)
    assert result.assets_held == len(DEMO_BALANCES)
    assert result.permissions.read and not result.permissions.can_trade
    assert result.permissions.ip_restricted is False and result.permissions.expires_at
    paths = ["/v5/user/query-api", "/v5/market/instruments-info", "/v5/account/wallet-balance"]
    assert [entry.path for entry in server.request_log] == paths
    assert [call.endpoint for call in result.calls] == [f"GET {path}" for path in paths]


async def test_testnet_mode_reaches_the_same_paths(server: BybitServer) -> None:
    """ccxt swaps in api-testnet URLs; the endpoint rewrite still lands every call here."""
    key = server.issue_key()
    async with bybit(server, key, sandbox=True) as client:
        assert client.urls["test"] and (await BYBIT.probe(client)).read
        assert (await client.fetch_balance())["total"]["ETH"] == float(DEMO_BALANCES["ETH"])


async def test_balance_without_the_probe_lets_ccxt_find_the_account_mode(
    server: BybitServer,
) -> None:
    key = server.issue_key()
    async with bybit(server, key) as client:
        await client.load_markets()
        balance = await client.fetch_balance()

    assert balance["total"]["USDT"] == float(DEMO_BALANCES["USDT"])
    assert {entry.path for entry in server.request_log[-3:]} == {
        "/v5/user/query-api",
        "/v5/account/info",
        "/v5/account/wallet-balance",
    }


async def test_coin_info_answers_clients_that_load_currencies(server: BybitServer) -> None:
    """Our catalogue skips it, but ccxt's default load_markets signs this call with any key."""
    async with bybit(server, server.issue_key()) as client:
        currencies = await client.fetch_currencies()
    assert {"BTC", "ETH", "USDT"} <= set(currencies)
    assert "TRC20" in currencies["USDT"]["networks"]  # the recorded USDT entry


@pytest.mark.parametrize(
    ("permissions", "outcome"),
    [
        (DemoPermissions(withdraw=True, ip_restricted=True), "withdraw"),
        (DemoPermissions(internal_transfer=True), "transfer_out"),
        (DemoPermissions(spot_trade=True, withdraw=True, internal_transfer=True), "withdraw"),
    ],
)
async def test_keys_that_move_funds_out_are_refused(
    server: BybitServer, permissions: DemoPermissions, outcome: str
) -> None:
    key = server.issue_key(permissions)
    result = await check(server, key)

    assert isinstance(result, KeyRefused)
    assert getattr(result.permissions, outcome)
    assert "/v5/account/wallet-balance" not in {entry.path for entry in server.request_log}


@pytest.mark.parametrize(
    ("permissions", "spot", "derivatives", "expires"),
    [
        (DemoPermissions(), False, False, True),
        (DemoPermissions(spot_trade=True), True, False, True),
        (DemoPermissions(futures_trade=True, ip_restricted=True), False, True, False),
    ],
)
async def test_permission_probe_reads_the_keys_scopes(
    server: BybitServer,
    permissions: DemoPermissions,
    spot: bool,
    derivatives: bool,
    expires: bool,
) -> None:
    key = server.issue_key(permissions)
    async with bybit(server, key) as client:
        summary = await BYBIT.probe(client)

    assert summary.read and summary.spot_trade is spot
    assert summary.derivatives_trade is derivatives
    assert summary.ip_restricted is permissions.ip_restricted
    assert (summary.expires_at is not None) is expires


@pytest.mark.parametrize("wrong", ["secret", "key"])
async def test_wrong_secret_or_unknown_key_is_rejected_for_reauth(
    server: BybitServer, wrong: str
) -> None:
    key = server.issue_key()
    credentials = (
        Credentials(key.api_key, random_alnum(36))
        if wrong == "secret"
        else Credentials(random_alnum(18), key.secret)
    )
    result = await check(server, credentials)

    assert isinstance(result, KeyRejected)
    assert result.diagnosis.status == ConnectionStatus.REAUTH and result.diagnosis.final
    said = result.diagnosis.exchange_message or ""
    assert said.startswith("Error sign" if wrong == "secret" else "API key is invalid")
    assert key.api_key not in said


async def test_revoked_key_is_an_authentication_error_until_restored(server: BybitServer) -> None:
    key = server.issue_key()
    server.revoke_key(key.api_key)
    async with bybit(server, key) as client:
        with pytest.raises(ccxt.AuthenticationError, match="10003"):
            await BYBIT.probe(client)
    assert server.request_log[-1].status == 401

    server.restore_key(key.api_key)
    async with bybit(server, key) as client:
        assert (await BYBIT.probe(client)).read


async def test_untrusted_ip_and_missing_permission_are_permission_denied(
    server: BybitServer,
) -> None:
    pinned = server.issue_key(DemoPermissions(ip_restricted=True))
    server.set_trusted_ips(pinned.api_key, ["203.0.113.7"])
    unreadable = server.issue_key(DemoPermissions(read=False))
    for key, code in ((pinned, "10010"), (unreadable, "10005")):
        async with bybit(server, key) as client:
            with pytest.raises(ccxt.PermissionDenied, match=code):
                await BYBIT.probe(client)


async def test_key_without_ip_bound_expires_after_ninety_days(server: BybitServer) -> None:
    key = server.issue_key()
    server.clock_offset_ms = UNBOUND_KEY_LIFETIME_MS + 60_000
    async with bybit(server, key) as client:
        await client.load_time_difference()
        with pytest.raises(ccxt.AuthenticationError, match="33004"):
            await BYBIT.probe(client)


@pytest.mark.parametrize("offset_ms", [30_000, -5_000])
async def test_clock_skew_is_invalid_nonce_until_the_client_syncs(
    server: BybitServer, offset_ms: int
) -> None:
    """Server ahead by more than recv_window (ccxt sends 5 s), or client ahead by over 1 s."""
    key = server.issue_key()
    server.clock_offset_ms = offset_ms
    async with bybit(server, key) as client:
        with pytest.raises(ccxt.InvalidNonce, match="10002"):
            await BYBIT.probe(client)
        await client.load_time_difference()
        assert (await BYBIT.probe(client)).read


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (429, ccxt.RateLimitExceeded),  # retCode 10006
        (403, ccxt.RateLimitExceeded),  # the gateway's IP limit: ccxt maps bare 403s for bybit
        (503, ccxt.ExchangeNotAvailable),
        (500, ccxt.ExchangeError),  # retCode 10016
    ],
)
async def test_injected_failures_map_to_ccxt_errors_and_then_clear(
    server: BybitServer, status: int, error: type[Exception]
) -> None:
    key = server.issue_key()
    async with bybit(server, key) as client:
        await client.fetch_balance()  # markets and account mode known: one call per balance
        server.fail_next(times=2, status=status)
        for _ in range(2):
            with pytest.raises(error) as raised:
                await client.fetch_balance()
            assert type(raised.value) is error
        await client.fetch_balance()

    assert [entry.status for entry in server.request_log[-3:]] == [status, status, 200]


async def test_unknown_symbol_is_bad_symbol(server: BybitServer) -> None:
    async with bybit(server, server.issue_key()) as client:
        await client.load_markets()
        with pytest.raises(ccxt.BadSymbol):
            await client.fetch_ticker("ETH/BTC")  # not a market: ccxt refuses before asking
        with pytest.raises(ccxt.BadSymbol, match="Not supported symbols"):
            await client.public_get_v5_market_tickers({"category": "spot", "symbol": "ETHBTC"})


@pytest.mark.parametrize(
    ("query", "overrides", "status", "code"),
    [
        ("", {"X-BAPI-API-KEY": ""}, 401, 10003),
        ("", {"X-BAPI-TIMESTAMP": "soon"}, 200, 10002),
        ("", {"X-BAPI-SIGN": ""}, 200, 10004),
        ("accountType=CONTRACT", {}, 200, 10001),
    ],
)
async def test_malformed_requests_get_bybit_codes(
    server: BybitServer, query: str, overrides: dict[str, str], status: int, code: int
) -> None:
    key = server.issue_key()
    async with (
        aiohttp.ClientSession(server.base_url) as http,
        http.get(
            f"/v5/account/wallet-balance?{query}", headers=signed_headers(key, query, **overrides)
        ) as response,
    ):
        body = await response.json()
    assert response.status == status
    assert body["retCode"] == code and body["result"] == {} and body["time"] > 0


async def test_signature_covers_the_query_string_as_sent(server: BybitServer) -> None:
    key = server.issue_key()
    query = "accountType=UNIFIED&coin=BTC,ETH"
    async with aiohttp.ClientSession(server.base_url) as http:
        async with http.get(
            f"/v5/account/wallet-balance?{query}", headers=signed_headers(key, query)
        ) as response:
            coins = (await response.json())["result"]["list"][0]["coin"]
        async with http.get(
            "/v5/account/wallet-balance?accountType=UNIFIED&coin=BTC",
            headers=signed_headers(key, query),
        ) as response:
            tampered = await response.json()

    assert [coin["coin"] for coin in coins] == ["BTC", "ETH"]
    assert tampered["retCode"] == 10004


async def test_request_log_keeps_no_credentials(server: BybitServer) -> None:
    canary = DemoKey("CANARYKEY" + random_alnum(9), "CANARYSECRET" + random_alnum(24))
    key = server.issue_key(material=canary)
    async with bybit(server, key) as client:
        await client.fetch_balance()
        server.fail_next(status=429)
        with pytest.raises(ccxt.RateLimitExceeded):
            await client.fetch_balance()
    async with bybit(server, Credentials(key.api_key, "wrong" + key.secret[5:])) as client:
        with pytest.raises(ccxt.AuthenticationError):
            await BYBIT.probe(client)

    assert [f.name for f in dataclasses.fields(LoggedRequest)] == [
        "time",
        "method",
        "path",
        "status",
    ]
    logged = repr(server.request_log)
    assert "CANARY" not in logged and key.secret[12:] not in logged
    assert all("?" not in entry.path for entry in server.request_log)


def test_demo_keys_have_bybits_format() -> None:
    server = BybitServer()
    first, second = server.issue_key(), server.issue_key(account="alice")
    assert first.api_key != second.api_key and first.secret != second.secret
    assert len(first.api_key) == 18 and len(first.secret) == 36
    with pytest.raises(ValueError, match="format"):
        server.issue_key(material=DemoKey("A" * 64, "secret"))
