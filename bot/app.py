"""Composition root: open storage and the vault, build the PTB Application, run it.

``running_bot`` is the one way the bot runs: the CLI, the sandbox and the e2e tests all use it,
so what the tests exercise is what production runs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta

from telegram import Update
from telegram.error import Conflict, TelegramError
from telegram.ext import AIORateLimiter, Application, ApplicationBuilder

from bot import handlers
from bot.clock import Clock, utc_now
from bot.config import ConfigError, Settings
from bot.exchanges.account_reads import AccountReader
from bot.exchanges.connections import ConnectionPolicy, ConnectionService
from bot.exchanges.health import HealthPolicy
from bot.exchanges.pool import ClientPool
from bot.exchanges.prices import PriceFeed
from bot.handlers.commands import bot_commands
from bot.handlers.context import SERVICES_KEY, HandlerServices
from bot.handlers.notices import Notifier
from bot.handlers.rebalance import REBALANCING_KEY, RebalanceDelivery, Rebalancing
from bot.handlers.schedule import SWEEPER_KEY, schedule_delivery, schedule_sweeps
from bot.redaction import REDACTOR
from bot.rules.alert_evaluation import AlertEvaluator
from bot.rules.alert_service import AlertService
from bot.rules.balance_sweep import BalanceReader, BalanceSweep
from bot.rules.rebalance.executor import Executor
from bot.rules.rebalance.proposal import ProposalService, RebalancePlanner
from bot.rules.rebalance.target_service import TargetService
from bot.rules.rebalance.triggers import DriftWatch, RebalanceSweep, result_notice
from bot.rules.reminders import ReminderPolicy, RotationReminders
from bot.rules.retention import SnapshotRetention
from bot.rules.sweeps import Exclusive, Sweep, Sweeper
from bot.rules.throttle import VenueBudgets
from storage.activity import ActivityLog
from storage.alerts import AlertRepository
from storage.chats import ChatRepository
from storage.connections import ConnectionRepository
from storage.database import Database
from storage.leases import LeaseKeeper, Poller, default_owner
from storage.master_key import MasterKeyConfig, open_vault
from storage.outbox import Outbox, enqueue
from storage.proposals import ProposalRepository
from storage.snapshots import SnapshotRepository
from storage.targets import TargetRepository
from storage.vault import Vault

log = logging.getLogger(__name__)


@dataclass
class Core:
    """The opened storage: database plus the vault that unlocks it."""

    database: Database
    vault: Vault

    async def close(self) -> None:
        await self.database.dispose()


def master_key_config(settings: Settings) -> MasterKeyConfig:
    return MasterKeyConfig(
        env_key=settings.master_key.get_secret_value() if settings.master_key else None,
        key_file=settings.master_key_file,
        data_dir=settings.data_dir,
        previous_keys=[key.get_secret_value() for key in settings.previous_master_keys],
    )


async def open_core(settings: Settings, *, migrate: bool = True) -> Core:
    """Check the master key against the stored secrets *before* migrating anything.

    Raises MasterKeyError with the database untouched when the key is missing or wrong.
    """
    settings.ensure_data_dir()
    database = Database(settings.effective_database_url)
    try:
        config = master_key_config(settings)
        REDACTOR.add(config.env_key, *config.previous_keys)
        vault = open_vault(config, await database.stored_secrets())
        assert vault is not None  # may_generate: a missing key is created or refused
        if migrate:
            await database.migrate()
            await ConnectionRepository(database, vault).fill_key_hashes()
    except BaseException:
        await database.dispose()
        raise
    return Core(database, vault)


#: Rotation reminders are about days, retention about hours; checking hourly is plenty.
HOURLY = timedelta(hours=1)
MINUTELY = timedelta(minutes=1)
#: How often a poller that leaves the sweeps to workers delivers the notices they queued.
DELIVERY_PERIOD = timedelta(seconds=3)
NOTIFIER_KEY = "coinwarden.notifier"


def sweep_periods(settings: Settings) -> dict[str, timedelta]:
    """How often each sweep runs (in every process that sweeps)."""
    return {
        BalanceSweep.name: timedelta(seconds=settings.sync_seconds),
        RotationReminders.name: HOURLY,
        SnapshotRetention.name: HOURLY,
        RebalanceSweep.name: MINUTELY,
    }


@dataclass
class SweepStack:
    """What a process sweeps and executes with, built by ``build_sweep_stack`` for the polling
    bot and for ``python -m bot worker`` alike."""

    leases: LeaseKeeper
    health: HealthPolicy
    repository: ConnectionRepository
    activity: ActivityLog
    chats: ChatRepository
    snapshots: SnapshotRepository
    connections: ConnectionService
    reader: BalanceReader
    targets: TargetRepository
    proposals: ProposalRepository
    proposal_service: ProposalService
    executor: Executor
    sweeps: list[Sweep]
    periods: dict[str, timedelta]


def build_sweep_stack(settings: Settings, core: Core, pool: ClientPool, clock: Clock) -> SweepStack:
    """The reads, the executor and the sweeps over one database, pool, clock and set of
    leases (this process's worker id), with this process's venue budgets."""
    database = core.database
    leases = LeaseKeeper(
        database,
        settings.worker_id or default_owner(),
        timedelta(seconds=settings.lease_seconds),
        clock,
    )
    health = HealthPolicy(timedelta(seconds=settings.sync_seconds))
    permission_period = timedelta(seconds=settings.permission_check_seconds)
    repository = ConnectionRepository(database, core.vault)
    activity = ActivityLog(database)
    chats = ChatRepository(database)
    snapshots = SnapshotRepository(database)
    connections = ConnectionService(
        repository,
        activity,
        ConnectionPolicy(
            settings.max_connections_per_chat,
            settings.exchange_endpoints,
            health,
            permission_period,
            paced=settings.exchange_pacing,
        ),
        REDACTOR,
        clock=clock,
        pool=pool,
    )
    reader = BalanceReader(
        connections,
        repository,
        activity,
        pool,
        PriceFeed(pool, clock=clock),
        chats,
        health,
        permission_period=permission_period,
        watchers=[AlertEvaluator(health), DriftWatch(health)],
        clock=clock,
    )
    targets = TargetRepository(database)
    proposals = ProposalRepository(database)
    planner = RebalancePlanner(
        connections=repository, chats=chats, snapshots=snapshots, reader=reader, pool=pool
    )
    proposal_service = ProposalService(
        planner,
        targets,
        proposals,
        ttl=timedelta(seconds=settings.proposal_ttl_seconds),
        clock=clock,
    )
    executor = Executor(
        planner=planner,
        service=proposal_service,
        proposals=proposals,
        targets=targets,
        connections=repository,
        credentials=connections,
        chats=chats,
        pool=pool,
        activity=activity,
        clock=clock,
        leases=leases,
    )
    periods = sweep_periods(settings)
    reminders = ReminderPolicy(
        timedelta(days=settings.key_rotation_days),
        timedelta(days=settings.key_reminder_repeat_days),
    )
    shared: list[Sweep] = [
        RotationReminders(repository, reminders, clock=clock),
        SnapshotRetention(snapshots, clock=clock),
        RebalanceSweep(database, targets, proposals, executor, clock=clock),
    ]
    sweeps: list[Sweep] = [
        BalanceSweep(
            reader,
            repository,
            pool,
            chats,
            budgets=VenueBudgets(settings.venue_budgets),
            clock=clock,
            leases=leases,
        ),
        *(Exclusive(sweep, leases, periods[sweep.name], clock) for sweep in shared),
    ]
    return SweepStack(
        leases=leases,
        health=health,
        repository=repository,
        activity=activity,
        chats=chats,
        snapshots=snapshots,
        connections=connections,
        reader=reader,
        targets=targets,
        proposals=proposals,
        proposal_service=proposal_service,
        executor=executor,
        sweeps=sweeps,
        periods=periods,
    )


def build_application(
    settings: Settings, core: Core, pool: ClientPool, stack: SweepStack, clock: Clock = utc_now
) -> Application:
    token = settings.require_token()
    REDACTOR.add(token)
    application = (
        ApplicationBuilder()
        .token(token)
        .base_url(settings.telegram_api_url)
        .base_file_url(settings.telegram_api_url.replace("/bot", "/file/bot"))
        .rate_limiter(AIORateLimiter(max_retries=3))
        .build()
    )
    alerts = AlertService(
        AlertRepository(core.database),
        stack.repository,
        stack.snapshots,
        limit=settings.max_alerts_per_chat,
        clock=clock,
    )
    rebalancing = Rebalancing(
        targets=TargetService(
            stack.targets, stack.repository, stack.snapshots, pool, stack.health, clock
        ),
        proposals=stack.proposal_service,
        repository=stack.proposals,
        executor=stack.executor,
        clock=clock,
    )
    application.bot_data[REBALANCING_KEY] = rebalancing
    notifier = Notifier(
        Outbox(core.database), stack.connections, clock, rebalance=RebalanceDelivery(rebalancing)
    )
    application.bot_data[NOTIFIER_KEY] = notifier
    application.bot_data[SWEEPER_KEY] = Sweeper(
        stack.sweeps, after=lambda: notifier.deliver(application.bot)
    )
    application.bot_data[SERVICES_KEY] = HandlerServices(
        connections=stack.connections,
        chats=stack.chats,
        balances=stack.reader,
        accounts=AccountReader(stack.connections, pool, stack.activity, stack.snapshots),
        alerts=alerts,
        snapshots=stack.snapshots,
        clock=clock,
        rotate_after_days=settings.key_rotation_days,
        outbound_ips=tuple(settings.outbound_ips),
        allowed_users=frozenset(settings.allowed_users),
        database=core.database,
    )
    handlers.register(application)
    return application


async def resume_executions(application: Application, database: Database) -> int:
    """Finish the executions a crash or restart interrupted, and tell each chat how they
    ended (through the outbox, so the report is not lost either)."""
    rebalancing = application.bot_data[REBALANCING_KEY]
    assert isinstance(rebalancing, Rebalancing)
    finished = await rebalancing.executor.resume()
    if not finished:
        return 0
    async with database.begin() as conn:
        for proposal in finished:
            await enqueue(conn, result_notice(proposal), rebalancing.clock())
    await notifier_of(application).deliver(application.bot)
    return len(finished)


def notifier_of(application: Application) -> Notifier:
    found = application.bot_data[NOTIFIER_KEY]
    assert isinstance(found, Notifier)
    return found


async def announce_commands(application: Application) -> None:
    """Register the command list with Telegram (the menu beside the text box)."""
    await application.bot.set_my_commands(bot_commands())


class AlreadyPolling(ConfigError):
    """Another live process receives this bot's updates (Telegram allows one per token)."""


def _gone(holder: Poller) -> bool:
    """A poller of this host whose process has ended, or this very process's pid in an
    earlier life (a restarted container): its row need not wait to expire."""
    if holder.host != socket.gethostname():
        return False
    if holder.pid == os.getpid():
        return True
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


async def take_polling(leases: LeaseKeeper, token: str, vault: Vault) -> str:
    """Become the one process receiving this bot token's updates, or raise AlreadyPolling
    naming the live one. The row is keyed by a keyed hash of the token (never the token);
    the heartbeat keeps it, a clean stop deletes it. Returns the key."""
    key = vault.key_hash(token)
    holder = await leases.take_poller(key, socket.gethostname()[:255], os.getpid(), _gone)
    if holder is not None:
        raise AlreadyPolling(
            f"another Coinwarden process is already polling this bot (host {holder.host}, "
            f"pid {holder.pid}, since {holder.started_at:%Y-%m-%d %H:%M:%S} UTC); "
            "run `python -m bot worker` to add sweep capacity"
        )
    return key


class PollingErrors:
    """getUpdates failures as one log line each instead of PTB's traceback per retry. A 409
    Conflict means another process polls this token without sharing this database (so the
    pollers row could not stop it): said clearly, at most once a minute."""

    def __init__(self) -> None:
        self._conflict_said: float | None = None

    def __call__(self, error: TelegramError) -> None:
        if isinstance(error, Conflict):
            now = time.monotonic()
            if self._conflict_said is None or now - self._conflict_said >= 60:
                self._conflict_said = now
                log.error(
                    "Telegram refuses getUpdates (409 Conflict): another process polls this "
                    "bot's token, one that does not share this database. Only one process may "
                    "poll a token: stop the other one (to add sweep capacity, run "
                    "`python -m bot worker` on the same database instead)."
                )
            return
        log.warning("getUpdates failed, retrying: %s", error)


@asynccontextmanager
async def running_bot(settings: Settings, *, clock: Clock = utc_now) -> AsyncIterator[Application]:
    """Start polling (or the webhook) and yield the running Application; stop cleanly after.

    The one process of this bot token that receives updates (the ``pollers`` row); it runs
    the sweeps too unless COINWARDEN_SWEEPS=false leaves them to ``python -m bot worker``
    processes, whose notices it then delivers every few seconds. ``clock`` is for tests that
    move time (health backoff, reminders) without sleeping.
    """
    REDACTOR.install()  # whoever runs the bot, its logs are scrubbed
    token = settings.require_token()
    core = await open_core(settings)
    pool = ClientPool(settings.exchange_endpoints, clock=clock, paced=settings.exchange_pacing)
    try:
        stack = build_sweep_stack(settings, core, pool, clock)
        leases = stack.leases
        poller = await take_polling(leases, token, core.vault)
        await leases.release_all()  # what an earlier life of this worker id left
        if not settings.allowed_users:
            log.warning(
                "COINWARDEN_ALLOWED_USERS is empty: anyone can use this bot (each chat is isolated)"
            )
        heartbeat = asyncio.create_task(leases.heartbeat())
        try:
            application = build_application(settings, core, pool, stack, clock)
            if settings.sweeps:
                schedule_sweeps(application, stack.periods)
            else:
                schedule_delivery(application, DELIVERY_PERIOD, notifier_of(application).deliver)
            async with application:
                await announce_commands(application)
                updater = application.updater
                assert updater is not None
                if settings.webhook_url:
                    await updater.start_webhook(
                        listen=settings.webhook_listen,
                        port=settings.webhook_port,
                        webhook_url=settings.webhook_url,
                        secret_token=(
                            settings.webhook_secret.get_secret_value()
                            if settings.webhook_secret
                            else None
                        ),
                        allowed_updates=Update.ALL_TYPES,
                    )
                else:
                    await updater.start_polling(
                        poll_interval=0.0,
                        timeout=10,
                        allowed_updates=Update.ALL_TYPES,
                        error_callback=PollingErrors(),
                    )
                await application.start()
                resumed = await resume_executions(application, core.database)
                if resumed:
                    log.info("finished %d rebalance executions left over from before", resumed)
                log.info(
                    "Coinwarden is running (%s)",
                    "polling and sweeping" if settings.sweeps else "polling; sweeps by workers",
                )
                try:
                    yield application
                finally:
                    await updater.stop()
                    await application.stop()
        finally:
            heartbeat.cancel()
            with suppress(asyncio.CancelledError):
                await heartbeat
            await leases.release_all()
            await leases.stop_polling(poller)
    finally:
        await pool.close()  # after the handlers stopped: none is using a client any more
        await core.close()
