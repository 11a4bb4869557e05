"""Record every HTTP call a ccxt client makes: method, path, status, latency, outcome.

Only the path is kept: query strings carry signatures and timestamps, headers carry keys, and
bodies carry account data, so none of them is ever recorded.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import ccxt.async_support as ccxt

from bot.clock import Clock
from storage.activity import ActivityEntry


class CallLog:
    """Collects the calls of one client; the owner writes them to the activity log."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.entries: list[ActivityEntry] = []

    def attach(self, exchange: ccxt.Exchange) -> None:
        """Wrap ``exchange.fetch`` (ccxt's single HTTP entry point) and its response hook."""
        status: list[int | None] = [None]
        original_hook = exchange.on_rest_response
        original_fetch = exchange.fetch

        def on_rest_response(code: int, reason: str, *args: Any) -> Any:
            status[0] = code
            return original_hook(code, reason, *args)

        async def fetch(
            url: str, method: str = "GET", headers: Any = None, body: Any = None
        ) -> Any:
            status[0] = None
            at, started = self._clock(), time.monotonic()
            endpoint = f"{method} {urlsplit(url).path}"
            try:
                response = await original_fetch(url, method, headers, body)
            except ccxt.BaseError as exc:
                self._add(at, started, endpoint, status[0], "error", type(exc).__name__)
                raise
            self._add(at, started, endpoint, status[0], "ok", None)
            return response

        exchange.on_rest_response = on_rest_response
        exchange.fetch = fetch

    def _add(
        self,
        at: datetime,
        started: float,
        endpoint: str,
        http_status: int | None,
        outcome: str,
        error_class: str | None,
    ) -> None:
        self.entries.append(
            ActivityEntry(
                at=at,
                action="exchange call",
                outcome=outcome,
                endpoint=endpoint,
                http_status=http_status,
                latency_ms=int((time.monotonic() - started) * 1000),
                error_class=error_class,
            )
        )
