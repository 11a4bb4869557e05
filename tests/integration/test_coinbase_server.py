"""What only the local Coinbase Advanced Trade server has: CDP (ES256) tokens, paged accounts.

The behaviour every venue shares is in ``test_venue_contract.py`` (row ``coinbase``).
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any, NamedTuple

import ccxt.async_support as ccxt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from bot.exchanges.catalogue import get_venue
from bot.sandbox.exchanges import CoinbaseServer, DemoKey, DemoPermissions
from bot.sandbox.exchanges.coinbase import CRYPTO
from tests.integration.venue_client import client_of, raw_request

COINBASE = get_venue("coinbase")
KEY_PERMISSIONS = "/api/v3/brokerage/key_permissions"


@pytest.fixture
async def server() -> AsyncIterator[CoinbaseServer]:
    async with CoinbaseServer() as running:
        yield running


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def token(secret_pem: str, header: dict[str, Any], claims: dict[str, Any]) -> str:
    """An ES256 JWT made with ``cryptography`` alone, to test the server apart from ccxt."""
    signing_input = (
        _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())
    )
    key = serialization.load_pem_private_key(secret_pem.encode(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return signing_input + "." + _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def good_token(server: CoinbaseServer, key: DemoKey, path: str, **changes: Any) -> str:
    """What Coinbase's SDKs send, with ``changes`` applied to the claims (or ``alg``/``kid``)."""
    now = int(time.time())
    host = server.base_url.removeprefix("http://")
    header = {"alg": "ES256", "kid": key.api_key, "nonce": secrets.token_hex(16), "typ": "JWT"}
    claims = {
        "sub": key.api_key,
        "iss": "cdp",
        "nbf": now,
        "exp": now + 120,
        "uri": f"GET {host}{path}",
    }
    signer = changes.pop("signed_with", key.secret)
    for name in ("alg", "kid"):
        if name in changes:
            header[name] = changes.pop(name)
    return token(signer, header, {**claims, **changes})


async def test_key_permissions_show_trade_without_transfer_for_the_accounts_portfolio(
    server: CoinbaseServer,
) -> None:
    async with client_of(server, server.issue_key(DemoPermissions(spot_trade=True))) as client:
        permissions = await client.v3_private_get_brokerage_key_permissions()
    assert permissions["can_trade"] and not permissions["can_transfer"]
    assert permissions["portfolio_uuid"] == server.portfolio_uuid("demo")


async def test_balance_follows_the_accounts_cursor_to_the_last_page(server: CoinbaseServer) -> None:
    server.set_balance("demo", "DOGE", "1000")
    async with client_of(server, server.issue_key()) as client:
        await client.load_markets()
        balance = await client.fetch_balance({"limit": 3})

    pages = [entry for entry in server.request_log if entry.path == "/api/v3/brokerage/accounts"]
    assert len(pages) == 3  # USD plus the seven listed coins, three to a page
    assert balance["total"]["DOGE"] == 1000.0 and balance["total"]["USD"] == 0.0
    assert set(balance["total"]) == {"USD", *CRYPTO}


async def test_clock_more_than_two_minutes_off_is_unauthorized_even_after_a_sync(
    server: CoinbaseServer,
) -> None:
    """ccxt stamps tokens with the local clock, not with its measured time difference."""
    key = server.issue_key()
    server.clock_offset_ms = 180_000
    async with client_of(server, key) as client:
        await client.load_time_difference()
        assert client.options["timeDifference"] < -170_000
        with pytest.raises(ccxt.AuthenticationError):
            await COINBASE.probe(client)
    server.clock_offset_ms = 60_000  # inside the token's two minutes
    async with client_of(server, key) as client:
        assert (await COINBASE.probe(client)).read


async def test_a_token_made_outside_ccxt_is_accepted(server: CoinbaseServer) -> None:
    headers = {"Authorization": "Bearer " + good_token(server, server.issue_key(), KEY_PERMISSIONS)}
    answer = await raw_request(server, f"GET {KEY_PERMISSIONS}", headers=headers)
    assert answer.status == 200 and answer.json()["can_view"] is True


class FROM_NOW(NamedTuple):  # named like a value: it reads as one in the table below
    """A claim time relative to the moment the test runs."""

    seconds: int


@pytest.mark.parametrize(
    "changes",
    [
        {"uri": "GET api.coinbase.com/api/v3/brokerage/key_permissions"},  # another host
        {"uri": "POST {host}/api/v3/brokerage/key_permissions"},
        {"uri": "GET {host}/api/v3/brokerage/accounts"},
        {"uri": "GET {host}/api/v3/brokerage/key_permissions?limit=1"},
        {"uri": None},
        {"exp": FROM_NOW(-1)},
        {"nbf": FROM_NOW(30), "exp": FROM_NOW(150)},
        {"exp": FROM_NOW(3600)},  # longer-lived than Coinbase allows
        {"nbf": "now"},
        {"sub": "organizations/00000000-0000-0000-0000-000000000000/apiKeys/x"},
        {"iss": "someone"},
        {"alg": "HS256"},
        {"kid": "organizations/unknown"},
        {"signed_with": "OTHER"},
    ],
)
async def test_tokens_that_do_not_verify_are_refused(
    server: CoinbaseServer, changes: dict[str, Any]
) -> None:
    key = server.issue_key()
    host = server.base_url.removeprefix("http://")
    # times are relative to when the test runs, not to when it was collected
    now = int(time.time())
    changes = {k: now + v.seconds if isinstance(v, FROM_NOW) else v for k, v in changes.items()}
    if isinstance(changes.get("uri"), str):
        changes = {**changes, "uri": changes["uri"].format(host=host)}
    if changes.get("signed_with") == "OTHER":
        changes = {"signed_with": server.new_key_material(with_passphrase=False).secret}
    headers = {"Authorization": "Bearer " + good_token(server, key, KEY_PERMISSIONS, **changes)}
    answer = await raw_request(server, f"GET {KEY_PERMISSIONS}", headers=headers)
    assert (answer.status, answer.text) == (401, "Unauthorized\n")


@pytest.mark.parametrize(
    "authorization",
    [None, "Basic abc", "Bearer", "Bearer a.b", "Bearer !!.??.**", "Bearer e30.e30."],
)
async def test_missing_or_malformed_authorization_is_unauthorized(
    server: CoinbaseServer, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    answer = await raw_request(server, "GET /api/v3/brokerage/accounts", headers=headers)
    assert answer.status == 401


def test_demo_keys_are_cdp_key_names_with_p256_private_keys() -> None:
    server = CoinbaseServer()
    first = server.issue_key()
    assert first.passphrase is None
    assert first.secret.startswith("-----BEGIN EC PRIVATE KEY-----\n")
    private = serialization.load_pem_private_key(first.secret.encode(), password=None)
    assert isinstance(private, ec.EllipticCurvePrivateKey) and private.curve.name == "secp256r1"
    name = first.api_key
    with pytest.raises(ValueError):
        server.issue_key(material=DemoKey(name.replace("apiKeys/", "apiKeys/1"), "not a pem"))
    rsa_like = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    other = server.new_key_material(with_passphrase=False).api_key
    with pytest.raises(ValueError, match="P-256"):
        server.issue_key(material=DemoKey(other, rsa_like.decode()))
