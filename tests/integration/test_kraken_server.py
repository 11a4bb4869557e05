"""What only the local Kraken server has: nonces, base64 secrets, its asset ids and errors.

The behaviour every venue shares is in ``test_venue_contract.py`` (row ``kraken``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import urlencode

import ccxt.async_support as ccxt
import pytest

from bot.exchanges.key_check import KeyRejected
from bot.exchanges.probes import kraken as kraken_probe
from bot.sandbox.exchanges import DemoKey, DemoPermissions, KrakenServer
from bot.sandbox.exchanges.base import DEMO_BALANCES
from storage.connections import ConnectionStatus
from storage.credentials import Credentials
from tests.integration.venue_client import client_of, key_check, raw_request


@pytest.fixture
async def server() -> AsyncIterator[KrakenServer]:
    async with KrakenServer() as running:
        yield running


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
    answer = await raw_request(server, f"POST {path}", headers=sent, data=body)
    return answer.status, answer.json()


async def test_balance_key_info_and_time_have_krakens_shape(server: KrakenServer) -> None:
    key = server.issue_key(DemoPermissions(spot_trade=True))
    server.set_balance("demo", "LTC", "3.5", used="0.5")
    server.set_balance("demo", "USD", "250.75")
    server.clock_offset_ms = 90_000
    async with client_of(server, key) as client:
        balance = await client.fetch_balance()
        info = await client.private_post_getapikeyinfo()
        server_time = await client.fetch_time()

    assert balance["USD"]["total"] == 250.75
    assert set(balance["info"]["result"]) >= {"XXBT", "XETH", "USDT", "XLTC", "ZUSD"}
    assert info["result"]["apiKey"] == key.api_key
    assert "modify-trades" in info["result"]["permissions"]
    assert "withdraw-funds" not in info["result"]["permissions"]
    assert abs(server_time - (time.time() * 1000 + 90_000)) < 5_000


async def test_a_secret_that_is_not_base64_is_rejected_as_reauth(server: KrakenServer) -> None:
    """ccxt cannot even sign with it; the check blames the secret (another key's: the contract)."""
    secret = "copied-only-half-of-the-key"
    result = await key_check(server, Credentials(server.issue_key().api_key, secret))

    assert isinstance(result, KeyRejected)
    assert result.diagnosis.status == ConnectionStatus.REAUTH and result.diagnosis.final
    assert secret not in repr(result)


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


async def test_a_lower_nonce_than_the_keys_last_is_invalid_nonce(server: KrakenServer) -> None:
    """Another program using the same key with a nonce ahead of ours: Kraken refuses ours."""
    key = server.issue_key()
    async with client_of(server, key) as client:
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
    ("headers", "params", "error"),
    [
        ({"API-Key": ""}, {}, "EAPI:Invalid key"),
        ({"API-Sign": "not-base64"}, {}, "EAPI:Invalid signature"),
        ({"API-Sign": "c2hvcnQ="}, {}, "EAPI:Invalid signature"),  # b"short"
        ({}, {"nonce": "12.5"}, "EAPI:Invalid nonce"),
        ({}, {"nonce": str(2**64)}, "EAPI:Invalid nonce"),
    ],
)
async def test_malformed_private_requests_get_kraken_errors(
    server: KrakenServer, headers: dict[str, str], params: dict[str, str], error: str
) -> None:
    key = server.issue_key()
    status, payload = await post_signed(server, key, "BalanceEx", headers=headers, params=params)
    assert (status, payload) == (200, {"error": [error]})


async def test_tickers_by_id_or_altname_are_answered_under_the_pair_id(
    server: KrakenServer,
) -> None:
    named = await raw_request(server, "GET /0/public/Ticker?pair=xbtusd,ETHUSDT")
    every = await raw_request(server, "GET /0/public/Ticker")

    assert list(named.json()["result"]) == ["XXBTZUSD", "ETHUSDT"]
    assert set(every.json()["result"]) == {pair.id for pair in server.pairs}


def test_demo_keys_look_like_krakens() -> None:
    server = KrakenServer()
    first = server.issue_key()
    assert (len(first.api_key), len(first.secret)) == (56, 88)
    assert len(base64.b64decode(first.api_key)) == 42
    assert len(base64.b64decode(first.secret)) == 64
    assert server.issue_key(with_passphrase=True).passphrase is None  # Kraken has none
    with pytest.raises(ValueError, match="64 bytes"):
        server.issue_key(material=DemoKey(first.api_key[::-1], "CANARY" + first.secret[6:-4]))
    canary = DemoKey("CANARYKEY" + first.api_key[9:][::-1], "CANARYSECRET" + first.secret[12:])
    assert server.issue_key(material=canary) == canary
