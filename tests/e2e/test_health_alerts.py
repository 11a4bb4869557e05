"""Health checks as the chat sees them: one message per status change, one when it recovers.

The first test is the acceptance run on the real scheduler (a 2 s period). The others move a
manual clock and run the sweep by hand, so backoff and thresholds are exact and nothing sleeps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from telegram.ext import Application

from bot.handlers.schedule import sweeper_of
from bot.sandbox.exchanges.base import DemoKey
from bot.sandbox.telegram import ChatDriver
from tests.clock import ManualClock
from tests.e2e.conftest import World, connect_binance


def alerts(chat: ChatDriver, words: str) -> list[str]:
    return [m.text for m in chat.messages if m.from_bot and words in m.text]


async def sweep(app: Application, clock: ManualClock, **later: float) -> None:
    """Let time pass, then run the health sweep as its next tick would (and deliver)."""
    clock.advance(**later)
    assert await sweeper_of(app).run("balance")


async def connected(world: World, chat: ChatDriver, **flags: bool) -> DemoKey:
    key = world.canary_key(**(flags or {"read": True}))
    assert "is connected" in await connect_binance(chat, key)
    return key


async def test_a_key_revoked_on_the_exchange_alerts_once_and_its_restore_once(
    world: World, start_bot: Callable[..., Any], alice: ChatDriver
) -> None:
    """Done when: with a 2 s period, revoke → one "Re-auth needed" with the fix; restore → one
    "recovered"."""
    async with start_bot(health_check_seconds=2):
        key = await connected(world, alice)
        world.binance.revoke_key(key.api_key)
        alert = await alice.reply("Re-auth needed", timeout=15)
        assert "Main" in alert.text and "Binance Spot" in alert.text
        assert "did not accept this API key" in alert.text
        assert "Fix:" in alert.text and "/rotate Main" in alert.text
        assert [b for row in alert.buttons for b in row]  # Check / Rotate at hand

        world.binance.restore_key(key.api_key)
        recovered = await alice.reply("recovered", timeout=30)
        assert "Connected again" in recovered.text
        await alice.settle(quiet=2.5)  # a further tick or two: nothing more to say
    assert len(alerts(alice, ": Re-auth needed")) == 1
    assert len(alerts(alice, "recovered")) == 1


@pytest.mark.parametrize("status", [503, 500, 429])
async def test_transient_failures_flip_to_error_only_on_the_third_then_recover(
    world: World, start_bot: Callable[..., Any], alice: ChatDriver, status: int
) -> None:
    clock = ManualClock()
    async with start_bot(clock=clock) as app:
        await connected(world, alice)
        for _ in range(2):
            world.binance.fail_next(2, status=status)  # its ticker call and the read
            await sweep(app, clock, minutes=10)
        assert alerts(alice, "Error") == []
        await alice.send("/connections")
        card = await alice.reply("Status")
        assert "Connected" in card.text and "The last check failed" in card.text

        world.binance.fail_next(2, status=status)  # its ticker call and the read
        await sweep(app, clock, minutes=10)
        error = alerts(alice, ": Error")
        assert len(error) == 1 and "I keep checking" in error[0]
        # A read-only connection never trades: no word about it, no "paused" (that is /pause),
        # and an outage has nothing to rotate.
        assert "trading" not in error[0] and "paused" not in error[0]
        assert "Fix: Nothing to do" not in error[0]
        (shown,) = [m for m in alice.messages if m.from_bot and ": Error" in m.text]
        assert shown.button_labels() == ["🩺 Check"]
        if status == 503:
            assert "Binance Spot said: System is under maintenance." in error[0]

        world.binance.fail_next(
            2, status=status
        )  # its ticker call and the read  # still down: no new message
        await sweep(app, clock, minutes=10)
        await sweep(app, clock, minutes=10)
    assert len(alerts(alice, ": Error")) == 1
    assert len(alerts(alice, "recovered")) == 1


async def test_a_connection_not_due_is_not_called(
    world: World, start_bot: Callable[..., Any], alice: ChatDriver
) -> None:
    clock = ManualClock()
    async with start_bot(clock=clock) as app:
        await connected(world, alice)
        calls = len(world.binance.request_log)
        await sweep(app, clock, seconds=30)  # the period is 60 s
        assert len(world.binance.request_log) == calls
        await sweep(app, clock, seconds=31)
        assert len(world.binance.request_log) > calls


async def test_a_key_that_gains_the_withdraw_right_is_flagged_at_its_next_permission_probe(
    world: World, start_bot: Callable[..., Any], alice: ChatDriver
) -> None:
    """Balance reads every period (one signed call each); the permission probe hourly."""
    clock = ManualClock()
    async with start_bot(clock=clock) as app:
        key = await connected(world, alice)
        world.binance.set_permissions(key.api_key, read=True, withdraw=True)
        await sweep(app, clock, minutes=2)
        probe = "/sapi/v1/account/apiRestrictions"
        probes = [r for r in world.binance.request_log if r.path == probe]
        assert len(probes) == 1  # the check at /connect only
        await sweep(app, clock, minutes=60)
        alert = await alice.reply("Re-auth needed")
        assert "can now move funds out" in alert.text
        assert "Delete this key on the exchange now" in alert.text
        await alice.send("/connections")
        card = await alice.reply("Status")
        assert "Automated trading" not in card.text  # a read-only connection never trades


async def test_a_notice_survives_a_telegram_outage_and_is_sent_once(
    world: World, start_bot: Callable[..., Any], alice: ChatDriver
) -> None:
    clock = ManualClock()
    async with start_bot(clock=clock) as app:
        key = await connected(world, alice)
        world.binance.revoke_key(key.api_key)
        world.telegram.fail_next("sendMessage", error_code=502, description="Bad Gateway")
        await sweep(app, clock, minutes=2)
        assert alerts(alice, ": Re-auth needed") == []
        await sweep(app, clock, seconds=1)  # nothing due: only the delivery is retried
        assert len(alerts(alice, ": Re-auth needed")) == 1
        await sweep(app, clock, minutes=30)
    assert len(alerts(alice, ": Re-auth needed")) == 1


async def test_a_chat_that_blocked_the_bot_does_not_stall_the_others(
    world: World, start_bot: Callable[..., Any], alice: ChatDriver
) -> None:
    bob = world.telegram.private_chat(user_id=1002, first_name="Bob")
    clock = ManualClock()
    async with start_bot(clock=clock) as app:
        alice_key = await connected(world, alice)
        bob_key = world.binance.issue_key()
        assert "is connected" in await connect_binance(bob, bob_key)
        world.telegram.block_bot(alice.chat_id)
        world.binance.revoke_key(alice_key.api_key)
        world.binance.revoke_key(bob_key.api_key)
        await sweep(app, clock, minutes=2)
        assert len(alerts(bob, ": Re-auth needed")) == 1
        world.telegram.unblock_bot(alice.chat_id)
        await sweep(app, clock, seconds=1)
    assert alerts(alice, ": Re-auth needed") == []  # dropped, not retried forever
    # The one refused send is the expected one; the harness would flag it otherwise.
    refused = world.telegram.violations
    assert [v.description for v in refused] == ["Forbidden: bot was blocked by the user"]
    refused.clear()


async def test_pause_stops_trading_at_once_and_alerts_keep_coming(
    world: World, start_bot: Callable[..., Any], alice: ChatDriver
) -> None:
    clock = ManualClock()
    async with start_bot(clock=clock) as app:
        key = await connected(world, alice, read=True, spot_trade=True)  # kept as trade key
        await alice.send("/connections")
        assert "Automated trading: ✅ allowed" in (await alice.reply("Status")).text

        await alice.send("/pause")
        assert "is now paused" in (await alice.reply("paused")).text
        await alice.send("/connections")
        assert "Automated trading: ⏸ paused for this chat" in (await alice.reply("Status")).text
        await alice.send("/start")
        assert "Send /resume to restart it" in (await alice.reply("Coinwarden")).text
        await alice.send("/pause")
        assert "was already paused" in (await alice.reply("paused")).text

        world.binance.revoke_key(key.api_key)
        await sweep(app, clock, minutes=2)
        assert len(alerts(alice, ": Re-auth needed")) == 1

        await alice.send("/resume")
        assert "resumed" in (await alice.reply("resumed")).text
        await alice.send("/resume")
        assert "not paused" in (await alice.reply("not paused")).text
        await alice.send("/start")
        assert "paused" not in (await alice.reply("Coinwarden")).text
