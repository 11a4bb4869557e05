"""The local KuCoin server through real ccxt over HTTP: what key checks and sweeps will meet."""

from __future__ import annotations

import base64
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
from bot.sandbox.exchanges.kucoin import KucoinServer, passphrase_header
from storage.connections import ConnectionStatus
from storage.credentials import Credentials
from tests.integration.venue_client import venue_client

KUCOIN = get_venue("kucoin")


@pytest.fixture
async def server() -> AsyncIterator[KucoinServer]:
    async with KucoinServer() as running:
        yield running


def credentials(key: DemoKey | Credentials) -> Credentials:
    return Credentials(key.api_key, key.secret, key.passphrase)


kucoin = partial(venue_client, KUCOIN)


async def check(server: KucoinServer, key: DemoKey | Credentials) -> KeyCheck:
    """The bot's own key check against the server."""
    return await check_key(
        KUCOIN, credentials(key), endpoint=server.base_url, sandbox=False, clock=utc_now
    )


def signed_headers(key: DemoKey, endpoint: str, **overrides: str) -> dict[str, str]:
    """KuCoin v2 headers signed by hand, to check the wire details ccxt hides."""
    timestamp = str(int(time.time() * 1000))
    digest = hmac.new(
        key.secret.encode(), f"{timestamp}GET{endpoint}".encode(), hashlib.sha256
    ).digest()
    return {
        "KC-API-KEY": key.api_key,
        "KC-API-SIGN": base64.b64encode(digest).decode(),
        "KC-API-TIMESTAMP": timestamp,
        "KC-API-PASSPHRASE": passphrase_header(key.secret, key.passphrase or ""),
        "KC-API-KEY-VERSION": "2",
        **overrides,
    }


async def test_valid_key_reads_markets_balance_permissions_and_tickers(
    server: KucoinServer,
) -> None:
    key = server.issue_key(DemoPermissions(spot_trade=True))
    server.set_balance("demo", "LTC", "3.5", used="0.5")
    server.set_price("ETH/USDT", "3012.34")
    async with kucoin(server, key) as client:
        markets = await client.load_markets()
        summary = await KUCOIN.probe(client)
        balance = await client.fetch_balance()
        tickers = await client.fetch_tickers()
        eth = await client.fetch_ticker("ETH/USDT")

    assert set(markets) == {item.symbol for item in server.symbols}
    assert markets["BTC/USDT"]["margin"] and not markets["DOGE/USDT"]["margin"]
    assert summary.read and summary.spot_trade and not summary.can_move_funds_out
    assert balance["total"]["BTC"] == float(DEMO_BALANCES["BTC"])
    assert balance["LTC"] == {"free": 3.5, "used": 0.5, "total": 4.0}
    assert set(tickers) == set(markets)
    assert eth["last"] == 3012.34 and eth["bid"] < eth["ask"]


async def test_key_check_accepts_a_read_key_and_reads_the_hf_trade_account(
    server: KucoinServer,
) -> None:
    key = server.issue_key()
    result = await check(server, key)

    assert isinstance(result, KeyAccepted)
    assert result.assets_held == len(DEMO_BALANCES)
    assert result.permissions.read and not result.permissions.can_trade
    assert result.permissions.ip_restricted is False and result.permissions.expires_at is None
    paths = [entry.path for entry in server.request_log]
    assert paths[0] == "/api/v1/user/api-key"
    # load_markets asks these four at once: spot pairs, margin pairs and the HF account flag.
    assert set(paths[1:5]) == {
        "/api/v2/symbols",
        "/api/v3/margin/symbols",
        "/api/v1/isolated/symbols",
        "/api/v1/hf/accounts/opened",
    }
    assert paths[5:] == ["/api/ua/v1/account/mode", "/api/v1/accounts"]
    assert "GET /api/v1/accounts" in {call.endpoint for call in result.calls}


async def test_currencies_answer_clients_that_load_them(server: KucoinServer) -> None:
    """Our catalogue skips them; ccxt's default load_markets asks (after the account mode)."""
    async with kucoin(server, server.issue_key()) as client:
        currencies = await client.fetch_currencies()
    assert {"BTC", "ETH", "USDT"} <= set(currencies)
    assert currencies["USDT"]["networks"]["TRC20"]["withdraw"] is True
    assert [entry.path for entry in server.request_log] == [
        "/api/ua/v1/account/mode",
        "/api/v3/currencies",
    ]


@pytest.mark.parametrize(
    ("permissions", "outcome"),
    [
        (DemoPermissions(withdraw=True, ip_restricted=True), "withdraw"),
        (DemoPermissions(internal_transfer=True), "transfer_out"),
        (DemoPermissions(spot_trade=True, withdraw=True, internal_transfer=True), "withdraw"),
    ],
)
async def test_keys_that_move_funds_out_are_refused(
    server: KucoinServer, permissions: DemoPermissions, outcome: str
) -> None:
    key = server.issue_key(permissions)
    result = await check(server, key)

    assert isinstance(result, KeyRefused)
    assert getattr(result.permissions, outcome)
    assert "/api/v1/accounts" not in {entry.path for entry in server.request_log}


@pytest.mark.parametrize(
    ("permissions", "spot", "derivatives"),
    [
        (DemoPermissions(), False, False),
        (DemoPermissions(spot_trade=True), True, False),
        (DemoPermissions(futures_trade=True, ip_restricted=True), False, True),
    ],
)
async def test_permission_probe_reads_the_keys_scopes(
    server: KucoinServer, permissions: DemoPermissions, spot: bool, derivatives: bool
) -> None:
    key = server.issue_key(permissions)
    async with kucoin(server, key) as client:
        summary = await KUCOIN.probe(client)

    assert summary.read and summary.spot_trade is spot
    assert summary.derivatives_trade is derivatives
    assert summary.ip_restricted is permissions.ip_restricted
    assert summary.expires_at is None and summary.withdraw_known


@pytest.mark.parametrize(
    ("wrong", "code"),
    [("secret", "400005"), ("passphrase", "400004"), ("key", "400003")],
)
async def test_wrong_secret_passphrase_or_key_is_rejected_for_reauth(
    server: KucoinServer, wrong: str, code: str
) -> None:
    key = server.issue_key()
    bad = {
        # a different first character, never the same one by chance
        "secret": Credentials(
            key.api_key, ("1" if key.secret[0] == "0" else "0") + key.secret[1:], key.passphrase
        ),
        "passphrase": Credentials(key.api_key, key.secret, "wrong" + (key.passphrase or "")),
        "key": Credentials("0" * 24, key.secret, key.passphrase),
    }[wrong]
    result = await check(server, bad)

    assert isinstance(result, KeyRejected)
    assert result.diagnosis.status == ConnectionStatus.REAUTH and result.diagnosis.final
    assert server.request_log[-1].status == 401
    async with kucoin(server, bad) as client:
        with pytest.raises(ccxt.AuthenticationError, match=code):
            await KUCOIN.probe(client)


async def test_revoked_key_is_an_authentication_error_until_restored(
    server: KucoinServer,
) -> None:
    key = server.issue_key()
    server.revoke_key(key.api_key)
    async with kucoin(server, key) as client:
        with pytest.raises(ccxt.AuthenticationError, match="400003"):
            await KUCOIN.probe(client)

    server.restore_key(key.api_key)
    async with kucoin(server, key) as client:
        assert (await KUCOIN.probe(client)).read


@pytest.mark.parametrize(
    ("flags", "code"), [({"ip_restricted": True}, "400006"), ({"read": False}, "400007")]
)
async def test_untrusted_ip_and_missing_permission_are_refused(
    server: KucoinServer, flags: dict[str, bool], code: str
) -> None:
    key = server.issue_key(DemoPermissions(**flags))
    server.set_trusted_ips(key.api_key, ["203.0.113.7"])
    async with kucoin(server, key) as client:
        with pytest.raises(ccxt.AuthenticationError, match=code):
            await KUCOIN.probe(client)
    assert server.request_log[-1].status == 403


@pytest.mark.parametrize("offset_ms", [30_000, -30_000])
async def test_clock_skew_is_invalid_nonce_until_the_client_syncs(
    server: KucoinServer, offset_ms: int
) -> None:
    key = server.issue_key()
    server.clock_offset_ms = offset_ms
    async with kucoin(server, key) as client:
        with pytest.raises(ccxt.InvalidNonce, match="400002"):
            await KUCOIN.probe(client)
        await client.load_time_difference()
        assert (await KUCOIN.probe(client)).read


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (429, ccxt.RateLimitExceeded),  # 429000
        (503, ccxt.ExchangeNotAvailable),
        (500, ccxt.ExchangeNotAvailable),  # 500000
    ],
)
async def test_injected_failures_map_to_ccxt_errors_and_then_clear(
    server: KucoinServer, status: int, error: type[Exception]
) -> None:
    key = server.issue_key()
    async with kucoin(server, key) as client:
        await client.fetch_balance()  # markets and account type known: one call per balance
        server.fail_next(times=2, status=status)
        for _ in range(2):
            with pytest.raises(error) as raised:
                await client.fetch_balance()
            assert type(raised.value) is error
        await client.fetch_balance()

    assert [entry.status for entry in server.request_log[-3:]] == [status, status, 200]


async def test_rate_limit_answers_carry_kucoins_headers(server: KucoinServer) -> None:
    server.fail_next(status=429)
    async with (
        aiohttp.ClientSession(server.base_url) as http,
        http.get("/api/v1/timestamp") as response,
    ):
        assert response.status == 429
        assert 0 < int(response.headers["gw-ratelimit-reset"]) <= 30_000
        assert await response.json() == {"code": "429000", "msg": "Too Many Requests"}


async def test_unknown_symbol_and_path(server: KucoinServer) -> None:
    async with kucoin(server, server.issue_key()) as client:
        with pytest.raises(ccxt.BadSymbol, match="Unsupported trading pair"):
            await client.public_get_market_stats({"symbol": "ETH-BTC"})
        with pytest.raises(ccxt.NotSupported, match="404000"):
            await client.public_get_market_histories({"symbol": "BTC-USDT"})


@pytest.mark.parametrize(
    ("overrides", "status", "code"),
    [
        ({"KC-API-PASSPHRASE": ""}, 401, "400001"),
        ({"KC-API-TIMESTAMP": "soon"}, 400, "400002"),
        ({"KC-API-KEY": "not-a-kucoin-key"}, 401, "400003"),
    ],
)
async def test_malformed_requests_get_kucoin_codes(
    server: KucoinServer, overrides: dict[str, str], status: int, code: str
) -> None:
    key = server.issue_key()
    async with (
        aiohttp.ClientSession(server.base_url) as http,
        http.get(
            "/api/v1/accounts", headers=signed_headers(key, "/api/v1/accounts", **overrides)
        ) as response,
    ):
        body = await response.json()
    assert response.status == status and body["code"] == code


async def test_signature_covers_the_query_and_version_one_sends_the_plain_passphrase(
    server: KucoinServer,
) -> None:
    key = server.issue_key()
    endpoint = "/api/v1/accounts?currency=BTC&type=trade_hf"
    plain = {"KC-API-PASSPHRASE": key.passphrase or "", "KC-API-KEY-VERSION": "1"}
    async with aiohttp.ClientSession(server.base_url) as http:
        async with http.get(endpoint, headers=signed_headers(key, endpoint, **plain)) as response:
            accounts = (await response.json())["data"]
        async with http.get(
            "/api/v1/accounts?currency=ETH&type=trade_hf", headers=signed_headers(key, endpoint)
        ) as response:
            tampered = await response.json()

    assert [(entry["currency"], entry["type"]) for entry in accounts] == [("BTC", "trade_hf")]
    assert tampered == {"code": "400005", "msg": "Invalid KC-API-SIGN"}


async def test_request_log_keeps_no_credentials(server: KucoinServer) -> None:
    canary = DemoKey("cafe" + "0" * 20, "CANARYSECRET-" + random_alnum(23), "CANARYPASS99")
    key = server.issue_key(material=canary)
    async with kucoin(server, key) as client:
        await client.fetch_balance()
        server.fail_next(status=429)
        with pytest.raises(ccxt.RateLimitExceeded):
            await client.fetch_balance()
    async with kucoin(server, Credentials(key.api_key, key.secret, "wrong")) as client:
        with pytest.raises(ccxt.AuthenticationError):
            await KUCOIN.probe(client)

    assert [f.name for f in dataclasses.fields(LoggedRequest)] == [
        "time",
        "method",
        "path",
        "status",
    ]
    logged = repr(server.request_log)
    assert "CANARY" not in logged and key.api_key not in logged
    assert all("?" not in entry.path for entry in server.request_log)
    assert "CANARY" not in repr(key)


def test_demo_keys_have_kucoins_format_and_always_a_passphrase() -> None:
    server = KucoinServer()
    first, second = server.issue_key(), server.issue_key(account="alice", with_passphrase=False)
    assert first.api_key != second.api_key and first.secret != second.secret
    assert len(first.api_key) == 24 and len(first.secret) == 36 and second.passphrase
    with pytest.raises(ValueError, match="format"):
        server.issue_key(material=DemoKey("A" * 64, "secret", "pass"))
    with pytest.raises(ValueError, match="passphrase"):
        server.issue_key(material=DemoKey("a" * 24, "secret"))
