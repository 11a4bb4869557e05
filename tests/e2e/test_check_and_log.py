"""/check walks a stored key step by step; /log shows what was called, never secrets."""

from __future__ import annotations

import pytest

from bot.sandbox.exchanges.base import DemoPermissions
from bot.sandbox.telegram import ChatDriver
from tests.e2e.conftest import World, connect_binance, paste_key

pytestmark = pytest.mark.usefixtures("bot")


async def connected_key(world: World, chat: ChatDriver) -> str:
    key = world.canary_key(read=True)
    assert "is connected" in await connect_binance(chat, key)
    return key.api_key


async def check(chat: ChatDriver) -> str:
    await chat.send("/check")
    return (await chat.reply("Check of", timeout=10)).text


async def test_a_healthy_key_passes_every_step(world: World, alice: ChatDriver) -> None:
    await connected_key(world, alice)
    report = await check(alice)
    assert "✅ Exchange reachable" in report
    assert "✅ Clock in sync" in report
    assert "✅ Key and signature" in report
    assert "✅ Permissions: read-only; withdrawals off" in report
    # A missing IP restriction on a healthy key is advice, not a failure.
    assert "⚠️ IP restriction: the key works from any IP" in report
    assert "Advice: Restrict the key to this server's public IP." in report
    assert "❌" not in report
    assert "✅ Balance read: 3 assets with a balance" in report
    assert "Status: 🟢 Connected" in report


async def test_a_key_deleted_on_the_exchange_needs_re_auth(world: World, alice: ChatDriver) -> None:
    api_key = await connected_key(world, alice)
    world.binance.revoke_key(api_key)
    report = await check(alice)
    assert "❌ Key and signature" in report and "did not accept this API key" in report
    assert "➖ Balance read: skipped" in report
    assert "Status: 🔴 Re-auth needed" in report
    await alice.send("/connections")
    assert "Re-auth needed" in (await alice.reply("Main")).text


async def test_a_skewed_clock_is_named(world: World, alice: ChatDriver) -> None:
    await connected_key(world, alice)
    world.binance.clock_offset_ms = -30_000
    report = await check(alice)
    assert "❌ Clock in sync: this server's clock is 30.0 s ahead" in report
    assert "NTP" in report
    assert "Status: 🟠 Error" in report


async def test_an_exchange_outage_says_it_will_heal(world: World, alice: ChatDriver) -> None:
    await connected_key(world, alice)
    world.binance.fail_next(times=5, status=503)
    report = await check(alice)
    assert "❌ Exchange reachable" in report and "heals by itself" in report


async def test_rate_limiting_is_named(world: World, alice: ChatDriver) -> None:
    await connected_key(world, alice)
    world.binance.fail_next(times=5, status=429)
    assert "rate-limiting" in await check(alice)


async def test_the_log_lists_calls_without_secrets(world: World, alice: ChatDriver) -> None:
    await connected_key(world, alice)
    world.binance.revoke_key(world.binance.issue_key().api_key)  # unrelated noise
    await check(alice)
    await alice.send("/log Main")
    log = (await alice.reply("last")).text
    assert "GET /sapi/v1/account/apiRestrictions 200" in log
    assert "GET /api/v3/account 200" in log
    assert "connected" in log
    assert "signature" not in log and "timestamp" not in log


async def test_check_and_log_of_another_chat_find_nothing(
    world: World, alice: ChatDriver, mallory: ChatDriver
) -> None:
    await connected_key(world, alice)
    await mallory.send("/check Main")
    assert "No connection called" in (await mallory.reply()).text
    await mallory.send("/log")
    assert "No exchange accounts are connected here" in (await mallory.reply()).text
    await mallory.send("/start")
    mine = await mallory.reply("Coinwarden")
    for forged in ("ck:1", "lg:1"):
        await mallory.press(mine, data=forged)
        await mallory.settle()
    gone = "That connection is not here any more."
    assert [a.text for a in mallory.callback_answers] == [gone, gone]


async def test_check_also_asks_the_exchange_about_the_trade_key(
    world: World, alice: ChatDriver
) -> None:
    await connected_key(world, alice)
    await alice.send("/connections")
    await alice.press(await alice.reply("Status"), "Add trade key")
    await alice.reply("Add a trade key to")
    trade = world.binance.issue_key(DemoPermissions(read=True, spot_trade=True))
    assert "now has a trade key" in await paste_key(alice, trade)
    assert "✅ Trade key: the exchange accepts it; can trade; withdrawals off" in await check(alice)

    world.binance.revoke_key(trade.api_key)
    report = await check(alice)
    assert "✅ Key and signature" in report  # the read key is fine…
    assert "❌ Trade key: The exchange did not accept this API key" in report  # …this one not
    assert "Status: 🔴 Re-auth needed" in report
