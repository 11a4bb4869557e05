"""The local venue servers as the sweep benchmarks use them: started together in the
benchmark's own process, one demo key per connection (each on an account of its own, so every
signature is made and verified for real), and the requests they saw, classified by what the bot
asked for (per venue) and by whose key asked (per connection).

Shared by ``sweep_calls.py`` (calls per connection per sweep, one bot process) and
``workers.py`` (sweep workers sharing one PostgreSQL database).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from bot.exchanges.catalogue import get_venue
from bot.sandbox.exchanges import SERVERS, DemoKey, DemoPermissions, KeyRecord, VenueServer
from bot.sandbox.exchanges.base import Permission
from storage.connections import ConnectionRecord, ConnectionRepository
from storage.credentials import Credentials, KeyRole

#: What each venue is asked for, by path. Signed: the balance read, the account setup ccxt does
#: once per client (account mode), the permission probe. Public: tickers, market lists.
PATHS: dict[str, dict[str, set[str]]] = {
    "binance": {
        "balance": {"/api/v3/account"},
        "probe": {"/sapi/v1/account/apiRestrictions"},
        "ticker": {"/api/v3/ticker/price"},
        "markets": {"/api/v3/exchangeInfo"},
    },
    "binanceusdm": {
        "balance": {"/fapi/v3/account"},
        "probe": {"/sapi/v1/account/apiRestrictions"},
        "ticker": {"/fapi/v2/ticker/price"},
        "markets": {"/fapi/v1/exchangeInfo"},
    },
    "bitget": {
        "balance": {"/api/v2/spot/account/assets"},
        "setup": {"/api/v3/account/settings"},
        "probe": {"/api/v2/spot/account/info"},
        "ticker": {"/api/v2/spot/market/tickers"},
        "markets": {
            "/api/v2/spot/public/coins",
            "/api/v2/spot/public/symbols",
            "/api/v2/margin/currencies",
        },
    },
    "bybit": {
        "balance": {"/v5/account/wallet-balance"},
        # The probe asks user/query-api too; probes are not due in this run.
        "setup": {"/v5/user/query-api", "/v5/account/info"},
        "ticker": {"/v5/market/tickers"},
        "markets": {"/v5/market/instruments-info"},
    },
    "coinbase": {
        "balance": {"/api/v3/brokerage/accounts"},
        "probe": {"/api/v3/brokerage/key_permissions"},
        # The product list is both the market list and the tickers: markets are loaded before
        # the first sweep, and their hourly refresh is not due, so in a sweep it is the ticker.
        "ticker": {"/api/v3/brokerage/market/products"},
        "markets": {"/v2/currencies", "/v2/currencies/crypto", "/v2/exchange-rates"},
    },
    "kraken": {
        "balance": {"/0/private/BalanceEx"},
        "probe": {"/0/private/GetApiKeyInfo"},
        "ticker": {"/0/public/Ticker"},
        "markets": {"/0/public/Assets", "/0/public/AssetPairs"},
    },
    "kucoin": {
        "balance": {"/api/v1/accounts"},
        "setup": {"/api/v1/hf/accounts/opened", "/api/ua/v1/account/mode"},
        "probe": {"/api/v1/user/api-key"},
        "ticker": {"/api/v1/market/allTickers"},
        "markets": {"/api/v2/symbols"},
    },
    "okx": {
        "balance": {"/api/v5/account/balance"},
        "probe": {"/api/v5/account/config"},
        "ticker": {"/api/v5/market/tickers"},
        "markets": {"/api/v5/public/instruments"},
    },
}
SIGNED = ("balance", "setup", "probe")
#: The account of the n-th connection's key (one account per key).
ACCOUNT = "bench{}"
_ACCOUNT_NUMBER = re.compile(ACCOUNT.format(r"(\d+)"))


def classify(venue: str, path: str) -> str:
    return next((kind for kind, paths in PATHS[venue].items() if path in paths), "other")


@dataclass(frozen=True)
class Issued:
    venue: str
    api_key: str
    secret: str
    passphrase: str | None


@contextlib.asynccontextmanager
async def venue_servers() -> AsyncIterator[dict[str, VenueServer]]:
    async with contextlib.AsyncExitStack() as stack:
        yield {venue: await stack.enter_async_context(cls()) for venue, cls in SERVERS.items()}


def issue(servers: dict[str, VenueServer], connections: int) -> list[Issued]:
    """One key per connection, each on an account of its own, round-robin over the venues."""
    venues = list(servers)
    issued = []
    for n in range(connections):
        venue = get_venue(venues[n % len(venues)])
        key = servers[venue.id].issue_key(
            DemoPermissions(read=True, futures_trade=venue.requires_derivatives),
            account=ACCOUNT.format(n),
            with_passphrase=venue.needs_passphrase,
        )
        issued.append(Issued(venue.id, key.api_key, key.secret, key.passphrase))
    return issued


async def store_checked(
    repository: ConnectionRepository,
    chat_id: int,
    n: int,
    key: Issued,
    *,
    limit: int,
    now: datetime,
    probed_until: datetime,
) -> ConnectionRecord:
    """Store an issued key as /connect stores a checked read key: encrypted, due for the next
    sweep, its permissions just probed (next probe at ``probed_until``)."""
    return await repository.add(
        chat_id,
        label=f"{key.venue} {n}",
        venue=key.venue,
        sandbox=False,
        role=KeyRole.READ,
        credentials=Credentials(key.api_key, key.secret, key.passphrase),
        permissions="read,noip",
        limit=limit,
        now=now,
        next_permission_check_at=probed_until,
    )


def issue_same(servers: dict[str, VenueServer], issued: Sequence[Issued]) -> None:
    """The keys ``issue`` made, on the same accounts of another set of servers: another
    egress IP's view of the same venues."""
    for n, key in enumerate(issued):
        venue = get_venue(key.venue)
        servers[key.venue].issue_key(
            DemoPermissions(read=True, futures_trade=venue.requires_derivatives),
            account=ACCOUNT.format(n),
            material=DemoKey(key.api_key, key.secret, key.passphrase),
        )


@dataclass(frozen=True)
class SignedRequest:
    """A request a key signed and the venue accepted: when, whose (the n of ``issue``), what."""

    time: float
    connection: int
    venue: str
    kind: str


Authenticate = Callable[[web.Request, Permission], Coroutine[Any, Any, KeyRecord]]


def log_signed(servers: dict[str, VenueServer]) -> list[SignedRequest]:
    """Start recording, per key, every request the venues authenticate; returns the growing log.

    The servers' own request log names no key (it never holds anything secret); which account
    a key belongs to is not secret, and with one account per key it names the connection. The
    venue's own check runs unchanged: this only notes who passed it.
    """
    signed: list[SignedRequest] = []
    for venue, server in servers.items():
        server.authenticate = _noting(server.authenticate, venue, signed)  # type: ignore[method-assign,assignment]
    return signed


def _noting(authenticate: Authenticate, venue: str, signed: list[SignedRequest]) -> Authenticate:
    async def authenticate_and_note(request: web.Request, needs: Permission) -> KeyRecord:
        record = await authenticate(request, needs)
        account = _ACCOUNT_NUMBER.fullmatch(record.account.name)
        if account is not None:
            kind = classify(venue, request.path)
            signed.append(SignedRequest(time.time(), int(account.group(1)), venue, kind))
        return record

    return authenticate_and_note


def peak_rss_mb(pid: int | str = "self") -> float:
    """A process's peak RSS (``VmHWM``), while it runs; Linux only."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM in /proc/{pid}/status (Linux only)")


def compact(text: str) -> str:
    """Indented JSON with short lists of numbers (and lists of those) kept on one line."""
    number = r"-?[0-9][0-9.eE+-]*"
    text = re.sub(
        rf"\[\s+({number}(?:,\s+{number})*)\s+\]",
        lambda m: "[" + ", ".join(re.split(r",\s+", m.group(1))) + "]",
        text,
    )
    return re.sub(
        r"\[\s+(\[[^\[\]]*\](?:,\s+\[[^\[\]]*\])*)\s+\]",
        lambda m: "[" + ", ".join(re.split(r",\s+(?=\[)", m.group(1))) + "]",
        text,
    )
