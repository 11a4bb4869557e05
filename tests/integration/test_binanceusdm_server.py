"""The local Binance USDⓈ-M server through real ccxt over HTTP, as key checks and sweeps meet it."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from decimal import Decimal
from functools import partial

import aiohttp
import ccxt.async_support as ccxt
import pytest

from bot.clock import utc_now
from bot.exchanges.catalogue import get_venue
from bot.exchanges.diagnosis import WRONG_TAB
from bot.exchanges.key_check import KeyAccepted, KeyCheck, KeyRefused, KeyRejected, check_key
from bot.sandbox.exchanges.base import (
    DEMO_BALANCES,
    DemoKey,
    DemoPermissions,
    LoggedRequest,
    random_alnum,
)
from bot.sandbox.exchanges.binanceusdm import BinanceUsdmServer
from storage.connections import ConnectionStatus
from storage.credentials import Credentials
from tests.integration.venue_client import venue_client

VENUE = get_venue("binanceusdm")

#: A key as the user should make it: reading plus Enable Futures, nothing that moves funds.
FUTURES_KEY = DemoPermissions(futures_trade=True)


@pytest.fixture
async def server() -> AsyncIterator[BinanceUsdmServer]:
    async with BinanceUsdmServer() as running:
        yield running


usdm = partial(venue_client, VENUE)


async def check(
    server: BinanceUsdmServer, key: DemoKey | Credentials, *, sandbox: bool = False
) -> KeyCheck:
    """The production key check against the server."""
    creds = Credentials(key.api_key, key.secret)
    return await check_key(VENUE, creds, endpoint=server.base_url, sandbox=sandbox, clock=utc_now)


async def test_futures_key_reads_perpetuals_balance_restrictions_and_tickers(
    server: BinanceUsdmServer,
) -> None:
    key = server.issue_key(FUTURES_KEY)
    server.set_balance("demo", "USDT", "2500", used="100")
    server.set_price("ETH/USDT:USDT", "3012.347")
    async with usdm(server, key) as client:
        markets = await client.load_markets()
        summary = await VENUE.probe(client)
        balance = await client.fetch_balance()
        tickers = await client.fetch_tickers()
        eth = await client.fetch_ticker("ETH/USDT:USDT")
        books = await client.fetch_bids_asks(["BTC/USDT:USDT"])

    assert set(markets) == {market.symbol for market in server.markets}
    assert "BTC/USDT:USDT" in markets and all(m["swap"] and m["linear"] for m in markets.values())
    assert markets["BTC/USDT:USDT"]["settle"] == "USDT"
    assert summary.read and summary.derivatives_trade and not summary.can_move_funds_out
    assert balance["USDT"] == {"free": 2500.0, "used": 100.0, "total": 2600.0}
    assert balance["total"]["BTC"] == float(DEMO_BALANCES["BTC"])
    assert set(tickers) == set(markets)
    assert eth["last"] == 3012.34  # fapi prices come rounded to the contract's tick
    book = books["BTC/USDT:USDT"]
    assert book["bid"] < book["ask"]


async def test_check_key_accepts_a_futures_key_in_two_calls(server: BinanceUsdmServer) -> None:
    key = server.issue_key(FUTURES_KEY)
    result = await check(server, key)

    assert isinstance(result, KeyAccepted)
    assert result.permissions.derivatives_trade and not result.permissions.spot_trade
    assert result.permissions.ip_restricted is False
    assert result.assets_held == len(DEMO_BALANCES)
    assert [entry.path for entry in server.request_log] == [
        "/sapi/v1/account/apiRestrictions",
        "/fapi/v1/exchangeInfo",  # fetch_balance loads markets; no currencies, no margin pairs
        "/fapi/v3/account",
    ]


@pytest.mark.parametrize(
    "permissions",
    [
        DemoPermissions(futures_trade=True, withdraw=True, ip_restricted=True),
        DemoPermissions(futures_trade=True, internal_transfer=True),
    ],
)
async def test_check_key_refuses_a_key_that_can_move_funds_out(
    server: BinanceUsdmServer, permissions: DemoPermissions
) -> None:
    key = server.issue_key(permissions)
    result = await check(server, key)

    assert isinstance(result, KeyRefused) and result.permissions.can_move_funds_out
    assert [entry.path for entry in server.request_log] == ["/sapi/v1/account/apiRestrictions"]


async def test_check_key_rejects_a_wrong_secret_as_reauth(server: BinanceUsdmServer) -> None:
    key = server.issue_key(FUTURES_KEY)
    result = await check(server, Credentials(key.api_key, random_alnum(64)))

    assert isinstance(result, KeyRejected)
    assert result.diagnosis.status is ConnectionStatus.REAUTH and result.diagnosis.final
    assert result.diagnosis.exchange_message == "Signature for this request is not valid."


async def test_spot_tab_key_passes_the_probe_but_futures_answer_2015(
    server: BinanceUsdmServer,
) -> None:
    """The seeds' classic pitfall: a key without "Enable Futures" is refused by every /fapi call."""
    key = server.issue_key(DemoPermissions(spot_trade=True, ip_restricted=True))
    creds = Credentials(key.api_key, key.secret)
    async with usdm(server, key) as client:
        summary = await VENUE.probe(client)
        with pytest.raises(ccxt.AuthenticationError, match="-2015") as raised:
            await client.fetch_balance()
    result = await check(server, creds)

    assert summary.read and summary.spot_trade and not summary.derivatives_trade
    assert type(raised.value) is ccxt.AuthenticationError
    assert raised.value.args[0].endswith(
        '"msg":"Invalid API-key, IP, or permissions for action, request ip: 127.0.0.1"}'
    )
    # The check names the cause from the probe alone, before any futures call fails.
    assert isinstance(result, KeyRejected) and result.diagnosis is WRONG_TAB
    assert server.request_log[-1].path == "/sapi/v1/account/apiRestrictions"

    server.set_permissions(key.api_key, futures_trade=True)  # the user ticks "Enable Futures"
    assert isinstance(await check(server, creds), KeyAccepted)


async def test_unknown_key_is_an_authentication_error(server: BinanceUsdmServer) -> None:
    async with usdm(server, DemoKey(random_alnum(64), random_alnum(64))) as client:
        with pytest.raises(ccxt.AuthenticationError, match="request ip"):
            await client.fetch_balance()
    assert server.request_log[-1].status == 401


async def test_revoked_key_stays_an_authentication_error_after_a_success(
    server: BinanceUsdmServer,
) -> None:
    """Unlike spot, ccxt never turns a fapi -2015 into DDoSProtection (its quirk is spot-only)."""
    key = server.issue_key(FUTURES_KEY)
    async with usdm(server, key) as client:
        await client.fetch_balance()
        server.revoke_key(key.api_key)
        with pytest.raises(ccxt.AuthenticationError, match="-2015") as raised:
            await client.fetch_balance()
        assert type(raised.value) is ccxt.AuthenticationError
        with pytest.raises(ccxt.AuthenticationError, match="-2015"):
            await VENUE.probe(client)


async def test_key_from_an_untrusted_ip_is_refused(server: BinanceUsdmServer) -> None:
    key = server.issue_key(dataclasses.replace(FUTURES_KEY, ip_restricted=True))
    server.set_trusted_ips(key.api_key, ["203.0.113.7"])
    async with usdm(server, key) as client:
        with pytest.raises(ccxt.AuthenticationError, match="-2015"):
            await client.fetch_balance()
    server.set_trusted_ips(key.api_key, ["203.0.113.7", "127.0.0.1"])
    async with usdm(server, key) as client:
        await client.fetch_balance()


@pytest.mark.parametrize("offset_ms", [30_000, -5_000])
async def test_clock_skew_is_invalid_nonce_until_the_client_syncs_on_fapi_time(
    server: BinanceUsdmServer, offset_ms: int
) -> None:
    key = server.issue_key(FUTURES_KEY)
    server.clock_offset_ms = offset_ms
    async with usdm(server, key) as client:
        await client.load_markets()
        with pytest.raises(ccxt.InvalidNonce, match="-1021"):
            await client.fetch_balance()
        await client.load_time_difference()
        assert (await client.fetch_balance())["total"]["USDT"] == float(DEMO_BALANCES["USDT"])
    assert "/fapi/v1/time" in {entry.path for entry in server.request_log}


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (429, ccxt.DDoSProtection),  # binance maps 418/429 before reading the body
        (418, ccxt.DDoSProtection),
        (503, ccxt.ExchangeNotAvailable),  # fapi's gateway body carries no Binance code
        (500, ccxt.OperationFailed),  # -1000
    ],
)
async def test_injected_failures_map_to_ccxt_errors_and_then_clear(
    server: BinanceUsdmServer, status: int, error: type[Exception]
) -> None:
    key = server.issue_key(FUTURES_KEY)
    async with usdm(server, key) as client:
        await client.load_markets()
        server.fail_next(times=2, status=status)
        for _ in range(2):
            with pytest.raises(error) as raised:
                await client.fetch_balance()
            assert type(raised.value) is error
        await client.fetch_balance()

    assert [entry.status for entry in server.request_log[-3:]] == [status, status, 200]


async def test_testnet_client_probes_the_account_config_and_never_calls_sapi(
    server: BinanceUsdmServer,
) -> None:
    key = server.issue_key(FUTURES_KEY)
    async with usdm(server, key, sandbox=True) as client:
        assert "sapi" not in client.urls["api"]  # ccxt has no testnet URL for the wallet API
        await client.load_markets()
        summary = await VENUE.probe(client)
    result = await check(server, key, sandbox=True)

    assert summary.derivatives_trade and summary.ip_restricted is None
    assert not summary.can_move_funds_out and summary.withdraw_known
    assert isinstance(result, KeyAccepted)
    assert not any(entry.path.startswith("/sapi/") for entry in server.request_log)


async def test_positions_are_empty_until_one_is_opened(server: BinanceUsdmServer) -> None:
    key = server.issue_key(FUTURES_KEY)
    async with usdm(server, key) as client:
        assert await client.fetch_positions() == []
        server.open_position("BTC/USDT:USDT", "0.010", "70000", leverage=10)
        server.open_position("ETH/USDT:USDT", "-2", "4000")
        server.set_price("BTC/USDT:USDT", "72000")
        positions = {p["symbol"]: p for p in await client.fetch_positions()}
        balance = await client.fetch_balance()
        server.open_position("BTC/USDT:USDT", 0, 0)
        (left,) = await client.fetch_positions()

    btc, eth = positions["BTC/USDT:USDT"], positions["ETH/USDT:USDT"]
    assert (btc["side"], btc["contracts"], btc["entryPrice"]) == ("long", 0.01, 70000.0)
    assert btc["unrealizedPnl"] == pytest.approx(20.0) and btc["initialMargin"] == 72.0
    assert (eth["side"], eth["contracts"]) == ("short", 2.0)
    assert eth["unrealizedPnl"] == pytest.approx(2 * (4000 - 3990.12))
    usdt = balance["USDT"]
    assert usdt["total"] == pytest.approx(12500 + 20 + 2 * (4000 - 3990.12))
    assert usdt["free"] + usdt["used"] == pytest.approx(usdt["total"])
    assert left["symbol"] == "ETH/USDT:USDT"


async def test_leverage_brackets_follow_the_recorded_ladders(server: BinanceUsdmServer) -> None:
    key = server.issue_key(FUTURES_KEY)
    async with usdm(server, key) as client:
        await client.load_markets()
        tiers = await client.load_leverage_brackets()
        one = await client.fapiprivate_get_leveragebracket({"symbol": "BTCUSDT"})

    assert tiers["BTC/USDT:USDT"][:3] == [["0", "0.004"], ["50000", "0.005"], ["250000", "0.01"]]
    assert set(tiers) == {market.symbol for market in server.markets}
    brackets = one["brackets"]
    assert [b["initialLeverage"] for b in brackets[:4]] == [125, 100, 50, 20]
    assert brackets[0]["notionalCap"] == brackets[1]["notionalFloor"] == 50000
    assert brackets[1]["cum"] == pytest.approx(50000 * 0.001)


@pytest.mark.parametrize(
    ("path", "headers", "status", "code"),
    [
        ("/fapi/v3/account", {}, 401, -2014),
        ("/fapi/v3/account?timestamp=1", {"X-MBX-APIKEY": "KEY"}, 400, -1102),
        ("/fapi/v1/ticker/24hr?symbol=BTCEUR", {}, 400, -1121),
    ],
)
async def test_malformed_requests_get_binance_codes(
    server: BinanceUsdmServer, path: str, headers: dict[str, str], status: int, code: int
) -> None:
    key = server.issue_key(FUTURES_KEY)
    sent = {name: key.api_key if value == "KEY" else value for name, value in headers.items()}
    async with (
        aiohttp.ClientSession(server.base_url) as http,
        http.get(path, headers=sent) as response,
    ):
        assert response.status == status
        assert (await response.json())["code"] == code


@pytest.mark.parametrize("path", ["/api/v3/account", "/fapi/v1/allOpenOrders"])
async def test_spot_and_unserved_paths_are_binances_html_404(
    server: BinanceUsdmServer, path: str
) -> None:
    async with aiohttp.ClientSession(server.base_url) as http, http.get(path) as response:
        assert response.status == 404
        assert response.content_type == "text/html"


async def test_request_log_keeps_no_credentials(server: BinanceUsdmServer) -> None:
    canary = DemoKey("CANARYKEY" + random_alnum(55), "CANARYSECRET" + random_alnum(52))
    key = server.issue_key(FUTURES_KEY, material=canary)
    assert isinstance(
        await check(server, key),
        KeyAccepted,
    )
    async with usdm(server, Credentials(key.api_key, "wrong" + key.secret[5:])) as client:
        with pytest.raises(ccxt.AuthenticationError):
            await client.fetch_balance()

    assert [f.name for f in dataclasses.fields(LoggedRequest)] == [
        "time",
        "method",
        "path",
        "status",
    ]
    logged = repr(server.request_log)
    assert "CANARY" not in logged and key.secret[12:] not in logged
    assert "signature" not in logged and "timestamp" not in logged
    assert all("?" not in entry.path for entry in server.request_log)


def test_open_position_needs_a_served_perpetual() -> None:
    server = BinanceUsdmServer()
    with pytest.raises(ValueError, match="perpetual"):
        server.open_position("BTC/USDT", "1", "70000")
    server.open_position("BTC/USDT:USDT", Decimal("0.5"), "70000", account="alice")
    assert server.positions["alice"]["BTC/USDT:USDT"].amount == Decimal("0.5")
