"""/connect as a user walks it: through the production bot, local Telegram and local Binance."""

from __future__ import annotations

import pytest

from bot.sandbox.exchanges.base import DemoPermissions
from bot.sandbox.telegram import ChatDriver
from tests.e2e.conftest import CANARY_KEY, World, connect_binance, paste_key

pytestmark = pytest.mark.usefixtures("bot")


async def test_a_read_only_key_connects_and_every_secret_message_is_deleted(
    world: World, alice: ChatDriver
) -> None:
    key = world.canary_key(read=True)
    card = await connect_binance(alice, key, wrap="\n  {}  \n")  # pasted with stray whitespace
    assert "is connected to Binance Spot" in card
    assert "✅ read · ❌ spot trade · ❌ futures · ❌ withdraw" in card
    assert f"{CANARY_KEY[:4]}…{CANARY_KEY[-4:]}" in card
    assert "No IP restriction" in card
    secret_messages = [
        m for m in alice.messages if not m.from_bot and key.api_key[:10] in (m.text or "")
    ] + [m for m in alice.messages if not m.from_bot and key.secret[:10] in (m.text or "")]
    assert len(secret_messages) == 2 and all(m.deleted for m in secret_messages)

    await alice.send("/connections")
    listed = await alice.reply("Main")
    assert "Connected" in listed.text and "Binance Spot" in listed.text
    assert listed.button_labels() == ["🩺 Check", "🔁 Rotate", "🗑 Revoke", "➕ Add trade key"]


async def test_a_trading_key_without_ip_restriction_gets_both_warnings(
    world: World, alice: ChatDriver
) -> None:
    key = world.binance.issue_key(DemoPermissions(read=True, spot_trade=True))
    card = await connect_binance(alice, key)
    assert "can trade" in card and "No IP restriction" in card


async def test_a_withdraw_key_is_refused_and_nothing_is_stored(
    world: World, alice: ChatDriver
) -> None:
    key = world.canary_key(read=True, withdraw=True)
    text = await connect_binance(alice, key)
    assert "withdraw funds" in text and "stored nothing" in text
    assert "Enable Withdrawals" in text  # how to make a safe key
    assert "Paste a new API key (then its secret key) now; Main on Binance Spot is kept" in text
    await alice.send("/cancel")
    await alice.reply("Cancelled")
    await alice.send("/connections")
    assert "No exchange accounts are connected here yet" in (await alice.reply()).text


async def test_after_a_refused_key_only_a_new_key_is_asked_for(
    world: World, alice: ChatDriver
) -> None:
    refused = world.binance.issue_key(DemoPermissions(read=True, withdraw=True))
    assert "stored nothing" in await connect_binance(alice, refused, "Savings")
    safe = world.binance.issue_key(DemoPermissions(read=True))
    outcome = await paste_key(alice, safe)  # no venue, no label again
    assert "✅ Savings is connected to Binance Spot." in outcome


async def test_an_internal_transfer_key_is_refused_too(world: World, alice: ChatDriver) -> None:
    key = world.canary_key(read=True, internal_transfer=True)
    text = await connect_binance(alice, key)
    assert "transfer funds out" in text


async def test_a_wrong_secret_is_explained_and_nothing_is_stored(
    world: World, alice: ChatDriver
) -> None:
    key = world.canary_key(read=True)
    wrong = type(key)(key.api_key, "WRONG" + key.secret[5:], None)
    text = await connect_binance(alice, wrong)
    assert "The secret does not match this API key." in text
    assert "Nothing was stored" in text
    assert "Paste the secret key again now; Main on Binance Spot is kept." in text
    await alice.send(key.secret)  # just the secret: the key and the label are kept
    checking = await alice.reply("Checking the key")
    outcome = await alice.reply(timeout=10)
    assert outcome.message_id == checking.message_id
    assert "✅ Main is connected to Binance Spot." in outcome.text
    assert all(m.deleted for m in alice.messages if not m.from_bot and m.text == key.secret)


async def test_an_unknown_key_is_explained(world: World, alice: ChatDriver) -> None:
    key = world.binance.issue_key()
    world.binance.revoke_key(key.api_key)
    text = await connect_binance(alice, key)
    assert "did not accept this API key" in text
    assert "Invalid API-key, IP, or permissions for action." in text  # escaped, in italics


async def test_cancel_mid_flow_forgets_everything(world: World, alice: ChatDriver) -> None:
    key = world.canary_key(read=True)
    await alice.send("/connect")
    await alice.press(await alice.reply("Which exchange"), "Binance Spot")
    await alice.reply("label")
    await alice.send("Main")
    await alice.reply("Now paste")
    key_message = await alice.send(key.api_key)
    await alice.reply("Got the API key")
    assert key_message in alice.deleted_ids
    await alice.send("/cancel")
    assert "Nothing was stored" in (await alice.reply()).text
    late = await alice.send(key.secret)  # the flow is over, but a secret is still a secret
    assert "so I deleted it" in (await alice.reply()).text
    assert late in alice.deleted_ids
    await alice.send("/connections")
    assert "No exchange accounts" in (await alice.reply()).text


async def test_connect_is_refused_in_groups_and_pasted_keys_are_deleted(world: World) -> None:
    group = world.telegram.group_chat(
        chat_id=-5001, title="Traders", user_id=1001, bot_can_delete=True
    )
    await group.send("/connect")
    assert "only accept API keys in a private chat" in (await group.reply()).text
    pasted = await group.send(world.binance.issue_key().api_key)
    warning = await group.reply("looked like an API key")
    assert "I deleted it" in warning.text and pasted in group.deleted_ids


async def test_in_privacy_mode_a_non_admin_bot_never_sees_group_chatter(world: World) -> None:
    group = world.telegram.group_chat(chat_id=-5002, title="Traders", user_id=1001)
    await group.send(world.binance.issue_key().api_key)
    await group.settle()
    assert [m for m in group.messages if m.from_bot] == []


async def test_a_key_pasted_before_picking_the_exchange_is_deleted(
    world: World, alice: ChatDriver
) -> None:
    await alice.send("/connect")
    await alice.reply("Which exchange")
    early = await alice.send(world.binance.issue_key().api_key)
    assert "First tap the exchange above" in (await alice.reply()).text
    assert early in alice.deleted_ids
    await alice.send("Main")
    assert "Tap the exchange in the list above" in (await alice.reply()).text


async def test_text_outside_a_flow_gets_a_hint(alice: ChatDriver) -> None:
    await alice.send("hello there")
    assert "Send /help" in (await alice.reply()).text
