"""The portfolio's arithmetic: dust, unpriced assets, stale connections, changes over time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from bot.rules.portfolio import (
    ValueSeries,
    build_portfolio,
    dust_threshold,
    merge_assets,
    summarise,
)
from storage.connections import ConnectionRecord, ConnectionStatus
from storage.snapshots import Snapshot, SnapshotAsset, ValuePoint

NOW = datetime(2026, 12, 4, 14, 2, tzinfo=UTC)
PERIOD = timedelta(minutes=1)
D = Decimal


def asset(total: str, value: str | None) -> SnapshotAsset:
    return SnapshotAsset(D(total), D(0), None, D(value) if value is not None else None)


def record(
    connection_id: int, status: ConnectionStatus = ConnectionStatus.CONNECTED
) -> ConnectionRecord:
    return ConnectionRecord(
        id=connection_id,
        chat_id=1,
        label=f"C{connection_id}",
        venue="binance",
        sandbox=False,
        status=status,
        status_detail=None,
        status_at=NOW,
        read_key=None,
        trade_key=None,
        last_sync_at=NOW,
        last_ok_at=NOW,
        created_at=NOW,
    )


def snapshot(connection_id: int, assets: dict[str, SnapshotAsset], at: datetime = NOW) -> Snapshot:
    return Snapshot(connection_id, 1, at, "USD", assets)


def test_dust_is_rolled_into_one_line_and_unpriced_assets_are_never_dust() -> None:
    held = summarise(
        {
            "BTC": asset("0.5", "36000"),
            "SHIB": asset("10", "0.0002"),
            "PEPE": asset("3", "0.5"),
            "MYST": asset("7", None),
        },
        D(1),
    )
    assert [line.asset for line in held.lines] == ["BTC", "MYST"]
    assert held.dust.count == 2 and held.dust.value == D("0.5002")
    assert held.total == D("36000.5002")
    assert held.unpriced == ("MYST",)
    btc = held.lines[0]
    assert btc.share is not None and round(btc.share, 4) == round(
        D(36000) / D("36000.5002") * 100, 4
    )


def test_the_same_asset_on_two_connections_adds_up_and_loses_its_value_if_one_part_has_none() -> (
    None
):
    merged = merge_assets(
        [
            snapshot(1, {"BTC": asset("0.5", "36000"), "ABC": asset("1", "2")}),
            snapshot(2, {"BTC": asset("0.25", "18000"), "ABC": asset("1", None)}),
        ]
    )
    assert merged["BTC"].total == D("0.75") and merged["BTC"].value == D(54000)
    assert merged["ABC"].total == D(2) and merged["ABC"].value is None


def test_stale_and_broken_connections_keep_their_last_values_in_the_total_and_say_so() -> None:
    records = [record(1), record(2, ConnectionStatus.ERROR), record(3), record(4)]
    latest = {
        1: snapshot(1, {"BTC": asset("1", "70000")}),
        2: snapshot(2, {"ETH": asset("2", "8000")}, NOW - timedelta(hours=1)),
        3: snapshot(3, {"USDT": asset("100", "100")}, NOW - timedelta(minutes=5)),
    }
    portfolio = build_portfolio(
        records,
        latest,
        [],
        quote="USD",
        dust_below=D(1),
        now=NOW,
        periods={r.id: PERIOD for r in records},
    )
    assert portfolio.total == D(78100)
    problems = {part.record.id: part.problem for part in portfolio.connections}
    assert problems[1] is None
    assert problems[2] == "exchange error: last known values"
    assert problems[3] == "stale: last known values"
    assert problems[4] == "no balance read yet"
    assert portfolio.as_of == NOW - timedelta(hours=1)


def test_a_snapshot_in_another_currency_is_not_added_to_this_one() -> None:
    other = Snapshot(1, 1, NOW, "EUR", {"BTC": asset("1", "60000")})
    portfolio = build_portfolio(
        [record(1)], {1: other}, [], quote="USD", dust_below=D(1), now=NOW, periods={1: PERIOD}
    )
    assert portfolio.total == 0
    assert portfolio.connections[0].problem == "valued in EUR: refresh to value it in USD"


def test_change_over_24_hours_needs_every_counted_connection_then() -> None:
    history = [
        ValuePoint(1, NOW - timedelta(hours=30), "USD", D(100)),
        ValuePoint(2, NOW - timedelta(hours=30), "USD", D(100)),
        ValuePoint(1, NOW - timedelta(hours=2), "USD", D(150)),
    ]
    series = ValueSeries(history, "USD")
    assert series.change([1, 2], D(300), NOW - timedelta(hours=24)) == D(50)
    assert series.change([1, 2, 3], D(300), NOW - timedelta(hours=24)) is None  # 3 is new
    assert series.change([1], D(0), NOW - timedelta(hours=24)) == D(-100)


def test_the_chart_series_carries_values_forward_and_leaves_gaps_before_any_data() -> None:
    history = [
        ValuePoint(1, NOW - timedelta(hours=3), "USD", D(10)),
        ValuePoint(2, NOW - timedelta(hours=2), "USD", D(5)),
        ValuePoint(1, NOW - timedelta(hours=1), "USD", D(20)),
        ValuePoint(1, NOW - timedelta(minutes=30), "EUR", D(999)),  # another currency: ignored
    ]
    totals = ValueSeries(history, "USD").totals(NOW - timedelta(hours=5), NOW, timedelta(hours=1))
    assert [(NOW - at, value) for at, value in totals] == [
        (timedelta(hours=3), D(10)),
        (timedelta(hours=2), D(15)),
        (timedelta(hours=1), D(25)),
        (timedelta(0), D(25)),
    ]


def test_dust_threshold_defaults_follow_the_currency() -> None:
    assert dust_threshold("USD", None) == 1
    assert dust_threshold("BTC", None) == D("0.00001")
    assert dust_threshold("EUR", D(5)) == 5
