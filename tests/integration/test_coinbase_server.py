"""The local Coinbase Advanced Trade server through real ccxt over HTTP, with CDP (ES256) keys."""

from __future__ import annotations

import base64
import dataclasses
import json
import secrets
import time
from collections.abc import AsyncIterator
from functools import partial
from typing import Any, NamedTuple

import aiohttp
import ccxt.async_support as ccxt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from bot.clock import utc_now
from bot.exchanges.catalogue import get_venue
from bot.exchanges.key_check import KeyAccepted, KeyCheck, KeyRefused, KeyRejected, check_key
from bot.sandbox.exchanges import DemoKey, DemoPermissions, LoggedRequest
from bot.sandbox.exchanges.base import DEMO_BALANCES
from bot.sandbox.exchanges.coinbase import CRYPTO, CoinbaseServer
from storage.connections import ConnectionStatus
from storage.credentials import Credentials
from tests.integration.venue_client import venue_client

COINBASE = get_venue("coinbase")

LOAD_MARKETS = [
    ("/v2/currencies", 200),
    ("/v2/currencies/crypto", 200),
    ("/v2/exchange-rates", 200),
    ("/api/v3/brokerage/market/products", 200),  # spot
    ("/api/v3/brokerage/transaction_summary", 200),  # fees: ccxt signs it whenever a key is set
    ("/api/v3/brokerage/market/products", 200),  # product_type=FUTURE, none here
]


@pytest.fixture
async def server() -> AsyncIterator[CoinbaseServer]:
    async with CoinbaseServer() as running:
        yield running


def credentials(key: DemoKey) -> Credentials:
    return Credentials(key.api_key, key.secret)


async def check(server: CoinbaseServer, creds: Credentials) -> KeyCheck:
    """The bot's own key check, pointed at the server."""
    return await check_key(COINBASE, creds, endpoint=server.base_url, sandbox=False, clock=utc_now)


coinbase = partial(venue_client, COINBASE)


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


async def test_valid_key_reads_markets_balance_permissions_and_tickers(
    server: CoinbaseServer,
) -> None:
    key = server.issue_key(DemoPermissions(spot_trade=True))
    server.set_balance("demo", "LTC", "3.5", used="0.5")
    server.set_price("ETH/USDT", "3012.34")
    async with coinbase(server, key) as client:
        markets = await client.load_markets()
        balance = await client.fetch_balance()
        permissions = await client.v3_private_get_brokerage_key_permissions()
        tickers = await client.fetch_tickers(["BTC/USDT", "ETH/USDT"])
        eth = await client.fetch_ticker("ETH/USDT")

    assert set(markets) == {product.symbol for product in server.products}
    assert markets["BTC/USDT"]["precision"] == {"amount": 1e-08, "price": 0.01}
    assert markets["BTC/USDT"]["taker"] == 0.012  # from the signed transaction_summary
    assert balance["total"]["BTC"] == float(DEMO_BALANCES["BTC"])
    assert balance["LTC"] == {"free": 3.5, "used": 0.5, "total": 4.0}
    assert permissions["can_trade"] and not permissions["can_transfer"]
    assert permissions["portfolio_uuid"] == server.portfolio_uuid("demo")
    assert set(tickers) == {"BTC/USDT", "ETH/USDT"}
    assert eth["last"] == 3012.34 and eth["bid"] < eth["ask"]


async def test_key_check_accepts_a_view_key_and_makes_these_calls(server: CoinbaseServer) -> None:
    key = server.issue_key()
    outcome = await check(server, credentials(key))

    assert isinstance(outcome, KeyAccepted) and outcome.assets_held == len(DEMO_BALANCES)
    assert outcome.permissions.read and outcome.permissions.ip_restricted is None
    assert [(entry.path, entry.status) for entry in server.request_log] == [
        ("/api/v3/brokerage/key_permissions", 200),
        *LOAD_MARKETS,
        ("/api/v3/brokerage/accounts", 200),
    ]


async def test_balance_follows_the_accounts_cursor_to_the_last_page(server: CoinbaseServer) -> None:
    key = server.issue_key()
    server.set_balance("demo", "DOGE", "1000")
    async with coinbase(server, key) as client:
        await client.load_markets()
        balance = await client.fetch_balance({"limit": 3})

    pages = [entry for entry in server.request_log if entry.path == "/api/v3/brokerage/accounts"]
    assert len(pages) == 3  # USD plus the seven listed coins, three to a page
    assert balance["total"]["DOGE"] == 1000.0 and balance["total"]["USD"] == 0.0
    assert set(balance["total"]) == {"USD", *CRYPTO}


@pytest.mark.parametrize(
    "permissions", [DemoPermissions(withdraw=True), DemoPermissions(internal_transfer=True)]
)
async def test_transfer_keys_are_refused_before_any_balance_read(
    server: CoinbaseServer, permissions: DemoPermissions
) -> None:
    key = server.issue_key(permissions)
    outcome = await check(server, credentials(key))

    assert isinstance(outcome, KeyRefused)
    assert outcome.permissions.withdraw and outcome.permissions.transfer_out
    assert [entry.path for entry in server.request_log] == ["/api/v3/brokerage/key_permissions"]


async def test_another_private_key_is_rejected_as_reauth(server: CoinbaseServer) -> None:
    key = server.issue_key()
    stranger = server.new_key_material(with_passphrase=False)
    outcome = await check(server, Credentials(key.api_key, stranger.secret))

    assert isinstance(outcome, KeyRejected)
    assert outcome.diagnosis.status == ConnectionStatus.REAUTH and outcome.diagnosis.final
    assert server.request_log[-1].status == 401


async def test_unknown_or_revoked_key_is_an_authentication_error(server: CoinbaseServer) -> None:
    key = server.issue_key()
    server.revoke_key(key.api_key)
    for candidate in (key, server.new_key_material(with_passphrase=False)):
        async with coinbase(server, candidate) as client:
            with pytest.raises(ccxt.AuthenticationError, match="401") as raised:
                await COINBASE.probe(client)
        assert type(raised.value) is ccxt.AuthenticationError

    server.restore_key(key.api_key)
    async with coinbase(server, key) as client:
        assert (await COINBASE.probe(client)).read


async def test_untrusted_ip_is_unauthorized_and_a_key_without_view_lacks_scopes(
    server: CoinbaseServer,
) -> None:
    pinned = server.issue_key(DemoPermissions(ip_restricted=True))
    server.set_trusted_ips(pinned.api_key, ["203.0.113.7"])
    blind = server.issue_key(DemoPermissions(read=False))
    async with coinbase(server, pinned) as client:
        with pytest.raises(ccxt.AuthenticationError):
            await COINBASE.probe(client)
    async with coinbase(server, blind) as client:
        with pytest.raises(ccxt.ExchangeError, match="Missing required scopes") as raised:
            await client.fetch_balance()
    assert type(raised.value) is ccxt.ExchangeError  # ccxt maps no code for "unknown"
    assert server.request_log[-1].status == 403


async def test_clock_more_than_two_minutes_off_is_unauthorized_even_after_a_sync(
    server: CoinbaseServer,
) -> None:
    """ccxt stamps tokens with the local clock, not with its measured time difference."""
    key = server.issue_key()
    server.clock_offset_ms = 180_000
    async with coinbase(server, key) as client:
        await client.load_time_difference()
        assert client.options["timeDifference"] < -170_000
        with pytest.raises(ccxt.AuthenticationError):
            await COINBASE.probe(client)
    server.clock_offset_ms = 60_000  # inside the token's two minutes
    async with coinbase(server, key) as client:
        assert (await COINBASE.probe(client)).read


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (429, ccxt.RateLimitExceeded),  # {"errors": [{"id": "rate_limit_exceeded", ...}]}
        (503, ccxt.ExchangeNotAvailable),  # the edge's plain-text answer
        (500, ccxt.ExchangeError),  # internal_server_error
    ],
)
async def test_injected_failures_map_to_ccxt_errors_and_then_clear(
    server: CoinbaseServer, status: int, error: type[Exception]
) -> None:
    key = server.issue_key()
    async with coinbase(server, key) as client:
        server.fail_next(times=2, status=status)
        for _ in range(2):
            with pytest.raises(error) as raised:
                await COINBASE.probe(client)
            assert type(raised.value) is error
        await COINBASE.probe(client)

    assert [entry.status for entry in server.request_log[-3:]] == [status, status, 200]


async def test_slow_server_is_a_request_timeout(server: CoinbaseServer) -> None:
    key = server.issue_key()
    async with coinbase(server, key, timeout_ms=200) as client:
        server.set_delay(2.0)
        with pytest.raises(ccxt.RequestTimeout):
            await client.fetch_time()
        server.set_delay(0)
        assert await client.fetch_time() > 0

    assert [entry.status for entry in server.request_log] == [499, 200]


async def test_a_token_made_outside_ccxt_is_accepted(server: CoinbaseServer) -> None:
    key = server.issue_key()
    path = "/api/v3/brokerage/key_permissions"
    headers = {"Authorization": "Bearer " + good_token(server, key, path)}
    async with aiohttp.ClientSession(server.base_url) as http, http.get(path, headers=headers) as r:
        assert r.status == 200
        assert (await r.json())["can_view"] is True


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
    path = "/api/v3/brokerage/key_permissions"
    headers = {"Authorization": "Bearer " + good_token(server, key, path, **changes)}
    async with aiohttp.ClientSession(server.base_url) as http, http.get(path, headers=headers) as r:
        assert r.status == 401
        assert await r.text() == "Unauthorized\n"


@pytest.mark.parametrize(
    "authorization",
    [None, "Basic abc", "Bearer", "Bearer a.b", "Bearer !!.??.**", "Bearer e30.e30."],
)
async def test_missing_or_malformed_authorization_is_unauthorized(
    server: CoinbaseServer, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    async with (
        aiohttp.ClientSession(server.base_url) as http,
        http.get("/api/v3/brokerage/accounts", headers=headers) as response,
    ):
        assert response.status == 401


async def test_unknown_product_and_path_get_coinbase_answers(server: CoinbaseServer) -> None:
    async with aiohttp.ClientSession(server.base_url) as http:
        async with http.get("/api/v3/brokerage/market/products/BTC-EUR/ticker") as response:
            assert response.status == 404
            assert (await response.json())["error"] == "NOT_FOUND"
        async with http.get("/api/v3/brokerage/portfolios") as response:
            assert response.status == 404 and response.content_type == "text/plain"


async def test_request_log_keeps_no_credentials(server: CoinbaseServer) -> None:
    key = server.issue_key()
    async with coinbase(server, key) as client:
        await client.fetch_balance()
        server.fail_next(status=429)
        with pytest.raises(ccxt.RateLimitExceeded):
            await client.fetch_balance()
    assert [f.name for f in dataclasses.fields(LoggedRequest)] == [
        "time",
        "method",
        "path",
        "status",
    ]
    logged = repr(server.request_log)
    key_id = key.api_key.rsplit("/", 1)[1]
    assert key_id not in logged and "organizations" not in logged
    assert "PRIVATE" not in logged and "Bearer" not in logged
    assert key_id not in repr(key) and "PRIVATE" not in repr(key)


def test_demo_keys_are_cdp_key_names_with_p256_private_keys() -> None:
    server = CoinbaseServer()
    first, second = server.issue_key(), server.issue_key(account="alice")
    assert first.api_key != second.api_key and first.secret != second.secret
    assert server.key_format.fullmatch(first.api_key) and first.passphrase is None
    assert first.secret.startswith("-----BEGIN EC PRIVATE KEY-----\n")
    private = serialization.load_pem_private_key(first.secret.encode(), password=None)
    assert isinstance(private, ec.EllipticCurvePrivateKey) and private.curve.name == "secp256r1"
    name = first.api_key
    with pytest.raises(ValueError, match="already issued"):
        server.issue_key(material=DemoKey(name, first.secret))
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
