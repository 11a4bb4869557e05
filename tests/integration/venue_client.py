"""How the venue-server tests build a ccxt client: as the bot does, pointed at the server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import ccxt.async_support as ccxt
import pytest

from bot.exchanges.catalogue import Venue
from bot.exchanges.clients import new_client
from bot.sandbox.exchanges import DemoKey, VenueServer
from storage.credentials import Credentials


@asynccontextmanager
async def venue_client(
    venue: Venue,
    server: VenueServer,
    key: DemoKey | Credentials,
    *,
    sandbox: bool = False,
    timeout_ms: int = 3000,
) -> AsyncIterator[ccxt.Exchange]:
    """A production-built client, closed afterwards. Only two settings differ from the bot's:
    ccxt's throttle is off (the local server has no budget) and ``close()`` does not wait
    250 ms for TLS shutdowns (this is plain HTTP)."""
    client = new_client(
        venue,
        Credentials(key.api_key, key.secret, key.passphrase),
        endpoint=server.base_url,
        sandbox=sandbox,
        timeout_ms=timeout_ms,
    )
    client.enableRateLimit = False
    client.timeout_on_exit = 0
    try:
        yield client
    finally:
        await client.close()


async def assert_faults_surface_then_clear(
    venue: Venue, server: VenueServer, status: int, body: str | None, error: type[Exception]
) -> None:
    """Two injected failures raise exactly ``error`` on a balance read; the third call heals."""
    async with venue_client(venue, server, server.issue_key()) as client:
        await client.load_markets()
        server.fail_next(times=2, status=status, body=body)
        for _ in range(2):
            with pytest.raises(error) as raised:
                await client.fetch_balance()
            assert type(raised.value) is error
        await client.fetch_balance()
    assert [entry.status for entry in server.request_log[-3:]] == [status, status, 200]
