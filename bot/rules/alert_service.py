"""Setting up alert rules from chat: resolve the scope, check the asset, read the current
value from the latest snapshots (no exchange call), store the rule in its starting state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from bot.clock import Clock, utc_now
from bot.rules.alert_evaluation import metric_value
from bot.rules.alerts import RuleSpec, initial_state
from storage.alerts import AlertRepository, AlertRule, Condition
from storage.connections import ConnectionRecord, ConnectionRepository
from storage.snapshots import Snapshot, SnapshotRepository

SNOOZE = timedelta(hours=24)


class UnknownLabel(Exception):
    def __init__(self, label: str, labels: list[str]) -> None:
        super().__init__(label)
        self.label = label
        self.labels = labels


class UnknownAsset(Exception):
    """The scope holds no such asset; ``held`` is what it does hold."""

    def __init__(self, asset: str, held: list[str]) -> None:
        super().__init__(asset)
        self.asset = asset
        self.held = held


class NoConnections(Exception):
    """The chat has no connection to watch."""


@dataclass(frozen=True)
class Created:
    rule: AlertRule
    value: Decimal | None  # the watched number now (None: not known yet)
    quote: str


def scope_snapshots(
    rule_connection: int | None, records: list[ConnectionRecord], latest: dict[int, Snapshot]
) -> list[Snapshot]:
    ids = [rule_connection] if rule_connection is not None else [r.id for r in records]
    return [latest[i] for i in ids if i in latest]


class AlertService:
    def __init__(
        self,
        alerts: AlertRepository,
        connections: ConnectionRepository,
        snapshots: SnapshotRepository,
        *,
        limit: int,
        clock: Clock = utc_now,
    ) -> None:
        self.rules = alerts
        self._connections = connections
        self._snapshots = snapshots
        self.limit = limit
        self._clock = clock

    async def create(self, chat_id: int, spec: RuleSpec) -> Created:
        """Store the rule (UnknownLabel, UnknownAsset, NoConnections, RuleExists,
        AlertLimitReached); a rule whose condition already holds starts fired."""
        records = await self._connections.list_for_chat(chat_id)
        if not records:
            raise NoConnections
        connection_id = None
        if spec.scope is not None:
            wanted = spec.scope.casefold()
            found = next((r for r in records if r.label.casefold() == wanted), None)
            if found is None:
                raise UnknownLabel(spec.scope, [r.label for r in records])
            connection_id = found.id
        return await self.create_for(chat_id, connection_id, spec.condition)

    async def create_for(
        self, chat_id: int, connection_id: int | None, condition: Condition
    ) -> Created:
        """Store a rule on one of the chat's connections (None: all of them)."""
        records = await self._connections.list_for_chat(chat_id)
        if connection_id is not None and all(r.id != connection_id for r in records):
            raise NoConnections
        latest = await self._snapshots.latest(chat_id)
        snapshots = scope_snapshots(connection_id, records, latest)
        if condition.asset is not None and snapshots:
            held = sorted({name for s in snapshots for name in s.assets})
            if condition.asset not in held:
                raise UnknownAsset(condition.asset, held)
        value = metric_value(condition, snapshots) if snapshots else None
        rule = await self.rules.add(
            chat_id,
            connection_id,
            condition,
            state=initial_state(condition, value),
            value=value,
            limit=self.limit,
            now=self._clock(),
        )
        quote = snapshots[0].quote if snapshots else ""
        return Created(rule, value, quote)

    async def held(self, chat_id: int, connection_id: int | None) -> list[str]:
        """The assets the scope holds, biggest value first (for the guided setup)."""
        records = await self._connections.list_for_chat(chat_id)
        snapshots = scope_snapshots(connection_id, records, await self._snapshots.latest(chat_id))
        worth: dict[str, Decimal] = {}
        for snapshot in snapshots:
            for name, asset in snapshot.assets.items():
                worth[name] = worth.get(name, Decimal(0)) + (asset.value or Decimal(0))
        return sorted(worth, key=lambda name: (-worth[name], name))

    async def snooze(self, chat_id: int, rule_id: int) -> AlertRule | None:
        return await self.rules.update(chat_id, rule_id, snoozed_until=self._clock() + SNOOZE)
