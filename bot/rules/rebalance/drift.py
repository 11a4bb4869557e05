"""When a target calls for a rebalance: allocation, drift, the band and schedule triggers, and
the bad-data check that runs before any plan.

Allocations, weights and drift are percentages of the value of the target's own assets: an
asset the target does not name is left out. A drift trigger fires once when some asset leaves
its band and re-arms only once every asset is back within half the band, so an allocation
hovering at the edge does not send a proposal every sweep. Pure: no I/O, no Telegram.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import NamedTuple

from bot.rules.rebalance.targets import Band, Schedule
from storage.targets import DriftState

#: An amount that falls by more than this fraction since the previous read (or to zero) is
#: read again before planning: an exchange hiccup returning empty balances must not sell.
DROP_CONFIRM_RATIO = Decimal("0.5")


class Trigger(StrEnum):
    """Why a proposal was made; recorded with it."""

    DRIFT = "drift"
    SCHEDULE = "schedule"
    MANUAL = "manual"


def allocation(values: Mapping[str, Decimal], assets: Iterable[str]) -> dict[str, Decimal]:
    """Each named asset's share, in percent, of the value of the named assets (a missing asset
    is 0%). Empty when the named assets are worth nothing: there is nothing to rebalance."""
    named = list(dict.fromkeys(assets))
    total = sum((values.get(asset, Decimal(0)) for asset in named), Decimal(0))
    if total <= 0:
        return {}
    return {asset: values.get(asset, Decimal(0)) * 100 / total for asset in named}


def drift(current: Mapping[str, Decimal], target: Mapping[str, Decimal]) -> dict[str, Decimal]:
    """Per target asset, current − target in percentage points (positive: over-weight).
    ``current`` comes from `allocation`; an empty one means no valuation, so it is refused
    rather than read as "everything at 0%", which would call for buying everything."""
    if not current:
        raise ValueError("no allocation to compare: the target's assets are worth nothing")
    return {asset: current.get(asset, Decimal(0)) - weight for asset, weight in target.items()}


def outside_band(
    current: Mapping[str, Decimal], target: Mapping[str, Decimal], band: Band
) -> tuple[str, ...]:
    """The assets whose drift is strictly past the band (at the edge is still inside): more
    than ``band.size`` points, or, for a relative band, more than ``band.size``% of the
    asset's own target weight."""
    return tuple(
        asset
        for asset, points in drift(current, target).items()
        if abs(points) > (target[asset] * band.size / 100 if band.relative else band.size)
    )


def rearm_band(band: Band) -> Band:
    """Half the band: where a fired drift trigger re-arms."""
    return Band(band.size / 2, band.relative)


class Zone(StrEnum):
    """Where an allocation is relative to the band and to the re-arm band (half of it)."""

    SETTLED = "settled"  # every asset within half the band
    WITHIN = "within"  # every asset within the band, some past half of it
    OUTSIDE = "outside"  # some asset outside the band


def zone(current: Mapping[str, Decimal], target: Mapping[str, Decimal], band: Band) -> Zone:
    """Where ``current`` is: the input of `step_drift`."""
    if outside_band(current, target, band):
        return Zone.OUTSIDE
    if outside_band(current, target, rearm_band(band)):
        return Zone.WITHIN
    return Zone.SETTLED


class DriftStep(NamedTuple):
    """The state after one sweep, and whether this sweep makes a drift proposal."""

    state: DriftState
    fire: bool


def step_drift(state: DriftState, where: Zone) -> DriftStep:
    """in band + outside → out of band (fire); out of band + settled → in band (re-armed).
    Out of band thus also covers "back inside, not yet settled": no second proposal from there."""
    if state is DriftState.IN_BAND and where is Zone.OUTSIDE:
        return DriftStep(DriftState.OUT_OF_BAND, True)
    if state is DriftState.OUT_OF_BAND and where is Zone.SETTLED:
        return DriftStep(DriftState.IN_BAND, False)
    return DriftStep(state, False)


def initial_drift_state(where: Zone) -> DriftState:
    """A target set while outside its band starts out of band: setting it already answers
    with a (manual) proposal, so the next sweep does not propose the same trades again."""
    return DriftState.OUT_OF_BAND if where is Zone.OUTSIDE else DriftState.IN_BAND


def next_due(every: Schedule, set_at: datetime, now: datetime) -> datetime:
    """The first scheduled instant strictly after ``now``: ``set_at`` plus whole periods, so
    daily runs at the time of day (UTC) the target was set and weekly also on its weekday.
    ``set_at`` itself is not a run: setting a target already answers with a proposal."""
    start, now = _utc(set_at), _utc(now)
    if now < start:
        return start + every.period
    return start + ((now - start) // every.period + 1) * every.period


def is_due(every: Schedule, set_at: datetime, last_run: datetime | None, now: datetime) -> bool:
    """Whether a scheduled instant has passed since the last run (or since the target was set):
    a bot that was down over several instants runs once, not once per missed instant."""
    since = set_at if last_run is None else last_run
    return next_due(every, set_at, since) <= _utc(now)


def _utc(moment: datetime) -> datetime:
    """Schedules are computed in UTC, where a day is always 24 hours."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: pass a timezone-aware UTC time")
    return moment.astimezone(UTC)


def sudden_drop(previous: Mapping[str, Decimal], current: Mapping[str, Decimal]) -> tuple[str, ...]:
    """The assets whose amount fell to zero (or vanished) or lost more than
    `DROP_CONFIRM_RATIO` of itself since the previous read. The caller reads the balance again
    before planning if any: an empty balance after a non-empty one flags every asset."""
    return tuple(
        asset
        for asset, before in previous.items()
        if before > 0 and current.get(asset, Decimal(0)) < before * (1 - DROP_CONFIRM_RATIO)
    )
