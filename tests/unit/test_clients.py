"""How every ccxt client is built: paced by default, and no TLS close wait where there is no TLS."""

from __future__ import annotations

import ccxt.async_support as ccxt
import pytest

from bot.exchanges.catalogue import VENUES
from bot.exchanges.clients import new_client


@pytest.mark.parametrize("venue_id", sorted(VENUES))
async def test_clients_are_paced_unless_told_otherwise(venue_id: str) -> None:
    venue = VENUES[venue_id]
    paced, unpaced = new_client(venue), new_client(venue, paced=False)
    try:
        assert paced.enableRateLimit is True
        assert unpaced.enableRateLimit is False
    finally:
        for client in (paced, unpaced):
            client.timeout_on_exit = 0  # nothing was opened: no connection to wait for
            await client.close()


async def test_only_a_plain_http_endpoint_skips_the_wait_for_tls_to_close() -> None:
    venue = VENUES["kraken"]
    real = new_client(venue)
    proxied = new_client(venue, endpoint="https://proxy.example")
    local = new_client(venue, endpoint="http://127.0.0.1:8081")
    try:
        assert real.timeout_on_exit == proxied.timeout_on_exit == ccxt.Exchange.timeout_on_exit
        assert ccxt.Exchange.timeout_on_exit > 0
        assert local.timeout_on_exit == 0
    finally:
        for client in (real, proxied, local):
            client.timeout_on_exit = 0  # nothing was opened: no connection to wait for
            await client.close()
