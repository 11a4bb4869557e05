"""Rebalance execution under exchange faults and a restart: no order twice, no leg left unknown.

Chats with one or two spot connections on the seven venues rebalancing trades on (each its own
demo account holding 0.5234 BTC, 4.182 ETH and 12,500 USDT, its key allowed to read and trade
spot), a target per chat that changes every round (so proposals hold buys and sells, one or two
legs per connection), and in each round a proposal per chat (``ProposalService.propose``),
approved and executed (``Executor.approve`` then ``execute``), all chats at once with their
approvals spread over a second (four in the crash round). The objects are built as ``bot.app``
builds them, over a real SQLite file and the local venue servers (real HTTP, real ccxt); two
venues' books are thin, so some legs fill only in part.

Faults, drawn per leg from the seed before the round runs (so a leg's fate does not depend on
how the round interleaves): the order executes but its answer is lost (the connection drops, or
a gateway answers 504: ``lose_next_order_responses``), or the venue answers the order with its
own 503 or 429 body and does not execute it (what ``fail_next`` answers), and independently a
503 or 429 queued at the venue when the order arrives (``fail_next``), which lands on whatever
that venue is asked next: the leg's lookup, another chat's balance read, a book. Lookups wait
``LOOKUP_DELAYS`` (as many tries as the bot's, a tenth of the waits). The seed fixes every
draw; how 100 chats interleave is the event loop's, so counts move a little from run to run.

The restart: in ``--crash-round`` the venues count the orders they execute, and when the K-th
has executed (K: a fifth of that round's legs) every execution task of the bot is cancelled at
once, before that order's answer is read: the leg whose order just executed is journalled
*sending*, others are wherever they were (waiting to approve, re-checking, between legs, in a
lookup). That bot's pool and database engine are then closed, a new bot is built over the same
database file with the same master key (new pool, new objects, as a restarted process), its
``Executor.resume()`` runs, the proposals the crash left open are approved, and the remaining
rounds run on it. (Cancelling is harsher than it looks and kinder than a kill: the ``finally``
blocks of the dead bot still run, but no ``except`` of the executor sees the cancellation.)

Then the journal is compared with what the venues hold. Invariants (exit 1 if any is broken):
no client order id on more than one order at any venue, nor sent to a venue twice; no leg left
planned, sending or unknown; no approved proposal left executing; no order at a venue that
matches no leg; every leg the journal says was answered (filled, partly, not filled) matches its
venue order (filled amount, order id); every leg without an order in the journal (lost,
refused, skipped) has none at the venue. Prints one JSON object.

    .venv/bin/python bench/execution_faults.py               # 100 chats × 2 rounds: ~2 min
    .venv/bin/python bench/execution_faults.py --seed 7 --chats 30 --rounds 3 --crash-round 2

See bench/README.md for how to read the result.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import re
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot.clock import utc_now
from bot.config import DEFAULT_SYNC_SECONDS, Settings
from bot.exchanges.catalogue import get_venue
from bot.exchanges.connections import ConnectionPolicy, ConnectionService
from bot.exchanges.health import HealthPolicy
from bot.exchanges.orders import ORDER_DIALECTS
from bot.exchanges.pool import ClientPool
from bot.exchanges.prices import PriceFeed
from bot.redaction import SecretRedactor
from bot.rules.alert_evaluation import AlertEvaluator
from bot.rules.balance_sweep import BalanceReader
from bot.rules.rebalance.drift import Trigger
from bot.rules.rebalance.executor import Approval, Executor, Verdict
from bot.rules.rebalance.proposal import NoProposal, ProposalService, RebalancePlanner
from bot.rules.rebalance.target_service import TargetService
from bot.rules.rebalance.targets import parse_target
from bot.rules.rebalance.triggers import DriftWatch
from bot.sandbox.exchanges import SERVERS, BookShape, DemoOrder, DemoPermissions, VenueServer
from bot.sandbox.exchanges.matching import ResponseLost
from storage.activity import ActivityLog
from storage.chats import ChatRepository
from storage.connections import ConnectionRepository
from storage.credentials import Credentials, KeyRole
from storage.database import Database
from storage.leases import DEFAULT_LENGTH, LeaseKeeper, default_owner
from storage.proposals import Leg, LegState, Proposal, ProposalRepository, ProposalStatus
from storage.snapshots import SnapshotRepository
from storage.targets import TargetRepository
from storage.vault import Vault, generate_master_key, parse_master_key

#: The bot's lookup count (bot.rules.rebalance.executor.LOOKUP_DELAYS) with a tenth of the waits.
LOOKUP_DELAYS = (0.0, 0.05, 0.1, 0.2)
VENUES = sorted(ORDER_DIALECTS)
#: Targets a chat moves through, one a round (each chat starts at a different one).
TARGETS = (
    "BTC 50 USDT 50",
    "BTC 85 USDT 15",
    "BTC 35 ETH 35 USDT 30",
    "BTC 60 ETH 15 USDT 25",
    "BTC 30 USDT 70",
    "BTC 45 ETH 40 USDT 15",
)
#: Each leg's fate at its venue, with its share of legs (the rest: no fault).
FATES = {
    "answer_lost_dropped": 0.10,
    "answer_lost_504": 0.08,
    "answered_503_not_executed": 0.10,
    "answered_429_not_executed": 0.08,
}
#: Share of legs whose arrival queues a 503 or 429 for the venue's next request of any kind.
NEXT_REQUEST_FAULT = 0.15
#: The thin book of two venues (12,500 a side within 1 %), so large legs fill only in part.
THIN_BOOK = BookShape(levels=5, gap=Decimal("0.002"), level_value=Decimal(2_500))
#: Kraken's public budget (about one book a second) would make the run measure the waiting:
#: one chat in this many has a Kraken connection.
KRAKEN_EVERY = 12
TIMEOUT_MS = 10_000
#: A client order id in a request path (KuCoin looks orders up by it there).
CLIENT_ID = re.compile(r"cw-?[0-9a-f]{16}-?[0-9]+")
PROPOSE_TRIES = 4
REQUOTES = 3
HEALTH = HealthPolicy(timedelta(seconds=DEFAULT_SYNC_SECONDS))
PERMISSION_PERIOD = timedelta(seconds=Settings.model_fields["permission_check_seconds"].default)
PROPOSAL_TTL = timedelta(seconds=Settings.model_fields["proposal_ttl_seconds"].default)
MAX_PER_CHAT = Settings.model_fields["max_connections_per_chat"].default
ANSWERED_LEGS = (LegState.FILLED, LegState.PARTLY, LegState.NOT_FILLED)


# ----- the bot ------------------------------------------------------------------------------------


class Bot:
    """What one bot process holds for rebalancing, wired as ``bot.app`` wires it; a restart is
    a new Bot over the same database file with the same master key."""

    def __init__(self, db_path: Path, master_key: str, endpoints: dict[str, str]) -> None:
        self.database = Database(f"sqlite+aiosqlite:///{db_path}")
        vault = Vault(parse_master_key(master_key))
        repository = ConnectionRepository(self.database, vault)
        activity = ActivityLog(self.database)
        chats = ChatRepository(self.database)
        snapshots = SnapshotRepository(self.database)
        self.pool = ClientPool(endpoints, timeout_ms=TIMEOUT_MS)
        self.connections = repository
        credentials = ConnectionService(
            repository,
            activity,
            ConnectionPolicy(MAX_PER_CHAT, endpoints, HEALTH, PERMISSION_PERIOD),
            SecretRedactor(),
            pool=self.pool,
        )
        reader = BalanceReader(
            credentials,
            repository,
            activity,
            self.pool,
            PriceFeed(self.pool),
            chats,
            HEALTH,
            permission_period=PERMISSION_PERIOD,
            watchers=[AlertEvaluator(HEALTH), DriftWatch(HEALTH)],
        )
        targets = TargetRepository(self.database)
        self.proposals = ProposalRepository(self.database)
        planner = RebalancePlanner(
            connections=repository, chats=chats, snapshots=snapshots, reader=reader, pool=self.pool
        )
        self.service = ProposalService(planner, targets, self.proposals, ttl=PROPOSAL_TTL)
        self.executor = Executor(
            planner=planner,
            service=self.service,
            proposals=self.proposals,
            targets=targets,
            connections=repository,
            credentials=credentials,
            chats=chats,
            pool=self.pool,
            activity=activity,
            lookup_delays=LOOKUP_DELAYS,
        )
        self.targets = TargetService(targets, repository, snapshots, self.pool, HEALTH)

    async def close(self) -> None:
        await self.pool.close()
        await self.database.dispose()


# ----- the venues and their faults ----------------------------------------------------------------


@dataclass
class Fate:
    kind: str | None  # a key of FATES, or None
    next_request: int | None  # a status queued for the venue's next request, or None


@dataclass
class Faults:
    """The venues' side of the run: each leg's fate applied when its order arrives, what
    actually happened, and the crash trigger (the K-th executed order of the crash round)."""

    fates: dict[str, Fate] = field(default_factory=dict)
    applied: Counter[str] = field(default_factory=Counter)
    by_client_id: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    executed: int = 0
    crash_at: int | None = None
    crash: Callable[[], None] | None = None
    crashed_on: str | None = None

    def hook(self, server: VenueServer) -> None:
        """Wrap this venue's order engine (an instance attribute: the class is untouched)."""
        place = server.place_order

        def place_order(*args: Any, **kwargs: Any) -> DemoOrder:
            cid = kwargs.get("client_order_id")
            fate = self.fates.pop(cid, None) if cid else None  # first arrival only
            happened = self.by_client_id[cid or "?"]
            if fate is not None and fate.next_request is not None:
                server.fail_next(1, fate.next_request)
                self.applied[f"fail_next_{fate.next_request}_queued"] += 1
            if fate is not None and fate.kind == "answered_503_not_executed":
                self.applied[fate.kind] += 1
                happened.append(fate.kind)
                raise server.fault(503)
            if fate is not None and fate.kind == "answered_429_not_executed":
                self.applied[fate.kind] += 1
                happened.append(fate.kind)
                raise server.fault(429)
            if fate is not None and fate.kind == "answer_lost_dropped":
                server.lose_next_order_responses(1)
            if fate is not None and fate.kind == "answer_lost_504":
                server.lose_next_order_responses(1, 504)
            try:
                order = place(*args, **kwargs)
            except ResponseLost as lost:
                kind = (
                    "answer_lost_dropped" if lost.status is None else f"answer_lost_{lost.status}"
                )
                self.applied[kind] += 1
                happened.append(kind)
                self._executed(cid)
                raise
            except Exception as refused:
                happened.append(f"refused: {refused}")
                self.applied["refused_by_the_venue"] += 1
                raise
            happened.append("executed")
            self._executed(cid)
            return order

        server.place_order = place_order  # type: ignore[method-assign]

    def _executed(self, cid: str | None) -> None:
        self.executed += 1
        if self.crash_at is not None and self.executed >= self.crash_at and self.crash:
            crash, self.crash, self.crash_at = self.crash, None, None
            self.crashed_on = cid
            crash()


# ----- the run ------------------------------------------------------------------------------------


@dataclass
class Chat:
    id: int
    index: int
    connections: list[tuple[int, str, str]]  # (connection id, venue, account)


@dataclass
class Tally:
    approved: int = 0
    replacements_approved: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    no_proposal: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)  # why not executed as approved
    errors: list[str] = field(default_factory=list)
    skipped_rounds: int = 0


def draw_fates(rng: random.Random, legs: Sequence[Leg], faults: Faults) -> Counter[str]:
    drawn: Counter[str] = Counter()
    for leg in legs:
        roll, kind = rng.random(), None
        for name, share in FATES.items():
            if roll < share:
                kind = name
                break
            roll -= share
        queued = rng.choice((503, 429)) if rng.random() < NEXT_REQUEST_FAULT else None
        faults.fates[leg.client_order_id] = Fate(kind, queued)
        drawn[kind or "none"] += 1
        if queued:
            drawn[f"fail_next_{queued}"] += 1
    return drawn


async def propose(bot: Bot, chat: Chat, tally: Tally) -> Proposal | None:
    for _ in range(PROPOSE_TRIES):
        try:
            return await bot.service.propose(chat.id, Trigger.MANUAL)
        except NoProposal as nothing:
            tally.no_proposal[nothing.reason.split(" (")[0][:70]] += 1
            await asyncio.sleep(0.2)
    return None


async def approve_and_execute(bot: Bot, chat: Chat, proposal: Proposal, tally: Tally) -> None:
    """Approve, execute, and approve the replacement of a requoted proposal (a few times)."""
    replacement = False
    for _ in range(REQUOTES + 1):
        approval = await bot.executor.approve(chat.id, proposal.id, proposal.revision)
        tally.verdicts[f"approve:{approval.verdict}"] += 1
        if approval.verdict is not Verdict.CLAIMED or approval.proposal is None:
            return
        tally.approved += 1
        tally.replacements_approved += replacement
        outcome: Approval = await bot.executor.execute(approval.proposal)
        tally.verdicts[f"execute:{outcome.verdict}"] += 1
        if outcome.reason:
            tally.reasons[f"{outcome.verdict}: {outcome.reason[:80]}"] += 1
        if outcome.verdict is not Verdict.REQUOTED or outcome.replacement is None:
            return
        proposal, replacement = outcome.replacement, True


async def chat_turn(bot: Bot, chat: Chat, proposal: Proposal, delay: float, tally: Tally) -> None:
    await asyncio.sleep(delay)
    try:
        await approve_and_execute(bot, chat, proposal, tally)
    except asyncio.CancelledError:
        raise
    except Exception as error:  # a bug: the proposal may stay executing until a restart
        tally.errors.append(f"chat {chat.id} proposal {proposal.id}: {error!r}")


async def journal(bot: Bot, chats: Sequence[Chat]) -> list[tuple[Proposal, list[Leg]]]:
    entries = []
    for chat in chats:
        entries.extend(await bot.proposals.history(chat.id, limit=1000))
    return entries


def venue_orders(
    servers: dict[str, VenueServer], accounts: set[tuple[str, str]]
) -> dict[tuple[str, str], list[DemoOrder]]:
    """Every order the bot's accounts hold, by (venue, client order id)."""
    found: dict[tuple[str, str], list[DemoOrder]] = defaultdict(list)
    for venue, account in accounts:
        for order in servers[venue].account(account).orders.values():
            found[(venue, order.client_order_id)].append(order)
    return found


def at_crash(
    entries: Sequence[tuple[Proposal, list[Leg]]], orders: dict[tuple[str, str], list[DemoOrder]]
) -> dict[str, int]:
    """What the journal held when the bot was killed."""
    status = Counter(str(p.status) for p, _ in entries if not p.status.final)
    legs = [leg for p, legs in entries if p.status is ProposalStatus.EXECUTING for leg in legs]
    sending = [leg for leg in legs if leg.state in (LegState.SENDING, LegState.UNKNOWN)]
    return {
        "proposals_executing": status["executing"],
        "proposals_open_not_yet_approved": status["open"],
        "legs_planned_in_executing": sum(leg.state is LegState.PLANNED for leg in legs),
        "legs_sending_or_unknown": len(sending),
        "of_which_executed_at_the_venue": sum(
            bool(orders.get((leg.planned.venue, leg.client_order_id))) for leg in sending
        ),
        "legs_final_in_executing": sum(leg.state.final for leg in legs),
    }


def audit(
    entries: Sequence[tuple[Proposal, list[Leg]]],
    orders: dict[tuple[str, str], list[DemoOrder]],
    approved_ids: set[int],
    arrivals: dict[str, list[str]],
) -> tuple[dict[str, int], dict[str, list[str]]]:
    """The invariants, and the first few cases of each broken one."""
    cases: dict[str, list[str]] = defaultdict(list)
    legs_by_cid = {(leg.planned.venue, leg.client_order_id): leg for _, ls in entries for leg in ls}
    for cid, arrivals_of in arrivals.items():
        if len(arrivals_of) > 1:
            cases["client_ids_sent_more_than_once"].append(f"{cid}: {arrivals_of}")
    for (venue, cid), held in orders.items():
        if len(held) > 1:
            cases["duplicate_orders"].append(f"{venue} {cid}: {len(held)} orders")
        if (venue, cid) not in legs_by_cid:
            cases["orders_matching_no_leg"].append(f"{venue} {cid} filled {held[0].filled}")
    for proposal, legs in entries:
        if proposal.status is ProposalStatus.EXECUTING or (
            proposal.id in approved_ids and not proposal.status.final
        ):
            cases["approved_proposals_not_final"].append(
                f"proposal {proposal.id} (chat {proposal.chat_id}) {proposal.status}"
            )
        for leg in legs:
            held = orders.get((leg.planned.venue, leg.client_order_id), [])
            where = (
                f"proposal {proposal.id} leg {leg.position} ({leg.planned.venue} "
                f"{leg.planned.side} {leg.planned.amount} {leg.planned.symbol}, "
                f"cid {leg.client_order_id}): journal {leg.state} filled {leg.filled}, "
                f"lookups {leg.lookups}; at the venue: {arrivals.get(leg.client_order_id, [])}"
            )
            if leg.state in (LegState.SENDING, LegState.UNKNOWN):
                cases["legs_left_sending_or_unknown"].append(where)
            if leg.state is LegState.PLANNED:
                cases["legs_left_planned"].append(
                    f"{where}; proposal {proposal.status}: {proposal.note}"
                )
            if leg.state in ANSWERED_LEGS:
                if not held:
                    cases["answered_legs_without_a_venue_order"].append(where)
                elif (leg.filled or Decimal(0)) != held[-1].filled:
                    cases["filled_differs_from_the_venue"].append(
                        f"{where}; venue filled {held[-1].filled}"
                    )
                elif leg.order_id != held[-1].id:
                    cases["order_id_differs_from_the_venue"].append(
                        f"{where}; journal order id {leg.order_id}, venue {held[-1].id}"
                    )
            elif leg.state.final and held:
                cases["lost_refused_or_skipped_legs_with_an_order_at_the_venue"].append(
                    f"{where}; venue order {held[-1].id} {held[-1].status} "
                    f"filled {held[-1].filled}; {leg.detail}"
                )
    keys = (
        "duplicate_orders",
        "client_ids_sent_more_than_once",
        "legs_left_sending_or_unknown",
        "legs_left_planned",
        "approved_proposals_not_final",
        "orders_matching_no_leg",
        "filled_differs_from_the_venue",
        "answered_legs_without_a_venue_order",
        "order_id_differs_from_the_venue",
        "lost_refused_or_skipped_legs_with_an_order_at_the_venue",
    )
    return {key: len(cases[key]) for key in keys}, {k: v[:5] for k, v in cases.items() if v}


async def run(seed: int, chat_count: int, rounds: int, crash_round: int) -> dict[str, Any]:
    started = time.monotonic()
    rng = random.Random(seed)
    faults = Faults()
    tally = Tally()
    drawn: Counter[str] = Counter()
    restart: dict[str, Any] = {"round": crash_round}
    timing: list[dict[str, Any]] = []
    async with contextlib.AsyncExitStack() as stack:
        servers: dict[str, VenueServer] = {
            venue: await stack.enter_async_context(SERVERS[venue]()) for venue in VENUES
        }
        for server in servers.values():
            faults.hook(server)
        thin = sorted(rng.sample(VENUES, 2))
        for venue in thin:
            servers[venue].book_shape = THIN_BOOK
        endpoints = {venue: server.base_url for venue, server in servers.items()}
        data = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        master_key = generate_master_key()
        bot = Bot(data / "bot.db", master_key, endpoints)
        await bot.database.migrate()

        others = [venue for venue in VENUES if venue != "kraken"]
        chats: list[Chat] = []
        slot = 0
        for index in range(chat_count):
            chat = Chat(id=1000 + index, index=index, connections=[])
            count = 2 if rng.random() < 0.4 else 1
            picked = ["kraken"] if index % KRAKEN_EVERY == 3 else []
            while len(picked) < count:
                venue = others[slot % len(others)]
                slot += 1
                if venue not in picked:
                    picked.append(venue)
            for venue in picked:
                account = f"chat{chat.id}-{venue}"
                key = servers[venue].issue_key(
                    DemoPermissions(read=True, spot_trade=True),
                    account=account,
                    with_passphrase=get_venue(venue).needs_passphrase,
                )
                record = await bot.connections.add(
                    chat.id,
                    label=f"{venue}-{index}",
                    venue=venue,
                    sandbox=False,
                    role=KeyRole.TRADE,  # a key that can trade is the trade key, and reads too
                    credentials=Credentials(key.api_key, key.secret, key.passphrase),
                    permissions="read,spot,noip",
                    limit=MAX_PER_CHAT,
                    now=utc_now(),
                    next_check_at=utc_now() + HEALTH.period,
                    next_permission_check_at=utc_now() + PERMISSION_PERIOD,
                )
                chat.connections.append((record.id, venue, account))
            chats.append(chat)
        accounts = {(venue, account) for chat in chats for _, venue, account in chat.connections}

        proposals_made = 0
        for number in range(1, rounds + 1):
            for chat in chats:
                words = ["all", *TARGETS[(chat.index + number - 1) % len(TARGETS)].split()]
                await bot.targets.set(chat.id, parse_target(words))
            clock = time.monotonic()
            made = await asyncio.gather(*(propose(bot, chat, tally) for chat in chats))
            timing.append({"round": number, "propose_s": round(time.monotonic() - clock, 1)})
            clock = time.monotonic()
            ready = [(chat, p) for chat, p in zip(chats, made, strict=True) if p is not None]
            tally.skipped_rounds += len(chats) - len(ready)
            proposals_made += len(ready)
            legs = [leg for _, p in ready for leg in await bot.proposals.legs(p.id)]
            drawn += draw_fates(rng, legs, faults)
            spread = 4.0 if number == crash_round else 1.0
            delays = [rng.uniform(0, spread) for _ in ready]
            if number != crash_round:
                await asyncio.gather(
                    *(
                        chat_turn(bot, chat, p, delay, tally)
                        for (chat, p), delay in zip(ready, delays, strict=True)
                    )
                )
                timing[-1]["execute_s"] = round(time.monotonic() - clock, 1)
                continue
            # The crash round: the bot dies when the K-th order of the round has executed.
            tasks = [
                asyncio.create_task(chat_turn(bot, chat, p, delay, tally))
                for (chat, p), delay in zip(ready, delays, strict=True)
            ]
            killed = asyncio.Event()
            faults.executed = 0
            faults.crash_at = max(1, len(legs) // 5)
            restart["after_orders_executed"] = faults.crash_at
            restart["legs_in_round"] = len(legs)

            def crash(
                tasks: list[asyncio.Task[None]] = tasks, killed: asyncio.Event = killed
            ) -> None:
                for task in tasks:
                    task.cancel()
                killed.set()

            faults.crash = crash
            await asyncio.gather(*tasks, return_exceptions=True)
            restart["until_the_crash_s"] = round(time.monotonic() - clock, 1)
            restart["crashed"] = killed.is_set()
            faults.crash = faults.crash_at = None
            restart["cancelled_tasks"] = sum(task.cancelled() for task in tasks)
            await asyncio.sleep(0.3)  # what the dead bot had in flight lands (or not)
            restart["crash_order_client_id"] = faults.crashed_on
            restart["at_crash"] = at_crash(
                await journal(bot, chats), venue_orders(servers, accounts)
            )
            await bot.close()

            bot = Bot(data / "bot.db", master_key, endpoints)  # the restarted process
            # A restarted poller frees what its dead predecessor leased (the pollers table,
            # storage.leases.take_poller); here both have this process's owner id.
            await LeaseKeeper(bot.database, default_owner(), DEFAULT_LENGTH, utc_now).release_all()
            clock_resume = time.monotonic()
            resumed = await bot.executor.resume()
            restart["resume_s"] = round(time.monotonic() - clock_resume, 1)
            restart["resumed"] = len(resumed)
            restart["resumed_status"] = dict(Counter(str(p.status) for p in resumed))
            left_open = [
                (chat, p)
                for chat in chats
                for p, _ in await bot.proposals.history(chat.id, limit=1000)
                if p.status is ProposalStatus.OPEN
            ]
            restart["open_proposals_approved_after_restart"] = len(left_open)
            await asyncio.gather(*(chat_turn(bot, c, p, 0, tally) for c, p in left_open))
            timing[-1]["execute_crash_restart_resume_s"] = round(time.monotonic() - clock, 1)
        await bot.close()

        # The audit: a fresh reader of the journal, and the venues' own books.
        auditor = Bot(data / "bot.db", master_key, endpoints)
        entries = await journal(auditor, chats)
        await auditor.close()
        orders = venue_orders(servers, accounts)
        approved_ids = {p.id for p, _ in entries if p.decided_at is not None}
        invariants, cases = audit(entries, orders, approved_ids, faults.by_client_id)
        statuses = Counter(str(p.status) for p, _ in entries)
        leg_states = Counter(str(leg.state) for _, legs in entries for leg in legs)
        answers: dict[str, Counter[str]] = {}
        for venue, server in servers.items():
            answers[venue] = Counter(
                f"{r.method} {CLIENT_ID.sub('{client id}', r.path)} {r.status}"
                for r in server.request_log
                if r.status >= 400
            )
        connections_per_venue = Counter(v for chat in chats for _, v, _ in chat.connections)

    approved = sum(1 for p, _ in entries if p.decided_at is not None)
    result: dict[str, Any] = {
        "benchmark": "execution_faults",
        "seed": seed,
        "chats": chat_count,
        "rounds": rounds,
        "connections": sum(connections_per_venue.values()),
        "connections_per_venue": dict(sorted(connections_per_venue.items())),
        "thin_books": thin,
        "lookup_delays_s": list(LOOKUP_DELAYS),
        "proposals_made": proposals_made,
        "proposals_approved": approved,
        "of_which_replacements_of_requoted": tally.replacements_approved,
        "chat_rounds_without_a_proposal": tally.skipped_rounds,
        "no_proposal_reasons": dict(tally.no_proposal),
        "verdicts": dict(sorted(tally.verdicts.items())),
        "requoted_or_stopped_because": dict(tally.reasons.most_common()),
        "proposal_status": dict(sorted(statuses.items())),
        "legs": sum(leg_states.values()),
        "leg_states": dict(sorted(leg_states.items())),
        "lookups": sum(leg.lookups for _, legs in entries for leg in legs),
        "orders_at_venues": sum(len(held) for held in orders.values()),
        "orders_per_venue": dict(
            sorted(Counter(venue for (venue, _), held in orders.items() for _ in held).items())
        ),
        "faults_drawn_per_leg": dict(sorted(drawn.items())),
        "faults_applied_at_the_venues": dict(sorted(faults.applied.items())),
        "venue_error_answers": {
            venue: dict(sorted(counts.items())) for venue, counts in answers.items() if counts
        },
        "restart": restart,
        "executor_errors": tally.errors[:10],
        "invariants": invariants,
        "violations": cases,
        "round_wall_s": timing,
        "wall_s": round(time.monotonic() - started, 1),
    }
    result["pass"] = not any(invariants.values()) and not tally.errors
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=20260209)
    parser.add_argument("--chats", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--crash-round", type=int, default=1)
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)
    result = asyncio.run(run(args.seed, args.chats, args.rounds, args.crash_round))
    print(json.dumps(result, indent=2))
    sys.exit(0 if result["pass"] else 1)


if __name__ == "__main__":
    main()
