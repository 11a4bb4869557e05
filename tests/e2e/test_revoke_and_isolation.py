"""Revoking, and chats that must never see or touch each other's connections."""

from __future__ import annotations

import pytest

from bot.sandbox.exchanges import DemoKey
from bot.sandbox.telegram import ChatDriver
from tests.e2e.conftest import World, connect_binance

pytestmark = pytest.mark.usefixtures("bot")


async def connected(world: World, chat: ChatDriver, label: str = "Main") -> DemoKey:
    key = world.binance.issue_key()
    card = await connect_binance(chat, key, label)
    assert "is connected" in card
    return key


async def connection_id(chat: ChatDriver) -> int:
    await chat.send("/connections")
    card = await chat.reply("Status")
    data = [b.data for row in card.buttons for b in row if b.data and b.data.startswith("rv:")]
    assert len(data) == 1
    return int(data[0].split(":")[1])


async def test_revoke_by_label_asks_first_then_wipes_the_keys(
    world: World, alice: ChatDriver
) -> None:
    key = await connected(world, alice)
    await alice.send("/revoke main")
    confirm = await alice.reply("Revoke Main")
    await alice.press(confirm, "Keep it")
    assert "Nothing changed" in (await alice.reply()).text
    await alice.send("/revoke Main")
    confirm = await alice.reply("Revoke Main")
    fingerprint = f"{key.api_key[:4]}…{key.api_key[-4:]}"
    assert f"Read key {fingerprint}" in confirm.text
    await alice.press(confirm, "Yes, revoke")
    done = await alice.reply("revoked")
    assert "keys are wiped" in done.text and "delete the key there too" in done.text
    assert f"(Read key {fingerprint})" in done.text
    assert "On Binance open Account → API Management, find the key and press Delete." in done.text
    await alice.send("/connections")
    assert "No exchange accounts" in (await alice.reply()).text


async def test_revoke_from_the_card_button(world: World, alice: ChatDriver) -> None:
    await connected(world, alice)
    await alice.send("/connections")
    card = await alice.reply("Status")
    await alice.press(card, "Revoke")
    confirm = await alice.reply("Revoke Main")
    assert confirm.message_id == card.message_id  # edited in place
    yes = confirm.buttons[0][0].data
    await alice.press(confirm, "Yes, revoke")
    await alice.reply("revoked")
    # a second tap, e.g. from a laggy client
    answer = await alice.answer(await alice.press(confirm, data=yes))
    assert answer.text == "That connection is not here any more."


async def test_revoke_without_a_label_lists_the_choices(world: World, alice: ChatDriver) -> None:
    await alice.send("/revoke")
    assert "No exchange accounts are connected here" in (await alice.reply()).text
    await connected(world, alice, "Main")
    await connected(world, alice, "Spare")
    await alice.send("/revoke")
    choice = await alice.reply("Which connection")
    assert choice.button_labels() == ["Main", "Spare", "Cancel"]
    await alice.press(choice, "Spare")
    assert "Revoke Spare" in (await alice.reply()).text


async def test_pickers_cancel_and_a_superseded_one_is_closed(
    world: World, alice: ChatDriver
) -> None:
    await connected(world, alice, "Main")
    await connected(world, alice, "Spare")
    await alice.send("/revoke")
    first = await alice.reply("Which connection")
    await alice.send("/check")
    second = await alice.reply("Which connection")
    answer = await alice.answer(await alice.press(first, "Spare"))  # the older menu
    assert answer.text == "This menu is closed."
    await alice.press(second, "Cancel")
    assert "nothing was chosen" in (await alice.reply()).text
    await alice.send("/connections")
    summary = await alice.reply("Your connections")
    assert "🟢 Main · Binance Spot" in summary.text and "🟢 Spare · Binance Spot" in summary.text
    await alice.press(summary, "Spare")
    card = await alice.reply("Status")
    assert card.message_id == summary.message_id and "Spare" in card.text


# Its own test (a chat of its own): one chat's bot messages stay within Telegram's flood limit
# for a chat, which the local server enforces (the driver taps faster than any person).
async def test_keep_it_and_check_lead_back_to_the_card(world: World, alice: ChatDriver) -> None:
    await connected(world, alice, "Spare")
    await alice.send("/connections")
    card = await alice.reply("Status")
    await alice.press(card, "Revoke")
    await alice.press(await alice.reply("Revoke Spare"), "Keep it")
    kept = await alice.reply("Kept")
    await alice.press(kept, "Back to the card")
    again = await alice.reply("Status")
    await alice.press(again, "Check")
    report = await alice.reply("Check of", timeout=10)
    await alice.press(report, "Back to the card")
    assert "Status" in (await alice.reply()).text


async def test_another_chat_cannot_list_revoke_or_forge_buttons(
    world: World, alice: ChatDriver, mallory: ChatDriver
) -> None:
    await connected(world, alice)
    target = await connection_id(alice)

    await mallory.send("/connections")
    assert "No exchange accounts" in (await mallory.reply()).text
    await mallory.send("/revoke Main")
    assert "No connection called Main" in (await mallory.reply()).text

    await mallory.send("/start")
    own_message = await mallory.reply("Coinwarden")
    for forged in (
        f"rvy:{target}",
        f"rv:{target}",
        f"rvn:{target}",
        f"ck:{target}",
        f"ro:{target}",
        f"kr:{target}",
        f"kt:{target}",
        f"lg:{target}",
        "rvy:999999",
        "rvy:-1",
        "x" * 64,
    ):
        await mallory.press(own_message, data=forged)
        await mallory.settle()
    answers = [a.text for a in mallory.callback_answers]
    assert answers.count("That connection is not here any more.") == 9
    assert answers.count("This button has expired. Send the command again.") == 2
    assert "Revoke" not in mallory.transcript()

    await alice.send("/connections")
    assert "Connected" in (await alice.reply("Main")).text


async def test_revoke_in_a_group_does_not_see_private_connections(
    world: World, alice: ChatDriver
) -> None:
    await connected(world, alice)
    group = world.telegram.group_chat(chat_id=-5001, title="Traders", user_id=1001)
    await group.send("/connections")
    assert "No exchange accounts" in (await group.reply()).text
    await group.send("/revoke Main")
    assert "No connection called" in (await group.reply()).text
