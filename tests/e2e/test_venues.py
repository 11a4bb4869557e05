"""Every venue beyond Binance spot, through its own local server: the same promises hold."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import pytest

from bot.exchanges.catalogue import VENUES
from bot.sandbox.exchanges import SERVERS, DemoPermissions, KrakenServer, VenueServer
from bot.sandbox.telegram import ChatDriver
from tests.e2e.conftest import World, connect

VENUE_IDS = sorted(v for v in VENUES if v != "binance" and v in SERVERS)
PASSPHRASE_VENUE_IDS = [v for v in VENUE_IDS if VENUES[v].needs_passphrase]


@pytest.fixture(params=VENUE_IDS)
async def venue(request: pytest.FixtureRequest) -> AsyncIterator[VenueServer]:
    async with SERVERS[request.param]() as server:
        yield server


@pytest.fixture
async def venue_bot(
    world: World, venue: VenueServer, start_bot: Callable[..., Any]
) -> AsyncIterator[str]:
    endpoints = {"binance": world.binance.base_url, venue.venue_id: venue.base_url}
    async with start_bot(exchange_endpoints=endpoints):
        yield venue.venue_id


def issue(venue: VenueServer, **flags: bool) -> Any:
    """A key as a careful user makes it: with futures rights where the venue is futures."""
    entry = VENUES[venue.venue_id]
    if entry.requires_derivatives:
        flags.setdefault("futures_trade", True)
    return venue.issue_key(DemoPermissions(**flags), with_passphrase=entry.needs_passphrase)


async def test_a_read_key_connects(venue_bot: str, venue: VenueServer, alice: ChatDriver) -> None:
    card = await connect(alice, venue_bot, issue(venue, read=True))
    assert f"is connected to {VENUES[venue_bot].name}" in card
    assert "❌ withdraw" in card or "withdraw (not reported)" in card


async def test_a_withdraw_key_is_refused(
    venue_bot: str, venue: VenueServer, alice: ChatDriver
) -> None:
    text = await connect(alice, venue_bot, issue(venue, read=True, withdraw=True))
    assert "withdraw funds" in text and "stored nothing" in text
    await alice.send("/cancel")
    await alice.reply("Cancelled")
    await alice.send("/connections")
    assert "No exchange accounts" in (await alice.reply()).text


async def test_a_wrong_secret_is_refused(
    venue_bot: str, venue: VenueServer, alice: ChatDriver
) -> None:
    key, other = issue(venue, read=True), issue(venue, read=True)
    text = await connect(alice, venue_bot, replace(key, secret=other.secret))  # well-formed, wrong
    assert "Nothing was stored" in text


@pytest.mark.parametrize("venue", PASSPHRASE_VENUE_IDS, indirect=True)
async def test_a_wrong_passphrase_is_named(
    venue_bot: str, venue: VenueServer, alice: ChatDriver
) -> None:
    key = issue(venue, read=True)
    text = await connect(alice, venue_bot, replace(key, passphrase=key.passphrase + "x"))
    assert "The passphrase does not match this API key." in text


async def test_a_spot_tab_key_on_futures_is_explained(
    world: World, start_bot: Callable[..., Any], alice: ChatDriver
) -> None:
    futures = SERVERS["binanceusdm"]()
    async with futures, start_bot(exchange_endpoints={"binanceusdm": futures.base_url}):
        text = await connect(alice, "binanceusdm", futures.issue_key(DemoPermissions()))
    assert "without “Enable Futures”" in text and "Nothing was stored" in text


async def test_a_key_whose_withdraw_right_is_unknown_needs_an_explicit_confirmation(
    world: World, start_bot: Callable[..., Any], alice: ChatDriver
) -> None:
    kraken = KrakenServer()
    kraken.reports_permissions = False
    async with kraken, start_bot(exchange_endpoints={"kraken": kraken.base_url}):
        text = await connect(alice, "kraken", kraken.issue_key(), "Unsure")
        assert "does not tell whether it can withdraw" in text
        assert "nothing is stored until you do" in text
        await alice.send("/connections")
        assert "No exchange accounts" in (await alice.reply()).text
        prompt = next(m for m in reversed(alice.messages) if "withdraw" in m.text and m.buttons)
        await alice.press(prompt, "Withdrawals are disabled")
        assert "Unsure is connected to Kraken" in (await alice.reply("is connected")).text

        text = await connect(alice, "kraken", kraken.issue_key(), "Declined")
        prompt = next(m for m in reversed(alice.messages) if "withdraw" in m.text and m.buttons)
        await alice.press(prompt, "Cancel")
        assert "Nothing was stored" in (await alice.reply("Cancelled")).text
        await alice.send("/connections")
        await alice.reply("Unsure")
        await alice.settle()
        assert "Declined" not in alice.transcript().split("/connections")[-1]


async def test_check_names_a_futures_key_that_lost_its_futures_right(
    world: World, start_bot: Callable[..., Any], alice: ChatDriver
) -> None:
    futures = SERVERS["binanceusdm"]()
    async with futures, start_bot(exchange_endpoints={"binanceusdm": futures.base_url}):
        key = futures.issue_key(DemoPermissions(futures_trade=True))
        assert "is connected" in await connect(alice, "binanceusdm", key)
        futures.set_permissions(key.api_key, futures_trade=False)
        await alice.send("/check")
        report = (await alice.reply("Check of", timeout=10)).text
    assert "❌ Permissions: This key cannot use futures" in report
    assert "Enable Futures" in report


async def test_check_of_an_ip_restricted_key_from_elsewhere_says_to_allow_the_ip(
    world: World, start_bot: Callable[..., Any], alice: ChatDriver
) -> None:
    async with start_bot(outbound_ips=["203.0.113.7"]):
        key = world.binance.issue_key(DemoPermissions(ip_restricted=True))
        assert "is connected" in await connect(alice, "binance", key)
        world.binance.set_trusted_ips(key.api_key, ["198.51.100.1"])
        await alice.send("/check")
        report = (await alice.reply("Check of", timeout=10)).text
    assert "❌ Key and signature" in report
    assert "allow this server's IP" in report
    assert "Status: 🔴 Re-auth needed" in report
