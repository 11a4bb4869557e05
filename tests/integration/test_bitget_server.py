"""What only the local Bitget server has: unified accounts, its signed headers, its codes.

The behaviour every venue shares is in ``test_venue_contract.py`` (row ``bitget``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from urllib.parse import quote

import pytest

from bot.exchanges.catalogue import get_venue
from bot.exchanges.key_check import KeyAccepted
from bot.sandbox.exchanges import BitgetServer, DemoKey, DemoPermissions
from tests.integration.venue_cases import CASE, Facts, describe, facts, picked
from tests.integration.venue_client import client_of, key_check, raw_request

BITGET = get_venue("bitget")


@pytest.fixture
async def server() -> AsyncIterator[BitgetServer]:
    async with BitgetServer() as running:
        yield running


def signed_headers(key: DemoKey, method: str, path_and_query: str, **extra: str) -> dict[str, str]:
    """Headers signed by hand, to check the wire details ccxt hides."""
    timestamp = str(int(time.time() * 1000))
    prehash = (timestamp + method + path_and_query).encode()
    digest = hmac.new(key.secret.encode(), prehash, hashlib.sha256).digest()
    return {
        "ACCESS-KEY": key.api_key,
        "ACCESS-SIGN": base64.b64encode(digest).decode(),
        "ACCESS-TIMESTAMP": timestamp,
        "ACCESS-PASSPHRASE": key.passphrase or "",
        **extra,
    }


async def test_account_info_lists_the_keys_authorities(server: BitgetServer) -> None:
    async with client_of(server, server.issue_key(DemoPermissions(spot_trade=True))) as client:
        info = await client.private_spot_get_v2_spot_account_info()
    assert info["code"] == "00000" and "stow" in info["data"]["authorities"]


async def test_key_checks_accept_unified_and_demo_read_keys_with_few_calls(
    server: BitgetServer,
) -> None:
    """A unified key meets 40085 on classic v2 and is asked again on v3; the account mode is
    never asked again. The checks run at once: ccxt spaces calls after account/info by its 1 s
    rate cost. (A classic key's check: the contract.)"""
    server.set_unified("unified")
    server.set_balance("unified", "USDT", "0")
    unified = server.issue_key(account="unified")
    demo = server.issue_key(DemoPermissions(spot_trade=True), demo=True)
    outcomes = await asyncio.gather(
        key_check(server, unified), key_check(server, demo, sandbox=True)
    )

    assert all(isinstance(outcome, KeyAccepted) for outcome in outcomes)
    accepted = [outcome for outcome in outcomes if isinstance(outcome, KeyAccepted)]
    assert [outcome.assets_held for outcome in accepted] == [2, 3]
    assert accepted[1].permissions.spot_trade
    made = [(call.endpoint, call.http_status) for call in accepted[0].calls]
    assert made[:2] == [("GET /api/v2/spot/account/info", 400), ("GET /api/v3/account/info", 200)]
    assert {endpoint for endpoint, _ in made[2:5]} == CASE["bitget"].check_calls[1]
    assert made[5:] == [("GET /api/v3/account/assets", 200)]
    assert len(accepted[1].calls) == 5


@pytest.mark.parametrize(
    ("permissions", "classic"),
    CASE["bitget"].probes,
    ids=[describe(permissions) for permissions, _ in CASE["bitget"].probes],
)
async def test_permission_probe_in_a_unified_account_grants_both_kinds_of_trade(
    server: BitgetServer, permissions: DemoPermissions, classic: Facts
) -> None:
    """A unified account's key trades spot and futures alike (classic mode: the contract)."""
    server.set_unified("demo", True)
    async with client_of(server, server.issue_key(permissions)) as client:
        summary = await BITGET.probe(client)
        assert client.options["uta"] is True

    trades = bool(classic["spot_trade"] or classic["derivatives_trade"])
    wanted = {**classic, "spot_trade": trades, "derivatives_trade": trades, "read": True}
    assert picked(facts(summary), wanted) == wanted


async def test_the_probe_tells_ccxt_a_classic_account_is_not_unified(server: BitgetServer) -> None:
    async with client_of(server, server.issue_key()) as client:
        await BITGET.probe(client)
        assert client.options["uta"] is False


@pytest.mark.parametrize("unified", [False, True])
async def test_a_client_that_skipped_the_probe_finds_the_account_mode_itself(
    server: BitgetServer, unified: bool
) -> None:
    """Sweep clients: ccxt asks v3 account/settings once; classic accounts answer 40084."""
    server.set_unified("demo", unified)
    async with client_of(server, server.issue_key()) as client:
        first = await client.fetch_balance()
        second = await client.fetch_balance()

    assert first["total"] == second["total"] and first["total"]["ETH"] == 4.182
    settings = [e for e in server.request_log if e.path == "/api/v3/account/settings"]
    assert [e.status for e in settings] == [200 if unified else 400]
    wallet = "/api/v3/account/assets" if unified else "/api/v2/spot/account/assets"
    assert [e.path for e in server.request_log].count(wallet) == 2


async def test_hand_signed_query_is_checked_on_its_decoded_form(server: BitgetServer) -> None:
    key = server.issue_key()
    server.set_balance("demo", "BTC", "0")
    path = "/api/v2/spot/account/assets?assetType=all&coin=BTC"
    signed = await raw_request(server, f"GET {path}", headers=signed_headers(key, "GET", path))
    # A percent-encoded signature base is not what Bitget signs.
    encoded = "/api/v2/spot/account/assets?coin=" + quote("BTC,ETH", safe="")
    wrong = await raw_request(server, f"GET {encoded}", headers=signed_headers(key, "GET", encoded))

    assert signed.status == 200 and (wrong.status, wrong.json()["code"]) == (400, "40009")
    assets = signed.json()["data"]
    assert assets == [
        {
            "coin": "BTC",
            "available": "0.00000000",
            "limitAvailable": "0",
            "frozen": "0.00000000",
            "locked": "0.00000000",
            "uTime": assets[0]["uTime"],
        }
    ]


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "40001"),
        ({"ACCESS-KEY": "KEY"}, "40003"),
        ({"ACCESS-KEY": "KEY", "ACCESS-SIGN": "x", "ACCESS-TIMESTAMP": "1e12"}, "40005"),
        ({"ACCESS-KEY": "KEY", "ACCESS-SIGN": "x", "ACCESS-TIMESTAMP": "NOW"}, "40011"),
        (
            {
                "ACCESS-KEY": "not-a-key",
                "ACCESS-SIGN": "x",
                "ACCESS-TIMESTAMP": "NOW",
                "ACCESS-PASSPHRASE": "p",
            },
            "40006",
        ),
    ],
)
async def test_malformed_requests_get_bitget_codes(
    server: BitgetServer, headers: dict[str, str], code: str
) -> None:
    key = server.issue_key()
    now = str(int(time.time() * 1000))
    sent = {
        name: {"KEY": key.api_key, "NOW": now}.get(value, value) for name, value in headers.items()
    }
    answer = await raw_request(server, "GET /api/v2/spot/account/info", headers=sent)
    body = answer.json()
    assert answer.status == 400
    assert body["code"] == code and body["data"] is None and isinstance(body["requestTime"], int)


async def test_the_gateway_answers_503_with_an_html_page(server: BitgetServer) -> None:
    server.fail_next(status=503)
    answer = await raw_request(server, "GET /api/v2/public/time")
    assert (answer.status, answer.content_type) == (503, "text/html")


async def test_tickers_of_chosen_symbols_are_quoted_to_the_cent(server: BitgetServer) -> None:
    async with client_of(server, server.issue_key()) as client:
        tickers = await client.fetch_tickers(["BTC/USDT", "XRP/USDT"])

    assert set(tickers) == {"BTC/USDT", "XRP/USDT"}
    btc = server.prices["BTC/USDT"].last
    assert tickers["BTC/USDT"]["last"] == float(btc.quantize(Decimal("0.01")))


def test_demo_keys_look_like_bitgets_and_always_have_a_passphrase() -> None:
    server = BitgetServer()
    first, second = server.issue_key(), server.issue_key(account="alice", with_passphrase=False)
    assert first.api_key.startswith("bg_") and len(first.api_key) == 35
    assert len(first.secret) == 64 and int(first.secret, 16) >= 0
    assert first.passphrase and second.passphrase and first.passphrase != second.passphrase
    with pytest.raises(ValueError, match="format"):
        server.issue_key(material=DemoKey("bg_short", "secret", "passphrase"))
    with pytest.raises(ValueError, match="passphrase"):
        server.issue_key(material=DemoKey("bg_" + "a" * 32, "secret"))
