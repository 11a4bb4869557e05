"""An unknown command gets one short line with the closest real command, never silence, and
whatever flow waits for input keeps waiting; commands for other bots are left alone."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bot.sandbox.telegram import ChatDriver
from tests.clock import ManualClock
from tests.e2e.conftest import World
from tests.e2e.test_alerts import ready

BOT_USERNAME = "coinwarden_test_bot"  # the local Telegram server's default


def bot_texts(chat: ChatDriver) -> list[str]:
    return [m.text for m in chat.messages if m.from_bot]


@pytest.mark.parametrize(
    ("command", "answer"),
    [
        ("/portfolo", "I don't know /portfolo. Did you mean /portfolio? /help lists them all."),
        ("/ALRETS", "I don't know /ALRETS. Did you mean /alerts? /help lists them all."),
        ("/status", "I don't know /status. Did you mean /connections? /help lists them all."),
        ("/price BTC", "I don't know /price. /help lists them all."),
        (f"/weather@{BOT_USERNAME}", "I don't know /weather. /help lists them all."),
    ],
)
async def test_an_unknown_command_outside_any_flow_gets_one_line_and_the_closest_command(
    world: World, bot: None, alice: ChatDriver, command: str, answer: str
) -> None:
    await alice.send(command)
    assert (await alice.reply()).text == answer
    await alice.settle()
    assert bot_texts(alice) == [answer]  # one answer, nothing else


async def test_an_unknown_command_in_the_guided_alert_setup_keeps_the_setup_going(
    world: World, start_bot: Callable[..., Any], alice: ChatDriver
) -> None:
    clock = ManualClock()
    async with start_bot(clock=clock) as app:
        await ready(world, app, clock, alice)
        await alice.send("/alert")
        picker = await alice.reply("Which connection")
        await alice.press(picker, "Main")
        assets = await alice.reply("Which asset")
        await alice.send("/portfolo")  # while buttons are on screen
        assert "Did you mean /portfolio?" in (await alice.reply("I don't know")).text
        await alice.press(assets, "BTC")
        await alice.press(await alice.reply("Watch which number"), "Amount")
        await alice.press(await alice.reply("below or above"), "Below")
        await alice.reply("Type the number")
        await alice.send("/threshold 0.5")  # while the setup waits for typed input
        assert "I don't know /threshold" in (await alice.reply()).text
        await alice.send("0.5")
        confirmed = await alice.reply("Alert set")
        assert "BTC on Main below 0.5" in confirmed.text


async def test_an_unknown_command_at_the_label_step_keeps_the_connect_flow(
    world: World, bot: None, alice: ChatDriver
) -> None:
    key = world.canary_key(read=True)
    await alice.send("/connect")
    await alice.press(await alice.reply("Which exchange"), "Binance Spot")
    await alice.reply("Send a short label")
    await alice.send("/lable Main")
    assert "I don't know /lable." in (await alice.reply()).text
    await alice.send("Main")
    await alice.reply("Now paste the")
    await alice.send(key.api_key)
    await alice.reply("Got the API key")
    await alice.send(key.secret)
    await alice.reply("Checking the key")
    assert "is connected" in (await alice.reply(timeout=10)).text


async def test_at_a_key_step_an_unknown_command_is_key_input_deleted_and_not_echoed(
    world: World, bot: None, alice: ChatDriver
) -> None:
    await alice.send("/connect")
    await alice.press(await alice.reply("Which exchange"), "Binance Spot")
    await alice.reply("Send a short label")
    await alice.send("Main")
    await alice.reply("Now paste the")
    pasted = await alice.send("/portfolo")
    await alice.settle()
    assert pasted in alice.deleted_ids
    assert not any("I don't know" in text for text in bot_texts(alice))
    await alice.send("/cancel")
    await alice.reply("Cancelled")


async def test_commands_for_other_bots_in_a_group_are_left_alone(world: World, bot: None) -> None:
    # As an admin the bot sees every message of the group, other bots' commands included.
    group = world.telegram.group_chat(chat_id=-5201, title="Traders", bot_can_delete=True)
    for text in ("/start@OtherBot", "/price@OtherBot BTC", "/weather", "/portfolo"):
        await group.send(text)
    await group.settle()
    assert bot_texts(group) == []
    await group.send(f"/portfolo@{BOT_USERNAME}")  # addressed to this bot: answered
    assert "Did you mean /portfolio?" in (await group.reply("I don't know /portfolo")).text
