"""A venue's sweep budget: starts spaced by the call rate, never more calls in flight than allowed.

Time is injected: the throttle's clock and sleep are a counter the test reads, so nothing waits.
"""

from __future__ import annotations

import asyncio

import pytest

from bot.rules.throttle import VenueBudgets, VenueThrottle


class FakeTime:
    """A monotonic clock that moves only when the throttle sleeps (or the test says so)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)  # a real sleep lets other tasks run too


def throttle(time: FakeTime, concurrency: int = 8, per_second: float = 4.0) -> VenueThrottle:
    return VenueThrottle(concurrency, per_second, monotonic=time, sleep=time.sleep)


async def test_one_after_another_starts_are_spaced_by_the_call_rate() -> None:
    time = FakeTime()
    budget = throttle(time, per_second=4)
    starts = []
    for _ in range(5):
        async with budget.slot():
            starts.append(time.now)

    assert starts == [0.0, 0.25, 0.5, 0.75, 1.0]


async def test_work_that_makes_several_calls_spends_that_many_of_the_budget() -> None:
    time = FakeTime()
    budget = throttle(time, per_second=10)
    starts = []
    for cost in (3, 1, 2, 1):
        async with budget.slot(cost=cost):
            starts.append(time.now)

    assert starts == pytest.approx([0.0, 0.3, 0.4, 0.6])


async def test_a_quiet_period_is_not_saved_up_for_a_burst() -> None:
    """Spacing counts from the last start, so idle time buys one immediate start, not many."""
    time = FakeTime()
    budget = throttle(time, per_second=2)
    async with budget.slot():
        pass
    time.now = 100.0
    starts = []
    for _ in range(3):
        async with budget.slot():
            starts.append(time.now)

    assert starts == [100.0, 100.5, 101.0]


async def test_concurrent_work_still_starts_one_spacing_apart() -> None:
    time = FakeTime()
    budget = throttle(time, concurrency=4, per_second=4)
    starts: list[float] = []

    async def work() -> None:
        async with budget.slot():
            starts.append(time.now)
            await asyncio.sleep(0)

    await asyncio.gather(*(work() for _ in range(4)))

    assert sorted(starts) == [0.0, 0.25, 0.5, 0.75]


async def test_never_more_work_in_flight_than_the_concurrency_bound() -> None:
    time = FakeTime()
    budget = throttle(time, concurrency=2, per_second=1000)
    in_flight = 0
    peak = 0
    done = 0

    async def work() -> None:
        nonlocal in_flight, peak, done
        async with budget.slot():
            in_flight += 1
            peak = max(peak, in_flight)
            for _ in range(5):  # hold the slot across several turns of the loop
                await asyncio.sleep(0)
            in_flight -= 1
            done += 1

    await asyncio.gather(*(work() for _ in range(7)))

    assert (peak, done, in_flight) == (2, 7, 0)


async def test_a_slot_is_given_back_when_the_work_fails() -> None:
    time = FakeTime()
    budget = throttle(time, concurrency=1, per_second=1000)
    with pytest.raises(RuntimeError):
        async with budget.slot():
            raise RuntimeError("the exchange call blew up")

    async with asyncio.timeout(1):  # a leaked slot would block here forever
        async with budget.slot():
            pass


def test_budgets_hold_one_throttle_per_venue_shared_by_every_sweep() -> None:
    budgets = VenueBudgets()

    binance = budgets("binance")

    assert budgets("binance") is binance
    assert budgets("okx") is not binance
    assert VenueBudgets()("binance") is not binance  # another process, another budget
    with pytest.raises(KeyError):
        budgets("mtgox")
