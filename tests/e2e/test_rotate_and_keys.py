"""/rotate, the read key + trade key pair, and rotation reminders, as a user walks them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.handlers.schedule import sweeper_of
from bot.sandbox.exchanges.base import DemoKey, DemoPermissions
from bot.sandbox.telegram import ChatDriver
from tests.clock import ManualClock
from tests.e2e.conftest import World, connect_binance, paste_key


async def card(chat: ChatDriver) -> Any:
    await chat.send("/connections")
    return await chat.reply("Status")


async def check_passes(chat: ChatDriver) -> bool:
    await chat.send("/check")
    return "Status: 🟢 Connected" in (await chat.reply("Check of", timeout=10)).text


async def test_rotate_replaces_the_key_in_place_and_says_to_delete_the_old_one(
    world: World, start_bot: Callable[..., Any], alice: ChatDriver
) -> None:
    async with start_bot():
        old = world.canary_key(read=True)
        await connect_binance(alice, old)
        await alice.send("/log")
        await alice.reply("connected")
        new = world.binance.issue_key()

        await alice.send("/rotate")
        prompt = await alice.reply("New read key for")
        assert "keeps working until the new one checks out" in prompt.text
        outcome = await paste_key(alice, new)
        assert "checked out and is in place" in outcome
        assert f"{new.api_key[:4]}…{new.api_key[-4:]}" in outcome
        # The old key is named by its fingerprint, so the user deletes the right one.
        assert f"The old key ({old.api_key[:4]}…{old.api_key[-4:]}) is wiped" in outcome
        assert "Now delete it on the exchange" in outcome
        assert "Account → API Management" in outcome  # the venue's own hint
        secrets = [
            m for m in alice.messages if not m.from_bot and m.text in (new.api_key, new.secret)
        ]
        assert len(secrets) == 2 and all(m.deleted for m in secrets)

        world.binance.revoke_key(old.api_key)  # the user deletes the old key as told
        assert await check_passes(alice)  # /check now runs on the new key
        listed = await card(alice)
        assert f"{new.api_key[:4]}…{new.api_key[-4:]}" in listed.text
        await alice.send("/log")
        history = await alice.reply("Main")
        assert "read key rotated" in history.text and "connected" in history.text


async def test_a_failed_rotation_keeps_the_old_key_and_says_so(
    world: World, start_bot: Callable[..., Any], alice: ChatDriver
) -> None:
    async with start_bot():
        old = world.canary_key(read=True)
        await connect_binance(alice, old)

        wrong = DemoKey(world.binance.issue_key().api_key, "x" * 64, None)
        await alice.send("/rotate Main")
        await alice.reply("New read key for")
        outcome = await paste_key(alice, wrong)
        assert "did not pass the check" in outcome and "Nothing was stored" in outcome
        assert "Your current key is unchanged and keeps working." in outcome
        assert "Paste the secret key again now; Main on Binance Spot is kept." in outcome
        await alice.send("/cancel")  # at a key step only a bare command interrupts
        assert "Your current key is unchanged" in (await alice.reply("Cancelled")).text

        risky = world.binance.issue_key(DemoPermissions(read=True, withdraw=True))
        await alice.send("/rotate Main")
        await alice.reply("New read key for")
        outcome = await paste_key(alice, risky)
        assert "can <b>withdraw" not in outcome and "can withdraw funds" in outcome
        assert "Your current key is unchanged" in outcome
        await alice.send("/cancel")
        await alice.reply("Cancelled")

        assert await check_passes(alice)  # still the old key
        assert f"{old.api_key[:4]}…{old.api_key[-4:]}" in (await card(alice)).text


async def test_a_trade_key_is_added_beside_the_read_key(
    world: World, start_bot: Callable[..., Any], alice: ChatDriver
) -> None:
    async with start_bot():
        read = world.canary_key(read=True)
        connected = await connect_binance(alice, read)
        assert "add a separate trade key" in connected
        listed = await card(alice)
        assert "Trade key: none (monitoring only)" in listed.text
        assert "Automated trading" not in listed.text  # nothing can trade yet

        await alice.press(listed, "Add trade key")
        prompt = await alice.reply("Add a trade key to")
        assert "Enable Spot & Margin Trading" in prompt.text  # trade-key advice, once
        assert "Tick only" not in prompt.text
        outcome = await paste_key(alice, world.binance.issue_key(DemoPermissions(read=True)))
        assert "cannot <b>trade" not in outcome and "cannot trade" in outcome

        trade = world.binance.issue_key(DemoPermissions(read=True, spot_trade=True))
        await alice.press(listed, "Add trade key")
        await alice.reply("Add a trade key to")
        outcome = await paste_key(alice, trade)
        assert "now has a trade key" in outcome
        assert "Now delete it" not in outcome  # nothing was replaced

        listed = await card(alice)
        assert f"Read key: <code>{read.api_key[:4]}" not in listed.text  # plain text here
        assert f"Read key: {read.api_key[:4]}…{read.api_key[-4:]}" in listed.text
        assert f"Trade key: {trade.api_key[:4]}…{trade.api_key[-4:]}" in listed.text
        assert "Automated trading: ✅ allowed" in listed.text
        assert "Add trade key" not in listed.button_labels()

        await alice.send("/rotate")
        which = await alice.reply("Which key of")
        assert which.button_labels() == ["Read key", "Trade key", "Cancel"]
        await alice.press(which, "Trade key")
        await alice.reply("New trade key for")
        await alice.send("/cancel")
        cancelled = await alice.reply("Cancelled")
        assert "Your current key is unchanged" in cancelled.text


async def test_a_trading_key_alone_is_the_trade_key_and_also_reads(
    world: World, start_bot: Callable[..., Any], alice: ChatDriver
) -> None:
    async with start_bot():
        trade = world.canary_key(read=True, spot_trade=True)
        connected = await connect_binance(alice, trade)
        assert "kept as the trade key and also used for reading" in connected
        listed = await card(alice)
        assert "Read key: none, so the trade key is also used for reading" in listed.text
        assert "Add read-only key" in " ".join(listed.button_labels())

        await alice.press(listed, "Add read-only key")
        await alice.reply("Add a read key to")
        outcome = await paste_key(alice, world.binance.issue_key())
        assert "now has a read key" in outcome
        assert "Read key: none" not in (await card(alice)).text


async def test_rotation_reminders_come_at_90_days_then_every_30_until_rotated(
    world: World, start_bot: Callable[..., Any], alice: ChatDriver
) -> None:
    clock = ManualClock()
    async with start_bot(clock=clock) as app:
        await connect_binance(alice, world.canary_key(read=True))
        sweeper = sweeper_of(app)

        async def remind_after(**later: float) -> int:
            clock.advance(**later)
            await sweeper.run("reminders")
            return len([m for m in alice.messages if m.from_bot and "days old" in m.text])

        assert await remind_after(days=89) == 0
        assert await remind_after(days=1) == 1
        reminder = next(m for m in alice.messages if "days old" in m.text)
        assert "read key of Main · Binance Spot is 90 days old" in reminder.text
        assert "/rotate Main" in reminder.text
        assert await remind_after(hours=1) == 1
        assert await remind_after(days=29) == 1
        assert await remind_after(days=1) == 2
        assert "🔁 due for rotation" in (await card(alice)).text

        await alice.send("/rotate")
        await alice.reply("New read key for")
        assert "checked out" in await paste_key(alice, world.binance.issue_key())
        assert await remind_after(days=60) == 2  # the new key's clock starts over
        assert await remind_after(days=30) == 3


async def test_each_key_lands_in_the_slot_it_fits_and_the_advice_leads_there(
    world: World, start_bot: Callable[..., Any], alice: ChatDriver
) -> None:
    async with start_bot():
        read = world.canary_key(read=True)
        await connect_binance(alice, read)
        listed = await card(alice)

        await alice.press(listed, "Add trade key")
        await alice.reply("Add a trade key to")
        outcome = await paste_key(alice, world.binance.issue_key(DemoPermissions(read=True)))
        assert "cannot be the trade key" in outcome
        assert "tap ➕ Add trade key on Main's card in /connections again" in outcome
        assert "/rotate" not in outcome

        trading = world.binance.issue_key(DemoPermissions(read=True, spot_trade=True))
        await alice.send("/rotate Main")
        await alice.reply("New read key for")
        outcome = await paste_key(alice, trading)
        assert "can trade, so it cannot be the read-only key" in outcome
        assert "Or let this key be the trade key: tap ➕ Add trade key on Main's card" in outcome
        assert "Your current key is unchanged" in outcome
        listed = await card(alice)
        assert f"Read key: {read.api_key[:4]}…{read.api_key[-4:]}" in listed.text
        assert "Trade key: none" in listed.text

        await alice.press(listed, "Add trade key")  # where the advice led
        await alice.reply("Add a trade key to")
        assert "now has a trade key" in await paste_key(alice, trading)


async def test_one_api_key_is_never_in_two_slots_or_two_connections(
    world: World, start_bot: Callable[..., Any], alice: ChatDriver
) -> None:
    async with start_bot():
        trade = world.canary_key(read=True, spot_trade=True)
        await connect_binance(alice, trade)
        listed = await card(alice)
        calls = len(world.binance.request_log)

        await alice.press(listed, "Add read-only key")
        await alice.reply("Add a read key to")
        await alice.send(trade.api_key)
        await alice.reply("Now paste the")
        await alice.send(trade.secret)
        refused = await alice.reply("already the trade key of Main")
        assert "two different keys" in refused.text and "nothing was stored" in refused.text

        await alice.send("/connect")
        await alice.press(await alice.reply("Which exchange"), "Binance Spot")
        await alice.reply("Send a short label")
        await alice.send("Second")
        await alice.reply("Now paste the")
        await alice.send(trade.api_key)
        await alice.reply("Now paste the")
        await alice.send(trade.secret)
        twice = await alice.reply("already connected here as Main")
        assert "one key belongs to one connection" in twice.text

        await alice.send("/rotate Main")
        await alice.reply("New trade key for")
        await alice.send(trade.api_key)
        await alice.reply("Now paste the")
        await alice.send(trade.secret)
        same = await alice.reply("already in place on Main")
        assert "nothing changed" in same.text
        await alice.send("/connections")
        assert "Second" not in (await alice.reply()).text
        assert len(world.binance.request_log) == calls  # refused before any exchange call


async def test_ip_advice_names_the_configured_outbound_address(
    world: World, start_bot: Callable[..., Any], alice: ChatDriver
) -> None:
    async with start_bot(outbound_ips=["203.0.113.7"]):
        card = await connect_binance(alice, world.canary_key(read=True))
        assert "Restrict the key to: 203.0.113.7" in card
        await alice.send("/check")
        report = (await alice.reply("Check of", timeout=10)).text
        assert "⚠️ IP restriction" in report
        assert "Advice: Restrict the key to 203.0.113.7." in report
