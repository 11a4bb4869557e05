"""From a target to a dry-run proposal: read, check, plan, price against the book, store.

A proposal is built from a fresh balance read of every connection in scope (one signed call
each, with the venues' tickers alongside), never from a failed, partial or stale read; a holding
that dropped suddenly since the last read is read a second time before anything is planned (a
known rebalancer sold everything after 502s returned empty balances). The plan is then priced
against each traded market's order book (one public depth call per market, at proposal time
only) and stored with its legs' client order ids. A trigger never trades: it proposes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import ccxt.async_support as ccxt

from bot.clock import Clock, utc_now
from bot.exchanges.book import BookLevel, OrderBook
from bot.exchanges.orders import ORDER_DIALECTS, client_order_id, dialect_of
from bot.exchanges.pool import ClientPool
from bot.rules.balance_sweep import BalanceReader, source_of
from bot.rules.rebalance.drift import Trigger, sudden_drop
from bot.rules.rebalance.planner import (
    Account,
    MarketRule,
    RebalancePlan,
    plan_rebalance,
)
from bot.rules.trading import TradingBlock, trading_block
from storage.chats import ChatRepository
from storage.connections import ConnectionRecord, ConnectionRepository
from storage.proposals import (
    PlannedLeg,
    Proposal,
    ProposalRepository,
    ProposalStatus,
    new_token,
)
from storage.snapshots import Snapshot, SnapshotRepository
from storage.targets import Target, TargetRepository

log = logging.getLogger(__name__)

#: Order book levels asked for per traded market, and how often a failed read is tried.
BOOK_DEPTH = 20
BOOK_TRIES = 2


class NoProposal(Exception):
    """Nothing to propose; ``reason`` says why, in the trader's words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Scoped:
    """The connections a target covers, and how each may take part."""

    target: Target
    records: tuple[ConnectionRecord, ...]
    blocks: Mapping[int, TradingBlock | None]


@dataclass(frozen=True)
class PlanResult:
    """A plan with what it was made from: the reads, the labels and the chat's currency."""

    plan: RebalancePlan
    snapshots: Mapping[int, Snapshot]
    records: Mapping[int, ConnectionRecord]
    quote: str


def rebalancing_venue(venue_id: str) -> bool:
    """Spot venues whose orders rebalancing knows how to place and find again."""
    return venue_id in ORDER_DIALECTS


def block_reason(block: TradingBlock) -> str:
    return {
        TradingBlock.PAUSED: "trading is paused (/resume)",
        TradingBlock.NOT_CONNECTED: "the connection is not Connected (/check)",
        TradingBlock.NO_TRADE_KEY: "no trade key (add one from the connection's card)",
    }[block]


def market_rule(market: Mapping[str, Any], last: Decimal) -> MarketRule:
    """A ccxt market's filters and taker fee (amount and price precision are steps: every venue
    here uses ccxt's TICK_SIZE mode)."""
    limits = market.get("limits") or {}
    precision = market.get("precision") or {}

    def number(value: object, default: str) -> Decimal:
        return Decimal(str(value)) if value not in (None, "") else Decimal(default)

    return MarketRule(
        symbol=market["symbol"],
        base=market["base"],
        quote=market["quote"],
        amount_step=number(precision.get("amount"), "1e-8"),
        price_tick=number(precision.get("price"), "1e-8"),
        min_amount=number((limits.get("amount") or {}).get("min"), "0"),
        min_cost=number((limits.get("cost") or {}).get("min"), "0"),
        taker_fee=number(market.get("taker"), "0.001"),
        last=last,
    )


def plan_summary(result: PlanResult, scope: str) -> dict[str, Any]:
    """What the proposal message shows besides its legs, as stored JSON."""
    plan = result.plan

    def percents(values: Mapping[str, Decimal]) -> dict[str, str]:
        return {asset: format(share, "f") for asset, share in values.items()}

    return {
        "scope": scope,
        "before": percents(plan.before),
        "after": percents(plan.after),
        "target": percents(plan.target),
        "traded_value": format(plan.traded_value, "f"),
        "fees": format(plan.fees, "f"),
        "reached": plan.reached,
        "note": plan.note,
        "left_out": [
            {
                "label": (
                    result.records[item.connection_id].label
                    if item.connection_id is not None and item.connection_id in result.records
                    else None
                ),
                "subject": item.subject,
                "reason": str(item.reason),
                "detail": item.detail,
            }
            for item in plan.left_out
        ],
    }


class RebalancePlanner:
    """Reads, prices and plans a target's scope; shared by proposals and the approval's
    re-check, so both decide the same way."""

    def __init__(
        self,
        *,
        connections: ConnectionRepository,
        chats: ChatRepository,
        snapshots: SnapshotRepository,
        reader: BalanceReader,
        pool: ClientPool,
    ) -> None:
        self._connections = connections
        self._chats = chats
        self._snapshots = snapshots
        self._reader = reader
        self._pool = pool

    async def scope(self, target: Target) -> Scoped:
        """The target's connections (spot venues rebalancing trades on) and their gates."""
        chat_id = target.chat_id
        records = [
            record
            for record in await self._connections.list_for_chat(chat_id)
            if rebalancing_venue(record.venue)
            and (target.connection_id is None or record.id == target.connection_id)
        ]
        if not records:
            raise NoProposal(
                "No spot connection in this target's scope can trade here. "
                "Rebalancing works on Binance, Kraken, Coinbase, OKX, Bybit, KuCoin and Bitget."
            )
        pause = await self._chats.pause_state(chat_id)
        blocks = {record.id: trading_block(record, pause) for record in records}
        if target.settings.dry_run:
            # Nothing will trade: only a connection without a usable read is left out.
            blocks = {
                i: block if block is TradingBlock.NOT_CONNECTED else None
                for i, block in blocks.items()
            }
        if all(blocks.values()):
            first = next(block for block in blocks.values() if block is not None)
            raise NoProposal(f"Nothing can trade: {block_reason(first)}.")
        return Scoped(target, tuple(records), blocks)

    async def plan(self, scoped: Scoped, *, with_books: bool = True) -> PlanResult:
        """A fresh read of every tradable connection, a confirmation read of any sudden drop,
        then the plan (priced against the books when ``with_books``)."""
        chat_id = scoped.target.chat_id
        quote = (await self._chats.settings(chat_id)).quote
        tradable = [r.id for r in scoped.records if scoped.blocks[r.id] is None]
        previous = await self._snapshots.latest(chat_id, tradable)
        fresh = await self._read(chat_id, tradable)
        dropped = [
            i
            for i in tradable
            if i in previous and sudden_drop(_amounts(previous[i]), _amounts(fresh[i]))
        ]
        if dropped:
            again = await self._read(chat_id, dropped)
            for i in dropped:
                if sudden_drop(_amounts(fresh[i]), _amounts(again[i])) or sudden_drop(
                    _amounts(again[i]), _amounts(fresh[i])
                ):
                    label = next(r.label for r in scoped.records if r.id == i)
                    raise NoProposal(
                        f"{label}: two balance reads in a row disagree, so nothing is planned "
                        "from them. Try again in a minute."
                    )
                fresh[i] = again[i]
        held = await self._snapshots.latest(
            chat_id, [r.id for r in scoped.records if scoped.blocks[r.id] is not None]
        )
        reads = {**held, **fresh}
        weights = scoped.target.settings.weights
        prices = self._prices(reads.values(), weights, quote, scoped.records)
        accounts = [
            await self._account(record, reads.get(record.id), scoped.blocks[record.id])
            for record in scoped.records
        ]
        plan = plan_rebalance(accounts, weights, prices)
        if with_books and plan.legs:
            books = await self._books(scoped.records, plan)
            plan = plan_rebalance(accounts, weights, prices, books=books)
        records = {record.id: record for record in scoped.records}
        return PlanResult(plan, reads, records, quote)

    def _prices(
        self,
        reads: Iterable[Snapshot],
        weights: Mapping[str, Decimal],
        quote: str,
        records: Sequence[ConnectionRecord],
    ) -> dict[str, Decimal]:
        """One price per asset in the chat's currency: as the reads valued what is held, and
        from the venues' tickers for a target asset nobody holds yet (the planner values what
        is still missing through its markets, or leaves it out as unpriced)."""
        prices: dict[str, Decimal] = {}
        for read in reads:
            for asset, held in read.assets.items():
                if held.price is not None and asset not in prices:
                    prices[asset] = held.price
        view = self._reader.prices.view()
        for asset in weights:
            for record in records if asset not in prices else ():
                rate = view.rate(asset, quote, source_of(record))
                if rate is not None:
                    prices[asset] = rate.price
                    break
        return prices

    async def _read(self, chat_id: int, connection_ids: Sequence[int]) -> dict[int, Snapshot]:
        outcomes = await self._reader.refresh(chat_id, connection_ids)
        reads: dict[int, Snapshot] = {}
        for connection_id in connection_ids:
            outcome = outcomes.get(connection_id)
            if outcome is None or outcome.snapshot is None or outcome.seen.problem is not None:
                cause = (
                    outcome.seen.problem.cause
                    if outcome is not None and outcome.seen.problem is not None
                    else "the connection is gone"
                )
                raise NoProposal(f"The balance read failed ({cause}); nothing is planned from it.")
            reads[connection_id] = outcome.snapshot
        return reads

    async def _account(
        self, record: ConnectionRecord, read: Snapshot | None, block: TradingBlock | None
    ) -> Account:
        client = await self._pool.public(record.venue, record.sandbox)
        lasts = self._reader.prices.view().prices
        source_prices = next(
            (
                prices
                for source, prices in lasts.items()
                if source.venue_id == record.venue and source.sandbox == record.sandbox
            ),
            {},
        )
        markets = {}
        for symbol, market in (client.markets or {}).items():
            if not market.get("spot") or not market.get("active", True):
                continue
            last = source_prices.get((market["base"], market["quote"]))
            if last:
                markets[symbol] = market_rule(market, last)
        holdings = (
            {asset: held.free for asset, held in read.assets.items() if held.free > 0}
            if read is not None
            else {}
        )
        return Account(
            connection_id=record.id,
            label=record.label,
            holdings=holdings,
            markets=markets,
            blocked=None if block is None else block_reason(block),
        )

    async def _books(
        self, records: Sequence[ConnectionRecord], plan: RebalancePlan
    ) -> dict[tuple[int, str], OrderBook]:
        """One public depth call per traded market (a second try if it fails). A book that
        cannot be read stops the plan: priced without it, a re-check would compare prices
        that were never comparable."""
        by_id = {record.id: record for record in records}
        books: dict[tuple[int, str], OrderBook] = {}
        traded = dict.fromkeys((leg.connection_id, leg.symbol) for leg in plan.legs)
        for connection_id, symbol in traded:
            record = by_id[connection_id]
            client = await self._pool.public(record.venue, record.sandbox)
            raw = None
            for _ in range(BOOK_TRIES):
                try:
                    raw = await client.fetch_order_book(symbol, BOOK_DEPTH)
                    break
                except ccxt.BaseError as exc:
                    failure = type(exc).__name__
            if raw is None:
                raise NoProposal(
                    f"The order book of {symbol} on {record.label} could not be read "
                    f"({failure}), so the orders cannot be priced; nothing was traded. "
                    "Try again in a minute."
                )
            books[(connection_id, symbol)] = OrderBook(
                bids=tuple(BookLevel(_d(p), _d(a)) for p, a, *_ in raw["bids"]),
                asks=tuple(BookLevel(_d(p), _d(a)) for p, a, *_ in raw["asks"]),
            )
        return books


def _d(value: object) -> Decimal:
    return Decimal(str(value))


def _amounts(snapshot: Snapshot) -> dict[str, Decimal]:
    return {asset: held.total for asset, held in snapshot.assets.items()}


class ProposalService:
    """Makes, replaces and stores proposals; at most one open proposal per target."""

    def __init__(
        self,
        planner: RebalancePlanner,
        targets: TargetRepository,
        proposals: ProposalRepository,
        *,
        ttl: timedelta,
        clock: Clock = utc_now,
    ) -> None:
        self.planner = planner
        self._targets = targets
        self._proposals = proposals
        self._ttl = ttl
        self._clock = clock

    async def propose(self, chat_id: int, trigger: Trigger) -> Proposal:
        """A proposal for the chat's target (NoProposal says why not). An open one is updated
        in place, a new revision; one being executed blocks a new one."""
        target = await self._targets.get(chat_id)
        if target is None:
            raise NoProposal("There is no target yet: set one with /rebalance.")
        open_one = await self._proposals.open_for_target(target.id)
        if open_one is not None and open_one.status is ProposalStatus.EXECUTING:
            raise NoProposal("A rebalance is being executed; wait for its report.")
        scoped = await self.planner.scope(target)
        result = await self.planner.plan(scoped)
        return await self.store(target, result, trigger, replacing=open_one)

    async def store(
        self,
        target: Target,
        result: PlanResult,
        trigger: Trigger,
        *,
        replacing: Proposal | None = None,
    ) -> Proposal:
        plan = result.plan
        if not plan.legs:
            raise NoProposal(plan.note or "The allocation is on target: nothing to trade.")
        scope = (
            "all" if target.connection_id is None else result.records[target.connection_id].label
        )
        summary = plan_summary(result, scope)
        now = self._clock()
        token = replacing.token if replacing is not None else new_token()
        legs = [
            (
                PlannedLeg(
                    connection_id=leg.connection_id,
                    label=result.records[leg.connection_id].label,
                    venue=result.records[leg.connection_id].venue,
                    symbol=leg.symbol,
                    side=leg.side,
                    amount=leg.amount,
                    price=leg.price,
                    value=leg.value,
                    fee=leg.fee,
                ),
                client_order_id(
                    dialect_of(result.records[leg.connection_id].venue), token, position
                ),
            )
            for position, leg in enumerate(plan.legs)
        ]
        if replacing is not None and replacing.status is ProposalStatus.OPEN:
            replaced = await self._proposals.replace_open(
                replacing.id,
                trigger=trigger,
                plan=summary,
                legs=legs,
                now=now,
                expires_at=now + self._ttl,
            )
            if replaced is not None:
                return replaced
            token = new_token()  # it was decided meanwhile: a new proposal with its own ids
            legs = [
                (leg, client_order_id(dialect_of(leg.venue), token, position))
                for position, (leg, _) in enumerate(legs)
            ]
        return await self._proposals.create(
            target.chat_id,
            target.id,
            trigger=trigger,
            dry_run=target.settings.dry_run,
            quote=result.quote,
            plan=summary,
            legs=legs,
            token=token,
            now=now,
            expires_at=now + self._ttl,
        )
