"""Live reads a trader asks for: open orders, recent fills, derivatives positions.

Each read uses the connection's reading key through the client pool and lands in the
connection's activity log like every other call. Where a venue wants a market for a read
(ccxt's ArgumentsRequired, e.g. Binance's trade history), the markets of the assets the
connection holds are asked one by one, the biggest holdings first, up to a few.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from typing import Any, TypeVar

import ccxt.async_support as ccxt

from bot.exchanges.balances import to_decimal
from bot.exchanges.catalogue import get_venue
from bot.exchanges.connections import ConnectionService
from bot.exchanges.diagnosis import Diagnosis, diagnose
from bot.exchanges.pool import ClientPool
from storage.activity import ActivityLog
from storage.connections import ConnectionRecord
from storage.credentials import Credentials
from storage.snapshots import SnapshotRepository

#: Markets asked one by one at most, where a venue needs a market per call.
MAX_MARKETS = 5
#: Quote assets tried when looking for a held asset's markets.
QUOTES = ("USDT", "USDC", "USD", "EUR", "BTC")

T = TypeVar("T")


class ReadFailed(Exception):
    """The exchange refused or failed the read; ``diagnosis`` says why, for the user."""

    def __init__(self, diagnosis: Diagnosis) -> None:
        super().__init__(diagnosis.cause)
        self.diagnosis = diagnosis


class NotOffered(Exception):
    """The venue has no such thing here (positions on a spot venue)."""


@dataclass(frozen=True)
class OpenOrder:
    symbol: str
    side: str
    type: str
    price: Decimal | None
    amount: Decimal
    filled: Decimal
    created: datetime | None


@dataclass(frozen=True)
class Fill:
    symbol: str
    side: str
    price: Decimal
    amount: Decimal
    fee: Decimal | None
    fee_currency: str | None
    at: datetime | None


@dataclass(frozen=True)
class Position:
    symbol: str
    side: str
    contracts: Decimal
    entry: Decimal | None
    mark: Decimal | None
    unrealised_pnl: Decimal | None
    liquidation: Decimal | None
    leverage: Decimal | None


@dataclass(frozen=True)
class Listing:
    """What a read found, and the markets it covered where it had to ask market by market."""

    items: tuple[Any, ...]
    markets: tuple[str, ...] = ()


def _time(ms: object) -> datetime | None:
    return datetime.fromtimestamp(int(ms) / 1000, UTC) if isinstance(ms, int | float) else None


def _number(value: object) -> Decimal:
    return to_decimal(value) or Decimal(0)


def parse_order(order: Mapping[str, Any]) -> OpenOrder:
    return OpenOrder(
        symbol=str(order.get("symbol")),
        side=str(order.get("side") or "?"),
        type=str(order.get("type") or "?"),
        price=to_decimal(order.get("price")),
        amount=_number(order.get("amount")),
        filled=_number(order.get("filled")),
        created=_time(order.get("timestamp")),
    )


def parse_fill(trade: Mapping[str, Any]) -> Fill:
    fee = trade.get("fee") or {}
    return Fill(
        symbol=str(trade.get("symbol")),
        side=str(trade.get("side") or "?"),
        price=_number(trade.get("price")),
        amount=_number(trade.get("amount")),
        fee=to_decimal(fee.get("cost")),
        fee_currency=fee.get("currency"),
        at=_time(trade.get("timestamp")),
    )


def parse_position(position: Mapping[str, Any]) -> Position:
    return Position(
        symbol=str(position.get("symbol")),
        side=str(position.get("side") or "?"),
        contracts=_number(position.get("contracts")),
        entry=to_decimal(position.get("entryPrice")),
        mark=to_decimal(position.get("markPrice")),
        unrealised_pnl=to_decimal(position.get("unrealizedPnl")),
        liquidation=to_decimal(position.get("liquidationPrice")),
        leverage=to_decimal(position.get("leverage")),
    )


def held_markets(client: ccxt.Exchange, assets: Sequence[str]) -> list[str]:
    """Markets of the held assets (biggest first) against a common quote, at most a few."""
    markets = client.markets or {}
    found: list[str] = []
    for asset in assets:
        for quote in QUOTES:
            symbol = f"{asset}/{quote}"
            if asset != quote and symbol in markets and symbol not in found:
                found.append(symbol)
                break
    return found[:MAX_MARKETS]


class AccountReader:
    def __init__(
        self,
        connections: ConnectionService,
        pool: ClientPool,
        activity: ActivityLog,
        snapshots: SnapshotRepository,
    ) -> None:
        self._connections = connections
        self._pool = pool
        self._activity = activity
        self._snapshots = snapshots

    async def open_orders(self, record: ConnectionRecord) -> Listing:
        return await self._read(record, lambda c, s: c.fetch_open_orders(s), parse_order)

    async def trades(self, record: ConnectionRecord, limit: int = 20) -> Listing:
        listing = await self._read(
            record, lambda c, s: c.fetch_my_trades(s, limit=limit), parse_fill
        )
        newest = sorted(listing.items, key=lambda f: f.at or datetime.min.replace(tzinfo=UTC))
        return Listing(tuple(reversed(newest))[:limit], listing.markets)

    async def positions(self, record: ConnectionRecord) -> Listing:
        if not get_venue(record.venue).requires_derivatives:
            raise NotOffered(record.venue)
        listing = await self._read(record, lambda c, s: c.fetch_positions(), parse_position)
        return Listing(tuple(p for p in listing.items if p.contracts), listing.markets)

    async def _read(
        self,
        record: ConnectionRecord,
        call: Callable[[ccxt.Exchange, str | None], Awaitable[list[Mapping[str, Any]]]],
        parse: Callable[[Mapping[str, Any]], T],
    ) -> Listing:
        try:
            client = await self._pool.client(
                record,
                record.reading_role,
                partial(self._credentials, record),
            )
            try:
                return Listing(tuple(parse(item) for item in await call(client, None)))
            except ccxt.ArgumentsRequired:
                markets = held_markets(client, await self._held(record))
                items: list[T] = []
                for symbol in markets:
                    items.extend(parse(item) for item in await call(client, symbol))
                return Listing(tuple(items), tuple(markets))
        except (ccxt.BaseError, ValueError) as exc:
            raise ReadFailed(self._connections.scrubbed(diagnose(exc))) from None
        finally:
            await self._activity.record(record.id, *self._pool.drain_calls(record.id))

    async def _held(self, record: ConnectionRecord) -> list[str]:
        latest = (await self._snapshots.latest(record.chat_id, [record.id])).get(record.id)
        if latest is None:
            return []
        ranked = sorted(latest.assets.items(), key=lambda item: -(item[1].value or 0))
        return [name for name, _ in ranked]

    async def _credentials(self, record: ConnectionRecord) -> Credentials:
        credentials = await self._connections.credentials(
            record.chat_id, record.id, record.reading_role
        )
        if credentials is None:
            raise ReadFailed(
                Diagnosis(
                    record.status,
                    "This connection has no key any more.",
                    "See /connections.",
                    final=True,
                )
            )
        return credentials
