"""What a handler can reach: the domain services, put in ``bot_data`` by the composition root."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from telegram.ext import ContextTypes

from bot.clock import Clock
from bot.exchanges.account_reads import AccountReader
from bot.exchanges.connections import ConnectionService
from bot.rules.alert_service import AlertService
from bot.rules.balance_sweep import BalanceReader
from storage.chats import ChatRepository
from storage.database import Database
from storage.snapshots import SnapshotRepository

SERVICES_KEY = "coinwarden.services"


@dataclass(frozen=True)
class HandlerServices:
    connections: ConnectionService
    chats: ChatRepository
    balances: BalanceReader
    accounts: AccountReader
    alerts: AlertService
    snapshots: SnapshotRepository
    clock: Clock
    rotate_after_days: int
    outbound_ips: Sequence[str]
    allowed_users: frozenset[int]
    database: Database  # for the small repositories a handler calls directly (storage.labels)


def services(context: ContextTypes.DEFAULT_TYPE) -> HandlerServices:
    found = context.bot_data[SERVICES_KEY]
    assert isinstance(found, HandlerServices)
    return found
