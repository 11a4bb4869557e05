"""What every local venue server does through real ccxt over HTTP, as key checks and sweeps meet it.

One suite over ``SERVERS``; where the venues differ (codes, ccxt's error classes, call sequences)
the expectation comes from the venue's row in ``venue_cases``. What only one venue has lives in
its own ``test_<venue>_server.py``.
"""

from __future__ import annotations

import dataclasses
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from decimal import Decimal
from typing import Any

import ccxt.async_support as ccxt
import pytest

from bot.exchanges.catalogue import get_venue
from bot.exchanges.key_check import KeyAccepted, KeyCheck, KeyRefused, KeyRejected
from bot.exchanges.permissions import PermissionSummary
from bot.sandbox.exchanges import SERVERS, DemoKey, DemoPermissions, LoggedRequest, VenueServer
from bot.sandbox.exchanges.base import DEMO_BALANCES
from storage.connections import ConnectionStatus
from storage.credentials import Credentials
from tests.integration.venue_cases import (
    CASES,
    Calls,
    Refusal,
    VenueCase,
    describe,
    facts,
    holds,
    picked,
    server_for,
)
from tests.integration.venue_client import (
    assert_faults_surface_then_clear,
    client_of,
    key_check,
    raw_request,
)


def each(having: Callable[[VenueCase], object] = lambda case: True) -> pytest.MarkDecorator:
    """Run the test once per venue (with ``having``: per venue whose row has that)."""
    cases = [case for case in CASES if having(case)]
    return pytest.mark.parametrize("case", cases, ids=[case.id for case in cases])


def each_row(
    rows: Callable[[VenueCase], Iterable[Any]], name: Callable[[Any], str]
) -> pytest.MarkDecorator:
    """Run the test once per row of each venue's ``rows``, given as ``case, row``."""
    params = [
        pytest.param(case, row, id=f"{case.id}-{name(row)}") for case in CASES for row in rows(case)
    ]
    return pytest.mark.parametrize(("case", "row"), params)


@pytest.fixture
async def server(case: VenueCase) -> AsyncIterator[VenueServer]:
    async with server_for(case) as running:
        yield running


def probe(client: ccxt.Exchange) -> Awaitable[PermissionSummary]:
    """The bot's permission probe for the client's venue."""
    return get_venue(client.id).probe(client)


def credentials(key: DemoKey, **changes: str) -> Credentials:
    return dataclasses.replace(Credentials(key.api_key, key.secret, key.passphrase), **changes)


def other_secret(server: VenueServer) -> str:
    """A secret in the venue's format that belongs to no issued key."""
    return server.new_key_material(with_passphrase=False).secret


def requests(server: VenueServer) -> list[str]:
    return [f"{entry.method} {entry.path}" for entry in server.request_log]


def assert_calls(made: list[str], expected: Calls) -> None:
    position = 0
    for step in expected:
        group = {step} if isinstance(step, str) else step
        assert set(made[position : position + len(group)]) == group, made
        position += len(group)
    assert position == len(made), made


async def assert_refused(
    server: VenueServer, call: Callable[[], Awaitable[object]], refusal: Refusal
) -> None:
    with pytest.raises(refusal.error, match=re.escape(refusal.code)) as raised:
        await call()
    assert type(raised.value) is refusal.error
    if refusal.status is not None:
        assert server.request_log[-1].status == refusal.status


async def assert_key_refused(
    server: VenueServer,
    key: DemoKey | Credentials,
    refusal: Refusal,
    *,
    probe_too: bool = True,
    sandbox: bool = False,
) -> None:
    """A fresh client with ``key`` is refused on the probe (one call) and on a balance read."""
    async with client_of(server, key, sandbox=sandbox) as client:
        if probe_too:
            await assert_refused(server, lambda: probe(client), refusal)
        with pytest.raises(refusal.error, match=re.escape(refusal.code)) as raised:
            await client.fetch_balance()
        assert type(raised.value) is refusal.error


def assert_rejected_for_reauth(result: KeyCheck, refusal: Refusal) -> None:
    assert isinstance(result, KeyRejected)
    diagnosis = result.diagnosis
    assert diagnosis.status is ConnectionStatus.REAUTH and diagnosis.final
    if refusal.message is not None:
        assert (diagnosis.exchange_message or "").startswith(refusal.message)
    if refusal.suspect is not None:
        assert diagnosis.suspect == refusal.suspect
    if refusal.suspect in ("secret", "passphrase"):
        assert refusal.suspect in diagnosis.cause  # "The secret does not match this API key."


def assert_log_keeps_none_of(server: VenueServer, *values: str | None) -> None:
    """Neither the values nor any 12-character piece of them, nor how they were sent."""
    logged = repr(server.request_log)
    for value in filter(None, values):
        assert value not in logged
        for start in range(0, max(len(value) - 11, 1), 12):
            assert value[start : start + 12] not in logged
    lowered = logged.lower()
    for word in ("sign", "nonce", "timestamp", "bearer", "passphrase"):
        assert word not in lowered
    assert all("?" not in entry.path for entry in server.request_log)


def test_every_server_has_a_case() -> None:
    assert [case.id for case in CASES] == list(SERVERS)


def test_logged_requests_hold_only_time_method_path_and_status() -> None:
    fields = [field.name for field in dataclasses.fields(LoggedRequest)]
    assert fields == ["time", "method", "path", "status"]


@each()
async def test_read_key_loads_markets_balance_and_tickers(
    case: VenueCase, server: VenueServer
) -> None:
    key = server.issue_key(dataclasses.replace(case.read_key, spot_trade=True))
    server.set_balance("demo", "LTC", "3.5", used="0.5")
    server.set_price(case.eth, "3012.34")
    async with client_of(server, key) as client:
        markets = await client.load_markets()
        balance = await client.fetch_balance()
        tickers = await client.fetch_tickers()
        eth = await client.fetch_ticker(case.eth)

    assert set(markets) == case.listed(server)
    assert all(holds(market, case.every_market) for market in markets.values())
    for symbol, expected in case.market_facts.items():
        assert holds(markets[symbol], expected), symbol
    assert balance["total"]["BTC"] == float(DEMO_BALANCES["BTC"])
    assert holds(balance["LTC"], {"free": 3.5, "used": 0.5, "total": 4.0})
    assert set(tickers) == set(markets)
    assert eth["last"] == 3012.34
    if case.quotes_book_in_ticker:
        assert eth["bid"] < eth["ask"]


@each()
async def test_price_walk_moves_every_market_a_little_and_tickers_follow(
    case: VenueCase, server: VenueServer
) -> None:
    before = {symbol: stats.last for symbol, stats in server.prices.items()}
    server.step_prices(random.Random(7))
    async with client_of(server, server.issue_key(case.read_key)) as client:
        tickers = await client.fetch_tickers()

    for symbol, stats in server.prices.items():
        assert stats.last != before[symbol]
        assert abs(stats.last / before[symbol] - 1) < Decimal("0.02")
    for symbol, ticker in tickers.items():
        assert ticker["last"] == pytest.approx(float(server.prices[symbol].last), rel=1e-3)


@each()
async def test_key_check_accepts_a_read_key_in_the_venues_calls(
    case: VenueCase, server: VenueServer
) -> None:
    permissions = case.check_key or case.read_key
    key = server.issue_key(permissions)
    result = await key_check(server, key)

    assert isinstance(result, KeyAccepted) and result.assets_held == len(DEMO_BALANCES)
    ip = permissions.ip_restricted if case.reports_ip else None
    wanted = {**case.check_facts, "ip_restricted": ip, "withdraw_known": True}
    assert picked(facts(result.permissions), wanted) == wanted
    assert result.permissions.read and not result.permissions.can_move_funds_out
    assert [call.endpoint for call in result.calls] == requests(server)
    assert all(call.http_status == 200 for call in result.calls)
    assert_calls(requests(server), case.check_calls)
    assert_log_keeps_none_of(server, key.api_key, key.secret, key.passphrase)


@each_row(lambda case: case.probes, lambda row: describe(row[0]))
async def test_permission_probe_reads_the_keys_flags(
    case: VenueCase, row: tuple[DemoPermissions, dict[str, object]], server: VenueServer
) -> None:
    permissions, expected = row
    async with client_of(server, server.issue_key(permissions)) as client:
        summary = await probe(client)

    ip = permissions.ip_restricted if case.reports_ip else None
    wanted = {**expected, "read": permissions.read, "ip_restricted": ip, "withdraw_known": True}
    assert picked(facts(summary), wanted) == wanted


@each_row(lambda case: case.movers, lambda row: describe(row[0]))
async def test_key_check_refuses_a_key_that_can_move_funds_out_after_the_probe_alone(
    case: VenueCase, row: tuple[DemoPermissions, tuple[str, ...]], server: VenueServer
) -> None:
    permissions, reasons = row
    result = await key_check(server, server.issue_key(permissions))

    assert isinstance(result, KeyRefused) and result.permissions.can_move_funds_out
    assert all(getattr(result.permissions, reason) for reason in reasons)
    assert requests(server) == [case.check_calls[0]]


@each()
async def test_wrong_secret_is_refused_and_the_check_asks_to_reauthenticate(
    case: VenueCase, server: VenueServer
) -> None:
    key = server.issue_key(case.read_key)
    wrong = credentials(key, secret=other_secret(server))
    await assert_key_refused(server, wrong, case.wrong_secret)
    result = await key_check(server, wrong)

    assert_rejected_for_reauth(result, case.wrong_secret)
    assert isinstance(result, KeyRejected)
    assert wrong.secret not in repr(result)
    assert key.api_key not in (result.diagnosis.exchange_message or "")
    assert server.request_log[-1].status == case.wrong_secret.status


@each(having=lambda case: case.wrong_passphrase)
async def test_wrong_passphrase_is_refused_and_the_check_asks_for_it_again(
    case: VenueCase, server: VenueServer
) -> None:
    refusal = case.wrong_passphrase
    assert refusal is not None
    key = server.issue_key(case.read_key)
    wrong = credentials(key, passphrase="Wrong-Pass1")
    await assert_key_refused(server, wrong, refusal)
    assert_rejected_for_reauth(await key_check(server, wrong), refusal)


@each()
async def test_unknown_key_is_refused_and_the_check_asks_to_reauthenticate(
    case: VenueCase, server: VenueServer
) -> None:
    stranger = server.new_key_material(with_passphrase=True)
    await assert_key_refused(server, stranger, case.unknown_key)
    result = await key_check(server, stranger)

    assert_rejected_for_reauth(result, case.unknown_key)
    assert isinstance(result, KeyRejected)
    assert stranger.api_key not in (result.diagnosis.exchange_message or "")


@each()
async def test_revoked_key_is_refused_until_restored(case: VenueCase, server: VenueServer) -> None:
    key = server.issue_key(case.read_key)
    server.revoke_key(key.api_key)
    await assert_key_refused(server, key, case.unknown_key)

    server.restore_key(key.api_key)
    async with client_of(server, key) as client:
        assert (await probe(client)).read
        assert (await client.fetch_balance())["total"]["ETH"] == float(DEMO_BALANCES["ETH"])


@each()
async def test_key_revoked_under_a_client_that_already_succeeded_is_refused(
    case: VenueCase, server: VenueServer
) -> None:
    key = server.issue_key(case.read_key)
    refused = dataclasses.replace(case.unknown_key, error=case.revoked_in_use, status=None)
    async with client_of(server, key) as client:
        await client.fetch_balance()
        server.revoke_key(key.api_key)
        await assert_refused(server, client.fetch_balance, refused)
        await assert_refused(server, lambda: probe(client), refused)


@each()
async def test_key_from_an_untrusted_ip_is_refused_until_the_ip_is_trusted(
    case: VenueCase, server: VenueServer
) -> None:
    pinned = server.issue_key(dataclasses.replace(case.read_key, ip_restricted=True))
    server.set_trusted_ips(pinned.api_key, ["203.0.113.7"])
    await assert_key_refused(server, pinned, case.untrusted_ip)
    result = await key_check(server, pinned)

    assert_rejected_for_reauth(result, case.untrusted_ip)
    assert isinstance(result, KeyRejected)
    denied = case.untrusted_ip.error is ccxt.PermissionDenied
    assert "IP" in (result.diagnosis.cause if denied else result.diagnosis.fix)

    server.set_trusted_ips(pinned.api_key, ["203.0.113.7", "127.0.0.1"])
    async with client_of(server, pinned) as client:
        assert (await probe(client)).ip_restricted is (True if case.reports_ip else None)
        await client.fetch_balance()


@each()
async def test_key_without_read_permission_cannot_read_the_balance(
    case: VenueCase, server: VenueServer
) -> None:
    key = server.issue_key(dataclasses.replace(case.read_key, read=False, spot_trade=True))
    await assert_key_refused(server, key, case.no_read, probe_too=case.probe_needs_read)
    if not case.probe_needs_read:
        async with client_of(server, key) as client:
            assert (await probe(client)).spot_trade


@each_row(lambda case: case.skew.offsets if case.skew else (), lambda offset: f"{offset:+}ms")
async def test_clock_skew_is_invalid_nonce_until_the_client_syncs(
    case: VenueCase, row: int, server: VenueServer
) -> None:
    assert case.skew is not None
    server.clock_offset_ms = row
    refusal = Refusal(ccxt.InvalidNonce, case.skew.code)
    await assert_key_refused(server, server.issue_key(case.read_key), refusal)
    async with client_of(server, server.issue_key(case.read_key)) as client:
        await client.load_time_difference()
        assert (await probe(client)).read
        assert (await client.fetch_balance())["total"]["USDT"] == float(DEMO_BALANCES["USDT"])
    assert case.time_path in {entry.path for entry in server.request_log}


@each_row(
    lambda case: case.faults,
    lambda fault: f"{fault.status}-{fault.error.__name__}" + ("-body" if fault.body else ""),
)
async def test_injected_failures_map_to_ccxt_errors_and_then_clear(
    case: VenueCase, row: Any, server: VenueServer
) -> None:
    venue = get_venue(case.id)
    key = server.issue_key(case.read_key)
    await assert_faults_surface_then_clear(venue, server, row.status, row.body, row.error, key=key)


@each()
async def test_rate_limit_answer_has_the_venues_shape(case: VenueCase, server: VenueServer) -> None:
    server.fail_next(status=429)
    answer = await raw_request(server, f"GET {case.time_path}")

    assert answer.status == 429 and holds(answer.json(), case.rate_limited.body)
    if case.rate_limited.header is not None:
        assert 0 < int(answer.headers[case.rate_limited.header]) <= case.rate_limited.at_most


@each()
async def test_slow_server_is_a_request_timeout(case: VenueCase, server: VenueServer) -> None:
    async with client_of(server, server.issue_key(case.read_key), timeout_ms=200) as client:
        server.set_delay(2.0)
        started = time.monotonic()
        with pytest.raises(ccxt.RequestTimeout):
            await client.fetch_time()
        assert time.monotonic() - started < 1.5
        server.set_delay(0)
        assert await client.fetch_time() > 0

    assert [(entry.path, entry.status) for entry in server.request_log] == [
        (case.time_path, 499),
        (case.time_path, 200),
    ]


@each()
async def test_unknown_path_gets_the_venues_not_found(case: VenueCase, server: VenueServer) -> None:
    expected = case.not_found
    answer = await raw_request(server, expected.request)

    assert (answer.status, answer.content_type) == (expected.status, expected.content_type)
    if isinstance(expected.body, str):
        assert expected.body in answer.text
    else:
        assert holds(answer.json(), expected.body)


@each()
async def test_unknown_pair_gets_the_venues_answer_and_ccxt_error(
    case: VenueCase, server: VenueServer
) -> None:
    unknown = case.unknown_pair
    answer = await raw_request(server, unknown.answer.request)
    assert (answer.status, answer.content_type) == (unknown.answer.status, "application/json")
    assert holds(answer.json(), unknown.answer.body)

    async with client_of(server, server.issue_key(case.read_key)) as client:
        await client.load_markets()
        with pytest.raises(ccxt.BadSymbol):
            await client.fetch_ticker("BTC/EUR")  # not a market: ccxt refuses before asking
        with pytest.raises(unknown.error) as raised:
            await getattr(client, unknown.method)(dict(unknown.params))
    assert type(raised.value) is unknown.error


@each(having=lambda case: case.currencies)
async def test_currency_list_carries_deposit_networks(case: VenueCase, server: VenueServer) -> None:
    async with client_of(server, server.issue_key(case.read_key)) as client:
        currencies = await client.fetch_currencies()

    assert {"BTC", "ETH", "USDT", "XRP"} <= set(currencies)
    assert currencies["USDT"]["networks"]["TRC20"]["withdraw"] is True  # the recorded entry
    assert tuple(entry.path for entry in server.request_log) == case.currencies


@each(having=lambda case: case.sandbox)
async def test_test_mode_client_reads_permissions_and_balance(
    case: VenueCase, server: VenueServer
) -> None:
    assert case.sandbox is not None
    permissions = dataclasses.replace(case.read_key, spot_trade=True)
    key = server.issue_key(permissions, **case.sandbox.key)
    async with client_of(server, key, sandbox=True) as client:
        assert case.sandbox.switched(client)
        summary = await probe(client)
        balance = await client.fetch_balance()

    wanted = {"read": True, **case.sandbox.facts}
    assert picked(facts(summary), wanted) == wanted
    assert balance["total"]["USDT"] == float(DEMO_BALANCES["USDT"])
    assert_calls(requests(server), case.sandbox.calls)


@each(having=lambda case: case.sandbox and case.sandbox.wrong_mode)
async def test_test_mode_keys_and_live_keys_each_work_only_in_their_own_mode(
    case: VenueCase, server: VenueServer
) -> None:
    assert case.sandbox is not None and case.sandbox.wrong_mode is not None
    refusal = case.sandbox.wrong_mode
    test_key = server.issue_key(case.read_key, **case.sandbox.key)
    live_key = server.issue_key(case.read_key)
    for key, sandbox in ((test_key, False), (live_key, True)):
        await assert_key_refused(server, key, refusal, sandbox=sandbox)


@each()
async def test_request_log_keeps_no_credentials(case: VenueCase, server: VenueServer) -> None:
    key = server.issue_key(case.read_key)
    rate_limit = next(f.error for f in case.faults if f.status == 429 and f.body is None)
    async with client_of(server, key) as client:
        await client.fetch_balance()
        await probe(client)
        server.fail_next(status=429)
        with pytest.raises(rate_limit):
            await client.fetch_balance()
    wrong = [credentials(key, secret=other_secret(server))]
    if key.passphrase:
        wrong.append(credentials(key, passphrase="Wrong-Pass1"))
    for bad in wrong:
        async with client_of(server, bad) as client:
            with pytest.raises(ccxt.AuthenticationError):
                await probe(client)

    assert_log_keeps_none_of(server, key.api_key, key.secret, key.passphrase)
    assert_log_keeps_none_of(server, wrong[0].secret, "Wrong-Pass1")
    shown = repr(key) + str(key)
    for value in (key.secret, key.passphrase, key.api_key[4:-4]):
        assert not value or value not in shown


@each()
def test_issued_keys_are_fresh_funded_and_in_the_venues_format(case: VenueCase) -> None:
    server = server_for(case)
    first, second = server.issue_key(), server.issue_key(account="alice")
    assert first.api_key != second.api_key and first.secret != second.secret
    assert server.key_format.fullmatch(first.api_key)
    held = {asset: balance.free for asset, balance in server.accounts["alice"].balances.items()}
    assert held == dict(DEMO_BALANCES)

    chosen = server.new_key_material(with_passphrase=True)
    assert server.issue_key(material=chosen) == chosen
    with pytest.raises(ValueError, match="already issued"):
        server.issue_key(material=chosen)
    with pytest.raises(ValueError, match="format"):
        server.issue_key(material=dataclasses.replace(chosen, api_key="too-short"))
