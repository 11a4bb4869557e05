"""The health sweep: check every connection that is due, within each venue's budget.

Each connection's outcome is committed on its own as soon as it is known (with the notice it
causes), so a sweep cut short by a restart has recorded everything it finished and the rest is
still due. A venue that answers "rate limited" gets no more calls from this run: its remaining
connections stay due and are not counted as failing.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

from bot.clock import Clock, utc_now
from bot.exchanges.catalogue import get_venue
from bot.exchanges.connections import ConnectionService
from bot.exchanges.health import HealthPolicy, Observation, decide, observe
from bot.exchanges.pool import ClientPool
from bot.rules.throttle import VenueBudgets
from storage.activity import ActivityLog
from storage.connections import ConnectionRecord, ConnectionRepository
from storage.credentials import Credentials, KeyRole

log = logging.getLogger(__name__)

#: Connections taken per run; the rest stay due for the next one (oldest first).
DEFAULT_BATCH = 2000


@dataclass
class SweepReport:
    """What one run did, for logs and tests."""

    checked: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)  # left due (rate limit, revoked meanwhile)


class ConnectionGone(Exception):
    """The connection was revoked while the sweep was about to use it."""


class HealthSweep:
    name = "health"

    def __init__(
        self,
        connections: ConnectionService,
        repository: ConnectionRepository,
        activity: ActivityLog,
        pool: ClientPool,
        policy: HealthPolicy,
        *,
        budgets: VenueBudgets | None = None,
        clock: Clock = utc_now,
        batch: int = DEFAULT_BATCH,
    ) -> None:
        self._connections = connections
        self._repo = repository
        self._activity = activity
        self._pool = pool
        self._policy = policy
        self._budgets = budgets or VenueBudgets()
        self._clock = clock
        self._batch = batch
        self.last_report = SweepReport()

    async def run(self) -> None:
        now = self._clock()
        await self._pool.markets.refresh_due(now)
        due = await self._repo.due_for_check(now, self._batch)
        by_venue: dict[str, list[ConnectionRecord]] = defaultdict(list)
        for record in due:
            by_venue[record.venue].append(record)
        report = SweepReport()
        await asyncio.gather(*(self._venue(records, report) for records in by_venue.values()))
        self.last_report = report
        if report.checked or report.skipped:
            log.info(
                "health sweep: %d checked, %d left for the next run",
                len(report.checked),
                len(report.skipped),
            )

    async def _venue(self, records: Sequence[ConnectionRecord], report: SweepReport) -> None:
        throttle = self._budgets(records[0].venue)
        rate_limited = asyncio.Event()

        async def one(record: ConnectionRecord) -> None:
            async with throttle.slot(cost=len(record.roles)):
                if rate_limited.is_set():
                    report.skipped.append(record.id)
                    return
                seen = await self._check(record)
            if seen is None:
                report.skipped.append(record.id)
                return
            report.checked.append(record.id)
            if seen.problem is not None and seen.problem.rate_limited:
                rate_limited.set()

        await asyncio.gather(*(one(record) for record in records))

    async def _check(self, record: ConnectionRecord) -> Observation | None:
        """Check one connection and commit the outcome; None if it went away meanwhile."""
        venue = get_venue(record.venue)
        try:
            seen = await observe(self._pool, record, venue, partial(self._credentials, record))
        except ConnectionGone:
            return None
        finally:
            await self._activity.record(record.id, *self._pool.drain_calls(record.id))
        if seen.problem is not None:
            seen = Observation(
                self._connections.scrubbed(seen.problem), seen.role, seen.permissions
            )
        now = self._clock()
        applied = await self._repo.record_health(
            record.chat_id,
            record.id,
            keys_version=record.keys_version,
            decide=lambda current: decide(current, seen, self._policy, now),
            now=now,
        )
        return seen if applied else None

    async def _credentials(self, record: ConnectionRecord, role: KeyRole) -> Credentials:
        credentials = await self._connections.credentials(record.chat_id, record.id, role)
        if credentials is None:
            raise ConnectionGone(record.id)
        return credentials
