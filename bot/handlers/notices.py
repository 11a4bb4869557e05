"""Deliver the outbox: the messages sweeps owe to chats, oldest first, each exactly once.

A notice is marked sent only after Telegram accepted it. When Telegram is unreachable the
notice stays pending and the round stops (so a chat never hears about changes out of order);
the next round, after the next sweep, tries again. A chat that blocked the bot or no longer
exists is dropped rather than retried forever. Alerts for one chat in one round are sent as one
message. Telegram's rate limits (30 messages/s overall, about 1/s per chat, ``retry_after``)
are kept by the bot's AIORateLimiter.
"""

from __future__ import annotations

import asyncio
import logging

from telegram import Bot, InlineKeyboardMarkup
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, TelegramError

from bot.clock import Clock
from bot.exchanges.connections import ConnectionService
from bot.handlers.rebalance import RebalanceDelivery
from bot.handlers.render import notice_message
from bot.handlers.render_alerts import alert_message
from bot.rules.throttle import VenueThrottle
from storage.outbox import NoticeKind, NoticeState, Outbox, PendingNotice

log = logging.getLogger(__name__)

#: Notices read from the outbox at a time (oldest first).
BATCH = 100
#: Messages per second over all chats: under Telegram's 30 with room for jitter, evenly spaced. The
#: AIORateLimiter alone lets a burst of 30 through and then 30/s, which a strict one-second
#: window answers with 429s (and a second of silence each).
SENDS_PER_SECOND = 29.0


#: Notices delivered by the rebalance flow: a trigger (→ a proposal) or a finished execution.
REBALANCE_KINDS = (NoticeKind.REBALANCE, NoticeKind.REBALANCE_RESULT)


class Notifier:
    def __init__(
        self,
        outbox: Outbox,
        connections: ConnectionService,
        clock: Clock,
        rebalance: RebalanceDelivery | None = None,
    ) -> None:
        self._outbox = outbox
        self._connections = connections
        self._clock = clock
        self._rebalance = rebalance
        self._delivering = asyncio.Lock()  # two sweeps finishing together send each notice once
        self._pace = VenueThrottle(1, SENDS_PER_SECOND)  # the venues' spacing, for Telegram

    async def deliver(self, bot: Bot) -> int:
        """Send everything pending, a batch at a time, until the outbox is empty or Telegram
        fails; returns how many messages were sent. A chat's alerts from one batch go out as
        one message."""
        sent = 0
        async with self._delivering:
            while pending := await self._outbox.pending(BATCH):
                outcome = await self._batch(bot, pending)
                if outcome is None:
                    break
                sent += outcome
        return sent

    async def _batch(self, bot: Bot, pending: list[PendingNotice]) -> int | None:
        """Deliver one batch; None when Telegram failed and the rest must wait."""
        sent = 0
        done: set[int] = set()
        for first in pending:
            if first.id in done:
                continue
            group = (
                [
                    p
                    for p in pending
                    if p.notice.kind is NoticeKind.ALERT
                    and p.notice.chat_id == first.notice.chat_id
                    and p.id not in done
                ]
                if first.notice.kind is NoticeKind.ALERT
                else [first]
            )
            done.update(p.id for p in group)
            if first.notice.kind in REBALANCE_KINDS:
                outcome = await self._rebalance_notice(bot, first)
                if outcome is None:
                    return None
                sent += outcome
                continue
            message = await self._message(group)
            if message is None:  # about something that no longer exists
                await self._mark(group, NoticeState.DROPPED)
                continue
            text, keyboard = message
            try:
                async with self._pace.slot():
                    await bot.send_message(
                        first.notice.chat_id,
                        text,
                        parse_mode=ParseMode.HTML,
                        reply_markup=keyboard,
                    )
            except (Forbidden, BadRequest) as error:
                # Blocked, kicked, or the chat is gone: it cannot be told any more.
                log.warning("notice %d dropped: %s", first.id, type(error).__name__)
                await self._mark(group, NoticeState.DROPPED)
                continue
            except TelegramError as error:
                log.warning("notice %d not delivered yet: %s", first.id, error)
                for each in group:
                    await self._outbox.failed_attempt(each.id)
                return None
            await self._mark(group, NoticeState.SENT)
            sent += 1
        return sent

    async def _rebalance_notice(self, bot: Bot, pending: PendingNotice) -> int | None:
        """A trigger becomes a proposal (exchange reads included), a finished execution its
        report; 1 when a message went out, 0 when dropped, None when Telegram failed."""
        notice = pending.notice
        if self._rebalance is None:
            await self._mark([pending], NoticeState.DROPPED)
            return 0
        try:
            async with self._pace.slot():
                if notice.kind is NoticeKind.REBALANCE:
                    await self._rebalance.trigger(bot, notice.chat_id, notice.payload["trigger"])
                    delivered = True
                else:
                    delivered = await self._rebalance.result(
                        bot, notice.chat_id, int(notice.payload["proposal_id"])
                    )
        except (Forbidden, BadRequest) as error:
            log.warning("notice %d dropped: %s", pending.id, type(error).__name__)
            await self._mark([pending], NoticeState.DROPPED)
            return 0
        except TelegramError as error:
            log.warning("notice %d not delivered yet: %s", pending.id, error)
            await self._outbox.failed_attempt(pending.id)
            return None
        await self._mark([pending], NoticeState.SENT if delivered else NoticeState.DROPPED)
        return 1 if delivered else 0

    async def _message(
        self, group: list[PendingNotice]
    ) -> tuple[str, InlineKeyboardMarkup | None] | None:
        first = group[0].notice
        if first.kind is NoticeKind.ALERT:
            return alert_message([p.notice.payload for p in group], group[0].created_at)
        record = (
            await self._connections.get(first.chat_id, first.connection_id)
            if first.connection_id is not None
            else None
        )
        return notice_message(first, record, group[0].created_at)

    async def _mark(self, group: list[PendingNotice], state: NoticeState) -> None:
        for each in group:
            await self._outbox.mark(each.id, state, self._clock())
