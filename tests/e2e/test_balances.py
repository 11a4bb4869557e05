"""Balances as the chat sees them: /balance, Refresh in place, /portfolio across venues, the
chart as a real PNG, /settings, and every bad input of the balance views."""

from __future__ import annotations

import struct
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from telegram.ext import Application

from bot.exchanges.catalogue import VENUES
from bot.handlers.schedule import sweeper_of
from bot.sandbox.exchanges import DemoPermissions, KrakenServer
from bot.sandbox.telegram import ChatDriver
from tests.clock import ManualClock
from tests.e2e.conftest import World, connect, connect_binance


async def sweep(app: Application, clock: ManualClock, **later: float) -> None:
    clock.advance(**later)
    assert await sweeper_of(app).run("balance")


def png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


async def test_balance_shows_every_asset_valued_with_a_total_and_its_age(
    world: World, bot: None, alice: ChatDriver
) -> None:
    assert "is connected" in await connect_binance(alice, world.canary_key(read=True))
    await alice.send("/balance")
    shown = await alice.reply("Total", timeout=10)
    for part in ("Main", "Binance Spot", "BTC", "0.5234", "ETH", "4.182", "USDT", "12,500"):
        assert part in shown.text, part
    assert "USD" in shown.text and "as of" in shown.text
    assert "no price" not in shown.text
    assert [b.text for row in shown.buttons for b in row] == [
        "🔄 Refresh",
        "📊 Portfolio",
        "📋 Orders",
    ]
    assert "<pre>" in shown.html


async def test_refresh_edits_the_message_in_place_and_shows_a_deposit(
    world: World, bot: None, alice: ChatDriver
) -> None:
    await connect_binance(alice, world.canary_key(read=True))
    await alice.send("/balance")
    shown = await alice.reply("Total", timeout=10)
    world.binance.set_balance("demo", "BTC", "1.75")
    await alice.press(shown, "Refresh")
    refreshed = await alice.reply("1.75", timeout=10)
    assert refreshed.message_id == shown.message_id
    assert any("⏳ refreshing" in earlier for earlier in refreshed.edits)


async def test_an_exchange_down_during_refresh_shows_the_last_balance_and_says_why(
    world: World, bot: None, alice: ChatDriver
) -> None:
    await connect_binance(alice, world.canary_key(read=True))
    await alice.send("/balance")
    shown = await alice.reply("Total", timeout=10)
    world.binance.fail_next(times=4, status=503)
    await alice.press(shown, "Refresh")
    failed = await alice.reply("could not read it now", timeout=10)
    assert failed.message_id == shown.message_id
    assert "unreachable or under maintenance" in failed.text
    assert "Showing the last balance read" in failed.text and "0.5234" in failed.text


async def test_portfolio_adds_up_two_venues_and_the_chart_is_a_real_png(
    world: World, start_bot: Callable[..., Any], alice: ChatDriver
) -> None:
    async with KrakenServer() as kraken:
        endpoints = {"binance": world.binance.base_url, "kraken": kraken.base_url}
        async with start_bot(exchange_endpoints=endpoints):
            await connect_binance(alice, world.canary_key(read=True))
            key = kraken.issue_key(DemoPermissions(read=True))
            assert "is connected" in await connect(alice, "kraken", key, "Kraken")
            await alice.send("/portfolio")
            shown = await alice.reply("Portfolio", timeout=10)
            # Both demo accounts hold 0.5234 BTC: the portfolio holds twice that.
            assert "1.0468" in shown.text and "8.364" in shown.text and "25,000" in shown.text
            assert "24 h" in shown.text and "7 d" in shown.text

            await alice.press(shown, "By exchange")
            by_exchange = await alice.reply("Kraken", timeout=10)
            assert by_exchange.message_id == shown.message_id and "Main" in by_exchange.text

            await alice.press(by_exchange, "Chart")
            photo = await alice.reply("value over the last 7 days", timeout=20)
            assert photo.kind == "photo" and photo.photo is not None
            width, height = png_size(photo.photo)
            assert 600 <= width <= 2000 and 600 <= height <= 2500


async def test_a_deposit_shows_up_within_one_sweep(
    world: World, start_bot: Callable[..., Any], alice: ChatDriver
) -> None:
    clock = ManualClock()
    async with start_bot(clock=clock) as app:
        await connect_binance(alice, world.canary_key(read=True))
        await sweep(app, clock, minutes=1)
        world.binance.set_balance("demo", "ETH", "10.5")
        await sweep(app, clock, minutes=1)
        await alice.send("/balance")
        shown = await alice.reply("Total", timeout=10)
        assert "10.5" in shown.text


async def test_no_connections_unknown_label_and_another_chats_label(
    world: World, bot: None, alice: ChatDriver, mallory: ChatDriver
) -> None:
    await mallory.send("/balance")
    assert "/connect" in (await mallory.reply()).text
    await mallory.send("/portfolio")
    assert "/connect" in (await mallory.reply()).text
    await connect_binance(alice, world.canary_key(read=True), "Vault")
    await mallory.send("/balance Vault")
    assert "No connection called" in (await mallory.reply()).text
    await alice.send("/balance Nope")
    assert "No connection called" in (await alice.reply()).text


async def test_forged_balance_buttons_of_another_chat_do_nothing(
    world: World, bot: None, alice: ChatDriver, mallory: ChatDriver
) -> None:
    await connect_binance(alice, world.canary_key(read=True))
    await alice.send("/balance")
    shown = await alice.reply("Total", timeout=10)
    connection_id = shown.buttons[0][0].data.split(":")[1]  # type: ignore[union-attr]
    await mallory.send("/start")
    welcome = await mallory.reply()
    calls_before = len(world.binance.request_log)
    for forged in (f"br:{connection_id}", f"bal:{connection_id}", f"bo:{connection_id}"):
        await mallory.press(welcome, data=forged)
    await mallory.settle()
    assert all("not here" in (answer.text or "") for answer in mallory.callback_answers[-3:]), (
        mallory.callback_answers
    )
    assert len(world.binance.request_log) == calls_before
    assert all("0.5234" not in m.text for m in mallory.messages)


async def test_odd_assets_are_escaped_and_huge_and_tiny_amounts_read_plainly(
    world: World, bot: None, alice: ChatDriver
) -> None:
    world.binance.set_balance("demo", "<b>X&Y", "3")
    world.binance.set_balance("demo", "BIG", Decimal(10) ** 12)
    world.binance.set_balance("demo", "TINY", Decimal(10) ** -8)  # Binance's smallest step
    await connect_binance(alice, world.canary_key(read=True))
    await alice.send("/balance")
    shown = await alice.reply("Total", timeout=10)
    # ccxt upper-cases currency codes; the text arrives escaped and shows as sent.
    assert "<B>X&Y" in shown.text and "&lt;B&gt;X&amp;Y" in shown.html
    assert "1,000,000,000,000" in shown.text and "0.00000001" in shown.text
    assert "e-" not in shown.text.lower() and "no price" in shown.text


async def test_settings_change_the_dust_line_and_the_currency(
    world: World, bot: None, alice: ChatDriver
) -> None:
    world.binance.set_balance("demo", "DOGE", "2")  # about 0.34 USD: dust
    await connect_binance(alice, world.canary_key(read=True))
    await alice.send("/balance")
    shown = await alice.reply("Total", timeout=10)
    assert "1 small balance" in shown.text and "DOGE" not in shown.text

    await alice.send("/settings")
    menu = await alice.reply("Settings")
    await alice.press(menu, "dust 0")
    await alice.reply("less than 0 USD")
    await alice.send("/balance")
    again = await alice.reply("Total", timeout=10)
    assert "DOGE" in again.text and "small balance" not in again.text

    await alice.send("/settings")
    menu = await alice.reply("Settings")
    await alice.press(menu, "BTC")
    await alice.reply("Currency: BTC", timeout=10)
    await alice.send("/balance")
    in_btc = await alice.reply("Total", timeout=10)
    total = next(line for line in in_btc.text.splitlines() if line.startswith("Total"))
    assert total.endswith(" BTC"), total
    assert VENUES["binance"].name in in_btc.text
