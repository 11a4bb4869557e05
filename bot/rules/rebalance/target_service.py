"""Setting, showing and removing a chat's rebalancing target, with the checks that make bad input
change nothing: the scope must be a spot connection (or all of them) that can trade here, every
asset must be tradable there, and something in scope must hold a trade key unless the target is
dry-run only."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from bot.clock import Clock, utc_now
from bot.exchanges.catalogue import get_venue
from bot.exchanges.health import HealthPolicy
from bot.exchanges.pool import ClientPool
from bot.rules.rebalance.drift import allocation, drift, initial_drift_state, zone
from bot.rules.rebalance.proposal import rebalancing_venue
from bot.rules.rebalance.targets import Band, Schedule, TargetSpec
from bot.rules.rebalance.triggers import scope_values
from storage.connections import ConnectionRecord, ConnectionRepository
from storage.snapshots import SnapshotRepository
from storage.targets import DriftState, Target, TargetRepository, TargetSettings


class TargetRefused(Exception):
    """The target cannot be set; ``reason`` says why and what to do (HTML-safe text)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class TargetView:
    """A target as ``/rebalance`` shows it: the spec, its scope's name, and the allocation and
    drift now (None when the scope has no fresh, priced read)."""

    target: Target
    spec: TargetSpec
    scope: str
    current: Mapping[str, Decimal] | None
    drift: Mapping[str, Decimal] | None


def spec_of(target: Target, scope: str | None) -> TargetSpec:
    settings = target.settings
    return TargetSpec(
        scope=scope,
        weights=settings.weights,
        band=Band(settings.band, settings.band_relative),
        every=Schedule(settings.every) if settings.every else None,
        slippage=settings.slippage,
        dry_run=settings.dry_run,
    )


class TargetService:
    def __init__(
        self,
        targets: TargetRepository,
        connections: ConnectionRepository,
        snapshots: SnapshotRepository,
        pool: ClientPool,
        policy: HealthPolicy,
        clock: Clock = utc_now,
    ) -> None:
        self._targets = targets
        self._connections = connections
        self._snapshots = snapshots
        self._pool = pool
        self._policy = policy
        self._clock = clock

    async def set(self, chat_id: int, spec: TargetSpec) -> TargetView:
        """Store the chat's target (replacing any); TargetRefused, nothing stored, if it cannot
        work."""
        records = await self._connections.list_for_chat(chat_id)
        scope = self._scope(records, spec.scope)
        await self._check_assets(scope, spec.weights)
        if not spec.dry_run and all(record.trade_key is None for record in scope):
            names = ", ".join(record.label for record in scope)
            raise TargetRefused(
                f"Nothing in this scope ({names}) has a trade key, so no proposal could be "
                "approved. Add a trade key from the connection's card (/connections → Add trade "
                "key), or add the word dryrun to see proposals only."
            )
        settings = TargetSettings(
            connection_id=None if spec.scope is None else scope[0].id,
            weights=dict(spec.weights),
            band=spec.band.size,
            band_relative=spec.band.relative,
            every=spec.every.value if spec.every else None,
            slippage=spec.slippage,
            dry_run=spec.dry_run,
        )
        provisional = Target(0, chat_id, settings, DriftState.IN_BAND, self._clock(), None)
        current = await self._allocation(provisional, records)
        state = (
            initial_drift_state(zone(current, spec.weights, spec.band))
            if current
            else DriftState.IN_BAND
        )
        target = await self._targets.set(chat_id, settings, state, self._clock())
        return await self._view(target, records)

    async def view(self, chat_id: int) -> TargetView | None:
        target = await self._targets.get(chat_id)
        if target is None:
            return None
        return await self._view(target, await self._connections.list_for_chat(chat_id))

    async def delete(self, chat_id: int) -> bool:
        return await self._targets.delete(chat_id)

    async def scoped_to(self, chat_id: int, connection_id: int) -> bool:
        """Whether the chat's target covers this one connection only (revoking it deletes
        the target)."""
        return await self._targets.count_for_connection(chat_id, connection_id) > 0

    async def set_dry_run(self, chat_id: int, dry_run: bool) -> TargetView | None:
        target = await self._targets.set_dry_run(chat_id, dry_run)
        if target is None:
            return None
        return await self._view(target, await self._connections.list_for_chat(chat_id))

    async def _view(self, target: Target, records: Sequence[ConnectionRecord]) -> TargetView:
        scope = "all"
        if target.connection_id is not None:
            scope = next((r.label for r in records if r.id == target.connection_id), "?")
        current = await self._allocation(target, records)
        spec = spec_of(target, None if target.connection_id is None else scope)
        return TargetView(
            target,
            spec,
            scope,
            current or None,
            drift(current, spec.weights) if current else None,
        )

    async def _allocation(
        self, target: Target, records: Sequence[ConnectionRecord]
    ) -> dict[str, Decimal]:
        by_id = {record.id: record for record in records}
        snapshots = await self._snapshots.latest(target.chat_id, list(by_id))
        values = scope_values(target, by_id, snapshots, self._clock(), self._policy)
        return allocation(values, target.settings.weights) if values else {}

    def _scope(
        self, records: Sequence[ConnectionRecord], label: str | None
    ) -> list[ConnectionRecord]:
        spot = [record for record in records if rebalancing_venue(record.venue)]
        if label is None:
            if not spot:
                raise TargetRefused(
                    "You have no spot connection that rebalancing can trade on yet "
                    "(Binance, Kraken, Coinbase, OKX, Bybit, KuCoin or Bitget): /connect one."
                )
            return spot
        chosen = next((r for r in records if r.label.casefold() == label.casefold()), None)
        if chosen is None:
            labels = ", ".join(record.label for record in spot) or "none yet"
            raise TargetRefused(
                f"No connection called {label} here. Spot connections: {labels}, or all."
            )
        if not rebalancing_venue(chosen.venue):
            raise TargetRefused(
                f"{chosen.label} is a {get_venue(chosen.venue).name} connection: rebalancing "
                "trades spot balances only. Choose a spot connection, or all."
            )
        return [chosen]

    async def _check_assets(
        self, scope: Sequence[ConnectionRecord], weights: Mapping[str, Decimal]
    ) -> None:
        """Every asset must be tradable on some venue in scope (a market with it)."""
        tradable: set[str] = set()
        for record in scope:
            client = await self._pool.public(record.venue, record.sandbox)
            for market in (client.markets or {}).values():
                if market.get("spot"):
                    tradable.update((market["base"], market["quote"]))
        missing = [asset for asset in weights if asset not in tradable]
        if missing:
            where = ", ".join(sorted({get_venue(r.venue).name for r in scope}))
            raise TargetRefused(
                f"{', '.join(missing)} cannot be traded on {where}: no market lists it. "
                "Choose assets these exchanges trade."
            )
