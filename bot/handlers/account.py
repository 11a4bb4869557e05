"""/orders, /trades, /positions [label]: live reads of a connection, each in the activity log."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from telegram import CallbackQuery, Message, Update
from telegram.constants import ChatAction
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, ContextTypes

from bot.exchanges.account_reads import AccountReader, Listing, NotOffered, ReadFailed
from bot.exchanges.catalogue import Venue
from bot.handlers.balance import failed_read
from bot.handlers.choose import connection_from_args, connection_from_button
from bot.handlers.context import services
from bot.handlers.long_text import edit_long, reply_long
from bot.handlers.render_money import (
    no_derivatives,
    orders_message,
    positions_message,
    trades_message,
)
from storage.connections import ConnectionRecord


@dataclass(frozen=True)
class AccountRead:
    """One kind of live read: its button action, picker question, domain call and view."""

    action: str
    question: str
    read: Callable[[AccountReader, ConnectionRecord], Awaitable[Listing]]
    render: Callable[[ConnectionRecord, Venue, Listing, datetime], str]


READS = {
    "orders": AccountRead(
        "ord", "Which connection's open orders?", AccountReader.open_orders, orders_message
    ),
    "trades": AccountRead(
        "trd", "Which connection's last fills?", AccountReader.trades, trades_message
    ),
    "positions": AccountRead(
        "pos", "Which connection's positions?", AccountReader.positions, positions_message
    ),
}
_BY_ACTION = {read.action: read for read in READS.values()}
#: The Orders button under a /balance message.
UNDER_BALANCE = "bo"


async def _text(
    read: AccountRead, record: ConnectionRecord, context: ContextTypes.DEFAULT_TYPE
) -> str:
    hs = services(context)
    venue = hs.connections.venue_of(record)
    await context.bot.send_chat_action(record.chat_id, ChatAction.TYPING)
    try:
        listing = await read.read(hs.accounts, record)
    except NotOffered:
        return no_derivatives(record, venue)
    except ReadFailed as failed:
        return failed_read(failed.diagnosis, record.label)
    return read.render(record, venue, listing, hs.clock())


def _command(
    read: AccountRead,
) -> Callable[[Update, ContextTypes.DEFAULT_TYPE], Coroutine[Any, Any, None]]:
    async def command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = cast(Message, update.effective_message)
        record = await connection_from_args(
            message, context, context.args or [], read.action, read.question
        )
        if record is not None:
            await reply_long(message, await _text(read, record, context))

    return command


async def read_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A picker's choice, or the Orders button under a balance: the read replaces it."""
    query = cast(CallbackQuery, update.callback_query)
    chat_id = cast(Message, query.message).chat_id
    found = await connection_from_button(query, chat_id, context)
    if found is None:
        return
    action, record = found
    await query.answer()
    if action == UNDER_BALANCE:  # the balance stays; the orders come as a new message
        await reply_long(
            cast(Message, query.message), await _text(READS["orders"], record, context)
        )
        return
    await edit_long(query, await _text(_BY_ACTION[action], record, context))


def handlers() -> list[BaseHandler[Update, ContextTypes.DEFAULT_TYPE, None]]:
    return [
        *(CommandHandler(name, _command(read)) for name, read in READS.items()),
        CallbackQueryHandler(read_button, pattern=r"^(ord|trd|pos|bo):\d+$"),
    ]
