"""Leases: which process works on a row, or runs a shared sweep, and until when.

Several processes (one Telegram poller, sweep workers on other hosts) share one database. A
process takes work with a lease in ONE statement (``claim``: an UPDATE of rows chosen by a
subquery, ``FOR UPDATE SKIP LOCKED`` on PostgreSQL so concurrent claims pass each other by;
SQLite has one writer at a time), renews every lease it holds while it works (``LeaseKeeper``'s
heartbeat), and releases a row with the write that finishes it. A process that dies holds its
rows until their lease expires; then anyone may take them. Time is the caller's clock.

Four things are leased: due connections (the balance sweep), executing rebalance proposals (the
executor), global sweeps by name (``sweep_leases``: after a run the row stays as a gate until
the next run is due, with no owner) and the poller of a bot token (``pollers``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from sqlalchemy import ColumnElement, Row, Table, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.database import Database, insert_on_conflict
from storage.schema import connections, pollers, rebalance_proposals, sweep_leases

log = logging.getLogger(__name__)

#: Ids per statement when many leases are released at once (below every driver's limit).
CHUNK = 1000
#: How long a lease lasts unless configured (COINWARDEN_LEASE_SECONDS).
DEFAULT_LENGTH = timedelta(seconds=120)


class Leased(Enum):
    """The tables whose rows are leased (``lease_owner``, ``lease_until``)."""

    CONNECTIONS = "connections"
    PROPOSALS = "rebalance_proposals"

    @property
    def table(self) -> Table:
        return connections if self is Leased.CONNECTIONS else rebalance_proposals


def default_owner() -> str:
    """This process among all that share the database: ``<hostname>-<pid>``."""
    return f"{socket.gethostname()}-{os.getpid()}"[-64:]


@dataclass(frozen=True)
class Lease:
    """Who takes work and until when."""

    owner: str
    until: datetime


def free(table: Table, now: datetime) -> ColumnElement[bool]:
    """Nobody holds the row: never leased, released, or the lease expired."""
    return or_(table.c.lease_until.is_(None), table.c.lease_until <= now)


async def claim(
    conn: AsyncConnection,
    table: Table,
    lease: Lease,
    now: datetime,
    where: Sequence[ColumnElement[bool]],
    order_by: Sequence[Any] = (),
    limit: int | None = None,
) -> list[Row[Any]]:
    """Lease the free rows matching ``where`` (the first ``limit`` by ``order_by``) to
    ``lease.owner``, in one statement; the rows as they are now, unordered. On PostgreSQL rows
    another transaction is claiming are skipped, not waited for."""
    chosen = (
        select(table.c.id)
        .where(*where, free(table, now))
        .order_by(*order_by)
        .limit(limit)
        .with_for_update(skip_locked=True)  # PostgreSQL; SQLite renders no FOR UPDATE
    )
    result = await conn.execute(
        update(table)
        .where(table.c.id.in_(chosen))
        .values(lease_owner=lease.owner, lease_until=lease.until)
        .returning(*table.c)
    )
    return list(result)


async def release(conn: AsyncConnection, table: Table, ids: Iterable[int], owner: str) -> None:
    """Give rows back, those still held by ``owner`` (inside the caller's transaction: the
    write that finishes a row releases it)."""
    await conn.execute(
        update(table)
        .where(table.c.id.in_(list(ids)), table.c.lease_owner == owner)
        .values(lease_owner=None, lease_until=None)
    )


async def renew(conn: AsyncConnection, owner: str, until: datetime) -> None:
    """Extend every lease ``owner`` holds: rows, running sweeps, its poller row."""
    for leased in Leased:
        table = leased.table
        await conn.execute(
            update(table).where(table.c.lease_owner == owner).values(lease_until=until)
        )
    await conn.execute(
        update(sweep_leases).where(sweep_leases.c.owner == owner).values(until=until)
    )
    await conn.execute(update(pollers).where(pollers.c.owner == owner).values(until=until))


async def release_owner(conn: AsyncConnection, owner: str, now: datetime) -> None:
    """Free everything ``owner`` holds (it stopped, or was found dead): its rows and running
    sweeps at once; its poller row is the caller's business."""
    for leased in Leased:
        table = leased.table
        await conn.execute(
            update(table)
            .where(table.c.lease_owner == owner)
            .values(lease_owner=None, lease_until=None)
        )
    await conn.execute(
        update(sweep_leases).where(sweep_leases.c.owner == owner).values(owner=None, until=now)
    )


async def take_sweep(conn: AsyncConnection, name: str, lease: Lease, now: datetime) -> bool:
    """Run the sweep ``name`` under ``lease``, unless another process runs it or its next run
    is not due yet; one statement (an upsert that only overwrites an expired row)."""
    statement = insert_on_conflict(conn, sweep_leases).values(
        name=name, owner=lease.owner, until=lease.until
    )
    result = await conn.execute(
        statement.on_conflict_do_update(
            index_elements=[sweep_leases.c.name],
            set_={"owner": lease.owner, "until": lease.until},
            where=sweep_leases.c.until <= now,
        ).returning(sweep_leases.c.name)
    )
    return result.first() is not None


async def end_sweep(conn: AsyncConnection, name: str, owner: str, next_at: datetime) -> None:
    """The run of ``name`` is over: nobody holds it, and it is next due at ``next_at``."""
    await conn.execute(
        update(sweep_leases)
        .where(sweep_leases.c.name == name, sweep_leases.c.owner == owner)
        .values(owner=None, until=next_at)
    )


@dataclass(frozen=True)
class Poller:
    """The process polling a bot token."""

    owner: str
    host: str
    pid: int
    started_at: datetime
    until: datetime


async def take_poller(
    conn: AsyncConnection,
    token_hash: str,
    me: Poller,
    now: datetime,
    gone: Callable[[Poller], bool],
) -> Poller | None:
    """Become the poller of ``token_hash``: None when it is ours now; otherwise the live
    poller that holds it. A row whose heartbeat expired, or whose process ``gone`` says is
    dead, is taken over (with compare-and-set on the row as read)."""
    values = {
        "owner": me.owner,
        "host": me.host,
        "pid": me.pid,
        "started_at": me.started_at,
        "until": me.until,
    }
    inserted = await conn.execute(
        insert_on_conflict(conn, pollers)
        .values(token_hash=token_hash, **values)
        .on_conflict_do_nothing(index_elements=[pollers.c.token_hash])
        .returning(pollers.c.token_hash)
    )
    if inserted.first() is not None:
        return None
    row = (await conn.execute(select(pollers).where(pollers.c.token_hash == token_hash))).one()
    holder = Poller(row.owner, row.host, row.pid, row.started_at, row.until)
    if holder.until > now and not gone(holder):
        return holder
    taken = await conn.execute(
        update(pollers)
        .where(
            pollers.c.token_hash == token_hash,
            pollers.c.owner == holder.owner,
            pollers.c.started_at == holder.started_at,
        )
        .values(values)
    )
    if taken.rowcount == 0:  # another process took it over in between
        return holder
    await release_owner(conn, holder.owner, now)  # what the dead poller held is free now
    return None


async def release_poller(conn: AsyncConnection, token_hash: str, owner: str) -> None:
    await conn.execute(
        delete(pollers).where(pollers.c.token_hash == token_hash, pollers.c.owner == owner)
    )


class LeaseKeeper:
    """This process's leases: its owner id, how long a lease lasts, and the heartbeat that
    renews everything it holds every third of that while it works on it."""

    def __init__(
        self,
        database: Database,
        owner: str,
        length: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        self.database = database
        self.owner = owner
        self.length = length
        self._clock = clock

    def lease(self) -> Lease:
        """A lease taken now."""
        return Lease(self.owner, self._clock() + self.length)

    async def release(self, leased: Leased, ids: Iterable[int]) -> None:
        """Give back rows this process holds and will not finish."""
        pending = sorted(set(ids))
        for start in range(0, len(pending), CHUNK):
            async with self.database.begin() as conn:
                await release(conn, leased.table, pending[start : start + CHUNK], self.owner)

    async def take_sweep(self, name: str) -> bool:
        async with self.database.begin() as conn:
            return await take_sweep(conn, name, self.lease(), self._clock())

    async def end_sweep(self, name: str, next_at: datetime) -> None:
        async with self.database.begin() as conn:
            await end_sweep(conn, name, self.owner, next_at)

    async def take_poller(
        self, token_hash: str, host: str, pid: int, gone: Callable[[Poller], bool]
    ) -> Poller | None:
        """Become the poller of a bot token (see ``take_poller``); None on success, else the
        live poller."""
        now = self._clock()
        me = Poller(self.owner, host, pid, now, now + self.length)
        async with self.database.begin() as conn:
            return await take_poller(conn, token_hash, me, now, gone)

    async def stop_polling(self, token_hash: str) -> None:
        async with self.database.begin() as conn:
            await release_poller(conn, token_hash, self.owner)

    async def renew(self) -> None:
        """One heartbeat."""
        async with self.database.begin() as conn:
            await renew(conn, self.owner, self.lease().until)

    async def heartbeat(self) -> None:
        """Renew every third of the lease length, until cancelled; a failed renewal is logged
        and tried again on the next beat (the lease lasts three beats)."""
        while True:
            await asyncio.sleep(self.length.total_seconds() / 3)
            try:
                await self.renew()
            except Exception as error:  # the database may be back by the next beat
                log.warning("could not renew the leases of %s: %s", self.owner, error)

    async def release_all(self) -> None:
        """Free everything this process holds (it is stopping)."""
        async with self.database.begin() as conn:
            await release_owner(conn, self.owner, self._clock())
