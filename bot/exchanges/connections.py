"""Connecting exchange accounts: check a key, store it encrypted, list and revoke.

The Telegram layer calls this with plain values; every method is scoped by ``chat_id``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from bot.clock import Clock, utc_now
from bot.exchanges.catalogue import Venue, get_venue
from bot.exchanges.diagnosis import Diagnosis
from bot.exchanges.key_check import KeyAccepted, KeyCheck, KeyRejected, check_key
from bot.exchanges.key_diagnosis import KeyReport, diagnose_key
from bot.exchanges.pool import ClientPool
from bot.redaction import SecretRedactor
from storage.activity import ActivityEntry, ActivityLog
from storage.connections import ConnectionRecord, ConnectionRepository
from storage.credentials import Credentials, KeyRole


class UnconfirmedWithdrawals(Exception):
    """The venue does not say whether the key may withdraw and the user has not confirmed."""


@dataclass(frozen=True)
class ConnectionPolicy:
    max_per_chat: int
    endpoints: Mapping[str, str]


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
        )
        if isinstance(result, KeyRejected):
            return KeyRejected(self._scrubbed(result.diagnosis))
        return result

    def _scrubbed(self, diagnosis: Diagnosis) -> Diagnosis:
        """Exchanges sometimes echo the key in their error text; the user never sees it."""
        said = diagnosis.exchange_message
        return replace(diagnosis, exchange_message=self._redactor.redact(said) if said else None)

    async def has_room(self, chat_id: int) -> bool:
        return await self._repo.count(chat_id) < self._policy.max_per_chat

    async def label_taken(self, chat_id: int, label: str) -> bool:
        return await self._repo.find_by_label(chat_id, label) is not None

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
        record = await self._repo.add(
            chat_id,
            label=label,
            venue=venue.id,
            sandbox=sandbox,
            role=KeyRole.READ,
            credentials=credentials,
            permissions=accepted.permissions.to_flags(),
            limit=self._policy.max_per_chat,
            now=now,
        )
        for call in accepted.calls:
            await self._activity.record(record.id, call)
        await self._activity.record(
            record.id, ActivityEntry(at=now, action="connected", outcome="ok")
        )
        return record

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
        role = KeyRole.READ if record.read_key is not None else KeyRole.TRADE
        credentials = await self._repo.credentials(chat_id, connection_id, role)
        if credentials is None:
            return None
        self.remember_secrets(*credentials.secrets())
        report = await diagnose_key(
            self.venue_of(record),
            credentials,
            endpoint=self._policy.endpoints.get(record.venue),
            sandbox=record.sandbox,
            outbound_ips=outbound_ips,
            clock=self._clock,
        )
        if report.diagnosis is not None:
            report = replace(report, diagnosis=self._scrubbed(report.diagnosis))
            report = replace(
                report,
                steps=tuple(
                    replace(step, found=self._redactor.redact(step.found)) for step in report.steps
                ),
            )
        for call in report.calls:
            await self._activity.record(connection_id, call)
        detail = report.diagnosis.cause if report.diagnosis else None
        await self._repo.set_status(chat_id, connection_id, report.status, detail, self._clock())
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
