"""Rebalancing as the chat sees it: a target, a dry-run proposal, Approve → orders at the venue
that match it, the report, and nothing twice however often Approve is tapped; Reject, expiry,
/pause, another chat's forged tap and a drift trigger."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from telegram.ext import Application

from bot.handlers.schedule import sweeper_of
from bot.sandbox.telegram import ChatDriver
from bot.sandbox.telegram.chat import ChatMessage
from tests.clock import ManualClock
from tests.e2e.conftest import World, connect_binance


async def sweep(app: Application, clock: ManualClock) -> None:
    clock.advance(minutes=1)
    assert await sweeper_of(app).run("balance")


async def trading_main(
    world: World, app: Application, clock: ManualClock, chat: ChatDriver
) -> None:
    """Main: a Binance key that reads and trades spot, one balance read done."""
    assert "is connected" in await connect_binance(
        chat, world.canary_key(read=True, spot_trade=True)
    )
    await sweep(app, clock)


async def proposed(chat: ChatDriver, line: str = "/rebalance Main BTC 50 USDT 50") -> ChatMessage:
    await chat.send(line)
    await chat.reply("Target set")
    return await chat.reply("Rebalance proposal", timeout=10)


def approve_data(message: ChatMessage) -> str:
    data = message.buttons[0][0].data
    assert data is not None and data.startswith("rp:")
    return data


async def test_approve_executes_once_however_often_it_is_tapped(
    world: World, start_bot: Callable[..., Any], alice: ChatDriver
) -> None:
    clock = ManualClock()
    async with start_bot(clock=clock) as app:
        await trading_main(world, app, clock, alice)
        proposal = await proposed(alice)
        assert "a dry run: nothing has been traded" in proposal.text
        assert "SELL" in proposal.text and "BTC/USDT" in proposal.text
        assert world.binance.account("demo").orders == {}

        data = approve_data(proposal)
        await alice.press(proposal, "Approve")
        await alice.press(proposal, data=data)  # a double tap, before the first is handled
        report = await alice.reply("Rebalance executed", timeout=15)
        assert report.message_id == proposal.message_id
        await alice.press(proposal, data=data)  # a replay, long after
        await alice.settle()

        orders = list(world.binance.account("demo").orders.values())
        assert len(orders) == 1
        order = orders[0]
        assert (order.side, order.symbol, order.time_in_force) == ("sell", "BTC/USDT", "IOC")
        assert order.filled > 0 and f"{order.filled.normalize():f} BTC" in report.text
        assert f"{order.average:,}".rstrip("0") in report.text
        assert world.binance.account("demo").balance("BTC").total == (
            Decimal("0.5234") - order.filled
        )
        assert "Already handled" in " ".join(a.text or "" for a in alice.callback_answers)

        await alice.send("/rebalance history")
        history = await alice.reply("Rebalance history")
        assert "executed" in history.text and "filled" in history.text


async def test_reject_trades_nothing(
    world: World, start_bot: Callable[..., Any], alice: ChatDriver
) -> None:
    clock = ManualClock()
    async with start_bot(clock=clock) as app:
        await trading_main(world, app, clock, alice)
        proposal = await proposed(alice)
        await alice.press(proposal, "Reject")
        rejected = await alice.reply("Rejected")
        assert "Nothing was traded" in rejected.text
        await alice.press(proposal, data=approve_data(proposal))  # the old Approve
        await alice.settle()
        assert world.binance.account("demo").orders == {}

        await alice.send("/revoke")
        await alice.press(await alice.reply("Revoke"), "Yes, revoke")
        assert "So did its rebalancing target" in (await alice.reply("is revoked")).text
        await alice.send("/rebalance")
        assert "No target yet" in (await alice.reply()).text


async def test_another_chat_paused_chat_or_expired_proposal_trades_nothing(
    world: World, start_bot: Callable[..., Any], alice: ChatDriver, mallory: ChatDriver
) -> None:
    clock = ManualClock()
    async with start_bot(clock=clock) as app:
        await trading_main(world, app, clock, alice)
        proposal = await proposed(alice)
        data = approve_data(proposal)

        await mallory.send("/start")
        await mallory.reply()
        # forged: alice's proposal id
        answer = await mallory.answer(await mallory.press(mallory.messages[-1], data=data))
        assert "not here" in answer.text

        await alice.send("/pause")
        await alice.reply("paused")
        answer = await alice.answer(await alice.press(proposal, "Approve"))
        assert "paused" in answer.text
        await alice.send("/resume")
        await alice.reply()

        clock.advance(minutes=16)
        await alice.press(proposal, "Approve")
        expired = await alice.reply("expired")
        assert "Nothing was traded" in expired.text
        assert world.binance.account("demo").orders == {}


async def test_drift_sends_a_proposal_by_itself(
    world: World, start_bot: Callable[..., Any], alice: ChatDriver
) -> None:
    clock = ManualClock()
    async with start_bot(clock=clock) as app:
        await trading_main(world, app, clock, alice)
        await alice.send("/rebalance Main BTC 75 USDT 25")
        await alice.reply("Target set")
        on_target = await alice.reply(timeout=10)
        assert "No proposal" in on_target.text
        for _ in range(2):  # inside the band: nothing
            await sweep(app, clock)
        await alice.settle()
        assert not [m for m in alice.messages if "Rebalance proposal" in m.text]

        world.binance.deposit("demo", "USDT", "20000")
        await sweep(app, clock)
        proposal = await alice.reply("Rebalance proposal", timeout=10)
        assert "drifted outside its band" in proposal.text and "BUY" in proposal.text
        await sweep(app, clock)  # still outside: no second proposal
        await alice.settle()
        assert len([m for m in alice.messages if "Rebalance proposal" in m.text]) == 1
        assert world.binance.account("demo").orders == {}


async def test_bad_targets_get_a_clear_answer_and_nothing_is_stored(
    world: World, start_bot: Callable[..., Any], alice: ChatDriver
) -> None:
    clock = ManualClock()
    async with start_bot(clock=clock) as app:
        assert "is connected" in await connect_binance(alice, world.canary_key(read=True))
        await sweep(app, clock)
        answers = {
            "/rebalance Main BTC 50 ETH 40": "add up to 90",
            "/rebalance Main BTC 50 USDT 50 band 0": "band",
            "/rebalance Main BTC 50 USDT 50 band 60": "band",
            "/rebalance Main BTC 50 USDT 50 slippage 6": "slippage",
            "/rebalance Main XYZQ 50 USDT 50": "cannot be traded",
            "/rebalance Nope BTC 50 USDT 50": "No connection called Nope",
            "/rebalance Main BTC 50 USDT 50": "Add a trade key",
        }
        for line, expected in answers.items():
            await alice.send(line)
            answer = await alice.reply()
            assert expected in answer.text, (line, answer.text)
        await alice.send("/rebalance")
        assert "No target yet" in (await alice.reply()).text
        await alice.send("/rebalance Main BTC 50 USDT 50 dryrun")  # dry runs need no trade key
        await alice.reply("Target set")
        dry = await alice.reply("Rebalance dry run", timeout=10)
        assert "would have cost" in dry.text and not dry.buttons
        assert world.binance.account("demo").orders == {}


async def test_the_guided_setup_sets_the_same_target_with_buttons(
    world: World, start_bot: Callable[..., Any], alice: ChatDriver
) -> None:
    clock = ManualClock()
    async with start_bot(clock=clock) as app:
        await trading_main(world, app, clock, alice)
        await alice.send("/rebalance")
        empty = await alice.reply("No target yet")
        await alice.press(empty, "Set one up")
        scope = await alice.reply("Which holdings")
        await alice.press(scope, "Main")
        weights = await alice.reply("Which assets")
        await alice.send("BTC 60 USDT 40")
        band = await alice.reply("How far may an asset drift")
        await alice.press(band, "25% of its weight")
        schedule = await alice.reply("schedule")
        await alice.press(schedule, "Weekly")
        mode = await alice.reply("approvable")
        await alice.press(mode, "Approvable")
        card = await alice.reply("Target set")
        assert "/rebalance Main BTC 60 USDT 40 band 25% every 1w slippage 0.5" in card.text
        assert weights.message_id != band.message_id
        await alice.reply("Rebalance proposal", timeout=10)
