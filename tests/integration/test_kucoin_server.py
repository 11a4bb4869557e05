"""What only the local KuCoin server has: its v1/v2 passphrase headers and its codes.

The behaviour every venue shares is in ``test_venue_contract.py`` (row ``kucoin``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import AsyncIterator

import ccxt.async_support as ccxt
import pytest

from bot.sandbox.exchanges import DemoKey, KucoinServer
from bot.sandbox.exchanges.kucoin import passphrase_header
from tests.integration.venue_client import client_of, raw_request


@pytest.fixture
async def server() -> AsyncIterator[KucoinServer]:
    async with KucoinServer() as running:
        yield running


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


async def test_ccxt_maps_kucoins_404_to_not_supported(server: KucoinServer) -> None:
    async with client_of(server, server.issue_key()) as client:
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
    headers = signed_headers(server.issue_key(), "/api/v1/accounts", **overrides)
    answer = await raw_request(server, "GET /api/v1/accounts", headers=headers)
    assert (answer.status, answer.json()["code"]) == (status, code)


async def test_signature_covers_the_query_and_version_one_sends_the_plain_passphrase(
    server: KucoinServer,
) -> None:
    key = server.issue_key()
    endpoint = "/api/v1/accounts?currency=BTC&type=trade_hf"
    plain = {"KC-API-PASSPHRASE": key.passphrase or "", "KC-API-KEY-VERSION": "1"}
    signed = await raw_request(
        server, f"GET {endpoint}", headers=signed_headers(key, endpoint, **plain)
    )
    tampered = await raw_request(
        server,
        "GET /api/v1/accounts?currency=ETH&type=trade_hf",
        headers=signed_headers(key, endpoint),
    )

    accounts = signed.json()["data"]
    assert [(entry["currency"], entry["type"]) for entry in accounts] == [("BTC", "trade_hf")]
    assert tampered.json() == {"code": "400005", "msg": "Invalid KC-API-SIGN"}


def test_demo_keys_have_kucoins_format_and_always_a_passphrase() -> None:
    server = KucoinServer()
    first, second = server.issue_key(), server.issue_key(account="alice", with_passphrase=False)
    assert len(first.api_key) == 24 and len(first.secret) == 36 and second.passphrase
    with pytest.raises(ValueError, match="format"):
        server.issue_key(material=DemoKey("A" * 64, "secret", "pass"))
    with pytest.raises(ValueError, match="passphrase"):
        server.issue_key(material=DemoKey("a" * 24, "secret"))
