"""Composition root: open storage and the vault, build the PTB Application, run it.

``running_bot`` is the one way the bot runs: the CLI, the sandbox and the e2e tests all use it,
so what the tests exercise is what production runs.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

from telegram import Update
from telegram.ext import AIORateLimiter, Application, ApplicationBuilder

from bot import handlers
from bot.clock import Clock, utc_now
from bot.config import Settings
from bot.exchanges.account_reads import AccountReader
from bot.exchanges.connections import ConnectionPolicy, ConnectionService
from bot.exchanges.health import HealthPolicy
from bot.exchanges.pool import ClientPool
from bot.exchanges.prices import PriceFeed
from bot.handlers.commands import bot_commands
from bot.handlers.context import SERVICES_KEY, HandlerServices
from bot.handlers.notices import Notifier
from bot.handlers.rebalance import REBALANCING_KEY, RebalanceDelivery, Rebalancing
from bot.handlers.schedule import SWEEPER_KEY, schedule_sweeps
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
from bot.rules.sweeps import Sweeper
from storage.activity import ActivityLog
from storage.alerts import AlertRepository
from storage.chats import ChatRepository
from storage.connections import ConnectionRepository
from storage.database import Database
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
NOTIFIER_KEY = "coinwarden.notifier"


def build_application(
    settings: Settings, core: Core, pool: ClientPool, clock: Clock = utc_now
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
    health = HealthPolicy(timedelta(seconds=settings.sync_seconds))
    permission_period = timedelta(seconds=settings.permission_check_seconds)
    repository = ConnectionRepository(core.database, core.vault)
    activity = ActivityLog(core.database)
    chats = ChatRepository(core.database)
    snapshots = SnapshotRepository(core.database)
    connections = ConnectionService(
        repository,
        activity,
        ConnectionPolicy(
            settings.max_connections_per_chat,
            settings.exchange_endpoints,
            health,
            permission_period,
        ),
        REDACTOR,
        clock=clock,
        pool=pool,
    )
    alerts = AlertService(
        AlertRepository(core.database),
        repository,
        snapshots,
        limit=settings.max_alerts_per_chat,
        clock=clock,
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
    reminders = ReminderPolicy(
        timedelta(days=settings.key_rotation_days),
        timedelta(days=settings.key_reminder_repeat_days),
    )
    rebalancing = _rebalancing(settings, core, pool, connections, reader, health, clock)
    application.bot_data[REBALANCING_KEY] = rebalancing
    notifier = Notifier(
        Outbox(core.database), connections, clock, rebalance=RebalanceDelivery(rebalancing)
    )
    application.bot_data[NOTIFIER_KEY] = notifier
    application.bot_data[SWEEPER_KEY] = Sweeper(
        [
            BalanceSweep(reader, repository, pool, chats, clock=clock),
            RotationReminders(repository, reminders, clock=clock),
            SnapshotRetention(snapshots, clock=clock),
            RebalanceSweep(
                core.database,
                TargetRepository(core.database),
                ProposalRepository(core.database),
                rebalancing.executor,
                clock=clock,
            ),
        ],
        after=lambda: notifier.deliver(application.bot),
    )
    application.bot_data[SERVICES_KEY] = HandlerServices(
        connections=connections,
        chats=chats,
        balances=reader,
        accounts=AccountReader(connections, pool, activity, snapshots),
        alerts=alerts,
        snapshots=snapshots,
        clock=clock,
        rotate_after_days=settings.key_rotation_days,
        outbound_ips=tuple(settings.outbound_ips),
        allowed_users=frozenset(settings.allowed_users),
        database=core.database,
    )
    handlers.register(application)
    return application


def _rebalancing(
    settings: Settings,
    core: Core,
    pool: ClientPool,
    connections: ConnectionService,
    reader: BalanceReader,
    health: HealthPolicy,
    clock: Clock,
) -> Rebalancing:
    """Targets, proposals and the executor, over the same reads, pool and clock as the rest."""
    repository = ConnectionRepository(core.database, core.vault)
    chats = ChatRepository(core.database)
    snapshots = SnapshotRepository(core.database)
    targets = TargetRepository(core.database)
    proposals = ProposalRepository(core.database)
    planner = RebalancePlanner(
        connections=repository, chats=chats, snapshots=snapshots, reader=reader, pool=pool
    )
    service = ProposalService(
        planner,
        targets,
        proposals,
        ttl=timedelta(seconds=settings.proposal_ttl_seconds),
        clock=clock,
    )
    executor = Executor(
        planner=planner,
        service=service,
        proposals=proposals,
        targets=targets,
        connections=repository,
        credentials=connections,
        chats=chats,
        pool=pool,
        activity=ActivityLog(core.database),
        clock=clock,
    )
    return Rebalancing(
        targets=TargetService(targets, repository, snapshots, pool, health, clock),
        proposals=service,
        repository=proposals,
        executor=executor,
        clock=clock,
    )


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
    notifier = application.bot_data[NOTIFIER_KEY]
    assert isinstance(notifier, Notifier)
    await notifier.deliver(application.bot)
    return len(finished)


async def announce_commands(application: Application) -> None:
    """Register the command list with Telegram (the menu beside the text box)."""
    await application.bot.set_my_commands(bot_commands())


@asynccontextmanager
async def running_bot(settings: Settings, *, clock: Clock = utc_now) -> AsyncIterator[Application]:
    """Start polling (or the webhook) and yield the running Application; stop cleanly after.

    ``clock`` is for tests that move time (health backoff, reminders) without sleeping.
    """
    REDACTOR.install()  # whoever runs the bot, its logs are scrubbed
    core = await open_core(settings)
    if not settings.allowed_users:
        log.warning(
            "COINWARDEN_ALLOWED_USERS is empty: anyone can use this bot (each chat is isolated)"
        )
    pool = ClientPool(settings.exchange_endpoints, clock=clock)
    try:
        application = build_application(settings, core, pool, clock)
        schedule_sweeps(
            application,
            {
                BalanceSweep.name: timedelta(seconds=settings.sync_seconds),
                RotationReminders.name: HOURLY,
                SnapshotRetention.name: HOURLY,
                RebalanceSweep.name: MINUTELY,
            },
        )
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
                    poll_interval=0.0, timeout=10, allowed_updates=Update.ALL_TYPES
                )
            await application.start()
            resumed = await resume_executions(application, core.database)
            if resumed:
                log.info("finished %d rebalance executions left over from before", resumed)
            log.info("Coinwarden is running")
            try:
                yield application
            finally:
                await updater.stop()
                await application.stop()
    finally:
        await pool.close()  # after the handlers stopped: none is using a client any more
        await core.close()
