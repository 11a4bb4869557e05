"""A connection's health: one cheap signed call per key, and the state machine that follows.

The check is the venue's permission probe: a single signed call of weight 1 on every venue,
and it also catches a key that has gained the right to withdraw since it was connected (it is
then treated as unusable, like a revoked one).

``decide`` is pure: the current record plus what a check observed gives the next state and at
most one notice. Authentication problems are final and flip to Re-auth needed at once;
transient ones (rate limit, 5xx, timeout) back off and flip to Error only after
``HealthPolicy.error_after`` consecutive failures; a healthy answer after any other status is
a "recovered" notice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial

import ccxt.async_support as ccxt

from bot.exchanges.catalogue import Venue
from bot.exchanges.diagnosis import WRONG_TAB, Diagnosis, diagnose
from bot.exchanges.permissions import PermissionSummary
from bot.exchanges.pool import ClientPool
from storage.connections import ConnectionRecord, ConnectionStatus, HealthUpdate
from storage.credentials import Credentials, KeyRole
from storage.outbox import Notice, NoticeKind

ROLE_NAMES = {KeyRole.READ: "read key", KeyRole.TRADE: "trade key"}


@dataclass(frozen=True)
class HealthPolicy:
    period: timedelta
    error_after: int = 3  # consecutive transient failures before the status becomes Error
    max_backoff: int = 8  # a failing connection is checked at most every period × this

    def of(self, record: ConnectionRecord) -> HealthPolicy:
        """This policy with the connection's own period: the bot's, or a slower one the chat
        chose in /settings."""
        own = timedelta(seconds=record.sync_seconds or 0)
        return replace(self, period=max(self.period, own))

    def retry_after(self, failures: int) -> timedelta:
        """period, 2×, 4×… up to ``max_backoff``× for the n-th consecutive failure."""
        return self.period * min(2 ** max(failures - 1, 0), self.max_backoff)


@dataclass(frozen=True)
class Observation:
    """What one check found: a problem (None = healthy), with the key it concerns."""

    problem: Diagnosis | None = None
    role: KeyRole | None = None
    permissions: dict[KeyRole, PermissionSummary] = field(default_factory=dict)


def unusable(summary: PermissionSummary, role: KeyRole, venue: Venue) -> Diagnosis | None:
    """A key the exchange accepts but that must not be used (any more) in ``role``."""
    if summary.can_move_funds_out:
        return Diagnosis(
            ConnectionStatus.REAUTH,
            f"The {ROLE_NAMES[role]} can now move funds out (withdraw or transfer), so I stopped "
            "using it.",
            "Delete this key on the exchange now, then /rotate to a key with withdrawals off.",
            final=True,
        )
    if venue.requires_derivatives and not summary.derivatives_trade:
        return WRONG_TAB
    if role is KeyRole.TRADE and not summary.can_trade:
        return Diagnosis(
            ConnectionStatus.REAUTH,
            "The trade key can no longer trade: its trading permission was removed.",
            "Enable trading on the key at the exchange, or /rotate to a new trade key.",
            final=True,
        )
    return None


CredentialsFor = Callable[[KeyRole], Awaitable[Credentials]]


async def observe(
    pool: ClientPool, record: ConnectionRecord, venue: Venue, credentials_for: CredentialsFor
) -> Observation:
    """Probe each key of the connection (the reading key first); stop at the first problem."""
    permissions: dict[KeyRole, PermissionSummary] = {}
    for role in record.roles:
        try:
            client = await pool.client(record, role, partial(credentials_for, role))
            summary = await venue.probe(client)
        except (ccxt.BaseError, ValueError) as exc:
            return Observation(diagnose(exc), role, permissions)
        permissions[role] = summary
        problem = unusable(summary, role, venue)
        if problem is not None:
            return Observation(problem, role, permissions)
    return Observation(permissions=permissions)


def decide(
    record: ConnectionRecord,
    seen: Observation,
    policy: HealthPolicy,
    now: datetime,
    *,
    announce: bool = True,
) -> tuple[HealthUpdate, Notice | None]:
    """The next state of ``record`` and the notice owed to its chat, if any.

    ``announce`` False is for /check, where the user is reading the outcome already: the
    status is what the check found, at once, and no notice is queued.
    """
    flags = {role: summary.to_flags() for role, summary in seen.permissions.items()}
    problem = seen.problem
    if problem is None:
        update = HealthUpdate(
            ConnectionStatus.CONNECTED, None, None, None, 0, now + policy.period, True, flags
        )
    else:
        failures = record.failure_streak + 1
        update = HealthUpdate(
            problem.status,
            _cause(problem, seen.role, record),
            problem.fix,
            problem.exchange_message,
            failures,
            now + policy.retry_after(failures),
            False,
            flags,
        )
        if record.status is ConnectionStatus.REAUTH and not problem.final and announce:
            # A key that needs replacing, on an exchange that is also down for now: it stays
            # Re-auth needed, with the cause the user can act on, however long the outage.
            update = replace(
                update,
                status=ConnectionStatus.REAUTH,
                detail=record.status_detail,
                fix=record.status_fix,
                exchange_message=record.status_message,
            )
        elif announce and not problem.final and failures < policy.error_after:
            update = replace(update, status=record.status)  # transient: not an Error yet
    if not announce or update.status is record.status:
        return update, None
    payload = {
        "status": str(update.status),
        "previous": str(record.status),
        "since": record.status_at.isoformat(),
        "cause": update.detail,
        "fix": update.fix,
        "exchange_message": update.exchange_message,
    }
    return update, Notice(record.chat_id, NoticeKind.STATUS, record.id, payload)


def _cause(problem: Diagnosis, role: KeyRole | None, record: ConnectionRecord) -> str:
    """Name the key when the connection holds two: the user must know which to replace."""
    if role is None or len(record.roles) < 2 or not problem.final:
        return problem.cause
    return f"{ROLE_NAMES[role].capitalize()}: {problem.cause[0].lower()}{problem.cause[1:]}"
