"""Long-lived ccxt clients: one per (connection, key role), markets loaded once per venue.

A ccxt instance alone costs a few hundred KB; the markets it loads cost megabytes (thousands of
parsed markets). Loading them per user would make memory grow with users times markets, so a
``MarketCache`` loads them once per (venue, endpoint, sandbox) with a keyless client and every
pooled client shares them through ccxt's ``set_markets_from_exchange``. Keyless on purpose: some
venues fold account data into what ``load_markets`` builds (Coinbase's fee tier of the key), and
one user's account must never show in another user's client.

Nothing here runs on its own timer: the caller's periodic sweep calls
:meth:`MarketCache.refresh_due`, as for every other scheduled job (see DESIGN, "Scheduling"). Each
process (each sweep worker, once scaled out) holds its own pool.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import ccxt.async_support as ccxt

from bot.clock import Clock, utc_now
from bot.exchanges.call_log import CallLog
from bot.exchanges.catalogue import get_venue
from bot.exchanges.clients import DEFAULT_TIMEOUT_MS, new_client
from storage.activity import ActivityEntry
from storage.connections import ConnectionRecord
from storage.credentials import Credentials, KeyRole

log = logging.getLogger(__name__)

#: Listings change a few times a day; an hour keeps new and delisted markets close enough.
DEFAULT_MARKETS_MAX_AGE = timedelta(hours=1)

#: Decrypts a connection's key; awaited only when the pool builds that client.
CredentialsLoader = Callable[[], Awaitable[Credentials]]


@dataclass(frozen=True)
class MarketKey:
    """What makes two clients' markets the same: venue, where it is reached, testnet or not."""

    venue_id: str
    endpoint: str | None
    sandbox: bool


@dataclass
class _LoadedMarkets:
    source: ccxt.Exchange  # the keyless client that loaded them (closed: it only holds them)
    loaded_at: datetime
    sharers: set[ccxt.Exchange] = field(default_factory=set)  # re-pointed on refresh


def _point_at(client: ccxt.Exchange, source: ccxt.Exchange) -> None:
    """Make ``client`` use ``source``'s markets, currencies and the venue's helper indexes."""
    client.set_markets_from_exchange(source)
    # load_markets() answers from a finished task once it has run; drop it so the next call
    # returns these markets rather than the ones that task resolved to.
    client.markets_loading = None


class MarketCache:
    """Markets per (venue, endpoint, sandbox): loaded once, shared, refreshed when due."""

    def __init__(
        self,
        *,
        max_age: timedelta = DEFAULT_MARKETS_MAX_AGE,
        clock: Clock = utc_now,
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
        paced: bool = True,
    ) -> None:
        self.max_age = max_age
        self._clock = clock
        self._timeout_ms = timeout_ms
        self._paced = paced
        self._loaded: dict[MarketKey, _LoadedMarkets] = {}
        self._loading: dict[MarketKey, asyncio.Task[None]] = {}
        self._retiring: set[asyncio.Task[None]] = set()
        self._closed = False

    async def load(self, key: MarketKey) -> None:
        """Have ``key``'s markets ready; concurrent first calls share one load."""
        if key not in self._loaded:
            await self._load_once(key)

    def share(self, key: MarketKey, client: ccxt.Exchange) -> None:
        """Give ``client`` the loaded markets of ``key`` and keep it current on refresh."""
        loaded = self._loaded[key]
        _point_at(client, loaded.source)
        loaded.sharers.add(client)

    def release(self, key: MarketKey, client: ccxt.Exchange) -> None:
        """Stop re-pointing ``client`` (it is being closed)."""
        loaded = self._loaded.get(key)
        if loaded is not None:
            loaded.sharers.discard(client)

    async def refresh_due(self, now: datetime) -> list[MarketKey]:
        """Reload every market list older than ``max_age``; return the keys reloaded.

        Meant for the caller's periodic sweep. A venue that fails keeps its current markets and
        stays due, so the next sweep tries again.
        """
        due = [
            key for key, loaded in self._loaded.items() if now - loaded.loaded_at >= self.max_age
        ]
        outcomes = await asyncio.gather(*(self._refresh(key) for key in due))
        return [key for key, refreshed in zip(due, outcomes, strict=True) if refreshed]

    async def _refresh(self, key: MarketKey) -> bool:
        try:
            await self._load_once(key)
        except ccxt.BaseError as exc:
            # The class only: the message carries the URL, and an endpoint may embed a login.
            log.warning(
                "markets of %s%s not refreshed (%s); kept the current ones",
                key.venue_id,
                " (testnet)" if key.sandbox else "",
                type(exc).__name__,
            )
            return False
        return True

    async def _load_once(self, key: MarketKey) -> None:
        if self._closed:
            raise RuntimeError("the market cache is closed")
        task = self._loading.get(key)
        if task is None:
            task = asyncio.create_task(self._fetch(key), name=f"markets {key.venue_id}")
            self._loading[key] = task
        # Shielded: a caller that gives up must not cancel the load others are waiting for.
        await asyncio.shield(task)

    async def _fetch(self, key: MarketKey) -> None:
        """Load with a fresh keyless client, then swap the markets in for every sharer at once."""
        try:
            loader = new_client(
                get_venue(key.venue_id),
                endpoint=key.endpoint,
                sandbox=key.sandbox,
                timeout_ms=self._timeout_ms,
                paced=self._paced,
            )
            try:
                await loader.load_markets()
            except BaseException:
                await loader.close()
                raise
            previous = self._loaded.get(key)
            sharers = previous.sharers if previous is not None else set()
            self._loaded[key] = _LoadedMarkets(loader, self._clock(), sharers)
            for client in sharers:
                _point_at(client, loader)
        finally:
            del self._loading[key]
        # The markets outlive the loader's connection; nobody waits for its 250 ms close.
        closing = asyncio.create_task(loader.close())
        self._retiring.add(closing)
        closing.add_done_callback(self._retiring.discard)

    async def close(self) -> None:
        """Stop loads in flight and finish closing loaders; no client may share markets after."""
        self._closed = True
        loading = list(self._loading.values())
        for task in loading:
            task.cancel()
        await asyncio.gather(*loading, *self._retiring, return_exceptions=True)
        self._loaded.clear()


@dataclass
class _Pooled:
    client: ccxt.Exchange
    calls: CallLog
    markets: MarketKey
    set_up: bool = False  # the venue's account_setup has run


class ClientPool:
    """One ccxt client per (connection id, key role), built on first use and kept until closed.

    Close a connection's clients when its keys change or go (:meth:`close_connection`) and all
    of them at shutdown (:meth:`close`). Every HTTP call a client makes is recorded; the caller
    writes :meth:`drain_calls` to the connection's activity log after using it (undrained calls
    accumulate in memory).
    """

    def __init__(
        self,
        endpoints: Mapping[str, str],
        *,
        markets: MarketCache | None = None,
        clock: Clock = utc_now,
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
        paced: bool = True,
    ) -> None:
        self.markets = markets or MarketCache(clock=clock, timeout_ms=timeout_ms, paced=paced)
        self._endpoints = endpoints
        self._clock = clock
        self._timeout_ms = timeout_ms
        self._paced = paced
        self._clients: dict[tuple[int, KeyRole], _Pooled] = {}
        self._public: dict[MarketKey, ccxt.Exchange] = {}
        self._building: dict[tuple[int, KeyRole], asyncio.Task[_Pooled]] = {}
        self._tls: ssl.SSLContext | None = None
        self._closed = False

    def __len__(self) -> int:
        """How many clients are open."""
        return len(self._clients)

    async def client(
        self, connection: ConnectionRecord, role: KeyRole, credentials: CredentialsLoader
    ) -> ccxt.Exchange:
        """The connection's client for ``role``; built (and its markets shared) on first use.

        Concurrent first calls for the same (connection, role) get the same instance.
        """
        slot = (connection.id, role)
        pooled = self._clients.get(slot)
        if pooled is None:
            if self._closed:
                raise RuntimeError("the client pool is closed")
            task = self._building.get(slot)
            if task is None:
                task = asyncio.create_task(self._build(slot, connection, credentials))
                self._building[slot] = task
            return (await asyncio.shield(task)).client
        if not pooled.set_up:  # it failed while building: try again
            await self._set_up(pooled)
        return pooled.client

    async def _build(
        self, slot: tuple[int, KeyRole], connection: ConnectionRecord, loader: CredentialsLoader
    ) -> _Pooled:
        try:
            key = MarketKey(
                connection.venue, self._endpoints.get(connection.venue), connection.sandbox
            )
            await self.markets.load(key)  # first: a venue that is down costs no decryption
            calls = CallLog(self._clock)
            client = new_client(
                get_venue(connection.venue),
                await loader(),
                endpoint=key.endpoint,
                sandbox=key.sandbox,
                timeout_ms=self._timeout_ms,
                calls=calls,
                paced=self._paced,
            )
            self._share_tls(client)
            self.markets.share(key, client)
            pooled = _Pooled(client, calls, key)
            try:
                await self._set_up(pooled)
            finally:
                # Kept even if the setup failed: its calls get logged and the next use retries.
                self._clients[slot] = pooled
            return pooled
        finally:
            del self._building[slot]

    async def public(self, venue_id: str, sandbox: bool) -> ccxt.Exchange:
        """A keyless client of the venue for public data (tickers), one per market key, with
        the shared markets; no account data can ever reach it."""
        key = MarketKey(venue_id, self._endpoints.get(venue_id), sandbox)
        client = self._public.get(key)
        if client is not None:
            return client
        if self._closed:
            raise RuntimeError("the client pool is closed")
        await self.markets.load(key)
        client = self._public.get(key)  # built by a concurrent first call meanwhile
        if client is None:
            client = new_client(
                get_venue(venue_id),
                endpoint=key.endpoint,
                sandbox=sandbox,
                timeout_ms=self._timeout_ms,
                paced=self._paced,
            )
            self._share_tls(client)
            self.markets.share(key, client)
            self._public[key] = client
        return client

    def _share_tls(self, client: ccxt.Exchange) -> None:
        """One TLS context for all clients, built as ccxt builds its own on first request.

        Each ccxt client would otherwise load the CA bundle into a context of its own: about
        0.7 MB of OpenSSL memory per client, more than the rest of the client.
        """
        if self._tls is None:
            self._tls = ssl.create_default_context(cafile=client.cafile)
        client.ssl_context = self._tls

    @staticmethod
    async def _set_up(pooled: _Pooled) -> None:
        """Run the venue's account setup; its calls are recorded like any other."""
        setup = get_venue(pooled.client.id).account_setup
        if setup is not None:
            await setup(pooled.client)
        pooled.set_up = True

    def drain_calls(self, connection_id: int) -> list[ActivityEntry]:
        """The calls this connection's clients made since the last drain, oldest first."""
        drained: list[ActivityEntry] = []
        for role in KeyRole:
            pooled = self._clients.get((connection_id, role))
            if pooled is not None:
                drained.extend(pooled.calls.entries)
                pooled.calls.entries.clear()
        return sorted(drained, key=lambda entry: entry.at)

    async def close_connection(self, connection_id: int) -> None:
        """Close the connection's clients (revoke, rotate); the next use builds new ones.

        Builds in flight finish first, so no client escapes; a call still running on a closed
        client fails with a ccxt error.
        """
        slots = [(connection_id, role) for role in KeyRole]
        building = [self._building[slot] for slot in slots if slot in self._building]
        if building:
            await asyncio.wait(building)
        await self._close(self._clients.pop(slot) for slot in slots if slot in self._clients)

    async def close(self) -> None:
        """Close every client and the market loaders (shutdown); idempotent."""
        self._closed = True
        building = list(self._building.values())
        for task in building:
            task.cancel()
        await asyncio.gather(*building, return_exceptions=True)
        clients = list(self._clients.values())
        self._clients.clear()
        await self._close(clients)
        public = list(self._public.items())
        self._public.clear()
        for key, client in public:
            self.markets.release(key, client)
        await asyncio.gather(*(client.close() for _, client in public), return_exceptions=True)
        await self.markets.close()

    async def _close(self, pooled: Iterable[_Pooled]) -> None:
        """Close concurrently: ccxt's close() waits 250 ms for TLS shutdowns, each."""
        closing = list(pooled)
        for each in closing:
            self.markets.release(each.markets, each.client)
        outcomes = await asyncio.gather(
            *(each.client.close() for each in closing), return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                log.warning("closing an exchange client failed: %s", type(outcome).__name__)
