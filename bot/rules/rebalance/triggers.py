"""What asks for a rebalancing proposal without the trader: drift and the schedule.

Drift is evaluated on every fresh snapshot inside the transaction that records it (no exchange
call of its own): when the scope's allocation leaves the band, a ``rebalance`` notice is queued
with the state change, so a trigger is never lost or doubled. The schedule is a sweep that
queues the same notice once per due time. The notice is turned into a proposal by whoever
delivers the outbox; a trigger never trades.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncConnection

from bot.clock import Clock, utc_now
from bot.exchanges.health import HealthPolicy
from bot.rules.rebalance.drift import Trigger, allocation, is_due, step_drift, zone
from bot.rules.rebalance.executor import Executor
from bot.rules.rebalance.proposal import rebalancing_venue
from bot.rules.rebalance.targets import Band, Schedule
from storage.connections import AfterRead, ConnectionRecord, ConnectionStatus, records_in
from storage.database import Database
from storage.outbox import Notice, NoticeKind, enqueue
from storage.proposals import Proposal, ProposalRepository
from storage.snapshots import Snapshot, latest_in
from storage.targets import Target, TargetRepository, save_drift_state, targets_watching


def rebalance_notice(chat_id: int, trigger: Trigger) -> Notice:
    return Notice(chat_id, NoticeKind.REBALANCE, payload={"trigger": str(trigger)})


def result_notice(proposal: Proposal) -> Notice:
    """An execution's report, owed to a chat that was not watching (a restart, a late fill)."""
    return Notice(
        proposal.chat_id, NoticeKind.REBALANCE_RESULT, payload={"proposal_id": proposal.id}
    )


def scope_values(
    target: Target,
    records: Mapping[int, ConnectionRecord],
    snapshots: Mapping[int, Snapshot],
    now: datetime,
    policy: HealthPolicy,
) -> dict[str, Decimal] | None:
    """The value of each target asset over the scope, or None when any connection in scope
    lacks a fresh, priced read (drift is never judged on stale or partial data)."""
    ids = [
        record.id
        for record in records.values()
        if rebalancing_venue(record.venue)
        and (target.connection_id is None or record.id == target.connection_id)
    ]
    if not ids:
        return None
    values: dict[str, Decimal] = {}
    for connection_id in ids:
        read = snapshots.get(connection_id)
        record = records[connection_id]
        if (
            read is None
            or record.status is not ConnectionStatus.CONNECTED
            or now - read.taken_at > 2 * policy.of(record).period
        ):
            return None
        for asset in target.settings.weights:
            held = read.assets.get(asset)
            if held is None:
                continue
            if held.value is None:
                return None
            values[asset] = values.get(asset, Decimal(0)) + held.value
    return values


class DriftWatch:
    """The balance read's hook: moves each covering target's drift state and queues a
    proposal when the allocation leaves the band."""

    def __init__(self, policy: HealthPolicy) -> None:
        self._policy = policy

    def after_read(self, record: ConnectionRecord, now: datetime) -> AfterRead:
        async def evaluate(conn: AsyncConnection, status: ConnectionStatus) -> None:
            if status is not ConnectionStatus.CONNECTED or not rebalancing_venue(record.venue):
                return
            targets = await targets_watching(conn, record.chat_id, record.id)
            if not targets:
                return
            records = {r.id: r for r in await records_in(conn, record.chat_id)}
            snapshots = await latest_in(conn, record.chat_id)
            for target in targets:
                values = scope_values(target, records, snapshots, now, self._policy)
                if values is None:
                    continue
                current = allocation(values, target.settings.weights)
                if not current:
                    continue
                band = Band(target.settings.band, target.settings.band_relative)
                step = step_drift(target.drift_state, zone(current, target.settings.weights, band))
                if step.state is not target.drift_state:
                    await save_drift_state(conn, target.id, step.state)
                if step.fire:
                    await enqueue(conn, rebalance_notice(target.chat_id, Trigger.DRIFT), now)

        return evaluate


class RebalanceSweep:
    """Every minute: queue the scheduled proposals that are due, expire stale ones, finish
    executions nobody is running (legs still waiting for an answer), and look lost orders up
    again (a late fill is applied and reported)."""

    name = "rebalance"

    def __init__(
        self,
        database: Database,
        targets: TargetRepository,
        proposals: ProposalRepository,
        executor: Executor,
        clock: Clock = utc_now,
    ) -> None:
        self._db = database
        self._targets = targets
        self._proposals = proposals
        self._executor = executor
        self._clock = clock

    async def run(self) -> str:
        now = self._clock()
        expired = await self._proposals.expire_due(now)
        found = [*await self._executor.resume(), *await self._executor.reconcile_lost()]
        if found:
            async with self._db.begin() as conn:
                for proposal in found:
                    await enqueue(conn, result_notice(proposal), now)
        scheduled = 0
        for target in await self._targets.scheduled():
            if target.settings.every is None:
                continue
            every = Schedule(target.settings.every)
            if not is_due(every, target.set_at, target.last_scheduled_at, now):
                continue
            async with self._db.begin() as conn:
                if await self._targets.mark_scheduled_in(
                    conn, target.id, target.last_scheduled_at, now
                ):
                    await enqueue(conn, rebalance_notice(target.chat_id, Trigger.SCHEDULE), now)
                    scheduled += 1
        return (
            f"{len(expired)} proposals expired, {len(found)} executions finished, "
            f"{scheduled} scheduled proposals queued"
        )
