"""When a target calls for a rebalance: the allocation among the target's assets, drift against
the band (absolute and relative), the hysteresis that keeps a hovering allocation from
proposing every sweep, the daily and weekly schedule, and the sudden-drop check that keeps a
bad balance read from ever trading."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.rules.rebalance.drift import (
    DriftStep,
    Trigger,
    Zone,
    allocation,
    drift,
    initial_drift_state,
    is_due,
    next_due,
    outside_band,
    rearm_band,
    step_drift,
    sudden_drop,
    zone,
)
from bot.rules.rebalance.targets import Band, Schedule
from storage.targets import DriftState

D = Decimal
TARGET = {"BTC": D(50), "ETH": D(30), "USDT": D(20)}
FIVE_POINTS = Band(D(5))
QUARTER_OF_WEIGHT = Band(D(25), relative=True)


def shares(**by_asset: int | str) -> dict[str, Decimal]:
    return {asset: D(share) for asset, share in by_asset.items()}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# Allocation and drift


def test_allocation_counts_only_the_target_assets() -> None:
    values = shares(BTC=5000, ETH=3000, USDT=2000, DOGE=90_000)
    assert allocation(values, TARGET) == shares(BTC=50, ETH=30, USDT=20)


def test_a_target_asset_the_account_does_not_hold_is_at_zero_percent() -> None:
    assert allocation(shares(BTC=600, USDT=400), TARGET) == shares(BTC=60, ETH=0, USDT=40)


def test_target_assets_worth_nothing_give_no_allocation_and_no_drift() -> None:
    assert allocation(shares(DOGE=1000, BTC=0), TARGET) == {}
    with pytest.raises(ValueError, match="worth nothing"):
        drift({}, TARGET)


def test_drift_is_signed_percentage_points_over_minus_under() -> None:
    assert drift(shares(BTC=58, ETH=25, USDT=17), TARGET) == shares(BTC=8, ETH=-5, USDT=-3)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 10**9), min_size=3, max_size=3).filter(any))
def test_an_allocation_adds_up_to_one_hundred(values: list[int]) -> None:
    current = allocation(dict(zip(TARGET, map(D, values), strict=True)), TARGET)
    assert abs(sum(current.values(), D(0)) - 100) < D("1e-20")


# The band


def test_an_absolute_band_is_points_of_the_portfolio() -> None:
    assert outside_band(shares(BTC=57, ETH=24, USDT=19), TARGET, FIVE_POINTS) == ("BTC", "ETH")


def test_a_relative_band_is_a_share_of_each_assets_own_weight() -> None:
    # 25 % of the weights: BTC may drift 12.5 points, ETH 7.5, USDT 5.
    current = shares(BTC=56, ETH=22, USDT=22)
    assert outside_band(current, TARGET, QUARTER_OF_WEIGHT) == ("ETH",)
    assert outside_band(current, TARGET, FIVE_POINTS) == ("BTC", "ETH")


def test_an_asset_exactly_at_the_band_edge_does_not_trigger() -> None:
    assert outside_band(shares(BTC=55, ETH=25, USDT=20), TARGET, FIVE_POINTS) == ()
    assert outside_band(shares(BTC="62.5", ETH="22.5", USDT=15), TARGET, QUARTER_OF_WEIGHT) == ()
    assert outside_band(shares(BTC="55.01", ETH="24.99", USDT=20), TARGET, FIVE_POINTS) == (
        "BTC",
        "ETH",
    )


def test_the_rearm_band_is_half_the_band_of_the_same_kind() -> None:
    assert rearm_band(FIVE_POINTS) == Band(D("2.5"))
    assert rearm_band(QUARTER_OF_WEIGHT) == Band(D("12.5"), relative=True)


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        (shares(BTC=52, ETH=29, USDT=19), Zone.SETTLED),
        (shares(BTC="52.5", ETH="27.5", USDT=20), Zone.SETTLED),
        (shares(BTC=54, ETH=27, USDT=19), Zone.WITHIN),
        (shares(BTC=56, ETH=25, USDT=19), Zone.OUTSIDE),
    ],
)
def test_the_zone_says_where_the_allocation_is(current: dict[str, Decimal], expected: Zone) -> None:
    assert zone(current, TARGET, FIVE_POINTS) is expected


# Hysteresis


def test_a_drift_proposal_is_made_once_per_excursion_and_rearms_within_half_the_band() -> None:
    sweeps = [
        (shares(BTC=53, ETH=28, USDT=19), False),  # inside the band
        (shares(BTC=57, ETH=25, USDT=18), True),  # out: propose
        (shares(BTC=58, ETH=24, USDT=18), False),  # still out: no second proposal
        (shares(BTC=54, ETH=27, USDT=19), False),  # back in the band, not settled
        (shares(BTC=56, ETH=26, USDT=18), False),  # out again without settling: no proposal
        (shares(BTC=52, ETH=29, USDT=19), False),  # within half the band: re-armed
        (shares(BTC=51, ETH=30, USDT=19), False),  # settled, nothing to do
        (shares(BTC=44, ETH=34, USDT=22), True),  # out: propose again
    ]
    state = DriftState.IN_BAND
    fired = []
    for current, _ in sweeps:
        state, fire = step_drift(state, zone(current, TARGET, FIVE_POINTS))
        fired.append(fire)
    assert fired == [expected for _, expected in sweeps]
    assert state is DriftState.OUT_OF_BAND


def test_the_state_machine_moves_only_on_exit_and_on_settling() -> None:
    IN, OUT = DriftState.IN_BAND, DriftState.OUT_OF_BAND
    assert step_drift(IN, Zone.OUTSIDE) == DriftStep(OUT, fire=True)
    assert step_drift(IN, Zone.WITHIN) == DriftStep(IN, fire=False)
    assert step_drift(IN, Zone.SETTLED) == DriftStep(IN, fire=False)
    assert step_drift(OUT, Zone.OUTSIDE) == DriftStep(OUT, fire=False)
    assert step_drift(OUT, Zone.WITHIN) == DriftStep(OUT, fire=False)
    assert step_drift(OUT, Zone.SETTLED) == DriftStep(IN, fire=False)


def test_a_target_set_while_outside_its_band_does_not_propose_again_at_the_next_sweep() -> None:
    state = initial_drift_state(Zone.OUTSIDE)
    assert state is DriftState.OUT_OF_BAND
    assert step_drift(state, Zone.OUTSIDE).fire is False
    assert initial_drift_state(Zone.WITHIN) is DriftState.IN_BAND


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(Zone), max_size=40))
def test_between_two_drift_proposals_the_allocation_always_settled(zones: list[Zone]) -> None:
    state, settled_since_fire, first = DriftState.IN_BAND, False, True
    for where in zones:
        state, fire = step_drift(state, where)
        if fire:
            assert first or settled_since_fire
            first, settled_since_fire = False, False
        settled_since_fire = settled_since_fire or where is Zone.SETTLED


def test_every_proposal_records_why_it_was_made() -> None:
    assert [str(trigger) for trigger in Trigger] == ["drift", "schedule", "manual"]


# Schedule


@pytest.mark.parametrize(
    ("every", "set_at", "now", "due"),
    [
        # daily, at the time of day it was set, across a month and a year end
        (Schedule.DAILY, "2024-01-30T23:30", "2024-01-31T23:45", "2024-02-01T23:30"),
        (Schedule.DAILY, "2024-12-30T08:15", "2024-12-31T09:00", "2025-01-01T08:15"),
        (Schedule.DAILY, "2024-02-27T12:00", "2024-02-28T12:00", "2024-02-29T12:00"),
        # just set: the first run is a period later, never the moment it was set
        (Schedule.DAILY, "2024-05-01T10:00", "2024-05-01T10:00", "2024-05-02T10:00"),
        # weekly, same weekday and time; the night Europe changes clocks is nothing in UTC
        (Schedule.WEEKLY, "2024-03-25T09:00", "2024-03-31T08:00", "2024-04-01T09:00"),
        (Schedule.WEEKLY, "2024-03-25T09:00", "2024-04-01T09:00", "2024-04-08T09:00"),
        (Schedule.WEEKLY, "2024-10-21T00:00", "2024-11-03T12:00", "2024-11-04T00:00"),
    ],
)
def test_next_due_is_the_first_scheduled_instant_after_now(
    every: Schedule, set_at: str, now: str, due: str
) -> None:
    assert next_due(every, at(set_at), at(now)) == at(due)


def test_a_weekly_run_stays_on_the_weekday_it_was_set() -> None:
    set_at = at("2024-03-27T18:00")  # a Wednesday
    due = next_due(Schedule.WEEKLY, set_at, at("2024-06-01T00:00"))
    assert due.weekday() == set_at.weekday() and due.time() == set_at.time()


def test_the_schedule_runs_once_per_instant() -> None:
    set_at = at("2024-05-01T10:00")
    assert not is_due(Schedule.DAILY, set_at, None, at("2024-05-02T09:59"))
    assert is_due(Schedule.DAILY, set_at, None, at("2024-05-02T10:00"))
    ran = at("2024-05-02T10:01")
    assert not is_due(Schedule.DAILY, set_at, ran, at("2024-05-02T23:00"))
    assert is_due(Schedule.DAILY, set_at, ran, at("2024-05-03T10:00"))


def test_a_bot_down_for_three_days_runs_once_not_three_times() -> None:
    set_at = at("2024-05-01T10:00")
    last_run = at("2024-05-02T10:00")
    back_up = at("2024-05-05T15:00")
    assert is_due(Schedule.DAILY, set_at, last_run, back_up)
    assert not is_due(Schedule.DAILY, set_at, back_up, back_up + timedelta(minutes=1))
    assert next_due(Schedule.DAILY, set_at, back_up) == at("2024-05-06T10:00")


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        next_due(Schedule.DAILY, datetime(2024, 5, 1, 10), at("2024-05-02T00:00"))
    with pytest.raises(ValueError, match="naive"):
        is_due(Schedule.DAILY, at("2024-05-01T10:00"), None, datetime(2024, 5, 3))


def test_a_local_time_is_read_as_the_same_instant_in_utc() -> None:
    paris = ZoneInfo("Europe/Paris")
    set_at = datetime(2024, 3, 30, 12, tzinfo=paris)  # 11:00 UTC, the day before clocks change
    due = next_due(Schedule.DAILY, set_at, at("2024-03-30T12:00"))
    assert due == at("2024-03-31T11:00") and due.tzinfo is UTC


# Bad data never trades


def test_an_amount_that_lost_more_than_half_is_read_again_before_planning() -> None:
    before = shares(BTC="1.0", ETH="10", USDT="5000")
    assert sudden_drop(before, shares(BTC="0.49", ETH="10", USDT="5000")) == ("BTC",)


def test_losing_exactly_half_or_less_is_an_ordinary_trade() -> None:
    before = shares(BTC="1.0", ETH="10")
    assert sudden_drop(before, shares(BTC="0.5", ETH="6")) == ()


def test_an_asset_that_vanished_or_went_to_zero_is_flagged() -> None:
    before = shares(BTC="1.0", ETH="10", USDT="5000")
    assert sudden_drop(before, shares(BTC="0", USDT="5000")) == ("BTC", "ETH")


def test_an_empty_balance_after_a_full_one_flags_every_asset() -> None:
    before = shares(BTC="1.0", ETH="10", USDT="5000")
    assert sudden_drop(before, {}) == ("BTC", "ETH", "USDT")


def test_growth_new_assets_and_assets_already_at_zero_are_not_drops() -> None:
    before = shares(BTC="1.0", DOGE="0")
    assert sudden_drop(before, shares(BTC="3", SOL="50")) == ()
    assert sudden_drop({}, shares(BTC="1")) == ()
