"""The local OKX server through real ccxt over HTTP: what key checks and sweeps will meet."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from functools import partial

import aiohttp
import ccxt.async_support as ccxt
import pytest

from bot.clock import utc_now
from bot.exchanges.catalogue import get_venue
from bot.exchanges.key_check import KeyAccepted, KeyCheck, KeyRefused, KeyRejected, check_key
from bot.exchanges.probes import okx as okx_probe
from bot.sandbox.exchanges import DemoKey, DemoPermissions, LoggedRequest
from bot.sandbox.exchanges.base import DEMO_BALANCES
from bot.sandbox.exchanges.okx import OkxServer
from storage.connections import ConnectionStatus
from storage.credentials import Credentials
from tests.integration.venue_client import assert_faults_surface_then_clear, venue_client

OKX = get_venue("okx")


@pytest.fixture
async def server() -> AsyncIterator[OkxServer]:
    async with OkxServer() as running:
        yield running


def credentials(key: DemoKey, **changes: str) -> Credentials:
    return dataclasses.replace(Credentials(key.api_key, key.secret, key.passphrase), **changes)


okx = partial(venue_client, OKX)


async def check(server: OkxServer, creds: Credentials) -> KeyCheck:
    """The bot's own key check, against the server, in live (not demo-trading) mode."""
    return await check_key(OKX, creds, endpoint=server.base_url, sandbox=False, clock=utc_now)


def signed_headers(key: DemoKey, path: str, *, timestamp: str | None = None) -> dict[str, str]:
    """Headers for a GET signed by hand, to check the wire details ccxt hides."""
    stamp = timestamp or datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    digest = hmac.new(key.secret.encode(), f"{stamp}GET{path}".encode(), hashlib.sha256).digest()
    return {
        "OK-ACCESS-KEY": key.api_key,
        "OK-ACCESS-SIGN": base64.b64encode(digest).decode(),
        "OK-ACCESS-TIMESTAMP": stamp,
        "OK-ACCESS-PASSPHRASE": key.passphrase or "",
    }


async def test_valid_key_reads_markets_balance_config_and_tickers(server: OkxServer) -> None:
    key = server.issue_key(DemoPermissions(spot_trade=True))
    server.set_balance("demo", "LTC", "3.5", used="0.5")
    server.set_price("ETH/USDT", "3012.34")
    async with okx(server, key) as client:
        markets = await client.load_markets()
        balance = await client.fetch_balance()
        summary = await OKX.probe(client)
        tickers = await client.fetch_tickers()
        eth = await client.fetch_ticker("ETH/USDT")

    assert set(markets) == {i.symbol for i in server.instruments if i.info["instType"] == "SPOT"}
    assert client.currencies["USDT"]["networks"]["TRC20"]["withdraw"] is True
    assert balance["total"]["BTC"] == float(DEMO_BALANCES["BTC"])
    assert balance["LTC"] == {"free": 3.5, "used": 0.5, "total": 4.0}
    assert summary.read and summary.spot_trade and not summary.can_move_funds_out
    assert set(tickers) == set(markets)
    assert eth["last"] == 3012.34 and eth["bid"] < eth["ask"]


async def test_key_check_makes_three_signed_calls_and_one_public(server: OkxServer) -> None:
    """Options keep market loading to SPOT; the signed currency list comes with any live key."""
    key = server.issue_key()
    result = await check(server, credentials(key))

    assert isinstance(result, KeyAccepted) and result.assets_held == len(DEMO_BALANCES)
    assert [entry.path for entry in server.request_log] == [
        "/api/v5/account/config",
        "/api/v5/asset/currencies",
        "/api/v5/public/instruments",
        "/api/v5/account/balance",
    ]


async def test_demo_trading_key_works_in_sandbox_mode_and_only_there(server: OkxServer) -> None:
    demo = server.issue_key(DemoPermissions(spot_trade=True), demo_trading=True)
    live = server.issue_key()
    async with okx(server, demo, sandbox=True) as client:
        assert client.headers["x-simulated-trading"] == "1"
        summary = await OKX.probe(client)
        balance = await client.fetch_balance()
    assert summary.spot_trade and balance["total"]["USDT"] == float(DEMO_BALANCES["USDT"])
    # ccxt skips the currency list in demo trading: one public call loads the markets.
    assert [entry.path for entry in server.request_log][1:] == [
        "/api/v5/public/instruments",
        "/api/v5/account/balance",
    ]

    for key, sandbox in ((demo, False), (live, True)):
        async with okx(server, key, sandbox=sandbox) as client:
            with pytest.raises(ccxt.AuthenticationError, match="50101"):
                await client.fetch_balance()


@pytest.mark.parametrize(
    ("permissions", "trade", "moves_funds_out"),
    [
        (DemoPermissions(), False, False),
        (DemoPermissions(spot_trade=True), True, False),
        (DemoPermissions(futures_trade=True, ip_restricted=True), True, False),
        (DemoPermissions(withdraw=True, ip_restricted=True), False, True),
        (DemoPermissions(spot_trade=True, withdraw=True), True, True),
    ],
)
async def test_permission_probe_reads_the_keys_perm_and_ip(
    server: OkxServer, permissions: DemoPermissions, trade: bool, moves_funds_out: bool
) -> None:
    key = server.issue_key(permissions)
    async with okx(server, key) as client:
        summary = await OKX.probe(client)

    assert summary.read and summary.withdraw_known
    assert summary.spot_trade is trade and summary.derivatives_trade is trade
    assert summary.can_move_funds_out is moves_funds_out
    assert summary.ip_restricted is permissions.ip_restricted
    assert summary.expires_at is None


async def test_summarize_reads_the_servers_own_config_payload(server: OkxServer) -> None:
    key = server.issue_key(DemoPermissions(spot_trade=True, withdraw=True, ip_restricted=True))
    path = "/api/v5/account/config"
    async with (
        aiohttp.ClientSession(server.base_url) as http,
        http.get(path, headers=signed_headers(key, path)) as response,
    ):
        payload = await response.json()

    config = payload["data"][0]
    assert payload["code"] == "0" and config["perm"] == "read_only,withdraw,trade"
    assert config["ip"] == "127.0.0.1,::1"
    summary = okx_probe.summarize(config)
    assert summary.withdraw and summary.ip_restricted and summary.spot_trade


async def test_key_check_accepts_read_keys_and_refuses_withdraw_keys(server: OkxServer) -> None:
    read = server.issue_key(DemoPermissions(ip_restricted=True))
    withdraw = server.issue_key(DemoPermissions(withdraw=True))

    accepted = await check(server, credentials(read))
    refused = await check(server, credentials(withdraw))

    assert isinstance(accepted, KeyAccepted) and accepted.permissions.ip_restricted
    assert isinstance(refused, KeyRefused) and refused.permissions.withdraw
    # A refused key is never used past the permission probe.
    assert server.request_log[-1].path == "/api/v5/account/config"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"secret": "0123456789ABCDEF0123456789ABCDEF"}, "50113"),
        ({"passphrase": "Wrong-Pass1"}, "50105"),
        ({"api_key": "00000000-0000-4000-8000-000000000000"}, "50111"),
    ],
)
async def test_key_check_rejects_a_wrong_secret_passphrase_or_key_as_reauth(
    server: OkxServer, change: dict[str, str], code: str
) -> None:
    key = server.issue_key()
    creds = credentials(key, **change)
    result = await check(server, creds)

    assert isinstance(result, KeyRejected)
    assert result.diagnosis.status is ConnectionStatus.REAUTH and result.diagnosis.final
    assert server.request_log[-1].status == 401
    async with okx(server, creds) as client:
        with pytest.raises(ccxt.AuthenticationError, match=code):
            await client.fetch_balance()


async def test_wrong_secret_is_diagnosed_as_a_secret_mismatch(server: OkxServer) -> None:
    key = server.issue_key()
    creds = credentials(key, secret=key.secret[::-1])
    result = await check(server, creds)
    assert isinstance(result, KeyRejected)
    assert (
        "secret" in result.diagnosis.cause and result.diagnosis.exchange_message == "Invalid Sign"
    )


async def test_revoked_key_is_refused_until_restored(server: OkxServer) -> None:
    key = server.issue_key()
    server.revoke_key(key.api_key)
    async with okx(server, key) as client:
        with pytest.raises(ccxt.AuthenticationError, match="50111"):
            await client.fetch_balance()
    server.restore_key(key.api_key)
    async with okx(server, key) as client:
        assert (await client.fetch_balance())["total"]["ETH"] == float(DEMO_BALANCES["ETH"])


async def test_untrusted_ip_is_permission_denied_and_a_reauth(server: OkxServer) -> None:
    pinned = server.issue_key(DemoPermissions(ip_restricted=True))
    server.set_trusted_ips(pinned.api_key, ["203.0.113.7"])
    async with okx(server, pinned) as client:
        with pytest.raises(ccxt.PermissionDenied, match="50110"):
            await OKX.probe(client)
    result = await check(server, credentials(pinned))
    assert isinstance(result, KeyRejected)
    assert result.diagnosis.status is ConnectionStatus.REAUTH and "IP" in result.diagnosis.cause

    server.set_trusted_ips(pinned.api_key, ["203.0.113.7", "127.0.0.1"])
    async with okx(server, pinned) as client:
        assert (await OKX.probe(client)).ip_restricted


async def test_key_without_read_permission_gets_okx_permission_code(server: OkxServer) -> None:
    key = server.issue_key(DemoPermissions(read=False, spot_trade=True))
    async with okx(server, key) as client:
        with pytest.raises(ccxt.ExchangeError, match="50120"):
            await client.fetch_balance()


@pytest.mark.parametrize("offset_ms", [45_000, -45_000])
async def test_clock_skew_is_invalid_nonce_until_the_client_syncs(
    server: OkxServer, offset_ms: int
) -> None:
    """OKX allows 30 s either way; ccxt's nonce follows ``load_time_difference``."""
    key = server.issue_key()
    server.clock_offset_ms = offset_ms
    async with okx(server, key) as client:
        with pytest.raises(ccxt.InvalidNonce, match="50102"):
            await OKX.probe(client)
        await client.load_time_difference()
        assert (await OKX.probe(client)).read


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (429, None, ccxt.RateLimitExceeded),  # 50011
        (429, "Too Many Requests", ccxt.ExchangeNotAvailable),  # ccxt's okx maps a bare 429 so
        (503, None, ccxt.OnMaintenance),  # 50001, an ExchangeNotAvailable
        (503, "Service Unavailable", ccxt.ExchangeNotAvailable),
        (500, None, ccxt.ExchangeNotAvailable),  # 50026
    ],
)
async def test_injected_failures_map_to_ccxt_errors_and_then_clear(
    server: OkxServer, status: int, body: str | None, error: type[Exception]
) -> None:
    await assert_faults_surface_then_clear(OKX, server, status, body, error)


@pytest.mark.parametrize(
    ("path", "drop", "timestamp", "status", "code"),
    [
        ("/api/v5/account/balance", "OK-ACCESS-KEY", None, 401, "50103"),
        ("/api/v5/account/balance", "OK-ACCESS-SIGN", None, 401, "50106"),
        ("/api/v5/account/balance", "OK-ACCESS-TIMESTAMP", None, 401, "50107"),
        ("/api/v5/account/balance", "OK-ACCESS-PASSPHRASE", None, 401, "50104"),
        ("/api/v5/account/balance", None, "1732170000000", 401, "50112"),
        ("/api/v5/account/balance", None, "2024-11-21T06:20:00.000Z", 401, "50102"),
        ("/api/v5/public/instruments", None, None, 400, "50014"),
        ("/api/v5/public/instruments?instType=STOCK", None, None, 400, "51000"),
        ("/api/v5/market/ticker?instId=BTC-EUR", None, None, 200, "51001"),
    ],
)
async def test_malformed_requests_get_okx_codes(
    server: OkxServer,
    path: str,
    drop: str | None,
    timestamp: str | None,
    status: int,
    code: str,
) -> None:
    key = server.issue_key()
    headers = signed_headers(key, path, timestamp=timestamp)
    headers.pop(drop or "", None)
    async with (
        aiohttp.ClientSession(server.base_url) as http,
        http.get(path, headers=headers) as response,
    ):
        assert response.status == status
        assert (await response.json())["code"] == code


async def test_signature_covers_the_query_string(server: OkxServer) -> None:
    key = server.issue_key()
    signed = "/api/v5/account/balance?ccy=BTC"
    async with aiohttp.ClientSession(server.base_url) as http:
        async with http.get(signed, headers=signed_headers(key, signed)) as response:
            details = (await response.json())["data"][0]["details"]
        async with http.get(
            "/api/v5/account/balance?ccy=ETH", headers=signed_headers(key, signed)
        ) as response:
            tampered = await response.json()

    assert [detail["ccy"] for detail in details] == ["BTC"]
    assert tampered == {"msg": "Invalid Sign", "code": "50113"}


async def test_request_log_keeps_no_credentials(server: OkxServer) -> None:
    canary = DemoKey(
        "cafe0000-aaaa-4bbb-8ccc-c0ffeec0ffee", "CA5A7A2B5EC2E7CA5A7A2B5EC2E7CA5A", "Canary-Pass1!"
    )
    key = server.issue_key(material=canary)
    async with okx(server, key) as client:
        await client.fetch_balance()
        server.fail_next(status=429)
        with pytest.raises(ccxt.RateLimitExceeded):
            await client.fetch_balance()
    async with okx(server, credentials(key, passphrase="Wrong-Pass1")) as client:
        with pytest.raises(ccxt.AuthenticationError):
            await client.fetch_balance()

    assert [f.name for f in dataclasses.fields(LoggedRequest)] == [
        "time",
        "method",
        "path",
        "status",
    ]
    logged = repr(server.request_log)
    for secret in (canary.api_key, "c0ffee", canary.secret, "Canary", "Wrong-Pass"):
        assert secret not in logged
    assert all("?" not in entry.path for entry in server.request_log)
    assert "Canary" not in repr(key) and canary.secret not in repr(key)


def test_demo_keys_look_like_okx_keys() -> None:
    server = OkxServer()
    first, second = server.issue_key(), server.issue_key(account="alice")
    assert first.api_key != second.api_key and first.secret != second.secret
    assert OkxServer.key_format.fullmatch(first.api_key)
    assert len(first.secret) == 32 and first.secret == first.secret.upper()
    int(first.secret, 16)
    passphrase = first.passphrase or ""
    assert 8 <= len(passphrase) <= 32
    assert any(c.isupper() for c in passphrase) and any(c.islower() for c in passphrase)
    assert any(c.isdigit() for c in passphrase) and not passphrase.isalnum()
    with pytest.raises(ValueError, match="passphrase"):
        server.issue_key(material=DemoKey(first.api_key[::-1], first.secret))
    with pytest.raises(ValueError, match="format"):
        server.issue_key(material=DemoKey("not-a-uuid", first.secret, "Pass-word1"))
