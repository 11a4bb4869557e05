"""The local Kraken server through real ccxt over HTTP: what key checks and sweeps will meet."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import random
import time
from collections.abc import AsyncIterator, Mapping
from decimal import Decimal
from functools import partial
from typing import Any
from urllib.parse import urlencode

import aiohttp
import ccxt.async_support as ccxt
import pytest

from bot.clock import utc_now
from bot.exchanges.catalogue import get_venue
from bot.exchanges.key_check import KeyAccepted, KeyCheck, KeyRefused, KeyRejected, check_key
from bot.exchanges.probes import kraken as kraken_probe
from bot.sandbox.exchanges import DemoKey, DemoPermissions, LoggedRequest
from bot.sandbox.exchanges.base import DEMO_BALANCES
from bot.sandbox.exchanges.kraken import KrakenServer
from storage.connections import ConnectionStatus
from storage.credentials import Credentials
from tests.integration.venue_client import assert_faults_surface_then_clear, venue_client

KRAKEN = get_venue("kraken")


@pytest.fixture
async def server() -> AsyncIterator[KrakenServer]:
    async with KrakenServer() as running:
        yield running


kraken = partial(venue_client, KRAKEN)


async def check(server: KrakenServer, api_key: str, secret: str) -> KeyCheck:
    """The key check as the bot runs it: rate-limited client, probe first, then the balance."""
    credentials = Credentials(api_key, secret)
    return await check_key(
        KRAKEN, credentials, endpoint=server.base_url, sandbox=False, clock=utc_now
    )


def random_secret() -> str:
    return base64.b64encode(random.randbytes(64)).decode()


async def post_signed(
    server: KrakenServer,
    key: DemoKey,
    method: str,
    *,
    as_json: bool = False,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    """A private call signed by hand (millisecond nonce, as ccxt), to check the wire details."""
    path = f"/0/private/{method}"
    fields = {"nonce": str(int(time.time() * 1000)), **(params or {})}
    body = json.dumps(fields) if as_json else urlencode(fields)
    digest = hashlib.sha256((fields["nonce"] + body).encode()).digest()
    signature = hmac.new(base64.b64decode(key.secret), path.encode() + digest, hashlib.sha512)
    sent = {
        "API-Key": key.api_key,
        "API-Sign": base64.b64encode(signature.digest()).decode(),
        "Content-Type": "application/json" if as_json else "application/x-www-form-urlencoded",
        **(headers or {}),
    }
    async with (
        aiohttp.ClientSession(server.base_url) as http,
        http.post(path, data=body, headers=sent) as response,
    ):
        return response.status, await response.json()


async def test_valid_key_reads_markets_balance_key_info_tickers_and_time(
    server: KrakenServer,
) -> None:
    key = server.issue_key(DemoPermissions(spot_trade=True))
    server.set_balance("demo", "LTC", "3.5", used="0.5")
    server.set_balance("demo", "USD", "250.75")
    server.set_price("ETH/USDT", "3012.34")
    server.clock_offset_ms = 90_000
    async with kraken(server, key) as client:
        markets = await client.load_markets()
        balance = await client.fetch_balance()
        info = await client.private_post_getapikeyinfo()
        tickers = await client.fetch_tickers()
        eth = await client.fetch_ticker("ETH/USDT")
        server_time = await client.fetch_time()

    assert set(markets) == {pair.symbol for pair in server.pairs}
    assert markets["BTC/USD"]["id"] == "XXBTZUSD" and markets["BTC/USD"]["info"]["base"] == "XXBT"
    assert balance["total"]["BTC"] == float(DEMO_BALANCES["BTC"])
    assert balance["LTC"] == {"free": 3.5, "used": 0.5, "total": 4.0}
    assert balance["USD"]["total"] == 250.75
    assert set(balance["info"]["result"]) >= {"XXBT", "XETH", "USDT", "XLTC", "ZUSD"}
    assert info["result"]["apiKey"] == key.api_key
    assert "modify-trades" in info["result"]["permissions"]
    assert "withdraw-funds" not in info["result"]["permissions"]
    assert set(tickers) == set(markets)
    assert eth["last"] == 3012.34 and eth["bid"] < eth["ask"]
    assert abs(server_time - (time.time() * 1000 + 90_000)) < 5_000


async def test_read_key_check_is_accepted_after_four_calls(server: KrakenServer) -> None:
    """Probe, markets (Assets + AssetPairs), balance: ~5 s, ccxt spaces Kraken calls 1-3 s apart."""
    key = server.issue_key(DemoPermissions(ip_restricted=True))
    result = await check(server, key.api_key, key.secret)

    assert isinstance(result, KeyAccepted)
    assert result.permissions.read and not result.permissions.can_trade
    assert result.permissions.ip_restricted and result.permissions.withdraw_known
    assert result.assets_held == len(DEMO_BALANCES)
    assert [(entry.method, entry.path) for entry in server.request_log] == [
        ("POST", "/0/private/GetApiKeyInfo"),
        ("GET", "/0/public/Assets"),
        ("GET", "/0/public/AssetPairs"),
        ("POST", "/0/private/BalanceEx"),
    ]


@pytest.mark.parametrize(
    "permissions",
    [
        DemoPermissions(withdraw=True),
        DemoPermissions(spot_trade=True, withdraw=True, ip_restricted=True),
        DemoPermissions(internal_transfer=True),  # Kraken needs Withdraw Funds to transfer out
    ],
)
async def test_keys_that_can_move_funds_out_are_refused_after_the_probe_alone(
    server: KrakenServer, permissions: DemoPermissions
) -> None:
    key = server.issue_key(permissions)
    result = await check(server, key.api_key, key.secret)

    assert isinstance(result, KeyRefused)
    assert result.permissions.withdraw
    assert [entry.path for entry in server.request_log] == ["/0/private/GetApiKeyInfo"]


@pytest.mark.parametrize(
    "secret",
    [random_secret(), "copied-only-half-of-the-key"],
    ids=["another key's secret", "not base64"],
)
async def test_wrong_or_mangled_secret_is_rejected_as_reauth(
    server: KrakenServer, secret: str
) -> None:
    key = server.issue_key()
    result = await check(server, key.api_key, secret)

    assert isinstance(result, KeyRejected)
    assert result.diagnosis.status == ConnectionStatus.REAUTH and result.diagnosis.final
    assert secret not in repr(result)


@pytest.mark.parametrize(
    ("permissions", "spot", "ip"),
    [
        (DemoPermissions(), False, False),
        (DemoPermissions(spot_trade=True), True, False),
        (DemoPermissions(spot_trade=True, ip_restricted=True), True, True),
        (DemoPermissions(read=False, spot_trade=True), True, False),
        (DemoPermissions(futures_trade=True), False, False),  # Kraken Futures keys are separate
    ],
)
async def test_permission_probe_reads_the_keys_flags(
    server: KrakenServer, permissions: DemoPermissions, spot: bool, ip: bool
) -> None:
    key = server.issue_key(permissions)
    async with kraken(server, key) as client:
        summary = await KRAKEN.probe(client)

    assert summary.read is permissions.read and summary.spot_trade is spot
    assert summary.ip_restricted is ip
    assert not summary.can_move_funds_out and not summary.derivatives_trade
    assert summary.expires_at is None


@pytest.mark.parametrize("as_json", [False, True])
async def test_key_info_signed_by_hand_has_krakens_shape(
    server: KrakenServer, as_json: bool
) -> None:
    """Kraken accepts url-encoded and JSON bodies; the signature covers whichever is sent."""
    key = server.issue_key(DemoPermissions(withdraw=True, ip_restricted=True))
    status, payload = await post_signed(server, key, "GetApiKeyInfo", as_json=as_json)

    assert status == 200 and payload["error"] == []
    info = payload["result"]
    assert set(info) == {
        "apiKeyName", "apiKey", "nonce", "nonceWindow", "permissions", "iban", "validUntil",
        "queryFrom", "queryTo", "createdTime", "modifiedTime", "ipAllowlist", "lastUsed",
    }  # fmt: skip
    assert info["ipAllowlist"] == ["127.0.0.1", "::1"]
    assert info["iban"].startswith("AA") and len(info["iban"]) == 19
    summary = kraken_probe.summarize(payload)
    assert summary.withdraw and summary.read and summary.ip_restricted


async def test_unknown_and_revoked_keys_are_invalid_key(server: KrakenServer) -> None:
    unknown = DemoKey(base64.b64encode(random.randbytes(42)).decode(), random_secret())
    revoked = server.issue_key()
    server.revoke_key(revoked.api_key)
    for key in (unknown, revoked):
        async with kraken(server, key) as client:
            with pytest.raises(ccxt.AuthenticationError, match="EAPI:Invalid key"):
                await client.fetch_balance()

    server.restore_key(revoked.api_key)
    async with kraken(server, revoked) as client:
        assert (await client.fetch_balance())["total"]["ETH"] == float(DEMO_BALANCES["ETH"])


async def test_key_without_query_funds_or_from_an_untrusted_ip_is_permission_denied(
    server: KrakenServer,
) -> None:
    trade_only = server.issue_key(DemoPermissions(read=False, spot_trade=True))
    pinned = server.issue_key(DemoPermissions(ip_restricted=True))
    server.set_trusted_ips(pinned.api_key, ["203.0.113.7"])

    async with kraken(server, trade_only) as client:
        assert (await KRAKEN.probe(client)).spot_trade  # GetApiKeyInfo needs no permission
        with pytest.raises(ccxt.PermissionDenied, match="EGeneral:Permission denied"):
            await client.fetch_balance()
    async with kraken(server, pinned) as client:
        with pytest.raises(ccxt.PermissionDenied, match="EGeneral:Permission denied"):
            await KRAKEN.probe(client)

    server.set_trusted_ips(pinned.api_key, ["203.0.113.7", "127.0.0.1"])
    async with kraken(server, pinned) as client:
        await client.fetch_balance()


async def test_a_lower_nonce_than_the_keys_last_is_invalid_nonce(server: KrakenServer) -> None:
    """Another program using the same key with a nonce ahead of ours: Kraken refuses ours."""
    key = server.issue_key()
    async with kraken(server, key) as client:
        await client.load_markets()
        await client.fetch_balance()
        client.options["lastNonce"] = 0
        client.options["timeDifference"] = 60_000  # our nonce now runs a minute behind
        with pytest.raises(ccxt.InvalidNonce, match="EAPI:Invalid nonce"):
            await client.fetch_balance()
        client.options["timeDifference"] = 0
        assert (await client.fetch_balance())["total"]["USDT"] == float(DEMO_BALANCES["USDT"])

    status, payload = await post_signed(server, key, "BalanceEx", params={"nonce": "1"})
    assert (status, payload) == (200, {"error": ["EAPI:Invalid nonce"]})


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (429, None, ccxt.DDoSProtection),  # EAPI:Rate limit exceeded
        (429, "<html>error code: 1015</html>", ccxt.RateLimitExceeded),  # the CDN's own limit
        (503, None, ccxt.ExchangeNotAvailable),  # EService:Unavailable
        (500, None, ccxt.ExchangeNotAvailable),  # EGeneral:Internal error
        (502, None, ccxt.ExchangeNotAvailable),  # the CDN's page
        (520, None, ccxt.ExchangeNotAvailable),
    ],
)
async def test_injected_failures_map_to_ccxt_errors_and_then_clear(
    server: KrakenServer, status: int, body: str | None, error: type[Exception]
) -> None:
    await assert_faults_surface_then_clear(KRAKEN, server, status, body, error)


async def test_slow_server_is_a_request_timeout(server: KrakenServer) -> None:
    key = server.issue_key()
    async with kraken(server, key, timeout_ms=200) as client:
        server.set_delay(2.0)
        started = time.monotonic()
        with pytest.raises(ccxt.RequestTimeout):
            await client.fetch_time()
        assert time.monotonic() - started < 1.5
        server.set_delay(0)
        assert await client.fetch_time() > 0

    assert [entry.status for entry in server.request_log] == [499, 200]


@pytest.mark.parametrize(
    ("method", "headers", "params", "error"),
    [
        ("BalanceEx", {"API-Key": ""}, {}, "EAPI:Invalid key"),
        ("BalanceEx", {"API-Sign": "not-base64"}, {}, "EAPI:Invalid signature"),
        ("BalanceEx", {"API-Sign": "c2hvcnQ="}, {}, "EAPI:Invalid signature"),  # b"short"
        ("BalanceEx", {}, {"nonce": "12.5"}, "EAPI:Invalid nonce"),
        ("BalanceEx", {}, {"nonce": str(2**64)}, "EAPI:Invalid nonce"),
    ],
)  # fmt: skip
async def test_malformed_private_requests_get_kraken_errors(
    server: KrakenServer, method: str, headers: dict[str, str], params: dict[str, str], error: str
) -> None:
    key = server.issue_key()
    status, payload = await post_signed(server, key, method, headers=headers, params=params)
    assert (status, payload) == (200, {"error": [error]})


async def test_unknown_pairs_and_methods_get_kraken_errors(server: KrakenServer) -> None:
    async with aiohttp.ClientSession(server.base_url) as http:
        async with http.get("/0/public/Ticker", params={"pair": "XBTUSDT,BTCEUR"}) as response:
            assert response.status == 200
            assert await response.json() == {"error": ["EQuery:Unknown asset pair"]}
        async with http.post("/0/private/Withdraw") as response:
            assert response.status == 404
            assert await response.json() == {"error": ["EGeneral:Unknown method"]}


async def test_tickers_by_id_or_altname_and_price_walk(server: KrakenServer) -> None:
    before = {symbol: stats.last for symbol, stats in server.prices.items()}
    server.step_prices(random.Random(7))
    async with aiohttp.ClientSession(server.base_url) as http:
        async with http.get("/0/public/Ticker", params={"pair": "xbtusd,ETHUSDT"}) as response:
            named = (await response.json())["result"]
        async with http.get("/0/public/Ticker") as response:
            every = (await response.json())["result"]

    assert list(named) == ["XXBTZUSD", "ETHUSDT"]  # answered under the pair id, as Kraken does
    assert set(every) == {pair.id for pair in server.pairs}
    for symbol, stats in server.prices.items():
        assert stats.last != before[symbol]
        assert abs(stats.last / before[symbol] - 1) < Decimal("0.02")


async def test_request_log_keeps_no_credentials(server: KrakenServer) -> None:
    random_key = server.new_key_material(with_passphrase=False)
    canary = DemoKey("CANARYKEY" + random_key.api_key[9:], "CANARYSECRET" + random_key.secret[12:])
    key = server.issue_key(material=canary)
    async with kraken(server, key) as client:
        await client.fetch_balance()
        await KRAKEN.probe(client)
        server.fail_next(status=429)
        with pytest.raises(ccxt.DDoSProtection):
            await client.fetch_balance()
    async with kraken(server, Credentials(key.api_key, random_secret())) as client:
        with pytest.raises(ccxt.AuthenticationError):
            await client.fetch_balance()

    assert [f.name for f in dataclasses.fields(LoggedRequest)] == [
        "time",
        "method",
        "path",
        "status",
    ]
    logged = repr(server.request_log)
    assert "CANARY" not in logged and key.secret[12:30] not in logged
    assert "nonce" not in logged and "sign" not in logged.lower()
    assert "CANARY" not in repr(key)


def test_demo_keys_look_like_krakens() -> None:
    server = KrakenServer()
    first, second = server.issue_key(), server.issue_key(account="alice")
    assert first.api_key != second.api_key and first.secret != second.secret
    assert (len(first.api_key), len(first.secret)) == (56, 88)
    assert len(base64.b64decode(first.api_key)) == 42
    assert len(base64.b64decode(first.secret)) == 64
    assert server.issue_key(with_passphrase=True).passphrase is None  # Kraken has none
    with pytest.raises(ValueError, match="format"):
        server.issue_key(material=DemoKey("too-short", random_secret()))
    with pytest.raises(ValueError, match="64 bytes"):
        server.issue_key(material=DemoKey(first.api_key[::-1], "CANARY" + first.secret[6:-4]))
    canary = DemoKey("CANARYKEY" + first.api_key[9:][::-1], "CANARYSECRET" + first.secret[12:])
    assert server.issue_key(material=canary) == canary
