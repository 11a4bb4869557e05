"""Connecting exchange accounts: check a key, store it encrypted, list and revoke.

The Telegram layer calls this with plain values; every method is scoped by ``chat_id``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

from bot.clock import Clock, utc_now
from bot.exchanges.catalogue import Venue, get_venue
from bot.exchanges.diagnosis import Diagnosis
from bot.exchanges.health import HealthPolicy, Observation, decide, unusable
from bot.exchanges.key_check import KeyAccepted, KeyCheck, KeyRejected, check_key
from bot.exchanges.key_diagnosis import KeyReport, check_second_key, diagnose_key
from bot.exchanges.permissions import PermissionSummary
from bot.exchanges.pool import ClientPool
from bot.redaction import SecretRedactor
from storage.activity import ActivityEntry, ActivityLog
from storage.connections import ConnectionRecord, ConnectionRepository, KeyInUse
from storage.credentials import Credentials, KeyRole


class UnconfirmedWithdrawals(Exception):
    """The venue does not say whether the key may withdraw and the user has not confirmed."""


class WrongSlot(Exception):
    """A checked key that does not fit the slot it was offered for: a trade key that cannot
    trade, or a read key that can."""


@dataclass(frozen=True)
class ConnectionPolicy:
    max_per_chat: int
    endpoints: Mapping[str, str]
    health: HealthPolicy
    # How often each key's permissions are probed again (withdraw drift); a new key was
    # probed when it was checked.
    permission_period: timedelta = timedelta(hours=1)
    # ccxt's pacing of each client's calls (COINWARDEN_EXCHANGE_PACING).
    paced: bool = True


def first_key_role(venue: Venue, permissions: PermissionSummary) -> KeyRole:
    """The slot the first key of a connection takes.

    A key that can trade is the trade key (and also reads, until a read-only key is added);
    on a futures-only venue every key has futures rights, so the first one is the read key.
    """
    if permissions.can_trade and not venue.requires_derivatives:
        return KeyRole.TRADE
    return KeyRole.READ


def fits_role(venue: Venue, permissions: PermissionSummary, role: KeyRole) -> bool:
    """The one rule for which slot a key may take: the trade slot wants a key that can trade,
    the read slot a key that cannot (on a futures-only venue every key has futures rights, so
    any key may read there). The first key of a connection goes where it fits
    (``first_key_role``)."""
    if role is KeyRole.TRADE:
        return permissions.can_trade
    return venue.requires_derivatives or not permissions.can_trade


class ConnectionService:
    def __init__(
        self,
        repository: ConnectionRepository,
        activity: ActivityLog,
        policy: ConnectionPolicy,
        redactor: SecretRedactor,
        clock: Clock = utc_now,
        pool: ClientPool | None = None,
    ) -> None:
        self._repo = repository
        self._activity = activity
        self._policy = policy
        self._redactor = redactor
        self._clock = clock
        self._pool = pool

    @property
    def max_per_chat(self) -> int:
        return self._policy.max_per_chat

    def remember_secrets(self, *values: str | None) -> None:
        """Every credential in memory is also known to the log redactor, and so is each line
        of a multi-line one (a PEM key), since a log may show a single line of it."""
        for value in values:
            if value:
                self._redactor.add(value, *(line.strip() for line in value.splitlines()))

    async def check_key(self, venue: Venue, credentials: Credentials, sandbox: bool) -> KeyCheck:
        self.remember_secrets(*credentials.secrets())
        result = await check_key(
            venue,
            credentials,
            endpoint=self._policy.endpoints.get(venue.id),
            sandbox=sandbox,
            clock=self._clock,
            paced=self._policy.paced,
        )
        if isinstance(result, KeyRejected):
            return KeyRejected(self.scrubbed(result.diagnosis))
        return result

    async def credentials(
        self, chat_id: int, connection_id: int, role: KeyRole
    ) -> Credentials | None:
        """Decrypt a stored key for use; from now on the log redactor knows it too."""
        credentials = await self._repo.credentials(chat_id, connection_id, role)
        if credentials is not None:
            self.remember_secrets(*credentials.secrets())
        return credentials

    def scrubbed(self, diagnosis: Diagnosis) -> Diagnosis:
        """Exchanges sometimes echo the key in their error text; the user never sees it."""
        said = diagnosis.exchange_message
        return replace(diagnosis, exchange_message=self._redactor.redact(said) if said else None)

    async def has_room(self, chat_id: int) -> bool:
        return await self._repo.count(chat_id) < self._policy.max_per_chat

    async def key_in_use(
        self, chat_id: int, api_key: str, slot: tuple[int, KeyRole] | None = None
    ) -> KeyInUse | None:
        """Where the chat already stores this API key, if anywhere but in ``slot`` being
        filled (or there, as the key in place): asked before any exchange call."""
        return await self._repo.key_in_use(chat_id, api_key, slot)

    async def connect(
        self,
        chat_id: int,
        *,
        venue: Venue,
        sandbox: bool,
        label: str,
        credentials: Credentials,
        accepted: KeyAccepted,
        withdrawals_confirmed_off: bool = False,
    ) -> ConnectionRecord:
        """Store a key that passed the check (LabelTaken / ConnectionLimitReached on races).

        Where the venue could not tell whether the key may withdraw, the user's explicit
        confirmation that withdrawals are disabled is required (UnconfirmedWithdrawals).
        """
        if not accepted.permissions.withdraw_known and not withdrawals_confirmed_off:
            raise UnconfirmedWithdrawals
        now = self._clock()
        role = first_key_role(venue, accepted.permissions)
        record = await self._repo.add(
            chat_id,
            label=label,
            venue=venue.id,
            sandbox=sandbox,
            role=role,
            credentials=credentials,
            permissions=accepted.permissions.to_flags(),
            limit=self._policy.max_per_chat,
            now=now,
            next_check_at=now + self._policy.health.period,
            next_permission_check_at=now + self._policy.permission_period,
        )
        await self._activity.record(
            record.id,
            *accepted.calls,
            ActivityEntry(at=now, action=f"connected ({role} key)", outcome="ok"),
        )
        return record

    async def replace_key(
        self,
        chat_id: int,
        connection_id: int,
        *,
        role: KeyRole,
        credentials: Credentials,
        accepted: KeyAccepted,
        withdrawals_confirmed_off: bool = False,
    ) -> ConnectionRecord | None:
        """Put a key that passed its check in ``role``: rotate it, or add the second key.

        The old key is overwritten only now, after the new one checked out; the connection's
        clients are closed so the next call uses the new key. None if the chat owns no such
        connection. UnconfirmedWithdrawals as for /connect; WrongSlot if the key does not fit
        ``role``; KeyInUse if the chat stores this API key already.
        """
        if not accepted.permissions.withdraw_known and not withdrawals_confirmed_off:
            raise UnconfirmedWithdrawals
        before = await self._repo.get(chat_id, connection_id)
        if before is None:
            return None
        if not fits_role(self.venue_of(before), accepted.permissions, role):
            raise WrongSlot
        now = self._clock()
        record = await self._repo.replace_key(
            chat_id,
            connection_id,
            role=role,
            credentials=credentials,
            permissions=accepted.permissions.to_flags(),
            now=now,
            next_check_at=now + self._policy.health.period,
            next_permission_check_at=now + self._policy.permission_period,
        )
        if record is None:
            return None
        if self._pool is not None:
            await self._pool.close_connection(connection_id)
        action = f"{role} key {'rotated' if before.key(role) is not None else 'added'}"
        await self._activity.record(
            connection_id, *accepted.calls, ActivityEntry(at=now, action=action, outcome="ok")
        )
        return record

    async def set_sync_seconds(
        self, chat_id: int, connection_id: int, seconds: int | None
    ) -> ConnectionRecord | None:
        """A slower balance read for one connection (None: the bot's period)."""
        return await self._repo.set_sync_seconds(chat_id, connection_id, seconds, self._clock())

    async def list_for_chat(self, chat_id: int) -> list[ConnectionRecord]:
        return await self._repo.list_for_chat(chat_id)

    async def get(self, chat_id: int, connection_id: int) -> ConnectionRecord | None:
        return await self._repo.get(chat_id, connection_id)

    async def find(self, chat_id: int, label: str) -> ConnectionRecord | None:
        return await self._repo.find_by_label(chat_id, label)

    async def check(
        self, chat_id: int, connection_id: int, outbound_ips: Sequence[str]
    ) -> tuple[ConnectionRecord, KeyReport] | None:
        """Run /check on a stored key: log every call, update the status, return the report."""
        record = await self._repo.get(chat_id, connection_id)
        if record is None:
            return None
        role = record.reading_role
        credentials = await self.credentials(chat_id, connection_id, role)
        if credentials is None:
            return None
        venue = self.venue_of(record)
        report = await diagnose_key(
            venue,
            credentials,
            endpoint=self._policy.endpoints.get(record.venue),
            sandbox=record.sandbox,
            outbound_ips=outbound_ips,
            clock=self._clock,
            paced=self._policy.paced,
        )
        problem = report.diagnosis or (
            unusable(report.permissions, role, venue) if report.permissions else None
        )
        permissions = {role: report.permissions} if report.permissions else {}
        problem_role = role
        for other in record.roles:
            if other is role or problem is not None:
                continue
            other_credentials = await self.credentials(chat_id, connection_id, other)
            if other_credentials is None:
                return None
            second = await check_second_key(
                venue,
                other_credentials,
                other,
                endpoint=self._policy.endpoints.get(record.venue),
                sandbox=record.sandbox,
                clock=self._clock,
                paced=self._policy.paced,
            )
            report = replace(
                report, steps=(*report.steps, second.step), calls=(*report.calls, *second.calls)
            )
            if second.permissions is not None:
                permissions[other] = second.permissions
            problem, problem_role = second.problem, other
        if problem is not None:
            problem = self.scrubbed(problem)
            report = replace(
                report,
                status=problem.status,
                diagnosis=problem,
                steps=tuple(
                    replace(step, found=self._redactor.redact(step.found)) for step in report.steps
                ),
            )
        await self._activity.record(connection_id, *report.calls)
        seen = Observation(problem, problem_role, permissions)
        now = self._clock()
        await self._repo.record_health(
            chat_id,
            connection_id,
            keys_version=record.keys_version,
            decide=lambda current: decide(current, seen, self._policy.health, now, announce=False),
            now=now,
            next_permission_check_at=now + self._policy.permission_period if permissions else None,
        )
        updated = await self._repo.get(chat_id, connection_id)
        return (updated or record), report

    async def activity(
        self, chat_id: int, connection_id: int, limit: int
    ) -> list[ActivityEntry] | None:
        """The newest entries of a connection this chat owns (None if it owns no such one)."""
        if await self._repo.get(chat_id, connection_id) is None:
            return None
        return await self._activity.recent(connection_id, limit)

    async def revoke(self, chat_id: int, connection_id: int) -> ConnectionRecord | None:
        """Wipe the connection and its keys, and close its clients; None if the chat owns no such
        connection."""
        record = await self._repo.get(chat_id, connection_id)
        if record is None or not await self._repo.delete(chat_id, connection_id):
            return None
        if self._pool is not None:
            await self._pool.close_connection(connection_id)
        return record

    @staticmethod
    def venue_of(record: ConnectionRecord) -> Venue:
        return get_venue(record.venue)
