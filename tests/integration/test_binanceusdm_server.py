"""What only the local Binance USDⓈ-M server has: futures keys, positions, brackets, fapi codes.

The behaviour every venue shares is in ``test_venue_contract.py`` (row ``binanceusdm``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import ccxt.async_support as ccxt
import pytest

from bot.exchanges.catalogue import get_venue
from bot.exchanges.diagnosis import WRONG_TAB
from bot.exchanges.key_check import KeyAccepted, KeyRejected
from bot.sandbox.exchanges import BinanceUsdmServer, DemoPermissions
from tests.integration.venue_cases import FUTURES_KEY
from tests.integration.venue_client import client_of, key_check, raw_request

VENUE = get_venue("binanceusdm")


@pytest.fixture
async def server() -> AsyncIterator[BinanceUsdmServer]:
    async with BinanceUsdmServer() as running:
        yield running


async def test_fapi_prices_round_to_the_contracts_tick_and_books_quote_both_sides(
    server: BinanceUsdmServer,
) -> None:
    server.set_price("ETH/USDT:USDT", "3012.347")
    async with client_of(server, server.issue_key(FUTURES_KEY)) as client:
        eth = await client.fetch_ticker("ETH/USDT:USDT")
        books = await client.fetch_bids_asks(["BTC/USDT:USDT"])

    assert eth["last"] == 3012.34
    assert books["BTC/USDT:USDT"]["bid"] < books["BTC/USDT:USDT"]["ask"]


async def test_spot_tab_key_passes_the_probe_but_futures_answer_2015(
    server: BinanceUsdmServer,
) -> None:
    """The seeds' classic pitfall: a key without "Enable Futures" is refused by every /fapi call."""
    key = server.issue_key(DemoPermissions(spot_trade=True, ip_restricted=True))
    async with client_of(server, key) as client:
        summary = await VENUE.probe(client)
        with pytest.raises(ccxt.AuthenticationError, match="-2015") as raised:
            await client.fetch_balance()
    result = await key_check(server, key)

    assert summary.read and summary.spot_trade and not summary.derivatives_trade
    assert type(raised.value) is ccxt.AuthenticationError
    assert raised.value.args[0].endswith(
        '"msg":"Invalid API-key, IP, or permissions for action, request ip: 127.0.0.1"}'
    )
    # The check names the cause from the probe alone, before any futures call fails.
    assert isinstance(result, KeyRejected) and result.diagnosis is WRONG_TAB
    assert server.request_log[-1].path == "/sapi/v1/account/apiRestrictions"

    server.set_permissions(key.api_key, futures_trade=True)  # the user ticks "Enable Futures"
    assert isinstance(await key_check(server, key), KeyAccepted)


async def test_key_check_accepts_a_futures_key_on_the_testnet_without_sapi(
    server: BinanceUsdmServer,
) -> None:
    result = await key_check(server, server.issue_key(FUTURES_KEY), sandbox=True)
    assert isinstance(result, KeyAccepted)
    assert not any(entry.path.startswith("/sapi/") for entry in server.request_log)


async def test_positions_are_empty_until_one_is_opened(server: BinanceUsdmServer) -> None:
    key = server.issue_key(FUTURES_KEY)
    async with client_of(server, key) as client:
        assert await client.fetch_positions() == []
        server.open_position("BTC/USDT:USDT", "0.010", "70000", leverage=10)
        server.open_position("ETH/USDT:USDT", "-2", "4000")
        server.set_price("BTC/USDT:USDT", "72000")
        positions = {p["symbol"]: p for p in await client.fetch_positions()}
        balance = await client.fetch_balance()
        server.open_position("BTC/USDT:USDT", 0, 0)
        (left,) = await client.fetch_positions()

    btc, eth = positions["BTC/USDT:USDT"], positions["ETH/USDT:USDT"]
    assert (btc["side"], btc["contracts"], btc["entryPrice"]) == ("long", 0.01, 70000.0)
    assert btc["unrealizedPnl"] == pytest.approx(20.0) and btc["initialMargin"] == 72.0
    assert (eth["side"], eth["contracts"]) == ("short", 2.0)
    assert eth["unrealizedPnl"] == pytest.approx(2 * (4000 - 3990.12))
    usdt = balance["USDT"]
    assert usdt["total"] == pytest.approx(12500 + 20 + 2 * (4000 - 3990.12))
    assert usdt["free"] + usdt["used"] == pytest.approx(usdt["total"])
    assert left["symbol"] == "ETH/USDT:USDT"


async def test_leverage_brackets_follow_the_recorded_ladders(server: BinanceUsdmServer) -> None:
    key = server.issue_key(FUTURES_KEY)
    async with client_of(server, key) as client:
        await client.load_markets()
        tiers = await client.load_leverage_brackets()
        one = await client.fapiprivate_get_leveragebracket({"symbol": "BTCUSDT"})

    assert tiers["BTC/USDT:USDT"][:3] == [["0", "0.004"], ["50000", "0.005"], ["250000", "0.01"]]
    assert set(tiers) == {market.symbol for market in server.markets}
    brackets = one["brackets"]
    assert [b["initialLeverage"] for b in brackets[:4]] == [125, 100, 50, 20]
    assert brackets[0]["notionalCap"] == brackets[1]["notionalFloor"] == 50000
    assert brackets[1]["cum"] == pytest.approx(50000 * 0.001)


@pytest.mark.parametrize(
    ("path", "headers", "status", "code"),
    [
        ("/fapi/v3/account", {}, 401, -2014),
        ("/fapi/v3/account?timestamp=1", {"X-MBX-APIKEY": "KEY"}, 400, -1102),
    ],
)
async def test_malformed_requests_get_binance_codes(
    server: BinanceUsdmServer, path: str, headers: dict[str, str], status: int, code: int
) -> None:
    key = server.issue_key(FUTURES_KEY)
    sent = {name: key.api_key if value == "KEY" else value for name, value in headers.items()}
    answer = await raw_request(server, f"GET {path}", headers=sent)
    assert (answer.status, answer.json()["code"]) == (status, code)


async def test_spot_paths_are_binances_html_404(server: BinanceUsdmServer) -> None:
    answer = await raw_request(server, "GET /api/v3/account")
    assert (answer.status, answer.content_type) == (404, "text/html")


def test_open_position_needs_a_served_perpetual() -> None:
    server = BinanceUsdmServer()
    with pytest.raises(ValueError, match="perpetual"):
        server.open_position("BTC/USDT", "1", "70000")
    server.open_position("BTC/USDT:USDT", Decimal("0.5"), "70000", account="alice")
    assert server.positions["alice"]["BTC/USDT:USDT"].amount == Decimal("0.5")
