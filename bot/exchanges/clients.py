"""Build ccxt clients the one way Coinwarden builds them: async, rate-limited, never verbose."""

from __future__ import annotations

import copy
from typing import Any

import ccxt.async_support as ccxt

from bot.exchanges.call_log import CallLog
from bot.exchanges.catalogue import Venue
from bot.exchanges.endpoints import point_exchange_at
from storage.credentials import Credentials

DEFAULT_TIMEOUT_MS = 10_000


def new_client(
    venue: Venue,
    credentials: Credentials | None = None,
    *,
    endpoint: str | None = None,
    sandbox: bool = False,
    timeout_ms: int = DEFAULT_TIMEOUT_MS,
    calls: CallLog | None = None,
    paced: bool = True,
) -> ccxt.Exchange:
    """A fresh ccxt instance for ``venue``; the caller closes it (``await client.close()``).

    Sandbox mode is set before the endpoint rewrite, because it swaps the URL table.
    ``paced``: ccxt spaces the client's calls by the venue's documented rate
    (COINWARDEN_EXCHANGE_PACING; off only for local servers that are not the venue).
    """
    config: dict[str, Any] = {
        **copy.deepcopy(dict(venue.ccxt_config)),
        "enableRateLimit": paced,
        "timeout": timeout_ms,
        "options": copy.deepcopy(dict(venue.ccxt_options)),
    }
    if credentials is not None:
        config["apiKey"] = credentials.api_key
        config["secret"] = credentials.secret
        if credentials.passphrase:
            config["password"] = credentials.passphrase
    exchange: ccxt.Exchange = getattr(ccxt, venue.id)(config)
    exchange.verbose = False
    if sandbox:
        exchange.set_sandbox_mode(True)
    if endpoint:
        point_exchange_at(exchange, endpoint)
        if endpoint.startswith("http://"):
            # close() waits this long for TLS connections to shut down cleanly; plain HTTP
            # (a local server) has none, and every key check and pool eviction closes a client.
            exchange.timeout_on_exit = 0
    if calls is not None:
        calls.attach(exchange)
    return exchange
