"""``python -m bot worker``: the sweeps without Telegram, one of several processes on one database.

A worker reads balances (health, alerts, rebalancing drift), sends rotation reminders, thins old
snapshots and runs the rebalance minute sweep (expiry, schedules, unfinished executions), exactly
as the polling bot does, but never talks to Telegram: the notices it queues in the outbox are
delivered by the polling process. Run one per egress IP, each with its own COINWARDEN_WORKER_ID
and COINWARDEN_VENUE_BUDGETS; they share the work through leases (``storage.leases``), so no
connection is read, alerted on or executed by two of them at once.

Each sweep runs at start and then once per period on a plain asyncio loop (what is due is
decided from the database). SIGINT/SIGTERM stop the sweeps and release every lease this
worker holds, so the others take its rows at once; a worker that dies holds them until the
lease expires (COINWARDEN_LEASE_SECONDS).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

from bot.app import SweepStack, build_sweep_stack, open_core
from bot.clock import Clock, utc_now
from bot.config import Settings
from bot.exchanges.pool import ClientPool
from bot.redaction import REDACTOR
from bot.rules.sweeps import Sweeper

log = logging.getLogger(__name__)


@dataclass
class Worker:
    """A running worker: its sweeps and what they run on."""

    stack: SweepStack
    sweeper: Sweeper

    @property
    def id(self) -> str:
        return self.stack.leases.owner

    async def every(self, name: str, period: timedelta) -> None:
        """Run the sweep ``name`` now and then once per ``period`` (a run that overruns its
        period is followed by the next at once), until cancelled. A failed run is logged;
        the next one runs on time."""
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await self.sweeper.run(name)
            except Exception:
                log.exception("the %s sweep failed; it runs again in %s", name, period)
            await asyncio.sleep(max(0.0, period.total_seconds() - (loop.time() - started)))


@asynccontextmanager
async def running_worker(settings: Settings, *, clock: Clock = utc_now) -> AsyncIterator[Worker]:
    """Open the database (migrating it), start every sweep and the lease heartbeat, yield the
    running worker; on exit stop them and release this worker's leases."""
    REDACTOR.install()
    core = await open_core(settings)
    pool = ClientPool(settings.exchange_endpoints, clock=clock, paced=settings.exchange_pacing)
    try:
        stack = build_sweep_stack(settings, core, pool, clock)
        await stack.leases.release_all()  # what an earlier life of this worker id left
        worker = Worker(stack, Sweeper(stack.sweeps))  # no delivery: the poller's job
        tasks = [
            asyncio.create_task(stack.leases.heartbeat()),
            *(
                asyncio.create_task(worker.every(name, period))
                for name, period in stack.periods.items()
            ),
        ]
        log.info(
            "worker %s is sweeping: %s",
            worker.id,
            ", ".join(f"{name} every {period}" for name, period in stack.periods.items()),
        )
        try:
            yield worker
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await stack.leases.release_all()
            log.info("worker %s stopped; its leases are released", worker.id)
    finally:
        await pool.close()
        await core.close()


async def work(settings: Settings) -> None:
    """The CLI: run until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with running_worker(settings):
        await stop.wait()
