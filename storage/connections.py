"""Connections of a chat: plain records out, secrets only through the vault.

Every query is scoped by ``chat_id``: a chat can never read or touch another chat's rows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.chats import ensure_chat, lock_chat
from storage.credentials import Credentials, KeyRole, mask
from storage.database import Database
from storage.leases import Lease, claim
from storage.outbox import Notice, enqueue
from storage.schema import connections
from storage.snapshots import Snapshot, insert_snapshot
from storage.vault import Binding, Vault


class ConnectionStatus(StrEnum):
    CONNECTED = "connected"
    REAUTH = "reauth"
    ERROR = "error"


class LabelTaken(Exception):
    """The chat already has a connection with this label (compared case-insensitively)."""


@asynccontextmanager
async def refusing_taken(label: str) -> AsyncIterator[None]:
    """LabelTaken(label) for a write that broke a label constraint (exact or ignoring case,
    as PostgreSQL and SQLite name them): a writer that skipped the checks stored it first."""
    try:
        yield
    except IntegrityError as error:
        text = str(error.orig)
        if "uq_connections_chat_label" in text or "connections.chat_id, connections.label" in text:
            raise LabelTaken(label) from None
        raise


class KeyInUse(Exception):
    """This API key is already stored in the chat: in ``role`` of connection ``label``
    (``same_slot``: the very slot it was offered for, i.e. a rotation to the same key)."""

    def __init__(self, label: str, role: KeyRole, *, same_slot: bool = False) -> None:
        super().__init__(label)
        self.label = label
        self.role = role
        self.same_slot = same_slot


class ConnectionLimitReached(Exception):
    """The chat holds the maximum number of connections."""


@dataclass(frozen=True)
class KeySlot:
    """The public face of a stored key: its mask, permissions and age; never the secret."""

    mask: str
    permissions: str
    added_at: datetime
    reminded_at: datetime | None = None  # the last "time to rotate" reminder


@dataclass(frozen=True)
class ConnectionRecord:
    id: int
    chat_id: int
    label: str
    venue: str
    sandbox: bool
    status: ConnectionStatus
    status_detail: str | None
    status_at: datetime
    read_key: KeySlot | None
    trade_key: KeySlot | None
    last_sync_at: datetime | None
    last_ok_at: datetime | None
    created_at: datetime
    status_fix: str | None = None
    status_message: str | None = None  # what the exchange said, scrubbed of credentials
    failure_streak: int = 0
    next_check_at: datetime | None = None
    keys_version: int = 1
    sync_seconds: int | None = None  # a slower balance read chosen in /settings
    next_permission_check_at: datetime | None = None

    @property
    def reading_role(self) -> KeyRole:
        """The key used to read: the read key, or the trade key when it is the only one."""
        return KeyRole.READ if self.read_key is not None else KeyRole.TRADE

    def key(self, role: KeyRole) -> KeySlot | None:
        return self.read_key if role is KeyRole.READ else self.trade_key

    @property
    def roles(self) -> tuple[KeyRole, ...]:
        """The roles that hold a key, read first."""
        return tuple(role for role in KeyRole if self.key(role) is not None)


@dataclass(frozen=True)
class HealthUpdate:
    """The state a health check (or /check) leaves a connection in; computed by the domain."""

    status: ConnectionStatus
    detail: str | None
    fix: str | None
    exchange_message: str | None
    failure_streak: int
    next_check_at: datetime
    healthy: bool
    permissions: Mapping[KeyRole, str] | None = None  # as the exchange reports them now


def _slot(row: Any, role: KeyRole) -> KeySlot | None:
    key_mask = getattr(row, f"{role}_key_mask")
    if key_mask is None:
        return None
    return KeySlot(
        key_mask,
        getattr(row, f"{role}_permissions") or "",
        getattr(row, f"{role}_key_added_at"),
        getattr(row, f"{role}_reminded_at"),
    )


def _record(row: Any) -> ConnectionRecord:
    return ConnectionRecord(
        id=row.id,
        chat_id=row.chat_id,
        label=row.label,
        venue=row.venue,
        sandbox=bool(row.sandbox),
        status=ConnectionStatus(row.status),
        status_detail=row.status_detail,
        status_at=row.status_at,
        read_key=_slot(row, KeyRole.READ),
        trade_key=_slot(row, KeyRole.TRADE),
        last_sync_at=row.last_sync_at,
        last_ok_at=row.last_ok_at,
        created_at=row.created_at,
        status_fix=row.status_fix,
        status_message=row.status_message,
        failure_streak=row.failure_streak,
        next_check_at=row.next_check_at,
        keys_version=row.keys_version,
        sync_seconds=row.sync_seconds,
        next_permission_check_at=row.next_permission_check_at,
    )


async def records_in(conn: AsyncConnection, chat_id: int) -> list[ConnectionRecord]:
    """The chat's connections, oldest first (inside the caller's transaction)."""
    rows = await conn.execute(
        select(connections)
        .where(connections.c.chat_id == chat_id)
        .order_by(connections.c.created_at, connections.c.id)
    )
    return [_record(row) for row in rows]


#: Run inside the transaction that records a read, once its outcome is written; gets the
#: status the connection is left in (the alert evaluation plugs in here).
AfterRead = Callable[[AsyncConnection, ConnectionStatus], Awaitable[None]]


class ConnectionRepository:
    def __init__(self, database: Database, vault: Vault) -> None:
        self._db = database
        self._vault = vault

    @property
    def database(self) -> Database:
        return self._db

    def _encrypted(
        self, chat_id: int, connection_id: int, role: KeyRole, credentials: Credentials
    ) -> dict[str, str | None]:
        def seal(field: str, value: str | None) -> str | None:
            if value is None:
                return None
            return self._vault.encrypt(value, Binding(chat_id, connection_id, field))

        return {
            f"{role}_api_key": seal(f"{role}_api_key", credentials.api_key),
            f"{role}_secret": seal(f"{role}_secret", credentials.secret),
            f"{role}_passphrase": seal(f"{role}_passphrase", credentials.passphrase),
            f"{role}_key_hash": self._vault.key_hash(credentials.api_key),
        }

    async def _refuse_reuse(
        self,
        conn: AsyncConnection,
        chat_id: int,
        api_key: str,
        slot: tuple[int, KeyRole] | None = None,
    ) -> None:
        """KeyInUse if the chat stores this API key anywhere but in ``slot`` (connection,
        role) being filled — there too, when it is the key already in that slot."""
        hashes = self._vault.key_hashes(api_key)
        rows = await conn.execute(
            select(
                connections.c.id,
                connections.c.label,
                connections.c.read_key_hash,
                connections.c.trade_key_hash,
            ).where(connections.c.chat_id == chat_id)
        )
        for row in rows:
            for role in KeyRole:
                if getattr(row, f"{role}_key_hash") in hashes:
                    raise KeyInUse(row.label, role, same_slot=slot == (row.id, role))

    async def key_in_use(
        self, chat_id: int, api_key: str, slot: tuple[int, KeyRole] | None = None
    ) -> KeyInUse | None:
        """Where the chat already stores this API key (see ``_refuse_reuse``), before any
        exchange call is spent on it; the store checks again in its own transaction."""
        try:
            async with self._db.begin() as conn:
                await self._refuse_reuse(conn, chat_id, api_key, slot)
        except KeyInUse as used:
            return used
        return None

    async def fill_key_hashes(self) -> int:
        """Hash the API keys stored before keyed hashes existed (at start-up, with the master
        key at hand); how many were filled."""
        filled = 0
        unhashed = or_(
            *(
                and_(
                    connections.c[f"{role}_api_key"].is_not(None),
                    connections.c[f"{role}_key_hash"].is_(None),
                )
                for role in KeyRole
            )
        )
        async with self._db.begin() as conn:
            # Held: a key replaced meanwhile must not get the old key's hash.
            query = select(connections).where(unhashed).with_for_update(key_share=True)
            rows = (await conn.execute(query)).all()
            for row in rows:
                values = {}
                for role in KeyRole:
                    token = getattr(row, f"{role}_api_key")
                    if token is None or getattr(row, f"{role}_key_hash") is not None:
                        continue
                    field = f"{role}_api_key"
                    api_key = self._vault.decrypt(token, Binding(row.chat_id, row.id, field))
                    values[f"{role}_key_hash"] = self._vault.key_hash(api_key)
                if values:
                    filled += len(values)
                    await conn.execute(
                        update(connections).where(connections.c.id == row.id).values(values)
                    )
        return filled

    async def add(
        self,
        chat_id: int,
        *,
        label: str,
        venue: str,
        sandbox: bool,
        role: KeyRole,
        credentials: Credentials,
        permissions: str,
        limit: int,
        now: datetime,
        next_check_at: datetime | None = None,
        next_permission_check_at: datetime | None = None,
    ) -> ConnectionRecord:
        """Store a checked key as a new connection, atomically with the limit and label checks.

        ``next_check_at`` None makes the connection due for the next balance sweep at once;
        ``next_permission_check_at`` None has its permissions probed on that sweep. The chat's
        row is held from the first check to the commit, so two adds take turns.
        """
        async with refusing_taken(label), self._db.begin() as conn:
            await ensure_chat(conn, self._db.is_sqlite, chat_id, now)
            existing = (
                (
                    await conn.execute(
                        select(connections.c.label).where(connections.c.chat_id == chat_id)
                    )
                )
                .scalars()
                .all()
            )
            if any(other.casefold() == label.casefold() for other in existing):
                raise LabelTaken(label)
            if len(existing) >= limit:
                raise ConnectionLimitReached(limit)
            await self._refuse_reuse(conn, chat_id, credentials.api_key)
            result = await conn.execute(
                insert(connections).values(
                    chat_id=chat_id,
                    label=label,
                    venue=venue,
                    sandbox=sandbox,
                    status=ConnectionStatus.CONNECTED,
                    status_at=now,
                    last_ok_at=now,
                    last_sync_at=now,
                    next_check_at=next_check_at,
                    next_permission_check_at=next_permission_check_at,
                    created_at=now,
                    updated_at=now,
                    **{
                        f"{role}_permissions": permissions,
                        f"{role}_key_mask": mask(credentials.api_key),
                        f"{role}_key_added_at": now,
                    },
                )
            )
            assert result.inserted_primary_key is not None
            connection_id = int(result.inserted_primary_key[0])
            await conn.execute(
                update(connections)
                .where(connections.c.id == connection_id)
                .values(self._encrypted(chat_id, connection_id, role, credentials))
            )
            row = (
                await conn.execute(select(connections).where(connections.c.id == connection_id))
            ).one()
        return _record(row)

    async def count(self, chat_id: int) -> int:
        async with self._db.begin() as conn:
            query = select(func.count()).where(connections.c.chat_id == chat_id)
            return int((await conn.execute(query)).scalar_one())

    async def list_for_chat(self, chat_id: int) -> list[ConnectionRecord]:
        async with self._db.begin() as conn:
            return await records_in(conn, chat_id)

    async def get(self, chat_id: int, connection_id: int) -> ConnectionRecord | None:
        async with self._db.begin() as conn:
            row = (
                await conn.execute(
                    select(connections).where(
                        connections.c.id == connection_id, connections.c.chat_id == chat_id
                    )
                )
            ).first()
        return _record(row) if row is not None else None

    async def find_by_label(self, chat_id: int, label: str) -> ConnectionRecord | None:
        wanted = label.strip().casefold()
        return next(
            (rec for rec in await self.list_for_chat(chat_id) if rec.label.casefold() == wanted),
            None,
        )

    async def credentials(
        self, chat_id: int, connection_id: int, role: KeyRole
    ) -> Credentials | None:
        """Decrypt one key of a connection owned by ``chat_id`` (None if it has no such key)."""
        async with self._db.begin() as conn:
            row = (
                await conn.execute(
                    select(connections).where(
                        connections.c.id == connection_id, connections.c.chat_id == chat_id
                    )
                )
            ).first()
        if row is None or getattr(row, f"{role}_api_key") is None:
            return None

        def unseal(field: str) -> str | None:
            token = getattr(row, field)
            if token is None:
                return None
            return self._vault.decrypt(token, Binding(chat_id, connection_id, field))

        api_key, secret = unseal(f"{role}_api_key"), unseal(f"{role}_secret")
        assert api_key is not None and secret is not None
        return Credentials(api_key, secret, unseal(f"{role}_passphrase"))

    async def replace_key(
        self,
        chat_id: int,
        connection_id: int,
        *,
        role: KeyRole,
        credentials: Credentials,
        permissions: str,
        now: datetime,
        next_check_at: datetime,
        next_permission_check_at: datetime | None = None,
    ) -> ConnectionRecord | None:
        """Put a checked key in ``role`` (new or replacing the old one) in one transaction.

        The old ciphertexts are overwritten in place (and ``secure_delete`` scrubs the pages);
        the connection's label, history and rules stay. The key just passed its check, so the
        status starts over as Connected. None if the chat owns no such connection.
        """
        async with self._db.begin() as conn:
            await lock_chat(conn, chat_id)  # the reuse check and the write take turns per chat
            await self._refuse_reuse(conn, chat_id, credentials.api_key, (connection_id, role))
            result = await conn.execute(
                update(connections)
                .where(connections.c.id == connection_id, connections.c.chat_id == chat_id)
                .values(
                    **self._encrypted(chat_id, connection_id, role, credentials),
                    **{
                        f"{role}_permissions": permissions,
                        f"{role}_key_mask": mask(credentials.api_key),
                        f"{role}_key_added_at": now,
                        f"{role}_reminded_at": None,
                    },
                    keys_version=connections.c.keys_version + 1,
                    status=ConnectionStatus.CONNECTED,
                    status_detail=None,
                    status_fix=None,
                    status_message=None,
                    status_at=now,
                    failure_streak=0,
                    next_check_at=next_check_at,
                    next_permission_check_at=next_permission_check_at,
                    last_sync_at=now,
                    last_ok_at=now,
                    updated_at=now,
                )
            )
            if result.rowcount == 0:
                return None
            row = (
                await conn.execute(select(connections).where(connections.c.id == connection_id))
            ).one()
        return _record(row)

    async def record_health(
        self,
        chat_id: int,
        connection_id: int,
        *,
        keys_version: int,
        decide: Callable[[ConnectionRecord], tuple[HealthUpdate, Notice | None]],
        now: datetime,
        snapshot: Snapshot | None = None,
        next_permission_check_at: datetime | None = None,
        after: AfterRead | None = None,
    ) -> bool:
        """Store what a check found, with its notice, the balance it read and whatever
        ``after`` writes (the alert evaluation), in one transaction
        (``next_permission_check_at``: the permissions were probed too).

        ``decide`` turns the connection as it is *now* (read inside the transaction) into its
        next state and the notice owed, so a transition is announced once even when /check and
        the sweep race. Applied only while the connection still holds the keys that were
        checked (``keys_version``): a check of a key the user has just replaced must not
        overwrite the new key's state. Returns whether it was applied.
        """
        owned = (connections.c.id == connection_id, connections.c.chat_id == chat_id)
        async with self._db.begin() as conn:
            # Held until the commit, so a concurrent check decides on what this one wrote.
            row = (
                await conn.execute(
                    select(connections)
                    .where(*owned, connections.c.keys_version == keys_version)
                    .with_for_update(key_share=True)
                )
            ).first()
            if row is None:
                return False
            current = _record(row)
            update_to, notice = decide(current)
            values: dict[str, Any] = {
                "status": update_to.status,
                "status_detail": update_to.detail,
                "status_fix": update_to.fix,
                "status_message": update_to.exchange_message,
                "failure_streak": update_to.failure_streak,
                "next_check_at": update_to.next_check_at,
                "last_sync_at": now,
                "updated_at": now,
            }
            if update_to.status is not current.status:
                values["status_at"] = now
            if update_to.healthy:
                values["last_ok_at"] = now
            for role, flags in (update_to.permissions or {}).items():
                if current.key(role) is not None:
                    values[f"{role}_permissions"] = flags
            if next_permission_check_at is not None:
                values["next_permission_check_at"] = next_permission_check_at
            await conn.execute(update(connections).where(*owned).values(values))
            if notice is not None:
                await enqueue(conn, notice, now)
            if snapshot is not None:
                await insert_snapshot(conn, snapshot)
            if after is not None:
                await after(conn, update_to.status)
        return True

    async def set_sync_seconds(
        self, chat_id: int, connection_id: int, seconds: int | None, now: datetime
    ) -> ConnectionRecord | None:
        """Choose how often the connection's balance is read (None: the bot's period); it
        applies from the next read on."""
        async with self._db.begin() as conn:
            result = await conn.execute(
                update(connections)
                .where(connections.c.id == connection_id, connections.c.chat_id == chat_id)
                .values(sync_seconds=seconds, updated_at=now)
            )
            if result.rowcount == 0:
                return None
        return await self.get(chat_id, connection_id)

    async def claim_due(
        self,
        now: datetime,
        lease: Lease,
        limits: Mapping[str, int],
        *,
        due_by: datetime | None = None,
    ) -> list[ConnectionRecord]:
        """Lease the connections whose balance read was due by ``due_by`` (default ``now``) and
        that nobody holds ``now``, the longest-waiting first, at most ``limits[venue]`` of each
        venue (other venues are not taken); the rest stay for other claims. A sweep run passes
        its start as ``due_by``, so it never takes what fell due while it ran, while leases
        expire by the current clock. One claim statement per venue
        (``storage.leases.claim``)."""
        cutoff = now if due_by is None else due_by
        due = or_(connections.c.next_check_at.is_(None), connections.c.next_check_at <= cutoff)
        order = (
            connections.c.next_check_at.is_not(None),
            connections.c.next_check_at,
            connections.c.id,  # ties (never read yet) oldest first, the same for every claim
        )
        claimed = []
        async with self._db.begin() as conn:
            for venue, limit in limits.items():
                if limit > 0:
                    claimed += await claim(
                        conn,
                        connections,
                        lease,
                        now,
                        [due, connections.c.venue == venue],
                        order,
                        limit,
                    )
        records = [_record(row) for row in claimed]
        return sorted(
            records, key=lambda r: (r.next_check_at is not None, r.next_check_at or now, r.id)
        )

    async def due_for_reminder(
        self, now: datetime, older_than: datetime, reminded_before: datetime
    ) -> list[tuple[ConnectionRecord, KeyRole]]:
        """Keys added before ``older_than`` whose last reminder (if any) is before
        ``reminded_before``."""
        conditions = [
            and_(
                connections.c[f"{role}_key_added_at"] <= older_than,
                or_(
                    connections.c[f"{role}_reminded_at"].is_(None),
                    connections.c[f"{role}_reminded_at"] <= reminded_before,
                ),
            )
            for role in KeyRole
        ]
        async with self._db.begin() as conn:
            rows = await conn.execute(
                select(connections).where(or_(*conditions)).order_by(connections.c.id)
            )
            records = [_record(row) for row in rows]

        def due(slot: KeySlot | None) -> bool:
            return (
                slot is not None
                and slot.added_at <= older_than
                and (slot.reminded_at is None or slot.reminded_at <= reminded_before)
            )

        return [(rec, role) for rec in records for role in KeyRole if due(rec.key(role))]

    async def mark_reminded(
        self, record: ConnectionRecord, role: KeyRole, now: datetime, notice: Notice
    ) -> bool:
        """Note the reminder and queue its notice together, unless the key changed or another
        process reminded meanwhile (compare-and-set on the reminder time ``record`` holds)."""
        slot = record.key(role)
        reminded = connections.c[f"{role}_reminded_at"]
        async with self._db.begin() as conn:
            result = await conn.execute(
                update(connections)
                .where(
                    connections.c.id == record.id,
                    connections.c.chat_id == record.chat_id,
                    connections.c.keys_version == record.keys_version,
                    reminded.is_(None)
                    if slot is None or slot.reminded_at is None
                    else reminded == slot.reminded_at,
                )
                .values({f"{role}_reminded_at": now})
            )
            if result.rowcount == 0:
                return False
            await enqueue(conn, notice, now)
        return True

    async def delete(self, chat_id: int, connection_id: int) -> bool:
        """Remove the connection and its encrypted keys (secure_delete overwrites the pages)."""
        async with self._db.begin() as conn:
            result = await conn.execute(
                delete(connections).where(
                    connections.c.id == connection_id, connections.c.chat_id == chat_id
                )
            )
            return result.rowcount > 0
