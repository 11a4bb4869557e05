"""Approve → execute: the re-check, the legs, and reconciliation of what went unanswered.

Approval claims the proposal once (one conditional UPDATE), then re-checks immediately before
trading: the trading gate read from the database, a fresh balance read and fresh prices. If a
price moved more than the target's slippage or the holdings changed the plan, nothing is traded
and a new proposal replaces the old one.

Each leg is a small state machine persisted at every step (``storage.proposals.LegState``): it
is written as *sending* before its order goes out with the trade key, as a limit IOC order at
the estimated price ± slippage. An answer that does not come is resolved by looking the order
up by its client order id, a few times, never by sending it again; an order still not found is
*lost* and reported. A restart resumes every proposal left executing with the same lookups
(:meth:`Executor.resume`).

Each proposal is executed by one process at a time: the one holding its lease
(``storage.leases``). Approve takes it, the running execution keeps it (the process's
heartbeat renews it), and a resume only takes proposals whose lease expired or was released,
so the poller executing an approval and a worker's minute sweep never both run one. A leg is
marked as sending only while this process holds the lease, so a process that lost it sends
nothing more. ``/pause`` stops the legs not yet sent; when a sell raises less than
planned, the buys after it on that venue are scaled down to what it raised, or skipped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from enum import StrEnum
from functools import partial
from typing import Any

import ccxt.async_support as ccxt

from bot.clock import Clock, utc_now
from bot.exchanges.connections import ConnectionService
from bot.exchanges.orders import (
    OrderRefused,
    OrderReport,
    OutcomeUnknown,
    Refusal,
    Side,
    dialect_of,
    find_order,
    place_limit_ioc,
)
from bot.exchanges.pool import ClientPool
from bot.rules.rebalance.drift import Trigger
from bot.rules.rebalance.planner import RebalancePlan
from bot.rules.rebalance.proposal import (
    NoProposal,
    PlanResult,
    ProposalService,
    RebalancePlanner,
    block_reason,
)
from bot.rules.trading import trading_block
from storage.activity import ActivityLog
from storage.chats import ChatRepository
from storage.connections import ConnectionRecord, ConnectionRepository
from storage.credentials import Credentials, KeyRole
from storage.leases import DEFAULT_LENGTH, Leased, LeaseKeeper, default_owner
from storage.proposals import (
    Leg,
    LegOutcome,
    LegState,
    Proposal,
    ProposalRepository,
    ProposalStatus,
)
from storage.targets import TargetRepository

log = logging.getLogger(__name__)

#: Seconds to wait before each lookup of an order whose answer was lost (then it is lost).
LOOKUP_DELAYS = (0.0, 0.5, 1.0, 2.0)
#: A lost leg is looked up again by the minute sweep until it has been looked up this often.
LATE_LOOKUPS = 30
#: ... and for this long after it was sent.
LATE_WINDOW = timedelta(hours=24)
#: A planned amount that changes by more than this share at the re-check changes the plan.
AMOUNT_TOLERANCE = Decimal("0.05")


class Verdict(StrEnum):
    """How an Approve tap ended."""

    CLAIMED = "claimed"  # this tap won: execute it
    EXECUTED = "executed"  # legs ran; the proposal holds the outcome
    REQUOTED = "requoted"  # prices or holdings moved: a new proposal instead
    STOPPED = "stopped"  # the re-check failed: nothing traded
    NOT_FOUND = "not_found"  # not this chat's proposal
    DECIDED = "decided"  # already approved, rejected, replaced or expired
    EXPIRED = "expired"
    PAUSED = "paused"
    DRY_RUN = "dry_run"  # a dry-run-only proposal has nothing to approve


@dataclass(frozen=True)
class Approval:
    verdict: Verdict
    proposal: Proposal | None = None
    legs: tuple[Leg, ...] = ()
    replacement: Proposal | None = None
    reason: str | None = None


class _Gone(Exception):
    """The connection or its trade key went away before the order."""


class _LeaseLost(Exception):
    """Another process holds the proposal now (this one's lease expired): it finishes it."""


@dataclass(frozen=True)
class Lookup:
    """What looking an order up found: its report; or, without one, whether the venue said
    it has no such order (``absent``) rather than not answering at all."""

    report: OrderReport | None = None
    absent: bool = False


@dataclass
class _Funding:
    """What the sells of one connection raised short of plan, by asset: the buys after them
    spend that much less."""

    shortfall: dict[str, Decimal] = field(default_factory=dict)
    stopped: dict[str, str] = field(default_factory=dict)  # asset → why its buys stop


class Executor:
    def __init__(
        self,
        *,
        planner: RebalancePlanner,
        service: ProposalService,
        proposals: ProposalRepository,
        targets: TargetRepository,
        connections: ConnectionRepository,
        credentials: ConnectionService,
        chats: ChatRepository,
        pool: ClientPool,
        activity: ActivityLog,
        clock: Clock = utc_now,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        lookup_delays: Sequence[float] = LOOKUP_DELAYS,
        leases: LeaseKeeper | None = None,
    ) -> None:
        self._planner = planner
        self._service = service
        self._proposals = proposals
        self._targets = targets
        self._connections = connections
        self._credentials = credentials
        self._chats = chats
        self._pool = pool
        self._activity = activity
        self._clock = clock
        self._sleep = sleep
        self._lookup_delays = lookup_delays
        #: The process's leases (a process of its own when not given: one-process use).
        self._leases = leases or LeaseKeeper(
            proposals.database, default_owner(), DEFAULT_LENGTH, clock
        )

    # ----- approval --------------------------------------------------------------------------

    async def approve(self, chat_id: int, proposal_id: int, revision: int) -> Approval:
        """Claim the chat's proposal for execution if it is still open at this revision, not
        expired, and trading is not paused; once only (CLAIMED), then :meth:`execute` it."""
        proposal = await self._proposals.get(chat_id, proposal_id)
        if proposal is None:
            return Approval(Verdict.NOT_FOUND)
        if proposal.dry_run:
            return Approval(Verdict.DRY_RUN, proposal)
        if proposal.status is not ProposalStatus.OPEN or proposal.revision != revision:
            return Approval(Verdict.DECIDED, proposal)
        now = self._clock()
        if proposal.expires_at <= now:
            return Approval(Verdict.EXPIRED, proposal)
        if (await self._chats.pause_state(chat_id)).paused:
            return Approval(Verdict.PAUSED, proposal)
        claimed = await self._proposals.claim(
            chat_id, proposal_id, revision, now, self._leases.lease()
        )
        if claimed is None:
            return Approval(Verdict.DECIDED, await self._proposals.get(chat_id, proposal_id))
        return Approval(Verdict.CLAIMED, claimed)

    async def execute(self, proposal: Proposal) -> Approval:
        """Re-check, then run the legs of a proposal this process claimed."""
        async with self._holding(proposal):
            legs = await self._proposals.legs(proposal.id)
            checked = await self._recheck(proposal, legs)
            if checked is not None:
                return checked
            return await self._run(proposal, legs)
        return await self._left_to_another(proposal)

    @asynccontextmanager
    async def _holding(self, proposal: Proposal) -> AsyncIterator[None]:
        """Work on a leased proposal, then give the lease back (also when the work failed).
        A lost lease ends the work quietly (the block's caller then reports the proposal
        as it stands). Cancelled (the process stops), the process releases all it holds."""
        try:
            yield
        except _LeaseLost:
            log.warning("proposal %d is executed by another process now", proposal.id)
        except Exception:
            await self._leases.release(Leased.PROPOSALS, [proposal.id])
            raise
        await self._leases.release(Leased.PROPOSALS, [proposal.id])

    async def _left_to_another(self, proposal: Proposal) -> Approval:
        return Approval(
            Verdict.EXECUTED,
            await self._proposals.get(proposal.chat_id, proposal.id),
            tuple(await self._proposals.legs(proposal.id)),
        )

    async def reject(self, chat_id: int, proposal_id: int, revision: int) -> Approval:
        proposal = await self._proposals.get(chat_id, proposal_id)
        if proposal is None:
            return Approval(Verdict.NOT_FOUND)
        rejected = await self._proposals.reject(chat_id, proposal_id, revision, self._clock())
        if rejected is None:
            return Approval(Verdict.DECIDED, proposal)
        return Approval(Verdict.DECIDED, rejected)

    async def _recheck(self, proposal: Proposal, legs: Sequence[Leg]) -> Approval | None:
        """None if trading may go ahead as approved; otherwise why not (nothing traded)."""
        target = await self._targets.get(proposal.chat_id)
        if target is None or target.id != proposal.target_id:
            return await self._stop(proposal, legs, "the target was changed or deleted")
        try:
            scoped = await self._planner.scope(target)
        except NoProposal as refused:
            return await self._stop(proposal, legs, refused.reason)
        for leg in legs:
            block = scoped.blocks.get(leg.connection_id or 0, None)
            if leg.connection_id not in scoped.blocks:
                return await self._stop(proposal, legs, f"{leg.planned.label} is gone")
            if block is not None:
                return await self._stop(
                    proposal, legs, f"{leg.planned.label}: {block_reason(block)}"
                )
        try:
            result = await self._planner.plan(scoped)
        except NoProposal as refused:
            return await self._stop(proposal, legs, refused.reason)
        moved = _plan_moved(legs, result.plan, target.settings.slippage)
        if moved is None:
            return None
        now = self._clock()
        for leg in legs:
            await self._record(
                leg.id, LegOutcome(LegState.SKIPPED, detail=f"not sent: {moved}"), now
            )
        await self._finish_as(proposal.id, ProposalStatus.REQUOTED, now, note=moved)
        try:
            fresh = await self._service.store(target, result, Trigger(proposal.trigger))
        except NoProposal as nothing:
            return Approval(
                Verdict.REQUOTED,
                await self._proposals.get(proposal.chat_id, proposal.id),
                tuple(legs),
                reason=f"{moved}; {nothing.reason}",
            )
        return Approval(
            Verdict.REQUOTED,
            await self._proposals.get(proposal.chat_id, proposal.id),
            tuple(legs),
            replacement=fresh,
            reason=moved,
        )

    async def _stop(self, proposal: Proposal, legs: Sequence[Leg], why: str) -> Approval:
        now = self._clock()
        for leg in legs:
            await self._record(leg.id, LegOutcome(LegState.SKIPPED, detail=why), now)
        await self._finish_as(proposal.id, ProposalStatus.FAILED, now, note=why)
        return Approval(
            Verdict.STOPPED,
            await self._proposals.get(proposal.chat_id, proposal.id),
            tuple(await self._proposals.legs(proposal.id)),
            reason=why,
        )

    # ----- execution -------------------------------------------------------------------------

    async def resume(self) -> list[Proposal]:
        """Finish what a crash or restart left executing (at start-up, then every minute, for
        proposals no process holds: leased here, in one statement): every leg that may have
        been sent is looked up, never sent again; legs not yet sent are skipped, since the
        re-check they were approved under is stale. The proposals that reached their end,
        concurrently (one slow venue does not hold the others up)."""
        waiting = await self._proposals.claim_executing(self._clock(), self._leases.lease())
        ended = await asyncio.gather(*(self._resume(proposal) for proposal in waiting))
        return [proposal for proposal in ended if proposal is not None]

    async def _resume(self, proposal: Proposal) -> Proposal | None:
        approval: Approval | None = None
        async with self._holding(proposal):
            now = self._clock()
            for leg in await self._proposals.legs(proposal.id):
                if leg.state is LegState.PLANNED:
                    await self._record(
                        leg.id,
                        LegOutcome(
                            LegState.SKIPPED,
                            detail="not sent: the execution was interrupted (a restart)",
                        ),
                        now,
                    )
            approval = await self._run(proposal, await self._proposals.legs(proposal.id))
        done = approval.proposal if approval is not None else None
        return done if done is not None and done.status.final else None

    async def reconcile_lost(self) -> list[Proposal]:
        """Look lost legs up once more (the minute sweep): an order that turns up after all is
        recorded with its fills and its proposal's outcome updated. The proposals changed.
        A proposal another process holds (executing it) is left for the next time."""
        changed: dict[int, Proposal] = {}
        since = self._clock() - LATE_WINDOW
        for proposal, leg in await self._proposals.lost_since(since, LATE_LOOKUPS):
            if not await self._proposals.take(proposal.id, self._clock(), self._leases.lease()):
                continue
            found = None
            async with self._holding(proposal):
                found = await self._reconcile(proposal, leg)
            if found is not None:
                changed[proposal.id] = found
        return list(changed.values())

    async def _reconcile(self, proposal: Proposal, leg: Leg) -> Proposal | None:
        """One lost leg looked up again; its proposal as it ended, if the order turned up."""
        record = (
            await self._connections.get(proposal.chat_id, leg.connection_id)
            if leg.connection_id is not None
            else None
        )
        if record is None or record.trade_key is None:
            return None
        since = self._clock() - LATE_WINDOW
        try:
            client = await self._pool.client(
                record, KeyRole.TRADE, partial(self._trade_credentials, record)
            )
            await self._proposals.count_lookup(leg.id, self._clock())
            found = await find_order(
                client,
                dialect_of(leg.planned.venue),
                leg.planned.symbol,
                leg.client_order_id,
                int((leg.sent_at or since).timestamp() * 1000) - 60_000,
            )
        except (_Gone, ccxt.BaseError, OutcomeUnknown):
            return None
        finally:
            await self._activity.record(record.id, *self._pool.drain_calls(record.id))
        if found is None or not found.done:
            return None
        await self._settle(
            leg, Lookup(found), leg.planned.amount, "found at the exchange after all"
        )
        return (await self._finish(proposal, proposal.note)).proposal

    async def _run(self, proposal: Proposal, legs: Sequence[Leg]) -> Approval:
        target = await self._targets.get(proposal.chat_id)
        slippage = target.settings.slippage if target is not None else Decimal("0.005")
        funding: dict[int, _Funding] = {}
        paused_note: str | None = None
        for leg in legs:
            if leg.state.final:
                continue
            if leg.state is not LegState.PLANNED:
                await self._resolve(proposal, leg)
                continue
            pause = await self._chats.pause_state(proposal.chat_id)
            if pause.paused:
                paused_note = "stopped by /pause"
                await self._skip(leg, paused_note)
                continue
            await self._send(
                proposal, leg, slippage, funding.setdefault(leg.connection_id or 0, _Funding())
            )
        return await self._finish(proposal, paused_note)

    async def _send(
        self, proposal: Proposal, leg: Leg, slippage: Decimal, funding: _Funding
    ) -> None:
        planned = leg.planned
        record = (
            await self._connections.get(proposal.chat_id, leg.connection_id)
            if leg.connection_id is not None
            else None
        )
        if record is None:
            await self._skip(leg, "the connection was revoked")
            return
        block = trading_block(record, await self._chats.pause_state(proposal.chat_id))
        if block is not None:
            await self._skip(leg, block_reason(block))
            return
        try:
            client = await self._pool.client(
                record, KeyRole.TRADE, partial(self._trade_credentials, record)
            )
        except (_Gone, ccxt.BaseError) as error:
            await self._skip(leg, f"the trade key could not be used ({type(error).__name__})")
            return
        base, quote = planned.symbol.split("/")[0], planned.symbol.split("/")[1].split(":")[0]
        spends = quote if planned.side == "buy" else base
        amount = planned.amount
        if spends in funding.stopped:
            await self._skip(leg, funding.stopped[spends])
            return
        detail = None
        short = funding.shortfall.get(spends, Decimal(0))
        if short > 0 and planned.side == "buy":
            needed = planned.amount * planned.price
            step = Decimal(str(client.markets[planned.symbol]["precision"]["amount"]))
            share = max(needed - short, Decimal(0)) / needed
            scaled = (amount * share / step).to_integral_value(rounding=ROUND_DOWN) * step
            funding.shortfall[spends] = max(short - (amount - scaled) * planned.price, Decimal(0))
            if scaled <= 0 or not _tradable(client, planned.symbol, scaled, planned.price):
                await self._skip(leg, f"the sells before it raised less {quote} than planned")
                return
            detail = f"scaled down from {_plain(amount)}: the sells before it raised less {quote}"
            amount = scaled
        limit = _limit(client, planned.symbol, planned.side, planned.price, slippage)
        now = self._clock()
        if not await self._proposals.mark_sending(leg.id, amount, limit, now, self._leases.owner):
            raise _LeaseLost(proposal.id)
        dialect = dialect_of(planned.venue)
        side: Side = "buy" if planned.side == "buy" else "sell"
        try:
            placed = await place_limit_ioc(
                client, dialect, planned.symbol, side, amount, limit, leg.client_order_id
            )
            lookup = Lookup(placed) if placed is not None else await self._look_up(leg, client, now)
        except OrderRefused as refused:
            await self._record(
                leg.id, LegOutcome(LegState.REFUSED, detail=refused.message), self._clock()
            )
            if refused.refusal is Refusal.INSUFFICIENT_FUNDS:
                funding.stopped[spends] = f"stopped: the venue had less {spends} than planned"
            return
        except OutcomeUnknown as unknown:
            await self._record(
                leg.id, LegOutcome(LegState.UNKNOWN, detail=str(unknown)), self._clock()
            )
            lookup = await self._look_up(leg, client, now)
        finally:
            await self._activity.record(record.id, *self._pool.drain_calls(record.id))
        await self._settle(leg, lookup, amount, detail)
        if planned.side == "sell":
            raised = lookup.report.cost if lookup.report is not None else Decimal(0)
            planned_raise = amount * planned.price
            if raised < planned_raise:
                funding.shortfall[quote] = (
                    funding.shortfall.get(quote, Decimal(0)) + planned_raise - raised
                )

    async def _resolve(self, proposal: Proposal, leg: Leg) -> None:
        """A leg that may have been sent: look it up, never resend. Without an answer (the
        venue, or the client, failing) it stays unknown for the next try."""
        record = (
            await self._connections.get(proposal.chat_id, leg.connection_id)
            if leg.connection_id is not None
            else None
        )
        if record is None or record.trade_key is None:
            await self._record(
                leg.id,
                LegOutcome(LegState.LOST, detail="the connection or its trade key went away"),
                self._clock(),
            )
            return
        try:
            client = await self._pool.client(
                record, KeyRole.TRADE, partial(self._trade_credentials, record)
            )
            lookup = await self._look_up(leg, client, leg.sent_at or self._clock())
        except (_Gone, ccxt.BaseError):
            lookup = Lookup()
        finally:
            await self._activity.record(record.id, *self._pool.drain_calls(record.id))
        await self._settle(leg, lookup, leg.planned.amount, None)

    async def _look_up(self, leg: Leg, client: ccxt.Exchange, sent_at: datetime) -> Lookup:
        """Find the leg's order by its client id, waiting a little between tries. Absent only
        when the venue said so at least on half the tries and never answered otherwise: a
        lookup that errs proves nothing."""
        since_ms = int(sent_at.timestamp() * 1000) - 60_000
        dialect = dialect_of(leg.planned.venue)
        said_absent = 0
        for delay in self._lookup_delays:
            if delay:
                await self._sleep(delay)
            await self._proposals.count_lookup(leg.id, self._clock())
            try:
                found = await find_order(
                    client, dialect, leg.planned.symbol, leg.client_order_id, since_ms
                )
            except OutcomeUnknown:
                continue
            if found is None:
                said_absent += 1
            elif found.done:
                return Lookup(found)
        return Lookup(absent=2 * said_absent >= len(self._lookup_delays))

    async def _settle(self, leg: Leg, lookup: Lookup, amount: Decimal, detail: str | None) -> None:
        """Record what the venue said of the leg's order: its fills; lost when the venue says
        it has no such order; still unknown when it did not answer (looked up again later)."""
        now = self._clock()
        report = lookup.report
        if report is None:
            if lookup.absent:
                outcome = LegOutcome(
                    LegState.LOST,
                    detail="no answer, and the exchange has no such order: it is treated as "
                    "not placed (looked up again for a day)",
                )
            else:
                outcome = LegOutcome(
                    LegState.UNKNOWN,
                    detail="sent, but the exchange has not answered for it yet: looked up "
                    "again every minute, never sent again",
                )
            await self._record(leg.id, outcome, now)
            return
        if report.filled >= amount:
            state = LegState.FILLED
        elif report.filled > 0:
            state = LegState.PARTLY
        else:
            state = LegState.NOT_FILLED
        await self._record(
            leg.id,
            LegOutcome(
                state,
                order_id=report.order_id,
                filled=report.filled,
                average=report.average,
                cost=report.cost,
                fees=report.fees,
                detail=detail,
            ),
            now,
        )

    async def _skip(self, leg: Leg, why: str) -> None:
        await self._record(leg.id, LegOutcome(LegState.SKIPPED, detail=why), self._clock())

    async def _finish(self, proposal: Proposal, note: str | None) -> Approval:
        """The proposal's outcome from its legs, once none is waiting for an answer (until
        then it stays executing, and the minute sweep looks the rest up)."""
        legs = await self._proposals.legs(proposal.id)
        if any(not leg.state.final for leg in legs):
            return Approval(
                Verdict.EXECUTED,
                await self._proposals.get(proposal.chat_id, proposal.id),
                tuple(legs),
            )
        filled = [leg for leg in legs if leg.state in (LegState.FILLED, LegState.PARTLY)]
        if not filled:
            status = ProposalStatus.FAILED
        elif all(leg.state is LegState.FILLED for leg in legs):
            status = ProposalStatus.EXECUTED
        else:
            status = ProposalStatus.PARTLY_EXECUTED
        result = await self._after(proposal, legs)
        await self._finish_as(proposal.id, status, self._clock(), note=note, result=result)
        return Approval(
            Verdict.EXECUTED,
            await self._proposals.get(proposal.chat_id, proposal.id),
            tuple(legs),
        )

    async def _after(self, proposal: Proposal, legs: Sequence[Leg]) -> dict[str, Any] | None:
        """The allocation after the trades, from a fresh read (None if it cannot be read)."""
        target = await self._targets.get(proposal.chat_id)
        if target is None:
            return None
        try:
            scoped = await self._planner.scope(target)
            result = await self._planner.plan(scoped, with_books=False)
        except NoProposal:
            return None
        return {
            "after": {a: format(v, "f") for a, v in _allocation_of(result).items()},
            "fees": {currency: format(amount, "f") for currency, amount in _fees(legs).items()},
        }

    async def _record(self, leg_id: int, outcome: LegOutcome, now: datetime) -> None:
        if not await self._proposals.record(leg_id, outcome, now, self._leases.owner):
            raise _LeaseLost(leg_id)

    async def _finish_as(
        self,
        proposal_id: int,
        status: ProposalStatus,
        now: datetime,
        *,
        note: str | None = None,
        result: dict[str, Any] | None = None,
    ) -> None:
        written = await self._proposals.finish(
            proposal_id, status, now, self._leases.owner, note=note, result=result
        )
        if not written:
            raise _LeaseLost(proposal_id)

    async def _trade_credentials(self, record: ConnectionRecord) -> Credentials:
        credentials = await self._credentials.credentials(record.chat_id, record.id, KeyRole.TRADE)
        if credentials is None:
            raise _Gone(record.id)
        return credentials


def _allocation_of(result: PlanResult) -> dict[str, Decimal]:
    """The allocation a fresh plan starts from: the scope's allocation now."""
    return dict(result.plan.before)


def _fees(legs: Sequence[Leg]) -> dict[str, Decimal]:
    total: dict[str, Decimal] = {}
    for leg in legs:
        for currency, amount in leg.fees.items():
            total[currency] = total.get(currency, Decimal(0)) + amount
    return total


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _tradable(client: ccxt.Exchange, symbol: str, amount: Decimal, price: Decimal) -> bool:
    limits = client.markets[symbol].get("limits") or {}
    min_amount = (limits.get("amount") or {}).get("min") or 0
    min_cost = (limits.get("cost") or {}).get("min") or 0
    return amount >= Decimal(str(min_amount)) and amount * price >= Decimal(str(min_cost))


def _limit(
    client: ccxt.Exchange, symbol: str, side: str, price: Decimal, slippage: Decimal
) -> Decimal:
    """The worst price the leg accepts: the estimate ± slippage, on the market's tick, never
    past the bound."""
    tick = Decimal(str(client.markets[symbol]["precision"]["price"]))
    if side == "buy":
        bound = price * (1 + slippage)
        return (bound / tick).to_integral_value(rounding=ROUND_DOWN) * tick
    bound = price * (1 - slippage)
    steps = (bound / tick).to_integral_value(rounding=ROUND_DOWN)
    return (steps if steps * tick >= bound else steps + 1) * tick


def _plan_moved(legs: Sequence[Leg], plan: RebalancePlan, slippage: Decimal) -> str | None:
    """Why the fresh plan differs from the approved one (None: trade as approved)."""
    fresh = {(leg.connection_id, leg.symbol, str(leg.side)): leg for leg in plan.legs}
    approved = {
        (leg.planned.connection_id, leg.planned.symbol, leg.planned.side): leg for leg in legs
    }
    if set(fresh) != set(approved):
        return "holdings changed since the proposal"
    for key, leg in approved.items():
        now = fresh[key]
        if abs(now.price / leg.planned.price - 1) > slippage:
            return f"the price of {leg.planned.symbol} moved more than the slippage allowed"
        if abs(now.amount / leg.planned.amount - 1) > AMOUNT_TOLERANCE:
            return "holdings changed since the proposal"
    return None
