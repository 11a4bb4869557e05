"""Memory per connection of the client pool against one ccxt client per user loading its own
markets, through the local venue servers with realistic market counts.

The parent process runs the venue servers (their recorded market lists padded with synthetic
markets) and issues one key per connection; each way of building clients is measured in its own
child process, so neither pollutes the other's RSS. The parent prints one JSON object.

    .venv/bin/python bench/pool_memory.py            # 300 connections over binance, okx, kraken

See bench/README.md for how to read the result.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import dataclasses
import functools
import gc
import itertools
import json
import string
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import ccxt.async_support as ccxt

from bot.clock import utc_now
from bot.exchanges.call_log import CallLog
from bot.exchanges.catalogue import get_venue
from bot.exchanges.clients import new_client
from bot.exchanges.pool import ClientPool, MarketKey
from bot.sandbox.exchanges import SERVERS, BinanceServer, KrakenServer, OkxServer, VenueServer
from bot.sandbox.exchanges.binance import BinanceMarket
from bot.sandbox.exchanges.kraken import SpotPair, asset
from bot.sandbox.exchanges.okx import Instrument
from storage.connections import ConnectionRecord, ConnectionStatus
from storage.credentials import Credentials, KeyRole

GOAL_MB_PER_CONNECTION = 0.5
GOAL_RATIO = 10.0
#: Roughly the spot markets each venue lists (Binance ~2,500 incl. halted, OKX ~800, Kraken ~1,100).
DEFAULT_MARKETS = {"binance": 2500, "okx": 800, "kraken": 1100}
#: Where each venue's load_markets reads (what must be asked once per venue, not per user).
MARKETS_PATHS = {
    "binance": {"/api/v3/exchangeInfo"},
    "okx": {"/api/v5/public/instruments", "/api/v5/asset/currencies"},
    "kraken": {"/0/public/Assets", "/0/public/AssetPairs"},
}
#: Clients loading or calling at once: local servers answer fast, the CPU is the limit.
CONCURRENCY = 16
TIMEOUT_MS = 120_000  # a 2-core machine parsing thousands of markets is slow, not broken


# ----- synthetic markets (parent) -----------------------------------------------------------


def coin_codes() -> Iterator[str]:
    """QAAA, QAAB, ...: four letters, no clash with real tickers or Kraken's X/Z prefixes."""
    for letters in itertools.product(string.ascii_uppercase, repeat=3):
        yield "Q" + "".join(letters)


def padded(
    recorded: tuple[Any, ...], count: int, make: Callable[[str, str], Any]
) -> tuple[Any, ...]:
    """The recorded markets plus synthetic ones up to ``count``, over a few quote currencies."""
    quotes = itertools.cycle(("USDT", "USDC", "BTC"))
    extra = max(0, count - len(recorded))
    return recorded + tuple(
        make(base, quote)
        for base, quote in zip(itertools.islice(coin_codes(), extra), quotes, strict=False)
    )


def pad_binance(server: BinanceServer, count: int) -> None:
    template = next(m for m in server.markets if m.symbol == "BTC/USDT")

    def make(base: str, quote: str) -> BinanceMarket:
        info = {**template.info, "symbol": base + quote, "baseAsset": base, "quoteAsset": quote}
        return dataclasses.replace(
            template, symbol=f"{base}/{quote}", id=base + quote, base=base, quote=quote, info=info
        )

    server.markets = padded(server.markets, count, make)


def pad_okx(server: OkxServer, count: int) -> None:
    template = next(i for i in server.instruments if i.symbol == "BTC/USDT")

    def make(base: str, quote: str) -> Instrument:
        info = {**template.info, "instId": f"{base}-{quote}", "baseCcy": base, "quoteCcy": quote}
        return Instrument(f"{base}/{quote}", info)

    server.instruments = padded(server.instruments, count, make)


def pad_kraken(server: KrakenServer, count: int) -> None:
    template = next(p for p in server.pairs if p.symbol == "BTC/USDT")

    def make(base: str, quote: str) -> SpotPair:
        pair_id = asset(base).id + asset(quote).id
        info = {
            **template.info,
            "altname": base + quote,
            "wsname": f"{base}/{quote}",
            "base": asset(base).id,
            "quote": asset(quote).id,
        }
        return dataclasses.replace(
            template,
            symbol=f"{base}/{quote}",
            id=pair_id,
            altname=base + quote,
            base=base,
            quote=quote,
            info=info,
        )

    server.pairs = padded(server.pairs, count, make)


PADDERS: dict[str, Callable[[Any, int], None]] = {
    "binance": pad_binance,
    "okx": pad_okx,
    "kraken": pad_kraken,
}


# ----- measuring (child) ----------------------------------------------------------------------


@dataclass(frozen=True)
class Connection:
    id: int
    venue: str
    api_key: str
    secret: str
    passphrase: str | None

    def record(self) -> ConnectionRecord:
        now = utc_now()
        return ConnectionRecord(
            id=self.id,
            chat_id=self.id,
            label=f"bench {self.id}",
            venue=self.venue,
            sandbox=False,
            status=ConnectionStatus.CONNECTED,
            status_detail=None,
            status_at=now,
            read_key=None,
            trade_key=None,
            last_sync_at=None,
            last_ok_at=None,
            created_at=now,
        )

    def credentials(self) -> Credentials:
        return Credentials(self.api_key, self.secret, self.passphrase)


def rss_mb() -> float:
    """Resident memory after freeing what can be freed: garbage, and glibc's unused heap."""
    gc.collect()
    with contextlib.suppress(OSError):  # not glibc: RSS may then include freed heap
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


async def bounded(jobs: Iterable[Awaitable[Any]]) -> list[Any]:
    """Run ``jobs`` at most CONCURRENCY at a time."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def run(job: Awaitable[Any]) -> Any:
        async with gate:
            return await job

    return await asyncio.gather(*(run(job) for job in jobs))


async def warm_up(endpoints: dict[str, str]) -> None:
    """Import and initialise what the first request of each venue pulls in, before the baseline."""
    for venue, endpoint in endpoints.items():
        client = new_client(get_venue(venue), endpoint=endpoint)
        await client.fetch_time()
        await client.close()


async def read_balance(pool: ClientPool, connection: Connection) -> None:
    """What a sweep does with a connection: get its pooled client, read the balance."""

    async def unlock() -> Credentials:
        return connection.credentials()

    client = await pool.client(connection.record(), KeyRole.READ, unlock)
    await client.fetch_balance()


def by_file(grown: list[tracemalloc.StatisticDiff], connections: int) -> dict[str, Any]:
    """tracemalloc growth per connection, and the files holding most of it."""
    return {
        "per_connection_mb": round(sum(s.size_diff for s in grown) / 2**20 / connections, 3),
        "largest_mb_by_file": {
            s.traceback[0].filename.split("site-packages/")[-1]: round(s.size_diff / 2**20, 2)
            for s in grown[:6]
        },
    }


async def pooled(
    endpoints: dict[str, str], connections: list[Connection], *, traced: bool = False
) -> dict[str, Any]:
    """Shared markets first, then every connection's client and one balance each.

    ``traced``: report the per-connection part from tracemalloc instead of RSS, to see which
    Python code holds it (tracing inflates RSS, hence a run of its own).
    """
    base = rss_mb()
    pool = ClientPool(endpoints, timeout_ms=TIMEOUT_MS)
    await asyncio.gather(
        *(
            pool.markets.load(MarketKey(venue, url, sandbox=False))
            for venue, url in endpoints.items()
        )
    )
    with_markets = rss_mb()
    if traced:
        tracemalloc.start()
    before = tracemalloc.take_snapshot() if traced else None
    await bounded(read_balance(pool, connection) for connection in connections)
    after = rss_mb()
    grown = tracemalloc.take_snapshot().compare_to(before, "filename") if before else []
    tracemalloc.stop()  # does nothing when not tracing
    await pool.close()
    if traced:
        return by_file(grown, len(connections))
    return {
        "rss_base_mb": round(base, 1),
        "shared_markets_mb": round(with_markets - base, 1),
        "rss_after_mb": round(after, 1),
        "per_connection_mb": round((after - with_markets) / len(connections), 3),
    }


async def naive(endpoints: dict[str, str], connections: list[Connection]) -> dict[str, Any]:
    base = rss_mb()
    clients: list[ccxt.Exchange] = []

    async def use(connection: Connection) -> None:
        client = new_client(
            get_venue(connection.venue),
            connection.credentials(),
            endpoint=endpoints[connection.venue],
            timeout_ms=TIMEOUT_MS,
            calls=CallLog(utc_now),  # as pooled clients have
        )
        clients.append(client)
        await client.load_markets()
        await client.fetch_balance()

    try:
        await bounded(use(connection) for connection in connections)
        after = rss_mb()
    finally:
        await asyncio.gather(*(client.close() for client in clients))
    return {
        "rss_base_mb": round(base, 1),
        "rss_after_mb": round(after, 1),
        "per_connection_mb": round((after - base) / len(connections), 3),
    }


MODES: dict[str, Callable[[dict[str, str], list[Connection]], Awaitable[dict[str, Any]]]] = {
    "pooled": pooled,
    "naive": naive,
    "pooled-traced": functools.partial(pooled, traced=True),
}


async def child(mode: str) -> None:
    job = json.load(sys.stdin)
    endpoints: dict[str, str] = job["endpoints"]
    connections = [Connection(**each) for each in job["connections"]]
    await warm_up(endpoints)
    started = time.monotonic()
    result = await MODES[mode](endpoints, connections)
    result["connections"] = len(connections)
    result["seconds"] = round(time.monotonic() - started, 1)
    json.dump(result, sys.stdout)


# ----- orchestration (parent) -------------------------------------------------------------------


def markets_requests(servers: dict[str, VenueServer], since: dict[str, int]) -> dict[str, int]:
    return {
        venue: sum(1 for r in server.request_log[since[venue] :] if r.path in MARKETS_PATHS[venue])
        for venue, server in servers.items()
    }


async def run_child(
    mode: str, endpoints: dict[str, str], connections: list[Connection]
) -> dict[str, Any]:
    job = {
        "endpoints": endpoints,
        "connections": [dataclasses.asdict(connection) for connection in connections],
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--child",
        mode,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate(json.dumps(job).encode())
    if process.returncode != 0:
        raise RuntimeError(f"the {mode} run failed (exit {process.returncode})")
    result: dict[str, Any] = json.loads(out)
    return result


async def parent(
    connections: int, naive_connections: int, markets: dict[str, int]
) -> dict[str, Any]:
    started = time.monotonic()
    async with contextlib.AsyncExitStack() as stack:
        servers: dict[str, VenueServer] = {}
        for venue, count in markets.items():
            server = SERVERS[venue]()
            PADDERS[venue](server, count)
            servers[venue] = await stack.enter_async_context(server)
        venues = itertools.cycle(servers.items())
        issued = []
        for connection_id in range(1, connections + 1):
            venue, server = next(venues)
            key = server.issue_key(with_passphrase=get_venue(venue).needs_passphrase)
            issued.append(Connection(connection_id, venue, key.api_key, key.secret, key.passphrase))
        endpoints = {venue: server.base_url for venue, server in servers.items()}
        # Naive clients each hold their own markets, so their cost per connection does not depend
        # on how many there are: a sample with the same venue mix keeps the run small.
        measured = {"pooled": issued, "naive": issued[:naive_connections], "pooled-traced": issued}
        results: dict[str, Any] = {}
        for mode in MODES:  # one after the other: each has the CPU to itself
            since = {venue: len(server.request_log) for venue, server in servers.items()}
            results[mode] = await run_child(mode, endpoints, measured[mode])
            results[mode]["markets_requests"] = markets_requests(servers, since)

    per_pooled = results["pooled"]["per_connection_mb"]
    per_naive = results["naive"]["per_connection_mb"]
    ratio = per_naive / per_pooled if per_pooled > 0 else float("inf")
    passed = {
        "per_connection": per_pooled <= GOAL_MB_PER_CONNECTION,
        "ratio": ratio >= GOAL_RATIO,
    }
    return {
        "benchmark": "pool_memory",
        "markets": markets,
        "pooled": results["pooled"],
        "naive": results["naive"],
        "pooled_traced": results["pooled-traced"],
        "ratio": round(ratio, 1),
        "goals": {
            "per_connection_mb_at_most": GOAL_MB_PER_CONNECTION,
            "times_less_than_naive_at_least": GOAL_RATIO,
        },
        "passed": passed,
        "pass": all(passed.values()),
        "seconds": round(time.monotonic() - started, 1),
    }


def market_counts(text: str) -> dict[str, int]:
    """``binance=2500,okx=800`` → {"binance": 2500, "okx": 800}."""
    counts = {}
    for item in text.split(","):
        venue, _, count = item.partition("=")
        if venue not in PADDERS:
            raise argparse.ArgumentTypeError(f"no synthetic markets for {venue!r}")
        counts[venue] = int(count)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=300)
    parser.add_argument(
        "--naive-connections",
        type=int,
        default=60,
        help="how many of them the naive run builds (each costs ~19 MB with default markets)",
    )
    parser.add_argument(
        "--markets",
        type=market_counts,
        default=DEFAULT_MARKETS,
        help="markets per venue, e.g. binance=2500,okx=800,kraken=1100",
    )
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(child(args.child))
        return
    result = asyncio.run(parent(args.connections, args.naive_connections, args.markets))
    print(json.dumps(result, indent=2))
    sys.exit(0 if result["pass"] else 1)


if __name__ == "__main__":
    main()
