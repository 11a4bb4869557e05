"""Telegram layer: one module per flow; thin (parse → call domain → render)."""

from __future__ import annotations

from telegram import Update
from telegram.ext import Application, MessageHandler, TypeHandler, filters

from bot.handlers import (
    account,
    activity,
    alerts,
    balance,
    check,
    choose,
    connect,
    connections,
    pause,
    portfolio,
    rebalance,
    rename,
    revoke,
    settings,
    start,
    unknown,
)
from bot.handlers.access import gate_allowed_users, stray_text
from bot.handlers.errors import on_error

GATE_GROUP = -1


def register(application: Application) -> None:
    """Wire every flow; order matters: the conversation first, the expired-button catch-all last."""
    application.add_handler(TypeHandler(Update, gate_allowed_users), group=GATE_GROUP)
    application.add_handler(connect.handler())
    for conversation in (*alerts.handlers(), *rebalance.handlers()):
        application.add_handler(conversation)
    for handler in (
        *connections.handlers(),
        *choose.handlers(),
        *start.handlers(),
        *rename.handlers(),
        *revoke.handlers(),
        *check.handlers(),
        *activity.handlers(),
        *pause.handlers(),
        *balance.handlers(),
        *portfolio.handlers(),
        *account.handlers(),
        *settings.handlers(),
    ):
        application.add_handler(handler)
    application.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, stray_text))
    # Last of its group: only a command no handler took, while any flow keeps its state.
    application.add_handler(unknown.handler())
    application.add_handler(start.expired_handler())
    application.add_error_handler(on_error)
