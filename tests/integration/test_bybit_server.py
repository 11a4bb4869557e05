"""What only the local Bybit server has: the account-mode lookup, key expiry, its v5 codes.

The behaviour every venue shares is in ``test_venue_contract.py`` (row ``bybit``).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import AsyncIterator

import ccxt.async_support as ccxt
import pytest

from bot.exchanges.catalogue import get_venue
from bot.sandbox.exchanges import BybitServer, DemoKey
from bot.sandbox.exchanges.base import DEMO_BALANCES
from bot.sandbox.exchanges.bybit import UNBOUND_KEY_LIFETIME_MS
from tests.integration.venue_client import client_of, raw_request

BYBIT = get_venue("bybit")


@pytest.fixture
async def server() -> AsyncIterator[BybitServer]:
    async with BybitServer() as running:
        yield running


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


async def test_balance_without_the_probe_lets_ccxt_find_the_account_mode(
    server: BybitServer,
) -> None:
    async with client_of(server, server.issue_key()) as client:
        await client.load_markets()
        balance = await client.fetch_balance()

    assert balance["total"]["USDT"] == float(DEMO_BALANCES["USDT"])
    assert {entry.path for entry in server.request_log[-3:]} == {
        "/v5/user/query-api",
        "/v5/account/info",
        "/v5/account/wallet-balance",
    }


async def test_key_without_ip_bound_expires_after_ninety_days(server: BybitServer) -> None:
    key = server.issue_key()
    server.clock_offset_ms = UNBOUND_KEY_LIFETIME_MS + 60_000
    async with client_of(server, key) as client:
        await client.load_time_difference()
        with pytest.raises(ccxt.AuthenticationError, match="33004"):
            await BYBIT.probe(client)


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
    headers = signed_headers(server.issue_key(), query, **overrides)
    answer = await raw_request(server, f"GET /v5/account/wallet-balance?{query}", headers=headers)
    body = answer.json()
    assert answer.status == status
    assert body["retCode"] == code and body["result"] == {} and body["time"] > 0


async def test_signature_covers_the_query_string_as_sent(server: BybitServer) -> None:
    key = server.issue_key()
    query = "accountType=UNIFIED&coin=BTC,ETH"
    signed = await raw_request(
        server, f"GET /v5/account/wallet-balance?{query}", headers=signed_headers(key, query)
    )
    tampered = await raw_request(
        server,
        "GET /v5/account/wallet-balance?accountType=UNIFIED&coin=BTC",
        headers=signed_headers(key, query),
    )

    coins = signed.json()["result"]["list"][0]["coin"]
    assert [coin["coin"] for coin in coins] == ["BTC", "ETH"]
    assert tampered.json()["retCode"] == 10004


def test_demo_keys_have_bybits_format() -> None:
    server = BybitServer()
    key = server.issue_key()
    assert len(key.api_key) == 18 and len(key.secret) == 36
    with pytest.raises(ValueError, match="format"):
        server.issue_key(material=DemoKey("A" * 64, "secret"))
