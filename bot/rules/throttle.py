"""A venue's budget for scheduled work: calls in flight and calls started per second.

ccxt throttles each client on its own, but every connection has its own client while the
venue counts the requests of our whole IP; sweeps share one budget per venue so that
thousands of connections do not add up to a ban. The budget is this process's: each sweep
worker runs on its own egress IP, with its own per-venue rates (COINWARDEN_VENUE_BUDGETS).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager

from bot.exchanges.catalogue import get_venue


class VenueThrottle:
    def __init__(
        self,
        concurrency: int,
        per_second: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self._slots = asyncio.Semaphore(concurrency)
        self.per_second = per_second
        self._spacing = 1 / per_second
        self._monotonic = monotonic
        self._sleep = sleep
        self._next_start = 0.0
        self._order = asyncio.Lock()

    @asynccontextmanager
    async def slot(self, cost: int = 1) -> AsyncIterator[None]:
        """Hold one of the concurrent slots for work that makes ``cost`` calls."""
        async with self._slots:
            async with self._order:
                now = self._monotonic()
                wait = self._next_start - now
                if wait > 0:
                    await self._sleep(wait)
                self._next_start = max(now, self._next_start) + self._spacing * cost
            yield


class VenueBudgets:
    """One throttle per venue, shared by every sweep of the process: calls per second from
    ``rates`` (this worker's IP budget), else the catalogue's ``sweep_calls_per_second``."""

    def __init__(self, rates: Mapping[str, float] | None = None) -> None:
        self._rates = dict(rates or {})
        self._throttles: dict[str, VenueThrottle] = {}

    def __call__(self, venue_id: str) -> VenueThrottle:
        throttle = self._throttles.get(venue_id)
        if throttle is None:
            venue = get_venue(venue_id)
            rate = self._rates.get(venue_id, venue.sweep_calls_per_second)
            throttle = VenueThrottle(venue.sweep_concurrency, rate)
            self._throttles[venue_id] = throttle
        return throttle
