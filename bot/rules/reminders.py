"""Rotation reminders: a key older than the rotation age gets one reminder, then one every
``every`` until it is rotated (rotating resets its age and its reminders)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from bot.clock import Clock, utc_now
from storage.connections import ConnectionRepository
from storage.outbox import Notice, NoticeKind


@dataclass(frozen=True)
class ReminderPolicy:
    after: timedelta = timedelta(days=90)
    every: timedelta = timedelta(days=30)


class RotationReminders:
    name = "reminders"

    def __init__(
        self,
        repository: ConnectionRepository,
        policy: ReminderPolicy,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self._repo = repository
        self._policy = policy
        self._clock = clock

    async def run(self) -> str:
        now = self._clock()
        due = await self._repo.due_for_reminder(
            now, older_than=now - self._policy.after, reminded_before=now - self._policy.every
        )
        queued = 0
        for record, role in due:
            slot = record.key(role)
            assert slot is not None
            notice = Notice(
                record.chat_id,
                NoticeKind.ROTATE_KEY,
                record.id,
                {"role": str(role), "added_at": slot.added_at.isoformat()},
            )
            if await self._repo.mark_reminded(record, role, now, notice):
                queued += 1
        return f"{queued} rotation reminders queued"
