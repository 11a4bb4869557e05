"""Rebalance proposals and their legs: the executor's journal, every query scoped by chat.

A proposal is *open* until approved (→ *executing* → a final state), rejected, expired or
replaced. Approval is one conditional UPDATE (open, this revision, not expired → executing), so
two taps, two processes or a replayed callback can start an execution once only. Each leg's
state is written in its own transaction *before* the exchange call it leads to, so after a
crash the journal says which orders may exist (``sending``/``unknown``) and must be looked up.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.chats import ensure_chat
from storage.database import Database
from storage.leases import Lease, claim
from storage.schema import rebalance_legs, rebalance_proposals


class ProposalStatus(StrEnum):
    OPEN = "open"
    DRY_RUN = "dry_run"  # a dry-run-only target's proposal: the result itself, final
    EXECUTING = "executing"
    EXECUTED = "executed"
    PARTLY_EXECUTED = "partly"
    FAILED = "failed"
    REJECTED = "rejected"
    EXPIRED = "expired"
    REQUOTED = "requoted"  # prices or holdings moved at approval; a new proposal replaced it

    @property
    def final(self) -> bool:
        return self not in (ProposalStatus.OPEN, ProposalStatus.EXECUTING)


class LegState(StrEnum):
    """``planned → sending → placed | unknown → filled | partly | not_filled | refused | lost``;
    ``skipped``: never sent (paused, the venue's sells fell short, a failed re-check)."""

    PLANNED = "planned"
    SENDING = "sending"  # written before the request: the order may exist
    UNKNOWN = "unknown"  # sent, no trustworthy answer: look it up
    FILLED = "filled"
    PARTLY = "partly"
    NOT_FILLED = "not_filled"
    REFUSED = "refused"
    LOST = "lost"  # not found after every lookup; fills that turn up later are still applied
    SKIPPED = "skipped"

    @property
    def final(self) -> bool:
        return self not in (LegState.PLANNED, LegState.SENDING, LegState.UNKNOWN)


@dataclass(frozen=True)
class PlannedLeg:
    """A leg as the proposal shows it (estimates in the proposal's currency)."""

    connection_id: int
    label: str
    venue: str
    symbol: str
    side: str
    amount: Decimal
    price: Decimal
    value: Decimal
    fee: Decimal


@dataclass(frozen=True)
class Leg:
    id: int
    proposal_id: int
    position: int
    connection_id: int | None
    planned: PlannedLeg
    client_order_id: str
    state: LegState
    limit_price: Decimal | None
    order_id: str | None
    filled: Decimal | None
    average: Decimal | None
    cost: Decimal | None
    fees: Mapping[str, Decimal]
    detail: str | None
    lookups: int
    sent_at: datetime | None


@dataclass(frozen=True)
class Proposal:
    id: int
    chat_id: int
    target_id: int | None
    token: str
    revision: int
    trigger: str
    status: ProposalStatus
    dry_run: bool
    quote: str
    plan: Mapping[str, Any]
    message_id: int | None
    note: str | None
    result: Mapping[str, Any] | None
    created_at: datetime
    expires_at: datetime
    decided_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True)
class LegOutcome:
    """What the venue said of a leg's order (all optional: a refusal has none of it)."""

    state: LegState
    order_id: str | None = None
    filled: Decimal | None = None
    average: Decimal | None = None
    cost: Decimal | None = None
    fees: Mapping[str, Decimal] | None = None
    detail: str | None = None


def _text(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _number(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def _proposal(row: Any) -> Proposal:
    return Proposal(
        id=row.id,
        chat_id=row.chat_id,
        target_id=row.target_id,
        token=row.token,
        revision=row.revision,
        trigger=row.trigger,
        status=ProposalStatus(row.status),
        dry_run=bool(row.dry_run),
        quote=row.quote,
        plan=json.loads(row.plan),
        message_id=row.message_id,
        note=row.note,
        result=json.loads(row.result) if row.result else None,
        created_at=row.created_at,
        expires_at=row.expires_at,
        decided_at=row.decided_at,
        finished_at=row.finished_at,
    )


def _leg(row: Any) -> Leg:
    return Leg(
        id=row.id,
        proposal_id=row.proposal_id,
        position=row.position,
        connection_id=row.connection_id,
        planned=PlannedLeg(
            connection_id=row.connection_id or 0,
            label=row.label,
            venue=row.venue,
            symbol=row.symbol,
            side=row.side,
            amount=Decimal(row.amount),
            price=Decimal(row.price),
            value=Decimal(row.value),
            fee=Decimal(row.fee),
        ),
        client_order_id=row.client_order_id,
        state=LegState(row.state),
        limit_price=_number(row.limit_price),
        order_id=row.order_id,
        filled=_number(row.filled),
        average=_number(row.average),
        cost=_number(row.cost),
        fees={k: Decimal(v) for k, v in json.loads(row.fees).items()} if row.fees else {},
        detail=row.detail,
        lookups=row.lookups,
        sent_at=row.sent_at,
    )


def new_token() -> str:
    """16 random hex digits: client order ids derive from it, so they never repeat across
    proposals, restarts or a reset database."""
    return secrets.token_hex(8)


class ProposalRepository:
    def __init__(self, database: Database) -> None:
        self._db = database

    @property
    def database(self) -> Database:
        return self._db

    async def create(
        self,
        chat_id: int,
        target_id: int | None,
        *,
        trigger: str,
        dry_run: bool,
        quote: str,
        plan: Mapping[str, Any],
        legs: Sequence[tuple[PlannedLeg, str]],
        token: str,
        now: datetime,
        expires_at: datetime,
    ) -> Proposal:
        """A new proposal (open, or final if ``dry_run``) with its legs and their client ids."""
        status = ProposalStatus.DRY_RUN if dry_run else ProposalStatus.OPEN
        async with self._db.begin() as conn:
            await ensure_chat(conn, self._db.is_sqlite, chat_id, now)
            result = await conn.execute(
                insert(rebalance_proposals).values(
                    chat_id=chat_id,
                    target_id=target_id,
                    token=token,
                    trigger=trigger,
                    status=status,
                    dry_run=dry_run,
                    quote=quote,
                    plan=json.dumps(plan),
                    created_at=now,
                    expires_at=expires_at,
                    finished_at=now if dry_run else None,
                )
            )
            assert result.inserted_primary_key is not None
            proposal_id = int(result.inserted_primary_key[0])
            await _insert_legs(conn, proposal_id, legs, now)
            return await _get(conn, proposal_id)

    async def replace_open(
        self,
        proposal_id: int,
        *,
        trigger: str,
        plan: Mapping[str, Any],
        legs: Sequence[tuple[PlannedLeg, str]],
        now: datetime,
        expires_at: datetime,
    ) -> Proposal | None:
        """Update an open proposal in place (a new trigger while it is open): a new revision,
        so an Approve tapped on what the chat saw before does nothing. None if it is no longer
        open."""
        async with self._db.begin() as conn:
            changed = await conn.execute(
                update(rebalance_proposals)
                .where(
                    rebalance_proposals.c.id == proposal_id,
                    rebalance_proposals.c.status == ProposalStatus.OPEN,
                )
                .values(
                    revision=rebalance_proposals.c.revision + 1,
                    trigger=trigger,
                    plan=json.dumps(plan),
                    created_at=now,
                    expires_at=expires_at,
                )
            )
            if changed.rowcount == 0:
                return None
            await conn.execute(
                delete(rebalance_legs).where(rebalance_legs.c.proposal_id == proposal_id)
            )
            await _insert_legs(conn, proposal_id, legs, now)
            return await _get(conn, proposal_id)

    async def get(self, chat_id: int, proposal_id: int) -> Proposal | None:
        async with self._db.begin() as conn:
            row = (
                await conn.execute(
                    select(rebalance_proposals).where(
                        rebalance_proposals.c.id == proposal_id,
                        rebalance_proposals.c.chat_id == chat_id,
                    )
                )
            ).first()
        return _proposal(row) if row is not None else None

    async def open_for_target(self, target_id: int) -> Proposal | None:
        async with self._db.begin() as conn:
            row = (
                await conn.execute(
                    select(rebalance_proposals).where(
                        rebalance_proposals.c.target_id == target_id,
                        rebalance_proposals.c.status.in_(
                            [ProposalStatus.OPEN, ProposalStatus.EXECUTING]
                        ),
                    )
                )
            ).first()
        return _proposal(row) if row is not None else None

    async def set_message(self, proposal_id: int, message_id: int) -> None:
        async with self._db.begin() as conn:
            await conn.execute(
                update(rebalance_proposals)
                .where(rebalance_proposals.c.id == proposal_id)
                .values(message_id=message_id)
            )

    async def claim(
        self, chat_id: int, proposal_id: int, revision: int, now: datetime, lease: Lease
    ) -> Proposal | None:
        """open → executing, once: this chat's proposal, the revision the chat saw, not
        expired; leased to the process that executes it. None if any of that fails (a second
        tap, another chat, an old message)."""
        return await self._decide(
            chat_id, proposal_id, revision, now, ProposalStatus.EXECUTING, lease
        )

    async def reject(
        self, chat_id: int, proposal_id: int, revision: int, now: datetime
    ) -> Proposal | None:
        return await self._decide(chat_id, proposal_id, revision, now, ProposalStatus.REJECTED)

    async def _decide(
        self,
        chat_id: int,
        proposal_id: int,
        revision: int,
        now: datetime,
        status: ProposalStatus,
        lease: Lease | None = None,
    ) -> Proposal | None:
        async with self._db.begin() as conn:
            changed = await conn.execute(
                update(rebalance_proposals)
                .where(
                    rebalance_proposals.c.id == proposal_id,
                    rebalance_proposals.c.chat_id == chat_id,
                    rebalance_proposals.c.revision == revision,
                    rebalance_proposals.c.status == ProposalStatus.OPEN,
                    rebalance_proposals.c.expires_at > now,
                )
                .values(
                    status=status,
                    decided_at=now,
                    finished_at=now if status.final else None,
                    lease_owner=lease.owner if lease is not None else None,
                    lease_until=lease.until if lease is not None else None,
                )
            )
            if changed.rowcount == 0:
                return None
            return await _get(conn, proposal_id)

    async def expire_due(self, now: datetime) -> list[Proposal]:
        """Open proposals past their time become expired; the ones that just did (held from
        the read, so two processes never both report one)."""
        async with self._db.begin() as conn:
            rows = await conn.execute(
                select(rebalance_proposals)
                .where(
                    rebalance_proposals.c.status == ProposalStatus.OPEN,
                    rebalance_proposals.c.expires_at <= now,
                )
                .with_for_update(key_share=True)
            )
            due = [_proposal(row) for row in rows]
            for proposal in due:
                await conn.execute(
                    update(rebalance_proposals)
                    .where(
                        rebalance_proposals.c.id == proposal.id,
                        rebalance_proposals.c.status == ProposalStatus.OPEN,
                    )
                    .values(status=ProposalStatus.EXPIRED, finished_at=now)
                )
        return due

    async def claim_executing(self, now: datetime, lease: Lease) -> list[Proposal]:
        """Lease the proposals an execution left unfinished and nobody holds (their process
        stopped, or died and its lease expired): a resume finishes each, in one process."""
        rows = await self._claim(
            now, lease, [rebalance_proposals.c.status == ProposalStatus.EXECUTING]
        )
        return sorted((_proposal(row) for row in rows), key=lambda p: p.id)

    async def take(self, proposal_id: int, now: datetime, lease: Lease) -> bool:
        """Lease one proposal if nobody holds it (looking its lost legs up again)."""
        return bool(await self._claim(now, lease, [rebalance_proposals.c.id == proposal_id]))

    async def _claim(
        self, now: datetime, lease: Lease, where: Sequence[ColumnElement[bool]]
    ) -> list[Any]:
        async with self._db.begin() as conn:
            return await claim(
                conn, rebalance_proposals, lease, now, where, [rebalance_proposals.c.id]
            )

    async def finish(
        self,
        proposal_id: int,
        status: ProposalStatus,
        now: datetime,
        owner: str,
        *,
        note: str | None = None,
        result: Mapping[str, Any] | None = None,
    ) -> bool:
        """The proposal's outcome, written only while ``owner`` holds its lease (False: the
        process that took it over writes it)."""
        async with self._db.begin() as conn:
            written = await conn.execute(
                update(rebalance_proposals)
                .where(
                    rebalance_proposals.c.id == proposal_id,
                    rebalance_proposals.c.lease_owner == owner,
                )
                .values(
                    status=status,
                    finished_at=now,
                    note=note,
                    result=None if result is None else json.dumps(result),
                )
            )
            return written.rowcount > 0

    async def legs(self, proposal_id: int) -> list[Leg]:
        async with self._db.begin() as conn:
            return await _legs(conn, proposal_id)

    async def mark_sending(
        self, leg_id: int, amount: Decimal, limit_price: Decimal, now: datetime, owner: str
    ) -> bool:
        """Written and committed before the order is sent (with the amount and limit it goes
        out with): from here on the order may exist. Only while the leg is planned and
        ``owner`` holds its proposal's lease (False: send nothing): a process that lost the
        lease never sends an order that the process holding it now has skipped (a leg already
        marked is looked up by that process, never sent again)."""
        async with self._db.begin() as conn:
            if not await _hold_leased(conn, leg_id, owner):
                return False
            marked = await conn.execute(
                update(rebalance_legs)
                .where(rebalance_legs.c.id == leg_id, rebalance_legs.c.state == LegState.PLANNED)
                .values(
                    state=LegState.SENDING,
                    amount=_text(amount),
                    limit_price=_text(limit_price),
                    sent_at=now,
                    updated_at=now,
                )
            )
            return marked.rowcount > 0

    async def record(self, leg_id: int, outcome: LegOutcome, now: datetime, owner: str) -> bool:
        """What is known of a leg's order now (a later lookup may overwrite it), written only
        while ``owner`` holds the proposal's lease (False: another process does)."""
        values: dict[str, object] = {"state": outcome.state, "updated_at": now}
        if outcome.order_id is not None:
            values["order_id"] = outcome.order_id
        if outcome.filled is not None:
            values["filled"] = _text(outcome.filled)
        if outcome.average is not None:
            values["average"] = _text(outcome.average)
        if outcome.cost is not None:
            values["cost"] = _text(outcome.cost)
        if outcome.fees is not None:
            values["fees"] = json.dumps({k: format(v, "f") for k, v in outcome.fees.items()})
        if outcome.detail is not None:
            values["detail"] = outcome.detail
        async with self._db.begin() as conn:
            if not await _hold_leased(conn, leg_id, owner):
                return False
            await conn.execute(
                update(rebalance_legs).where(rebalance_legs.c.id == leg_id).values(values)
            )
            return True

    async def count_lookup(self, leg_id: int, now: datetime) -> int:
        """One more lookup of an unknown leg; how many there have been."""
        async with self._db.begin() as conn:
            await conn.execute(
                update(rebalance_legs)
                .where(rebalance_legs.c.id == leg_id)
                .values(lookups=rebalance_legs.c.lookups + 1, updated_at=now)
            )
            row = (
                await conn.execute(
                    select(rebalance_legs.c.lookups).where(rebalance_legs.c.id == leg_id)
                )
            ).one()
            return int(row.lookups)

    async def lost_since(self, since: datetime, max_lookups: int) -> list[tuple[Proposal, Leg]]:
        """Legs marked lost that were sent after ``since`` and looked up fewer than
        ``max_lookups`` times, with their proposals: a late answer may still turn up."""
        async with self._db.begin() as conn:
            rows = await conn.execute(
                select(rebalance_legs).where(
                    rebalance_legs.c.state == LegState.LOST,
                    rebalance_legs.c.sent_at >= since,
                    rebalance_legs.c.lookups < max_lookups,
                )
            )
            legs = [_leg(row) for row in rows]
            return [(await _get(conn, leg.proposal_id), leg) for leg in legs]

    async def history(self, chat_id: int, limit: int = 10) -> list[tuple[Proposal, list[Leg]]]:
        """The chat's latest proposals, newest first, each with its legs."""
        async with self._db.begin() as conn:
            rows = await conn.execute(
                select(rebalance_proposals)
                .where(rebalance_proposals.c.chat_id == chat_id)
                .order_by(rebalance_proposals.c.id.desc())
                .limit(limit)
            )
            proposals = [_proposal(row) for row in rows]
            return [(proposal, await _legs(conn, proposal.id)) for proposal in proposals]


async def _hold_leased(conn: AsyncConnection, leg_id: int, owner: str) -> bool:
    """Whether the leg's proposal is leased to ``owner``, holding the proposal's row until the
    caller's transaction ends (PostgreSQL): a claim by another process waits for, or skips,
    this write instead of reading the leg as it was before it."""
    proposal_of_leg = (
        select(rebalance_legs.c.proposal_id).where(rebalance_legs.c.id == leg_id).scalar_subquery()
    )
    held = await conn.execute(
        select(rebalance_proposals.c.id)
        .where(
            rebalance_proposals.c.id == proposal_of_leg,
            rebalance_proposals.c.lease_owner == owner,
        )
        .with_for_update()
    )
    return held.first() is not None


async def _get(conn: AsyncConnection, proposal_id: int) -> Proposal:
    row = (
        await conn.execute(
            select(rebalance_proposals).where(rebalance_proposals.c.id == proposal_id)
        )
    ).one()
    return _proposal(row)


async def _legs(conn: AsyncConnection, proposal_id: int) -> list[Leg]:
    rows = await conn.execute(
        select(rebalance_legs)
        .where(rebalance_legs.c.proposal_id == proposal_id)
        .order_by(rebalance_legs.c.position)
    )
    return [_leg(row) for row in rows]


async def _insert_legs(
    conn: AsyncConnection,
    proposal_id: int,
    legs: Sequence[tuple[PlannedLeg, str]],
    now: datetime,
) -> None:
    for position, (leg, client_id) in enumerate(legs):
        await conn.execute(
            insert(rebalance_legs).values(
                proposal_id=proposal_id,
                position=position,
                connection_id=leg.connection_id,
                label=leg.label,
                venue=leg.venue,
                symbol=leg.symbol,
                side=leg.side,
                amount=_text(leg.amount),
                price=_text(leg.price),
                value=_text(leg.value),
                fee=_text(leg.fee),
                client_order_id=client_id,
                state=LegState.PLANNED,
                updated_at=now,
            )
        )
