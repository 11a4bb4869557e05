"""Alert delivery at Telegram's limits: 1,000 alerts for 1,000 chats through the local Telegram
server with its 30 messages/s overall limit switched on, and injected 429s.

The alerts are queued in the outbox as the balance sweep queues them; the bot's own
``Notifier`` delivers them through a PTB bot with the ``AIORateLimiter`` the app uses. Counted
from what the server's chats received: delivered, lost (a chat with none), duplicated (a chat
with more than one). Goals: 0 lost, 0 duplicated, and a delivery rate ≥ 95 % of the limit
while sending is allowed (the pauses a 429's ``retry_after`` imposes are Telegram's, and are
reported apart). Prints one JSON object; exits 1 if a goal is missed.

    .venv/bin/python bench/alert_delivery.py
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from telegram.ext import AIORateLimiter, ExtBot

from bot.clock import utc_now
from bot.exchanges.connections import ConnectionPolicy, ConnectionService
from bot.exchanges.health import HealthPolicy
from bot.handlers.notices import Notifier
from bot.redaction import SecretRedactor
from bot.sandbox.telegram import TelegramServer
from storage.activity import ActivityLog
from storage.chats import ensure_chat
from storage.connections import ConnectionRepository
from storage.database import Database
from storage.outbox import Notice, NoticeKind, Outbox, enqueue
from storage.vault import Vault, generate_master_key, parse_master_key

TOKEN = "7700110022:BENCHbotTOKENzz9QwErTyUiOp"
CHATS = 1000
LIMIT_PER_SECOND = 30
INJECTED_429 = 3  # each asks the bot to wait 1 s
GOAL_SHARE_OF_LIMIT = 0.95


def payload(chat: int) -> dict[str, object]:
    return {
        "rule_id": chat,
        "connection_id": None,
        "metric": "amount",
        "asset": "BTC",
        "direction": "below",
        "threshold": "0.5",
        "value": "0.42",
        "quote": "USD",
        "label": None,
        "venue": None,
        "sandbox": False,
    }


async def main() -> dict[str, object]:
    async with TelegramServer(TOKEN, overall_limit_per_second=LIMIT_PER_SECOND) as telegram:
        with tempfile.TemporaryDirectory() as data:
            database = Database(f"sqlite+aiosqlite:///{Path(data) / 'bench.db'}")
            await database.migrate()
            now = utc_now()
            chats = [telegram.private_chat(100_000 + i) for i in range(CHATS)]
            async with database.begin() as conn:
                for chat in chats:
                    await ensure_chat(conn, True, chat.chat_id, now)
                    await enqueue(
                        conn,
                        Notice(chat.chat_id, NoticeKind.ALERT, None, payload(chat.chat_id)),
                        now,
                    )
            repository = ConnectionRepository(
                database, Vault(parse_master_key(generate_master_key()))
            )
            connections = ConnectionService(
                repository,
                ActivityLog(database),
                ConnectionPolicy(10, {}, HealthPolicy(timedelta(minutes=1))),
                SecretRedactor(),
            )
            notifier = Notifier(Outbox(database), connections, utc_now)
            bot = ExtBot(
                TOKEN,
                base_url=telegram.base_url,
                rate_limiter=AIORateLimiter(max_retries=3),
            )
            telegram.fail_next("sendMessage", error_code=429, retry_after=1, times=INJECTED_429)
            rounds = 0
            async with bot:
                start = time.perf_counter()
                while await Outbox(database).pending(1):
                    rounds += 1
                    await notifier.deliver(bot)
            wall = time.perf_counter() - start
            left = len(await Outbox(database).pending(CHATS))
            await database.dispose()
        received = [
            sum(1 for m in chat.messages if m.from_bot and "dropped below" in m.text)
            for chat in chats
        ]
    delivered = sum(1 for count in received if count >= 1)
    limit_hits = sum(1 for v in telegram.violations if "Too Many Requests" in v.description)
    paused = INJECTED_429 * 1.0  # the retry_after the injected 429s asked for
    sending = max(wall - paused, 1e-9)
    rate = delivered / sending
    result = {
        "chats": CHATS,
        "limit_per_second": LIMIT_PER_SECOND,
        "injected_429": INJECTED_429,
        "delivered": delivered,
        "lost": CHATS - delivered,
        "duplicated": sum(1 for count in received if count > 1),
        "left_pending": left,
        "delivery_rounds": rounds,
        "wall_s": round(wall, 2),
        "retry_after_pauses_s": paused,
        "rate_per_s_overall": round(delivered / wall, 2),
        "rate_per_s_while_allowed": round(rate, 2),
        "share_of_limit": round(rate / LIMIT_PER_SECOND, 3),
        "server_limit_hits": limit_hits,
    }
    result["pass"] = (
        result["lost"] == 0
        and result["duplicated"] == 0
        and rate >= GOAL_SHARE_OF_LIMIT * LIMIT_PER_SECOND
    )
    return result


if __name__ == "__main__":
    outcome = asyncio.run(main())
    print(json.dumps(outcome))
    sys.exit(0 if outcome["pass"] else 1)
