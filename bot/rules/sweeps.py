"""Periodic sweeps: each selects the work that is due from the database and does it.

There is no per-connection job to get out of sync: what is due is a query, so a restart (even
in the middle of a sweep) loses nothing and repeats nothing that was already recorded.
A sweep whose previous run is still going skips its tick instead of piling up behind it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

log = logging.getLogger(__name__)


class Sweep(Protocol):
    name: str

    async def run(self) -> None:
        """Do the work that is due now."""


class Sweeper:
    """Runs sweeps by name, one run per sweep at a time; ``after`` runs after each run
    (the Telegram layer delivers the notices the run queued)."""

    def __init__(
        self, sweeps: Sequence[Sweep], after: Callable[[], Awaitable[object]] | None = None
    ) -> None:
        self._sweeps = {sweep.name: sweep for sweep in sweeps}
        self._running = {name: asyncio.Lock() for name in self._sweeps}
        self._after = after

    async def run(self, name: str) -> bool:
        """Run ``name`` now; False (and nothing done) if its previous run has not finished."""
        running = self._running[name]
        if running.locked():
            log.warning("the %s sweep is still running; this tick is skipped", name)
            return False
        async with running:
            try:
                await self._sweeps[name].run()
            finally:
                if self._after is not None:
                    await self._after()
        return True
