"""Deliver the outbox: the messages sweeps owe to chats, oldest first, each exactly once.

A notice is marked sent only after Telegram accepted it. When Telegram is unreachable the
notice stays pending and the round stops (so a chat never hears about changes out of order);
the next round, after the next sweep, tries again. A chat that blocked the bot or no longer
exists is dropped rather than retried forever.
"""

from __future__ import annotations

import asyncio
import logging

from telegram import Bot
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, TelegramError

from bot.clock import Clock
from bot.exchanges.connections import ConnectionService
from bot.handlers.render import notice_message
from storage.outbox import NoticeState, Outbox

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, outbox: Outbox, connections: ConnectionService, clock: Clock) -> None:
        self._outbox = outbox
        self._connections = connections
        self._clock = clock
        self._delivering = asyncio.Lock()  # two sweeps finishing together send each notice once

    async def deliver(self, bot: Bot) -> int:
        """Send what is pending; returns how many messages were sent."""
        sent = 0
        async with self._delivering:
            for pending in await self._outbox.pending():
                notice = pending.notice
                record = (
                    await self._connections.get(notice.chat_id, notice.connection_id)
                    if notice.connection_id is not None
                    else None
                )
                message = notice_message(notice, record, pending.created_at)
                if message is None:  # about something that no longer exists
                    await self._outbox.mark(pending.id, NoticeState.DROPPED, self._clock())
                    continue
                text, keyboard = message
                try:
                    await bot.send_message(
                        notice.chat_id, text, parse_mode=ParseMode.HTML, reply_markup=keyboard
                    )
                except (Forbidden, BadRequest) as error:
                    # Blocked, kicked, or the chat is gone: it cannot be told any more.
                    log.warning("notice %d dropped: %s", pending.id, type(error).__name__)
                    await self._outbox.mark(pending.id, NoticeState.DROPPED, self._clock())
                    continue
                except TelegramError as error:
                    log.warning("notice %d not delivered yet: %s", pending.id, error)
                    await self._outbox.failed_attempt(pending.id)
                    break
                await self._outbox.mark(pending.id, NoticeState.SENT, self._clock())
                sent += 1
        return sent
