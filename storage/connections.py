"""Connections of a chat: plain records out, secrets only through the vault.

Every query is scoped by ``chat_id``: a chat can never read or touch another chat's rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.credentials import Credentials, KeyRole, mask
from storage.database import Database
from storage.schema import chats, connections
from storage.vault import Binding, Vault


class ConnectionStatus(StrEnum):
    CONNECTED = "connected"
    REAUTH = "reauth"
    ERROR = "error"


class LabelTaken(Exception):
    """The chat already has a connection with this label (compared case-insensitively)."""


class ConnectionLimitReached(Exception):
    """The chat holds the maximum number of connections."""


@dataclass(frozen=True)
class KeySlot:
    """The public face of a stored key: its mask, permissions and age; never the secret."""

    mask: str
    permissions: str
    added_at: datetime


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


def _slot(row: Any, role: KeyRole) -> KeySlot | None:
    key_mask = getattr(row, f"{role}_key_mask")
    if key_mask is None:
        return None
    return KeySlot(
        key_mask, getattr(row, f"{role}_permissions") or "", getattr(row, f"{role}_key_added_at")
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
    )


class ConnectionRepository:
    def __init__(self, database: Database, vault: Vault) -> None:
        self._db = database
        self._vault = vault

    async def _ensure_chat(self, conn: AsyncConnection, chat_id: int, now: datetime) -> None:
        values = {"id": chat_id, "created_at": now}
        if self._db.is_sqlite:
            await conn.execute(sqlite_insert(chats).values(values).on_conflict_do_nothing())
        elif (await conn.execute(select(chats.c.id).where(chats.c.id == chat_id))).first() is None:
            await conn.execute(insert(chats).values(values))

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
        }

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
    ) -> ConnectionRecord:
        """Store a checked key as a new connection, atomically with the limit and label checks."""
        async with self._db.begin() as conn:
            await self._ensure_chat(conn, chat_id, now)
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
            rows = await conn.execute(
                select(connections)
                .where(connections.c.chat_id == chat_id)
                .order_by(connections.c.created_at, connections.c.id)
            )
            return [_record(row) for row in rows]

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

    async def set_status(
        self,
        chat_id: int,
        connection_id: int,
        status: ConnectionStatus,
        detail: str | None,
        now: datetime,
    ) -> None:
        """Record the outcome of talking to the exchange; a healthy answer is also a sync."""
        values: dict[str, Any] = {"updated_at": now, "last_sync_at": now}
        if status is ConnectionStatus.CONNECTED:
            values["last_ok_at"] = now
        async with self._db.begin() as conn:
            current = (
                await conn.execute(
                    select(connections.c.status, connections.c.status_detail).where(
                        connections.c.id == connection_id, connections.c.chat_id == chat_id
                    )
                )
            ).first()
            if current is None:
                return
            if (current.status, current.status_detail) != (status, detail):
                values |= {"status": status, "status_detail": detail, "status_at": now}
            await conn.execute(
                update(connections)
                .where(connections.c.id == connection_id, connections.c.chat_id == chat_id)
                .values(values)
            )

    async def delete(self, chat_id: int, connection_id: int) -> bool:
        """Remove the connection and its encrypted keys (secure_delete overwrites the pages)."""
        async with self._db.begin() as conn:
            result = await conn.execute(
                delete(connections).where(
                    connections.c.id == connection_id, connections.c.chat_id == chat_id
                )
            )
            return result.rowcount > 0
