"""The executor against the local venues: what it trades, what it journals, and that no order
is ever placed twice, through partial fills, refusals, lost answers, a restart, /pause and
prices that move before Approve."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from functools import partial
from typing import Any

import pytest

from bot.exchanges.catalogue import get_venue
from bot.rules.rebalance.drift import Trigger
from bot.rules.rebalance.executor import Executor, Verdict
from bot.rules.rebalance.proposal import ProposalService, RebalancePlanner
from bot.rules.rebalance.target_service import TargetService
from bot.rules.rebalance.targets import parse_target
from bot.sandbox.exchanges import (
    SERVERS,
    BinanceServer,
    BookShape,
    DemoPermissions,
    VenueServer,
)
from storage.chats import ChatRepository
from storage.connections import ConnectionRecord
from storage.credentials import Credentials, KeyRole
from storage.database import Database
from storage.leases import DEFAULT_LENGTH, default_owner
from storage.proposals import LegState, Proposal, ProposalRepository, ProposalStatus
from storage.targets import TargetRepository
from tests.clock import ManualClock
from tests.integration.sweep_stack import CHAT, POLICY, T0, MakeStack, Stack, StackFactory

TTL = timedelta(minutes=15)


@dataclass
class Rebalancer:
    """One bot process's rebalancing objects over a sweep stack (a restart: a new one)."""

    stack: Stack
    targets: TargetService
    service: ProposalService
    proposals: ProposalRepository
    executor: Executor
    chats: ChatRepository


def rebalancer(stack: Stack, database: Database, clock: ManualClock) -> Rebalancer:
    chats = ChatRepository(database)
    targets = TargetRepository(database)
    proposals = ProposalRepository(database)
    planner = RebalancePlanner(
        connections=stack.repo,
        chats=chats,
        snapshots=stack.snapshots,
        reader=stack.reader,
        pool=stack.pool,
    )
    service = ProposalService(planner, targets, proposals, ttl=TTL, clock=clock)
    executor = Executor(
        planner=planner,
        service=service,
        proposals=proposals,
        targets=targets,
        connections=stack.repo,
        credentials=stack.service,
        chats=chats,
        pool=stack.pool,
        activity=stack.activity,
        clock=clock,
        lookup_delays=(0, 0.01, 0.02),
    )
    target_service = TargetService(targets, stack.repo, stack.snapshots, stack.pool, POLICY, clock)
    return Rebalancer(stack, target_service, service, proposals, executor, chats)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
async def stacks(database: Database, clock: ManualClock) -> AsyncIterator[MakeStack]:
    async with StackFactory(database, clock) as make:
        yield partial(make, timeout_ms=5000)


Connect = Callable[..., Awaitable[Rebalancer]]


@pytest.fixture
def connected(stacks: MakeStack, database: Database, clock: ManualClock) -> Connect:
    """``await connected(server, label)``: a stack of its own, one trading connection."""

    async def connect(server: VenueServer, label: str = "Main") -> Rebalancer:
        stack = stacks(server)
        rb = rebalancer(stack, database, clock)
        await trading(stack, server, label)
        return rb

    return connect


@pytest.fixture
async def servers() -> AsyncIterator[dict[str, VenueServer]]:
    async with AsyncExitStack() as running:
        yield {
            venue: await running.enter_async_context(SERVERS[venue]())
            for venue in ("binance", "okx", "kraken")
        }


async def trading(stack: Stack, server: VenueServer, label: str) -> ConnectionRecord:
    """A connection whose one key reads and trades spot, as /connect stores such a key."""
    venue = get_venue(server.venue_id)
    key = server.issue_key(
        DemoPermissions(read=True, spot_trade=True), with_passphrase=venue.needs_passphrase
    )
    return await stack.repo.add(
        CHAT,
        label=label,
        venue=server.venue_id,
        sandbox=False,
        role=KeyRole.TRADE,
        credentials=Credentials(key.api_key, key.secret, key.passphrase),
        permissions="read,spot,noip",
        limit=20,
        now=T0,
        next_check_at=None,
        next_permission_check_at=T0 + timedelta(hours=1),
    )


async def propose(rb: Rebalancer, line: str) -> Proposal:
    await rb.targets.set(CHAT, parse_target(line.split()))
    return await rb.service.propose(CHAT, Trigger.MANUAL)


async def approve(rb: Rebalancer, proposal: Proposal) -> Any:
    claimed = await rb.executor.approve(CHAT, proposal.id, proposal.revision)
    assert claimed.verdict is Verdict.CLAIMED and claimed.proposal is not None
    return await rb.executor.execute(claimed.proposal)


def venue_orders(server: VenueServer, client_ids: Sequence[str]) -> list[Any]:
    return [
        order
        for order in server.account("demo").orders.values()
        if order.client_order_id in client_ids
    ]


async def test_two_venues_trade_what_was_approved_and_the_journal_matches_the_fills(
    stacks: MakeStack, servers: dict[str, VenueServer], database: Database, clock: ManualClock
) -> None:
    stack = stacks(*servers.values())
    rb = rebalancer(stack, database, clock)
    await trading(stack, servers["binance"], "Main")
    await trading(stack, servers["okx"], "Okx")
    proposal = await propose(rb, "all BTC 40 ETH 30 USDT 30")
    legs = await rb.proposals.legs(proposal.id)
    assert legs and {leg.planned.venue for leg in legs} <= {"binance", "okx"}

    approval = await approve(rb, proposal)
    assert approval.verdict is Verdict.EXECUTED
    assert approval.proposal.status is ProposalStatus.EXECUTED
    for leg in await rb.proposals.legs(proposal.id):
        assert leg.state is LegState.FILLED
        (order,) = venue_orders(servers[leg.planned.venue], [leg.client_order_id])
        assert (order.side, order.symbol, order.time_in_force) == (
            leg.planned.side,
            leg.planned.symbol,
            "IOC",
        )
        assert leg.filled == order.filled and leg.average == order.average
        assert leg.limit_price is not None
        worse = leg.limit_price >= leg.planned.price if order.side == "buy" else True
        assert worse and order.price == leg.limit_price
    assert approval.proposal.result is not None and approval.proposal.result["after"]


async def test_a_thin_book_fills_part_and_the_report_says_so(
    connected: Connect,
    servers: dict[str, VenueServer],
) -> None:
    binance = servers["binance"]
    rb = await connected(binance)
    proposal = await propose(rb, "Main BTC 50 USDT 50 slippage 0.1")
    binance.book_shape = BookShape(levels=3, gap=Decimal("0.0005"), level_value=Decimal(2000))
    approval = await approve(rb, proposal)
    (leg,) = await rb.proposals.legs(proposal.id)
    (order,) = venue_orders(binance, [leg.client_order_id])
    assert leg.state is LegState.PARTLY and 0 < order.filled < order.amount
    assert leg.filled == order.filled
    assert approval.proposal.status is ProposalStatus.PARTLY_EXECUTED


async def test_a_lost_answer_is_looked_up_and_the_order_is_never_sent_again(
    connected: Connect,
    servers: dict[str, VenueServer],
) -> None:
    okx = servers["okx"]
    rb = await connected(okx, "Okx")
    proposal = await propose(rb, "Okx BTC 50 USDT 50")
    okx.lose_next_order_responses(1)  # executed at the venue, the connection drops
    approval = await approve(rb, proposal)
    (leg,) = await rb.proposals.legs(proposal.id)
    assert leg.state is LegState.FILLED and leg.lookups >= 1
    assert len(venue_orders(okx, [leg.client_order_id])) == 1
    assert approval.proposal.status is ProposalStatus.EXECUTED


class GatewayDown(BinanceServer):
    """Binance whose gateway answers every new order with a 502 before it reaches the engine;
    reads (balances, tickers, order lists) work."""

    def place_order(self, *args: Any, **kwargs: Any) -> Any:
        raise self.fault(502)


async def test_an_order_that_never_arrived_is_lost_not_resent(
    connected: Connect,
) -> None:
    async with GatewayDown() as binance:
        rb = await connected(binance)
        proposal = await propose(rb, "Main BTC 50 USDT 50")
        approval = await approve(rb, proposal)
        (leg,) = await rb.proposals.legs(proposal.id)
        assert leg.state is LegState.LOST and leg.lookups == 3
        assert binance.account("demo").orders == {}
        placements = [
            r for r in binance.request_log if r.path == "/api/v3/order" and r.method == "POST"
        ]
        assert len(placements) == 1  # sent once, never again
        assert approval.proposal.status is ProposalStatus.FAILED


async def test_a_restart_while_executing_finishes_each_leg_once(
    stacks: MakeStack, servers: dict[str, VenueServer], database: Database, clock: ManualClock
) -> None:
    binance = servers["binance"]
    first = rebalancer(stacks(binance), database, clock)
    await trading(first.stack, binance, "Main")
    proposal = await propose(first, "Main BTC 30 ETH 40 USDT 30")
    legs = await first.proposals.legs(proposal.id)
    assert len(legs) >= 2
    claimed = await first.executor.approve(CHAT, proposal.id, proposal.revision)
    assert claimed.proposal is not None
    # The crash: the first leg was journalled as sending and reached the venue, and the
    # process died before the answer; the others were never sent.
    sent = legs[0]
    await first.proposals.mark_sending(
        sent.id, sent.planned.amount, sent.planned.price, clock(), default_owner()
    )
    binance.place_order(
        "demo",
        sent.planned.symbol,
        "buy" if sent.planned.side == "buy" else "sell",
        sent.planned.amount,
        (
            sent.planned.price
            * (Decimal("1.01") if sent.planned.side == "buy" else Decimal("0.99"))
        ).quantize(binance.order_rules(sent.planned.symbol).price_tick),
        time_in_force="IOC",
        client_order_id=sent.client_order_id,
    )

    restarted = rebalancer(stacks(binance), database, clock)
    assert await restarted.executor.resume() == []  # the dead process's lease holds it
    clock.advance(seconds=DEFAULT_LENGTH.total_seconds())
    finished = await restarted.executor.resume()
    assert [p.id for p in finished] == [proposal.id]
    after = await restarted.proposals.legs(proposal.id)
    assert after[0].state is LegState.FILLED
    assert all(leg.state is LegState.SKIPPED for leg in after[1:])
    for leg in after:
        assert len(venue_orders(binance, [leg.client_order_id])) == (1 if leg is after[0] else 0)
    assert await restarted.executor.resume() == []  # nothing left: a second restart does nothing


async def test_pause_stops_the_legs_not_yet_sent(
    connected: Connect,
    servers: dict[str, VenueServer],
    clock: ManualClock,
) -> None:
    binance = servers["binance"]
    rb = await connected(binance)
    proposal = await propose(rb, "Main BTC 30 ETH 40 USDT 30")
    claimed = await rb.executor.approve(CHAT, proposal.id, proposal.revision)
    assert claimed.proposal is not None
    binance.set_delay(0.3)
    running = asyncio.create_task(rb.executor.execute(claimed.proposal))
    while True:  # until the first leg has gone out
        legs = await rb.proposals.legs(proposal.id)
        if legs[0].state is not LegState.PLANNED:
            break
        await asyncio.sleep(0.02)
    await rb.chats.set_paused(CHAT, True, clock())
    approval = await running
    legs = await rb.proposals.legs(proposal.id)
    assert legs[0].state is LegState.FILLED
    assert [leg.state for leg in legs[1:]] == [LegState.SKIPPED] * (len(legs) - 1)
    assert all("pause" in (leg.detail or "") for leg in legs[1:])
    assert approval.proposal.status is ProposalStatus.PARTLY_EXECUTED
    assert len(binance.account("demo").orders) == 1


async def test_prices_that_moved_past_the_slippage_requote_instead_of_trading(
    connected: Connect,
    servers: dict[str, VenueServer],
    clock: ManualClock,
) -> None:
    binance = servers["binance"]
    rb = await connected(binance)
    proposal = await propose(rb, "Main BTC 50 USDT 50 slippage 0.5")
    binance.set_price("BTC/USDT", binance.prices["BTC/USDT"].last * Decimal("0.98"))
    clock.advance(seconds=30)  # past the price cache
    approval = await approve(rb, proposal)
    assert approval.verdict is Verdict.REQUOTED
    assert approval.replacement is not None and approval.replacement.id != proposal.id
    assert approval.replacement.status is ProposalStatus.OPEN
    assert binance.account("demo").orders == {}
    old = await rb.proposals.get(CHAT, proposal.id)
    assert old is not None and old.status is ProposalStatus.REQUOTED
    legs = await rb.proposals.legs(proposal.id)
    assert all(leg.state is LegState.SKIPPED and "moved" in (leg.detail or "") for leg in legs)


async def test_approve_is_claimed_once_and_only_by_its_chat(
    connected: Connect,
    servers: dict[str, VenueServer],
    clock: ManualClock,
) -> None:
    binance = servers["binance"]
    rb = await connected(binance)
    proposal = await propose(rb, "Main BTC 50 USDT 50")
    foreign = await rb.executor.approve(CHAT + 1, proposal.id, proposal.revision)
    assert foreign.verdict is Verdict.NOT_FOUND
    stale = await rb.executor.approve(CHAT, proposal.id, proposal.revision + 1)
    assert stale.verdict is Verdict.DECIDED
    taps = await asyncio.gather(
        *(rb.executor.approve(CHAT, proposal.id, proposal.revision) for _ in range(5))
    )
    assert [t.verdict for t in taps].count(Verdict.CLAIMED) == 1
    (won,) = [t.proposal for t in taps if t.verdict is Verdict.CLAIMED]
    await rb.executor.execute(won)
    assert len(binance.account("demo").orders) == 1
    clock.advance(minutes=20)
    second = await propose(rb, "Main BTC 30 USDT 70")
    clock.advance(minutes=16)
    expired = await rb.executor.approve(CHAT, second.id, second.revision)
    assert expired.verdict is Verdict.EXPIRED


class SpentElsewhere(BinanceServer):
    """Binance where the trader's own order takes the USDT right after our sell fills."""

    def place_order(self, *args: Any, **kwargs: Any) -> Any:
        order = super().place_order(*args, **kwargs)
        if order.side == "sell":
            self.withdraw_funds("demo", "USDT", self.account("demo").balance("USDT").free)
        return order


async def test_a_buy_the_venue_cannot_pay_for_is_refused_and_stops_that_venues_buys(
    connected: Connect,
) -> None:
    async with SpentElsewhere() as binance:
        rb = await connected(binance)
        proposal = await propose(rb, "Main BTC 30 ETH 40 USDT 30")
        legs = await rb.proposals.legs(proposal.id)
        assert [leg.planned.side for leg in legs] == ["sell", "buy"]
        approval = await approve(rb, proposal)
        sell, buy = await rb.proposals.legs(proposal.id)
        assert sell.state is LegState.FILLED
        assert buy.state is LegState.REFUSED and "insufficient" in (buy.detail or "").lower()
        assert approval.proposal.status is ProposalStatus.PARTLY_EXECUTED
        assert len(binance.account("demo").orders) == 1


async def test_buys_shrink_to_what_the_sells_raised(
    connected: Connect,
    servers: dict[str, VenueServer],
) -> None:
    binance = servers["binance"]
    rb = await connected(binance)
    proposal = await propose(rb, "Main BTC 30 ETH 40 USDT 30 slippage 0.1")
    binance.book_shape = BookShape(levels=3, gap=Decimal("0.0005"), level_value=Decimal(2000))
    await approve(rb, proposal)
    sell, buy = await rb.proposals.legs(proposal.id)
    assert sell.state is LegState.PARTLY
    assert buy.state is LegState.SKIPPED and "raised less USDT" in (buy.detail or "")
    assert len(binance.account("demo").orders) == 1


async def test_a_newcomer_holding_only_btc_gets_half_of_it_sold_for_usdt(
    connected: Connect,
    servers: dict[str, VenueServer],
) -> None:
    binance = servers["binance"]
    rb = await connected(binance)
    binance.withdraw_funds("demo", "USDT", "12500")
    binance.withdraw_funds("demo", "ETH", "4.182")
    proposal = await propose(rb, "Main BTC 50 USDT 50")
    (leg,) = await rb.proposals.legs(proposal.id)
    assert (leg.planned.side, leg.planned.symbol) == ("sell", "BTC/USDT")
    assert abs(leg.planned.amount - Decimal("0.2617")) < Decimal("0.002")
    approval = await approve(rb, proposal)
    assert approval.proposal.status is ProposalStatus.EXECUTED
    after = approval.proposal.result["after"]
    assert abs(Decimal(after["BTC"]) - 50) < 1 and abs(Decimal(after["USDT"]) - 50) < 1


class LaggingLookups(BinanceServer):
    """Binance whose order lookups miss every order while ``lagging`` (eventual consistency)."""

    lagging = True

    def find_order(self, *args: Any, **kwargs: Any) -> Any:
        return None if self.lagging else super().find_order(*args, **kwargs)


async def test_a_lost_order_that_turns_up_later_is_applied_and_reported(
    connected: Connect,
) -> None:
    async with LaggingLookups() as binance:
        rb = await connected(binance)
        proposal = await propose(rb, "Main BTC 50 USDT 50")
        binance.lose_next_order_responses(1, 504)
        approval = await approve(rb, proposal)
        (leg,) = await rb.proposals.legs(proposal.id)
        assert leg.state is LegState.LOST
        assert approval.proposal.status is ProposalStatus.FAILED

        binance.lagging = False
        found = await rb.executor.reconcile_lost()
        assert [p.id for p in found] == [proposal.id]
        (leg,) = await rb.proposals.legs(proposal.id)
        (order,) = binance.account("demo").orders.values()
        assert leg.state is LegState.FILLED and leg.filled == order.filled
        assert found[0].status is ProposalStatus.EXECUTED
        assert await rb.executor.reconcile_lost() == []


class AnswersLater(BinanceServer):
    """Binance that loses the answer to an order, then fails the three lookups after it."""

    def place_order(self, *args: Any, **kwargs: Any) -> Any:
        self.fail_next(3, status=503)
        self.lose_next_order_responses(1)
        return super().place_order(*args, **kwargs)


async def test_a_leg_nobody_could_look_up_stays_unknown_until_the_venue_answers(
    connected: Connect,
) -> None:
    async with AnswersLater() as binance:
        rb = await connected(binance)
        proposal = await propose(rb, "Main BTC 50 USDT 50")
        approval = await approve(rb, proposal)
        (leg,) = await rb.proposals.legs(proposal.id)
        assert leg.state is LegState.UNKNOWN  # not "lost": the venue never said so
        assert approval.proposal.status is ProposalStatus.EXECUTING
        assert len(binance.account("demo").orders) == 1

        (finished,) = await rb.executor.resume()  # the minute sweep's turn
        (leg,) = await rb.proposals.legs(proposal.id)
        (order,) = binance.account("demo").orders.values()
        assert leg.state is LegState.FILLED and leg.filled == order.filled
        assert finished.status is ProposalStatus.EXECUTED
        assert len(binance.account("demo").orders) == 1  # looked up, never sent again


class BookDown(BinanceServer):
    """Binance whose order book stops answering (while ``down``)."""

    down = False

    def order_book(self, symbol: str, depth: int = 20) -> Any:
        if self.down:
            raise self.fault(503)
        return super().order_book(symbol, depth)


async def test_a_book_that_cannot_be_read_at_approval_stops_without_trading(
    connected: Connect,
) -> None:
    async with BookDown() as binance:
        rb = await connected(binance)
        proposal = await propose(rb, "Main BTC 50 USDT 50")
        binance.down = True
        approval = await approve(rb, proposal)
        assert approval.verdict is Verdict.STOPPED and "order book" in approval.reason
        assert binance.account("demo").orders == {}
        assert approval.proposal.status is ProposalStatus.FAILED
        assert all(leg.state is LegState.SKIPPED for leg in approval.legs)
