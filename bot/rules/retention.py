"""Snapshot retention as a sweep: every read for 48 h, hourly for 90 days, then daily."""

from __future__ import annotations

from bot.clock import Clock, utc_now
from storage.snapshots import SnapshotRepository


class SnapshotRetention:
    name = "snapshots"

    def __init__(self, snapshots: SnapshotRepository, clock: Clock = utc_now) -> None:
        self._snapshots = snapshots
        self._clock = clock

    async def run(self) -> str:
        deleted = await self._snapshots.downsample(self._clock())
        return f"{deleted} old snapshots thinned out"
