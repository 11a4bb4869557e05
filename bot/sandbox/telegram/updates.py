"""The update queue behind getUpdates: long polling and confirm-by-offset, as Telegram does it."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

# What Telegram sends when allowed_updates is empty or never set.
DEFAULT_UPDATE_TYPES = frozenset(
    {
        "message",
        "edited_message",
        "channel_post",
        "edited_channel_post",
        "business_connection",
        "business_message",
        "edited_business_message",
        "deleted_business_messages",
        "inline_query",
        "chosen_inline_result",
        "callback_query",
        "shipping_query",
        "pre_checkout_query",
        "purchased_paid_media",
        "poll",
        "poll_answer",
        "my_chat_member",
        "chat_join_request",
        "chat_boost",
        "removed_chat_boost",
    }
)


class Pulse:
    """Wakes everyone waiting for the next change; re-arms itself after each one."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def fire(self) -> None:
        """Wake the current waiters."""
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, seconds: float) -> None:
        """Return on the next change or after ``seconds``, whichever comes first."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout=max(seconds, 0.0))


@dataclass
class _QueuedUpdate:
    update_id: int
    kind: str
    chat_id: int
    payload: dict[str, Any]
    delivered: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"update_id": self.update_id, self.kind: self.payload}


class UpdateQueue:
    """Updates wait here until the bot confirms them with a higher ``offset``."""

    def __init__(self) -> None:
        self._updates: list[_QueuedUpdate] = []
        self._last_update_id = 0
        self._allowed = DEFAULT_UPDATE_TYPES
        self._arrived = Pulse()
        self._closed = False

    def push(self, kind: str, chat_id: int, payload: dict[str, Any]) -> int:
        """Queue an update (``kind`` is its field: "message", "callback_query"); wake pollers."""
        self._last_update_id += 1
        self._updates.append(_QueuedUpdate(self._last_update_id, kind, chat_id, payload))
        self._arrived.fire()
        return self._last_update_id

    def has_undelivered(self, chat_id: int) -> bool:
        """True while an update for this chat has not reached the bot yet."""
        return any(u.chat_id == chat_id and not u.delivered for u in self._updates)

    def drop_pending(self) -> None:
        """deleteWebhook(drop_pending_updates=True)."""
        self._updates.clear()

    @property
    def pending_count(self) -> int:
        """Updates not yet confirmed (getWebhookInfo.pending_update_count)."""
        return len(self._updates)

    async def get(
        self,
        offset: int | None,
        limit: int,
        wait_seconds: float,
        allowed_updates: list[str] | None,
    ) -> list[dict[str, Any]]:
        """getUpdates: confirm everything below ``offset``, then wait up to ``wait_seconds``
        for something to return. Answers at once when an update arrives or the server stops."""
        if allowed_updates is not None:  # remembered until changed, like Telegram
            self._allowed = frozenset(allowed_updates) or DEFAULT_UPDATE_TYPES
        if offset is not None:
            self._confirm(offset)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(wait_seconds, 0.0)
        while True:
            # Updates of types the bot asked not to get are dropped, as Telegram never sends them.
            self._updates = [u for u in self._updates if u.kind in self._allowed]
            batch = self._updates[: max(1, min(limit, 100))]
            remaining = deadline - loop.time()
            if batch or remaining <= 0 or self._closed:
                for update in batch:
                    update.delivered = True
                return [update.to_json() for update in batch]
            await self._arrived.wait(remaining)

    def close(self) -> None:
        """Answer every pending long poll now (server shutdown)."""
        self._closed = True
        self._arrived.fire()

    def _confirm(self, offset: int) -> None:
        if offset < 0:  # -N: keep only the last N updates
            self._updates = self._updates[offset:]
        else:
            self._updates = [u for u in self._updates if u.update_id >= offset]
