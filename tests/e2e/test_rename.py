"""/rename <old> <new>: a connection gets another label and keeps everything else; labels stay
unique in the chat ignoring case, and another chat's connections cannot be named."""

from __future__ import annotations

import pytest

from bot.sandbox.telegram import ChatDriver
from tests.e2e.conftest import World, connect_binance

pytestmark = pytest.mark.usefixtures("bot")


async def connected(world: World, chat: ChatDriver, *labels: str) -> None:
    for label in labels:
        assert "is connected" in await connect_binance(chat, world.binance.issue_key(), label)


async def test_a_renamed_connection_answers_to_its_new_label_only(
    world: World, alice: ChatDriver
) -> None:
    await connected(world, alice, "Main")
    await alice.send("/rename main Long-term")
    assert (await alice.reply()).text == (
        "✏️ Main is now called Long-term. Its keys, alerts and history stay as they were."
    )
    await alice.send("/connections")
    assert "Long-term · Binance Spot" in (await alice.reply("Status")).text
    await alice.send("/check long-term")
    await alice.reply("Long-term", timeout=10)
    await alice.send("/check Main")
    assert "No connection called Main here" in (await alice.reply()).text
    assert "rename" in world.telegram.commands
    await alice.send("/help")
    assert "/rename — " in (await alice.reply("Commands")).text


async def test_a_label_in_use_is_refused_and_shown_as_stored(
    world: World, alice: ChatDriver
) -> None:
    await connected(world, alice, "Main", "Spare acct")
    await alice.send("/rename Main SPARE ACCT")
    answer = (await alice.reply()).text
    assert answer == (
        "You already have a connection called Spare acct. Choose another label; nothing was "
        "renamed."
    )
    await alice.send("/rename Spare acct spare ACCT")  # its own label in another case: fine
    assert "Spare acct is now called spare ACCT" in (await alice.reply()).text


async def test_labels_with_spaces_quotes_and_the_label_rules(
    world: World, alice: ChatDriver
) -> None:
    await connected(world, alice, "My main")
    await alice.send("/rename My main " + "x" * 33)
    assert "too long" in (await alice.reply()).text
    await alice.send("/rename My main")
    assert "What should My main be called?" in (await alice.reply()).text
    await alice.send('/rename "my MAIN"  "Cold   wallet" ')
    assert "My main is now called Cold wallet." in (await alice.reply()).text
    await alice.send("/rename Cold wallet Cold wallet")
    assert "It is already called Cold wallet." in (await alice.reply()).text


async def test_an_unknown_old_label_lists_the_chats_labels(
    world: World, alice: ChatDriver, mallory: ChatDriver
) -> None:
    await connected(world, alice, "Main", "Spare")
    await alice.send("/rename Mian Long")
    answer = (await alice.reply()).text
    assert "None of your connections is called that. Yours: Main, Spare." in answer
    await alice.send("/rename")
    assert "Yours: Main, Spare." in (await alice.reply("/rename")).text
    await mallory.send("/rename Main Mine")  # another chat: nothing of Alice's is found
    assert "No exchange accounts are connected here" in (await mallory.reply()).text
    await alice.send("/connections")
    await alice.reply("Main ·")


async def test_a_key_pasted_as_the_new_label_is_deleted(world: World, alice: ChatDriver) -> None:
    await connected(world, alice, "Main")
    key = world.binance.issue_key()
    pasted = await alice.send(f"/rename Main {key.api_key}")
    assert "so I deleted it" in (await alice.reply()).text
    assert pasted in alice.deleted_ids
    assert key.api_key not in "\n".join(m.text for m in alice.messages if m.from_bot)
