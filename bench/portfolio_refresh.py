"""/portfolio Refresh against slow exchanges: the reads run at once, so the whole refresh takes
about as long as the slowest single balance read, not the sum of them.

Ten connections over the eight local venue servers, each server holding every response for
300 ms. The figures: the slowest single balance read (one signed call through the bot's pooled
client), and the wall time of ``BalanceReader.refresh`` over all ten connections (every
balance read plus one ticker call per venue, valued and stored as snapshots), in steady state
(clients built and markets loaded, as in a running bot), with ccxt's per-client throttles
refilled between rounds as they are between taps a sweep period apart. Goal: refresh ≤ 1.3 ×
the slowest read. Prints one JSON object; exits 1 if the goal is missed.

    .venv/bin/python bench/portfolio_refresh.py
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from datetime import timedelta
from functools import partial
from pathlib import Path

from bot.clock import utc_now
from bot.exchanges.catalogue import get_venue
from bot.exchanges.connections import ConnectionPolicy, ConnectionService
from bot.exchanges.health import HealthPolicy
from bot.exchanges.pool import ClientPool
from bot.exchanges.prices import PriceFeed
from bot.redaction import SecretRedactor
from bot.rules.balance_sweep import BalanceReader
from bot.sandbox.exchanges import SERVERS, DemoPermissions, VenueServer
from storage.activity import ActivityLog
from storage.chats import ChatRepository
from storage.connections import ConnectionRecord, ConnectionRepository
from storage.credentials import Credentials, KeyRole
from storage.database import Database
from storage.vault import Vault, generate_master_key, parse_master_key

CHAT = 1
LATENCY_S = 0.3
GOAL_RATIO = 1.3
ROUNDS = 3
#: Between rounds: ccxt's per-client throttles refill (Kraken's rolling window is 10 s with a
#: balance read costing 3 of it), as they do between real Refresh taps a sweep period apart.
PAUSE_S = 11
#: Ten connections over the eight venues: two venues carry two accounts each.
LAYOUT = [*SERVERS, "binance", "kraken"]


async def main() -> dict[str, object]:
    async with AsyncExitStack() as stack:
        servers: dict[str, VenueServer] = {
            venue: await stack.enter_async_context(server()) for venue, server in SERVERS.items()
        }
        endpoints = {venue: server.base_url for venue, server in servers.items()}
        data = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        database = Database(f"sqlite+aiosqlite:///{data / 'bench.db'}")
        stack.push_async_callback(database.dispose)
        await database.migrate()
        vault = Vault(parse_master_key(generate_master_key()))
        repo = ConnectionRepository(database, vault)
        activity = ActivityLog(database)
        health = HealthPolicy(timedelta(minutes=1))
        pool = ClientPool(endpoints)
        stack.push_async_callback(pool.close)
        service = ConnectionService(
            repo, activity, ConnectionPolicy(20, endpoints, health), SecretRedactor(), pool=pool
        )
        reader = BalanceReader(
            service,
            repo,
            activity,
            pool,
            PriceFeed(pool),
            ChatRepository(database),
            health,
            permission_period=timedelta(hours=1),
        )
        records: list[ConnectionRecord] = []
        for index, venue_id in enumerate(LAYOUT):
            venue = get_venue(venue_id)
            key = servers[venue_id].issue_key(
                DemoPermissions(read=True, futures_trade=venue.requires_derivatives),
                account=f"account{index}",
                with_passphrase=venue.needs_passphrase,
            )
            records.append(
                await repo.add(
                    CHAT,
                    label=f"{venue_id}-{index}",
                    venue=venue_id,
                    sandbox=False,
                    role=KeyRole.READ,
                    credentials=Credentials(key.api_key, key.secret, key.passphrase),
                    permissions="read",
                    limit=20,
                    now=utc_now(),
                    next_permission_check_at=utc_now() + timedelta(hours=1),
                )
            )
        ids = [record.id for record in records]
        await reader.refresh(CHAT, ids)  # steady state: clients built, markets loaded
        for server in servers.values():
            server.set_delay(LATENCY_S)

        async def single(record: ConnectionRecord) -> float:
            client = await pool.client(
                record,
                record.reading_role,
                partial(service.credentials, CHAT, record.id, KeyRole.READ),
            )
            start = time.perf_counter()
            await client.fetch_balance()
            return time.perf_counter() - start

        singles = [await single(record) for record in records]
        refreshes = []
        for _ in range(ROUNDS):
            await asyncio.sleep(PAUSE_S)
            start = time.perf_counter()
            outcomes = await reader.refresh(CHAT, ids)
            refreshes.append(time.perf_counter() - start)
            assert all(o.seen.problem is None for o in outcomes.values()), outcomes
        for server in servers.values():
            server.set_delay(0)
    slowest = max(singles)
    refresh = statistics.median(refreshes)
    ratio = refresh / slowest
    return {
        "connections": len(records),
        "venues": len(SERVERS),
        "latency_per_response_s": LATENCY_S,
        "pause_between_rounds_s": PAUSE_S,
        "slowest_single_read_s": round(slowest, 3),
        "refresh_wall_s_median": round(refresh, 3),
        "refresh_wall_s_all": [round(r, 3) for r in refreshes],
        "ratio": round(ratio, 3),
        "goal_ratio": GOAL_RATIO,
        "pass": ratio <= GOAL_RATIO,
    }


if __name__ == "__main__":
    result = asyncio.run(main())
    print(json.dumps(result))
    sys.exit(0 if result["pass"] else 1)
