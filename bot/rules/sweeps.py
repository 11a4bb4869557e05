"""Periodic sweeps: each selects the work that is due from the database and does it.

There is no per-connection job to get out of sync: what is due is a query, so a restart (even
in the middle of a sweep) loses nothing and repeats nothing that was already recorded.
A sweep whose previous run is still going skips its tick instead of piling up behind it.

Several processes may run the sweeps on one database (the poller and ``python -m bot worker``):
the balance sweep claims its rows with leases, and the global, cheap sweeps (reminders,
retention, the rebalance minute sweep) run as ``Exclusive``: one process per period.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from storage.leases import LeaseKeeper

log = logging.getLogger(__name__)


class Sweep(Protocol):
    name: str

    async def run(self) -> str:
        """Do the work that is due now; what was done, in a few words (for the log)."""


class Exclusive:
    """A sweep that one process runs per ``period`` among all that share the database: it
    runs under the sweep's named lease (renewed by the process's heartbeat while it runs);
    once done, the lease stays as a gate until the next run is due. A failed run frees it
    at once; a process that dies holds it until its lease expires."""

    def __init__(
        self,
        sweep: Sweep,
        leases: LeaseKeeper,
        period: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        self.name = sweep.name
        self._sweep = sweep
        self._leases = leases
        self._period = period
        self._clock = clock

    async def run(self) -> str:
        started = self._clock()
        if not await self._leases.take_sweep(self.name):
            return "run elsewhere or not due yet"
        try:
            done = await self._sweep.run()
        except Exception:
            await self._leases.end_sweep(self.name, self._clock())
            raise
        await self._leases.end_sweep(self.name, started + self._period)
        return done


class Sweeper:
    """Runs sweeps by name, one run per sweep at a time, and logs one line per run; ``after``
    runs after each run (the poller delivers the notices the run queued)."""

    def __init__(
        self, sweeps: Sequence[Sweep], after: Callable[[], Awaitable[object]] | None = None
    ) -> None:
        self._sweeps = {sweep.name: sweep for sweep in sweeps}
        self._running = {name: asyncio.Lock() for name in self._sweeps}
        self._after = after

    @property
    def names(self) -> list[str]:
        return list(self._sweeps)

    async def run(self, name: str) -> bool:
        """Run ``name`` now; False (and nothing done) if its previous run has not finished."""
        running = self._running[name]
        if running.locked():
            log.warning("the %s sweep is still running; this tick is skipped", name)
            return False
        async with running:
            started = time.monotonic()
            try:
                done = await self._sweeps[name].run()
                log.info("%s sweep: %s (%.1f s)", name, done, time.monotonic() - started)
            finally:
                if self._after is not None:
                    await self._after()
        return True
