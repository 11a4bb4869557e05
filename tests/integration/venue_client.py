"""How the venue-server tests build a ccxt client: as the bot does, pointed at the server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import ccxt.async_support as ccxt
import pytest

from bot.clock import utc_now
from bot.exchanges.catalogue import Venue, get_venue
from bot.exchanges.clients import new_client
from bot.exchanges.key_check import KeyCheck, check_key
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


def client_of(
    server: VenueServer,
    key: DemoKey | Credentials,
    *,
    sandbox: bool = False,
    timeout_ms: int = 3000,
) -> AbstractAsyncContextManager[ccxt.Exchange]:
    """``venue_client`` for the venue ``server`` stands in for."""
    venue = get_venue(server.venue_id)
    return venue_client(venue, server, key, sandbox=sandbox, timeout_ms=timeout_ms)


async def key_check(
    server: VenueServer, key: DemoKey | Credentials, *, sandbox: bool = False
) -> KeyCheck:
    """The bot's own key check (rate-limited client, probe first), pointed at ``server``."""
    credentials = Credentials(key.api_key, key.secret, key.passphrase)
    venue = get_venue(server.venue_id)
    return await check_key(
        venue, credentials, endpoint=server.base_url, sandbox=sandbox, clock=utc_now
    )


async def assert_faults_surface_then_clear(
    venue: Venue,
    server: VenueServer,
    status: int,
    body: str | None,
    error: type[Exception],
    *,
    key: DemoKey | None = None,
) -> None:
    """Two injected failures raise exactly ``error`` on a balance read; the third call heals.

    A first balance read loads the markets and whatever account mode ccxt asks for, so each
    later read is one call: the one the fault answers."""
    async with venue_client(venue, server, key or server.issue_key()) as client:
        await client.fetch_balance()
        server.fail_next(times=2, status=status, body=body)
        for _ in range(2):
            with pytest.raises(error) as raised:
                await client.fetch_balance()
            assert type(raised.value) is error
        await client.fetch_balance()
    assert [entry.status for entry in server.request_log[-3:]] == [status, status, 200]


@dataclass(frozen=True)
class RawAnswer:
    """What the server sent back to a request made past ccxt."""

    status: int
    content_type: str
    headers: Mapping[str, str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


async def raw_request(
    server: VenueServer,
    request: str,
    *,
    headers: Mapping[str, str] | None = None,
    data: str | None = None,
) -> RawAnswer:
    """``request`` ("GET /path?query") sent as is, to check the wire details ccxt hides."""
    method, _, path = request.partition(" ")
    async with (
        aiohttp.ClientSession(server.base_url) as http,
        http.request(method, path, headers=headers, data=data) as response,
    ):
        text = await response.text()
        return RawAnswer(response.status, response.content_type, dict(response.headers), text)
