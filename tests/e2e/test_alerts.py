"""Balance-threshold alerts as the chat sees them: one message per crossing, silence while
the value stays past the line, re-armed past the band, and every bad input refused."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from telegram.ext import Application

from bot.handlers.schedule import sweeper_of
from bot.sandbox.telegram import ChatDriver
from tests.clock import ManualClock
from tests.e2e.conftest import World, connect_binance


async def sweep(app: Application, clock: ManualClock) -> None:
    clock.advance(minutes=1)
    assert await sweeper_of(app).run("balance")


def alerts(chat: ChatDriver) -> list[str]:
    """The alert messages the chat got (not the confirmations of new rules)."""
    return [
        m.text
        for m in chat.messages
        if m.from_bot and re.fullmatch(r"🔔 (Alert|\d+ alerts)", m.text.split("\n")[0])
    ]


async def ready(world: World, app: Application, clock: ManualClock, chat: ChatDriver) -> None:
    """A Binance connection called Main with one balance read done."""
    assert "is connected" in await connect_binance(chat, world.canary_key(read=True))
    await sweep(app, clock)


async def test_one_alert_per_crossing_and_silence_while_it_stays_low(
    world: World, start_bot: Callable[..., Any], alice: ChatDriver
) -> None:
    clock = ManualClock()
    async with start_bot(clock=clock) as app:
        await ready(world, app, clock, alice)
        await alice.send("/alert Main BTC below 0.5")
        confirmed = await alice.reply("Alert set")
        assert "BTC on Main below 0.5" in confirmed.text
        assert "BTC on Main is 0.5234 now" in confirmed.text

        world.binance.set_balance("demo", "BTC", "0.42")
        await sweep(app, clock)
        alert = await alice.reply("dropped below", timeout=10)
        assert "BTC on Main (Binance Spot) dropped below 0.5: 0.42 now" in alert.text
        labels = [b.text for row in alert.buttons for b in row]
        assert labels == ["💰 Balance", "😴 24 h · BTC", "🗑 BTC"]
        await alice.press(alert, "Balance")  # a new message: the alert stays as it was
        balance = await alice.reply("Total", timeout=10)
        assert balance.message_id != alert.message_id and "0.42" in balance.text

        for _ in range(5):  # stays low: nothing more
            await sweep(app, clock)
        world.binance.set_balance("demo", "BTC", "0.504")  # inside the 1 % band: still fired
        await sweep(app, clock)
        world.binance.set_balance("demo", "BTC", "0.49")
        await sweep(app, clock)
        await alice.settle()
        assert len(alerts(alice)) == 1

        world.binance.set_balance("demo", "BTC", "0.506")  # re-armed silently
        await sweep(app, clock)
        world.binance.set_balance("demo", "BTC", "0.3")
        await sweep(app, clock)
        again = await alice.reply("dropped below", timeout=10)
        assert "0.3 now" in again.text
        await alice.settle()
        assert len(alerts(alice)) == 2

        await alice.send("/alerts")
        listed = await alice.reply("Alerts")
        assert "BTC on Main below 0.5" in listed.text and "fired" in listed.text


async def test_a_rule_already_crossed_says_so_and_waits_for_the_next_crossing(
    world: World, start_bot: Callable[..., Any], alice: ChatDriver
) -> None:
    clock = ManualClock()
    async with start_bot(clock=clock) as app:
        await ready(world, app, clock, alice)
        await alice.send("/alert main eth > 1")
        confirmed = await alice.reply("Alert set")
        assert "already above" in confirmed.text and "4.182 now" in confirmed.text
        await sweep(app, clock)
        await alice.settle()
        assert alerts(alice) == []


async def test_portfolio_value_and_share_rules_on_all_connections(
    world: World, start_bot: Callable[..., Any], alice: ChatDriver
) -> None:
    clock = ManualClock()
    async with start_bot(clock=clock) as app:
        await ready(world, app, clock, alice)
        await alice.send("/alert all value below 50000")
        assert "The value of all connections is" in (await alice.reply("Alert set")).text
        await alice.send("/alert all BTC share above 70%")
        assert "The share of BTC in all connections is" in (await alice.reply("Alert set")).text
        world.binance.set_balance("demo", "USDT", "100")
        world.binance.set_balance("demo", "ETH", "0")
        await sweep(app, clock)
        message = await alice.reply("2 alerts", timeout=10)  # one message for both
        assert "value of all connections dropped below 50,000.00 USD" in message.text
        assert "share of BTC in all connections rose above 70.0%" in message.text


async def test_snooze_delete_and_forged_buttons(
    world: World, start_bot: Callable[..., Any], alice: ChatDriver, mallory: ChatDriver
) -> None:
    clock = ManualClock()
    async with start_bot(clock=clock) as app:
        await ready(world, app, clock, alice)
        await alice.send("/alert Main BTC below 0.5")
        await alice.reply("Alert set")
        world.binance.set_balance("demo", "BTC", "0.4")
        await sweep(app, clock)
        alert = await alice.reply("dropped below", timeout=10)
        rule_id = next(b.data for row in alert.buttons for b in row if "🗑" in b.text).split(":")[1]

        await mallory.send("/start")
        welcome = await mallory.reply()
        for forged in (f"az:{rule_id}", f"ad:{rule_id}", f"ay:{rule_id}", f"ap:{rule_id}"):
            await mallory.press(welcome, data=forged)
        await mallory.settle()
        assert all("not here" in (a.text or "") for a in mallory.callback_answers[-4:])

        answer = await alice.answer(await alice.press(alert, "😴"))
        assert answer.text == "Snoozed for 24 h."
        await alice.send("/alerts")
        assert "snoozed until" in (await alice.reply("Alerts")).text

        await alice.press(alert, "🗑")
        confirm = await alice.reply("Delete the alert")
        await alice.press(confirm, "Yes, delete")
        assert "Deleted" in (await alice.reply("Deleted")).text
        await alice.send("/alerts")
        assert "No alerts yet" in (await alice.reply("No alerts")).text


async def test_bad_rules_are_refused_and_nothing_is_stored(
    world: World, start_bot: Callable[..., Any], alice: ChatDriver, mallory: ChatDriver
) -> None:
    clock = ManualClock()
    async with start_bot(clock=clock, max_alerts_per_chat=2) as app:
        await ready(world, app, clock, alice)
        cases = {
            "/alert Main DOGE below 5": "It holds: BTC, ETH, USDT",
            "/alert Nope BTC below 1": "No connection called Nope",
            "/alert Main BTC below -1": "zero or more",
            "/alert Main BTC below lots": "not a number",
            "/alert all value below 25,000": "write the threshold without it, e.g. 25000",
            "/alert all BTC share above 120%": "at most 100%",
        }
        for line, says in cases.items():
            await alice.send(line)
            assert says in (await alice.reply()).text, line
        await alice.send("/alert Main BTC below 0.1")
        await alice.reply("Alert set")
        await alice.send("/alert Main BTC below 0.1")
        assert "already have this very alert" in (await alice.reply()).text
        await alice.send("/alert Main ETH below 0.1")
        await alice.reply("Alert set")
        await alice.send("/alert Main USDT below 1")
        assert "the most it can hold" in (await alice.reply()).text
        await mallory.send("/alert Main BTC below 1")
        assert "No exchange accounts" in (await mallory.reply()).text
        await alice.send("/alerts")
        assert "(2 of 2)" in (await alice.reply("Alerts")).text


async def test_an_alert_survives_a_telegram_outage_and_is_sent_once(
    world: World, start_bot: Callable[..., Any], alice: ChatDriver
) -> None:
    clock = ManualClock()
    async with start_bot(clock=clock) as app:
        await ready(world, app, clock, alice)
        await alice.send("/alert Main BTC below 0.5")
        await alice.reply("Alert set")
        world.binance.set_balance("demo", "BTC", "0.1")
        world.telegram.fail_next("sendMessage", error_code=502, description="Bad Gateway")
        await sweep(app, clock)  # evaluated and queued; delivery fails
        await sweep(app, clock)  # delivered now, and not evaluated again
        await alice.reply("dropped below", timeout=10)
        await alice.settle()
        assert len(alerts(alice)) == 1


async def test_revoking_a_connection_deletes_its_alerts_and_says_so(
    world: World, start_bot: Callable[..., Any], alice: ChatDriver
) -> None:
    clock = ManualClock()
    async with start_bot(clock=clock) as app:
        await ready(world, app, clock, alice)
        await alice.send("/alert Main BTC below 0.5")
        await alice.reply("Alert set")
        await alice.send("/revoke")
        confirm = await alice.reply("Revoke")
        await alice.press(confirm, "Yes, revoke")
        assert "Its 1 alert went with it" in (await alice.reply("is revoked")).text
        await alice.send("/alerts")
        assert "No alerts yet" in (await alice.reply()).text


async def test_the_guided_setup_builds_the_same_rule_with_buttons(
    world: World, start_bot: Callable[..., Any], alice: ChatDriver
) -> None:
    clock = ManualClock()
    async with start_bot(clock=clock) as app:
        await ready(world, app, clock, alice)
        await alice.send("/alert")
        picker = await alice.reply("Which connection")
        await alice.press(picker, "Main")
        assets = await alice.reply("Which asset")
        await alice.press(assets, "BTC")
        metric = await alice.reply("Watch which number")
        await alice.press(metric, "Amount")
        direction = await alice.reply("below or above")
        await alice.press(direction, "Below")
        await alice.reply("Type the number")
        await alice.send("0,5")
        confirmed = await alice.reply("Alert set")
        assert "BTC on Main below 0.5" in confirmed.text


async def test_a_restart_between_evaluation_and_delivery_loses_and_repeats_nothing(
    world: World, start_bot: Callable[..., Any], alice: ChatDriver
) -> None:
    clock = ManualClock()
    async with start_bot(clock=clock) as app:
        await ready(world, app, clock, alice)
        await alice.send("/alert Main BTC below 0.5")
        await alice.reply("Alert set")
        world.binance.set_balance("demo", "BTC", "0.1")
        world.telegram.fail_next("sendMessage", error_code=502, description="Bad Gateway")
        await sweep(app, clock)  # evaluated, queued, not delivered
    await alice.settle()
    assert alerts(alice) == []
    async with start_bot(clock=clock) as app:  # the restart
        await sweep(app, clock)
        await sweep(app, clock)
        await alice.reply("dropped below", timeout=10)
        await alice.settle()
    assert len(alerts(alice)) == 1
