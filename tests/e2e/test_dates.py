"""Moments in messages read one way, with the day always and the year when it is another."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.sandbox.telegram import ChatDriver
from tests.clock import ManualClock


async def test_the_pause_says_since_when_with_the_day_and_later_the_year(
    start_bot: Callable[..., Any], alice: ChatDriver
) -> None:
    clock = ManualClock()  # 21 Nov 2026, 12:00 UTC
    async with start_bot(clock=clock):
        await alice.send("/pause")
        assert "(since 21 Nov 12:00 UTC)" in (await alice.reply("paused")).text
        await alice.send("/start")
        assert (
            "paused</b> in this chat since 21 Nov 12:00 UTC."
            in (await alice.reply("Coinwarden")).html
        )
        clock.advance(days=60)
        await alice.send("/start")
        assert "since 21 Nov 2026 12:00 UTC." in (await alice.reply("Coinwarden")).text
