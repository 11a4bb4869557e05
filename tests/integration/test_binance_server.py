"""What only the local Binance Spot server has: its signed query, its wallet API, its codes.

The behaviour every venue shares is in ``test_venue_contract.py`` (row ``binance``).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import pytest

from bot.clock import utc_now
from bot.exchanges.catalogue import get_venue
from bot.exchanges.key_check import KeyAccepted, KeyRefused, check_key
from bot.exchanges.probes.binance import summarize
from bot.sandbox.exchanges import BinanceServer, DemoKey, DemoPermissions
from storage.credentials import Credentials
from tests.integration.venue_client import client_of, raw_request


@pytest.fixture
async def server() -> AsyncIterator[BinanceServer]:
    async with BinanceServer() as running:
        yield running


def signed_path(key: DemoKey, path: str, **params: str | int) -> str:
    """A request signed by hand, to check the wire details ccxt hides."""
    query = urlencode({"timestamp": int(time.time() * 1000), **params})
    signature = hmac.new(key.secret.encode(), query.encode(), hashlib.sha256).hexdigest()
    return f"{path}?{query}&signature={signature}"


async def test_api_restrictions_show_reading_and_trading_but_no_withdrawals(
    server: BinanceServer,
) -> None:
    key = server.issue_key(DemoPermissions(spot_trade=True))
    async with client_of(server, key) as client:
        restrictions = await client.sapi_get_account_apirestrictions()
    assert restrictions["enableReading"] and restrictions["enableSpotAndMarginTrading"]
    assert not restrictions["enableWithdrawals"]


async def test_load_markets_is_one_public_call_and_coins_come_from_the_capital_config(
    server: BinanceServer,
) -> None:
    """Currencies and margin pairs are switched off: a key is never sent just to load markets."""
    async with client_of(server, server.issue_key()) as client:
        await client.load_markets()
        coins = await client.sapi_get_capital_config_getall()
    assert {coin["coin"] for coin in coins} >= {"BTC", "USDT"}
    paths = [entry.path for entry in server.request_log]
    assert paths == ["/api/v3/exchangeInfo", "/sapi/v1/capital/config/getall"]


async def test_summarize_reads_the_servers_own_restrictions_payload(server: BinanceServer) -> None:
    key = server.issue_key(DemoPermissions(futures_trade=True, ip_restricted=True))
    path = signed_path(key, "/sapi/v1/account/apiRestrictions")
    answer = await raw_request(server, f"GET {path}", headers={"X-MBX-APIKEY": key.api_key})

    summary = summarize(answer.json())
    assert summary.derivatives_trade and summary.ip_restricted and not summary.withdraw


@pytest.mark.parametrize(
    ("path", "headers", "status", "code"),
    [
        ("/api/v3/account", {}, 401, -2014),
        ("/api/v3/account?signature=00", {"X-MBX-APIKEY": "KEY"}, 400, -1102),
        ("/api/v3/account?timestamp=1", {"X-MBX-APIKEY": "KEY"}, 400, -1102),
        ("/api/v3/account?timestamp=1e3&signature=00", {"X-MBX-APIKEY": "KEY"}, 400, -1100),
    ],
)
async def test_malformed_requests_get_binance_codes(
    server: BinanceServer, path: str, headers: dict[str, str], status: int, code: int
) -> None:
    key = server.issue_key()
    sent = {name: key.api_key if value == "KEY" else value for name, value in headers.items()}
    answer = await raw_request(server, f"GET {path}", headers=sent)
    assert (answer.status, answer.json()["code"]) == (status, code)


async def test_recv_window_above_a_minute_is_refused(server: BinanceServer) -> None:
    key = server.issue_key()
    path = signed_path(key, "/api/v3/account", recvWindow=60001)
    answer = await raw_request(server, f"GET {path}", headers={"X-MBX-APIKEY": key.api_key})
    assert (answer.status, answer.json()["code"]) == (400, -1131)


async def test_book_tickers_by_symbol_list_and_prices_of_every_market(
    server: BinanceServer,
) -> None:
    symbols = '["BTCUSDT","ETHUSDT"]'
    books = await raw_request(server, f"GET /api/v3/ticker/bookTicker?symbols={symbols}")
    prices = await raw_request(server, "GET /api/v3/ticker/price")

    assert [book["symbol"] for book in books.json()] == ["BTCUSDT", "ETHUSDT"]
    assert len(prices.json()) == len(server.markets)


def test_demo_keys_are_64_characters_and_take_a_passphrase_when_asked() -> None:
    server = BinanceServer()
    key = server.issue_key()
    assert len(key.api_key) == len(key.secret) == 64
    assert server.issue_key(with_passphrase=True).passphrase
    assert server.set_permissions(key.api_key, withdraw=True).withdraw


@pytest.mark.parametrize(
    ("flags", "outcome", "trade"),
    [
        ({"read": True}, KeyAccepted, False),
        ({"read": True, "spot_trade": True}, KeyAccepted, True),
        ({"read": True, "withdraw": True}, KeyRefused, False),
    ],
)
async def test_a_spot_testnet_key_is_checked_without_sapi(
    flags: dict[str, bool], outcome: type, trade: bool
) -> None:
    """The spot testnet has no /sapi: its keys are read from /api/v3/account instead."""
    async with BinanceServer() as server:
        key = server.issue_key(DemoPermissions(**flags))
        result = await check_key(
            get_venue("binance"),
            Credentials(key.api_key, key.secret),
            endpoint=server.base_url,
            sandbox=True,
            clock=utc_now,
        )
        assert isinstance(result, outcome)
        assert result.permissions.spot_trade is trade
        assert not [r for r in server.request_log if r.path.startswith("/sapi/")]
