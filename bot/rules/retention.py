"""Snapshot retention as a sweep: every read for 48 h, hourly for 90 days, then daily."""

from __future__ import annotations

import logging

from bot.clock import Clock, utc_now
from storage.snapshots import SnapshotRepository

log = logging.getLogger(__name__)


class SnapshotRetention:
    name = "snapshots"

    def __init__(self, snapshots: SnapshotRepository, clock: Clock = utc_now) -> None:
        self._snapshots = snapshots
        self._clock = clock

    async def run(self) -> None:
        deleted = await self._snapshots.downsample(self._clock())
        if deleted:
            log.info("snapshot retention: %d old snapshots thinned out", deleted)
