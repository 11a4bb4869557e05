"""The portfolio: every connection's latest snapshot, aggregated per asset, with changes over
time and the value series for the chart. Pure: snapshots in, plain values out.

A connection whose snapshot is stale, or that is not Connected, is never silently dropped:
its last known values count in the total and the view labels them as such.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from storage.connections import ConnectionRecord, ConnectionStatus
from storage.snapshots import Snapshot, SnapshotAsset, ValuePoint

ZERO = Decimal(0)
#: Below this value (in the quote currency) an asset is dust, unless the chat chose otherwise.
DEFAULT_DUST = {"USD": Decimal(1), "USDT": Decimal(1), "EUR": Decimal(1), "BTC": Decimal("0.00001")}


def dust_threshold(quote: str, chosen: Decimal | None) -> Decimal:
    return chosen if chosen is not None else DEFAULT_DUST.get(quote, Decimal(1))


@dataclass(frozen=True)
class AssetLine:
    """One asset: its amount and, where it has a price, value and share of the total."""

    asset: str
    amount: Decimal
    value: Decimal | None
    share: Decimal | None  # of the total, in percent


@dataclass(frozen=True)
class Dust:
    count: int
    value: Decimal


@dataclass(frozen=True)
class Holdings:
    """Assets above the dust line (biggest first, unpriced last), the dust, and the total."""

    lines: tuple[AssetLine, ...]
    dust: Dust
    total: Decimal

    @property
    def unpriced(self) -> tuple[str, ...]:
        return tuple(line.asset for line in self.lines if line.value is None)


def summarise(assets: Mapping[str, SnapshotAsset], dust_below: Decimal) -> Holdings:
    """Per asset amount, value and share; priced assets worth less than ``dust_below`` are
    rolled into one dust line. An unpriced asset is never dust: nobody knows what it is worth."""
    total = sum((a.value for a in assets.values() if a.value is not None), ZERO)
    lines = []
    dust_count, dust_value = 0, ZERO
    for name, asset in assets.items():
        if asset.value is not None and abs(asset.value) < dust_below:
            dust_count += 1
            dust_value += asset.value
            continue
        share = asset.value / total * 100 if asset.value is not None and total > 0 else None
        lines.append(AssetLine(name, asset.total, asset.value, share))
    lines.sort(key=lambda line: (line.value is None, -(line.value or ZERO), line.asset))
    return Holdings(tuple(lines), Dust(dust_count, dust_value), total)


def merge_assets(snapshots: Sequence[Snapshot]) -> dict[str, SnapshotAsset]:
    """The same asset on several connections, added up (a value only if every part has one)."""
    merged: dict[str, SnapshotAsset] = {}
    for snapshot in snapshots:
        for name, asset in snapshot.assets.items():
            before = merged.get(name)
            if before is None:
                merged[name] = asset
                continue
            value = (
                before.value + asset.value
                if before.value is not None and asset.value is not None
                else None
            )
            merged[name] = SnapshotAsset(
                before.free + asset.free, before.used + asset.used, None, value
            )
    return merged


@dataclass(frozen=True)
class ConnectionTotal:
    """A connection's part of the portfolio and why it may not be current."""

    record: ConnectionRecord
    snapshot: Snapshot | None
    problem: str | None  # None: fresh; else why its figures are old or missing

    @property
    def value(self) -> Decimal | None:
        return self.snapshot.total_value if self.snapshot is not None else None


@dataclass(frozen=True)
class Portfolio:
    quote: str
    holdings: Holdings
    connections: tuple[ConnectionTotal, ...]
    as_of: datetime | None  # the oldest snapshot that counts
    change_24h: Decimal | None
    change_7d: Decimal | None

    @property
    def total(self) -> Decimal:
        return self.holdings.total


def connection_problem(
    record: ConnectionRecord,
    snapshot: Snapshot | None,
    quote: str,
    now: datetime,
    period: timedelta,
) -> str | None:
    """Why a connection's figures are not current (None when they are)."""
    if snapshot is None:
        return "no balance read yet"
    if snapshot.quote != quote:
        return f"valued in {snapshot.quote}: refresh to value it in {quote}"
    if record.status is ConnectionStatus.REAUTH:
        return "re-auth needed: last known values"
    if record.status is ConnectionStatus.ERROR:
        return "exchange error: last known values"
    if now - snapshot.taken_at > 2 * period:
        return "stale: last known values"
    return None


def build_portfolio(
    records: Sequence[ConnectionRecord],
    latest: Mapping[int, Snapshot],
    history: Sequence[ValuePoint],
    *,
    quote: str,
    dust_below: Decimal,
    now: datetime,
    periods: Mapping[int, timedelta],
) -> Portfolio:
    """Aggregate the latest snapshots valued in ``quote``; ``periods`` is each connection's
    read period (a snapshot older than two periods is stale)."""
    parts = []
    counted = []
    for record in records:
        snapshot = latest.get(record.id)
        problem = connection_problem(record, snapshot, quote, now, periods[record.id])
        parts.append(ConnectionTotal(record, snapshot, problem))
        if snapshot is not None and snapshot.quote == quote:
            counted.append(snapshot)
    series = ValueSeries(history, quote)
    total_now = sum((s.total_value for s in counted), ZERO)
    ids = [s.connection_id for s in counted]
    return Portfolio(
        quote=quote,
        holdings=summarise(merge_assets(counted), dust_below),
        connections=tuple(parts),
        as_of=min((s.taken_at for s in counted), default=None),
        change_24h=series.change(ids, total_now, now - timedelta(hours=24)),
        change_7d=series.change(ids, total_now, now - timedelta(days=7)),
    )


class ValueSeries:
    """Totals of the chat's connections over time, each carried forward until its next point."""

    def __init__(self, history: Sequence[ValuePoint], quote: str) -> None:
        self._points: dict[int, tuple[list[datetime], list[Decimal]]] = defaultdict(
            lambda: ([], [])
        )
        for point in sorted(history, key=lambda p: p.taken_at):
            if point.quote == quote:
                times, values = self._points[point.connection_id]
                times.append(point.taken_at)
                values.append(point.total_value)

    def value_at(self, connection_id: int, when: datetime) -> Decimal | None:
        times, values = self._points.get(connection_id, ([], []))
        index = bisect.bisect_right(times, when)
        return values[index - 1] if index else None

    def change(self, ids: Sequence[int], total_now: Decimal, then: datetime) -> Decimal | None:
        """Percent change since ``then``; None unless every counted connection had a value
        then (a newly added connection is not a gain) and that total was above zero."""
        before = [self.value_at(i, then) for i in ids]
        known = [v for v in before if v is not None]
        if not known or len(known) < len(ids):
            return None
        base = sum(known, ZERO)
        return (total_now - base) / base * 100 if base > 0 else None

    def totals(
        self, start: datetime, end: datetime, step: timedelta
    ) -> list[tuple[datetime, Decimal]]:
        """The portfolio total at each step from ``start`` to ``end`` (steps with no data at
        all are left out, so a gap shows as a gap)."""
        out = []
        when = start
        while when <= end:
            values = [self.value_at(i, when) for i in self._points]
            known = [v for v in values if v is not None]
            if known:
                out.append((when, sum(known, ZERO)))
            when += step
        return out
