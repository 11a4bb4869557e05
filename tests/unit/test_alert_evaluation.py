"""Which numbers a rule reads from snapshots, and when it is not evaluated at all."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from bot.rules.alert_evaluation import evaluate, metric_value
from storage.alerts import AlertRule, AlertState, Condition, Direction, Metric
from storage.snapshots import Snapshot, SnapshotAsset

NOW = datetime(2026, 12, 4, 14, 0, tzinfo=UTC)
D = Decimal


def snap(connection_id: int, quote: str = "USD", **assets: tuple[str, str | None]) -> Snapshot:
    return Snapshot(
        connection_id,
        1,
        NOW,
        quote,
        {
            name: SnapshotAsset(D(amount), D(0), None, D(value) if value is not None else None)
            for name, (amount, value) in assets.items()
        },
    )


def rule(
    condition: Condition,
    connection_id: int | None = 1,
    state: AlertState = AlertState.ARMED,
    **extra: object,
) -> AlertRule:
    values: dict[str, object] = {
        "id": 7,
        "chat_id": 1,
        "connection_id": connection_id,
        "condition": condition,
        "state": state,
        "fired_at": None,
        "last_value": None,
        "snoozed_until": None,
        "paused": False,
        "created_at": NOW,
    }
    values.update(extra)
    return AlertRule(**values)  # type: ignore[arg-type]


BTC_BELOW = Condition(Metric.AMOUNT, "BTC", Direction.BELOW, D("0.5"))


def test_numbers_over_one_or_several_snapshots() -> None:
    a = snap(1, BTC=("0.3", "21000"), USDT=("9000", "9000"))
    b = snap(2, BTC=("0.2", "14000"), ETH=("1", "4000"))
    assert metric_value(BTC_BELOW, [a, b]) == D("0.5")
    assert metric_value(Condition(Metric.AMOUNT, "ETH", Direction.BELOW, D(1)), [a]) == 0
    assert metric_value(Condition(Metric.VALUE, "BTC", Direction.ABOVE, D(1)), [a, b]) == 35000
    assert metric_value(Condition(Metric.PORTFOLIO, None, Direction.BELOW, D(1)), [a, b]) == 48000
    share = metric_value(Condition(Metric.SHARE, "BTC", Direction.ABOVE, D(1)), [a, b])
    assert share is not None and round(share, 4) == round(D(35000) / 48000 * 100, 4)


def test_unknown_numbers_are_not_read_as_zero() -> None:
    unpriced = snap(1, BTC=("1", None), USDT=("10", "10"))
    assert metric_value(Condition(Metric.VALUE, "BTC", Direction.BELOW, D(1)), [unpriced]) is None
    assert (
        metric_value(Condition(Metric.PORTFOLIO, None, Direction.BELOW, D(1)), [unpriced]) is None
    )
    assert metric_value(Condition(Metric.SHARE, "USDT", Direction.BELOW, D(1)), [unpriced]) is None
    mixed = [snap(1, BTC=("1", "1")), snap(2, quote="EUR", BTC=("1", "1"))]
    assert metric_value(Condition(Metric.PORTFOLIO, None, Direction.BELOW, D(1)), mixed) is None


def test_a_crossing_fires_once_and_is_written_with_its_time() -> None:
    changes, crossings = evaluate([rule(BTC_BELOW)], {1: snap(1, BTC=("0.4", "1"))}, {1}, [1], NOW)
    assert [c.rule.id for c in crossings] == [7]
    assert changes[0].state is AlertState.FIRED and changes[0].fired_at == NOW


def test_stale_paused_or_broken_scopes_are_not_evaluated() -> None:
    low = {1: snap(1, BTC=("0.4", "1")), 2: snap(2, BTC=("0", "0"))}
    assert evaluate([rule(BTC_BELOW)], low, set(), [1], NOW) == ([], [])  # not usable
    assert evaluate([rule(BTC_BELOW, paused=True)], low, {1}, [1], NOW) == ([], [])
    everywhere = rule(BTC_BELOW, connection_id=None)
    assert evaluate([everywhere], low, {1}, [1, 2], NOW) == ([], [])  # 2 is stale


def test_snooze_and_cooldown_defer_the_crossing_and_keep_the_rule_armed() -> None:
    low = {1: snap(1, BTC=("0.4", "1"))}
    snoozed = rule(BTC_BELOW, snoozed_until=NOW + timedelta(hours=1))
    changes, crossings = evaluate([snoozed], low, {1}, [1], NOW)
    assert crossings == [] and changes == []  # stays armed: nothing to write
    cooling = rule(
        Condition(Metric.AMOUNT, "BTC", Direction.BELOW, D("0.5"), cooldown=timedelta(hours=1)),
        fired_at=NOW - timedelta(minutes=10),
    )
    assert evaluate([cooling], low, {1}, [1], NOW)[1] == []
    after = evaluate([cooling], low, {1}, [1], NOW + timedelta(hours=1))
    assert len(after[1]) == 1
