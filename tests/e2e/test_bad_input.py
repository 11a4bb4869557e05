"""Bad input gets a clear reply and changes nothing."""

from __future__ import annotations

import pytest

from bot.sandbox.telegram import ChatDriver, ChatMessage
from tests.e2e.conftest import World, connect_binance


async def at_api_key_step(chat: ChatDriver, label: str = "Main") -> None:
    await chat.send("/connect")
    await chat.press(await chat.reply("Which exchange"), "Binance Spot")
    await chat.reply("label")
    await chat.send(label)
    await chat.reply("Now paste the")


async def assert_nothing_stored(chat: ChatDriver) -> None:
    await chat.send("/connections")
    assert "No exchange accounts" in (await chat.reply()).text


pytestmark = pytest.mark.usefixtures("bot")


async def test_non_text_where_a_label_is_expected(alice: ChatDriver) -> None:
    await alice.send("/connect")
    await alice.press(await alice.reply("Which exchange"), "Binance Spot")
    await alice.reply("label")
    await alice.send_sticker()
    assert "send the label as a text message" in (await alice.reply()).text
    await alice.send("Main")
    assert "Now paste the" in (await alice.reply()).text


async def test_a_screenshot_instead_of_a_key_is_deleted_too(alice: ChatDriver) -> None:
    await at_api_key_step(alice)
    photo = await alice.send_photo(caption="my key: AbCdEf0123456789AbCdEf0123456789")
    assert "plain text message" in (await alice.reply()).text
    assert photo in alice.deleted_ids


async def test_a_key_that_is_not_a_key_is_refused_and_the_message_still_deleted(
    alice: ChatDriver,
) -> None:
    await at_api_key_step(alice)
    first = await alice.send("this is not my key")
    assert "no spaces" in (await alice.reply()).text
    long = await alice.send("A" * 300)
    assert "too long for an API key" in (await alice.reply()).text
    assert {first, long} <= alice.deleted_ids
    await alice.send("/cancel")
    await alice.reply("Cancelled")
    await assert_nothing_stored(alice)


async def test_a_label_already_used_in_the_chat_is_refused(world: World, alice: ChatDriver) -> None:
    await connect_binance(alice, world.binance.issue_key(), "Main")
    await alice.send("/connect")
    await alice.press(await alice.reply("Which exchange"), "Binance Spot")
    await alice.reply("label")
    await alice.send("MAIN")
    assert "already have a connection called Main." in (await alice.reply()).text  # as stored
    await alice.send("x" * 40)
    assert "too long" in (await alice.reply()).text


async def test_labels_with_html_and_emoji_are_escaped_everywhere(
    world: World, alice: ChatDriver
) -> None:
    label = "<b>Main</b> & 🚀"
    card = await connect_binance(alice, world.binance.issue_key(), label)
    assert f"{label} is connected" in card  # shown literally, not as bold
    await alice.send("/connections")
    listed = await alice.reply("🚀")
    assert "&lt;b&gt;Main&lt;/b&gt; &amp; 🚀" in listed.html
    await alice.send(f"/revoke {label}")
    confirm = await alice.reply("Revoke")
    assert label in confirm.text


async def test_a_button_from_an_old_picker_has_expired(alice: ChatDriver) -> None:
    await alice.send("/connect")
    old: ChatMessage = await alice.reply("Which exchange")
    await alice.send("/cancel")
    await alice.reply("Cancelled")
    answer = await alice.answer(await alice.press(old, data="cv:binance"))
    assert "expired" in (answer.text or "")
    await alice.send("/connect")
    fresh = await alice.reply("Which exchange")
    # the previous picker, while a new flow runs
    answer = await alice.answer(await alice.press(old, data="cv:binance"))
    assert "expired" in (answer.text or "")
    await alice.press(fresh, "Binance Spot")
    assert "Send a short label" in (await alice.reply()).text


async def test_when_a_secret_cannot_be_deleted_the_user_is_asked_to(
    world: World, alice: ChatDriver
) -> None:
    await at_api_key_step(alice)
    world.telegram.fail_next(
        "deleteMessage", error_code=400, description="Bad Request: message can't be deleted"
    )
    await alice.send(world.binance.issue_key().api_key)
    assert "Please delete it yourself" in (await alice.reply("could not delete")).text
    await alice.send("/cancel")
    await alice.reply("Cancelled")


async def test_cancel_outside_a_flow(alice: ChatDriver) -> None:
    await alice.send("/cancel")
    assert "nothing to cancel" in (await alice.reply()).text
