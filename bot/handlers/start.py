"""/start, /help, a stray /cancel, and buttons whose flow has ended."""

from __future__ import annotations

from typing import cast

from telegram import CallbackQuery, Message, Update
from telegram.constants import ParseMode
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, ContextTypes

from bot.handlers.commands import help_text
from bot.handlers.context import services
from bot.handlers.dates import when
from bot.handlers.render import EXPIRED_BUTTON

WELCOME = (
    "👋 <b>Coinwarden</b> keeps an eye on your exchange accounts from this chat.\n\n"
    "• /connect an exchange with an API key, then see it in /connections.\n"
    "• /balance and /portfolio show what you hold on every exchange, valued in your currency "
    "(/settings), with a chart; /alert tells you when a balance crosses a line.\n"
    "• Keys that can <b>withdraw</b> are refused: I never need to move your money out.\n"
    "• Keys are encrypted (AES-256-GCM) and bound to this chat; no other chat can see or use "
    "them.\n"
    "• Messages that carry a key or secret are deleted the moment they arrive.\n"
    "• Every connection is checked regularly; you get a message when one breaks and when "
    "it recovers.\n"
    "• /revoke wipes a key from here at once; /pause stops all automated trading at once.\n\n"
    "Send /help for every command."
)


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = cast(Message, update.effective_message)
    hs = services(context)
    pause = await hs.chats.pause_state(message.chat_id)
    text = WELCOME
    if pause.paused and pause.since is not None:
        text += (
            f"\n\n⏸ Automated trading is <b>paused</b> in this chat since "
            f"{when(pause.since, hs.clock())}. Send /resume to restart it."
        )
    await message.reply_text(text, parse_mode=ParseMode.HTML)


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await cast(Message, update.effective_message).reply_text(help_text(), parse_mode=ParseMode.HTML)


async def nothing_to_cancel(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await cast(Message, update.effective_message).reply_text("There is nothing to cancel.")


async def expired_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A button from a finished flow or an old message: say so, change nothing."""
    await cast(CallbackQuery, update.callback_query).answer(EXPIRED_BUTTON)


def handlers() -> list[BaseHandler[Update, ContextTypes.DEFAULT_TYPE, None]]:
    return [
        CommandHandler("start", start),
        CommandHandler("help", help_command),
        CommandHandler("cancel", nothing_to_cancel),
    ]


def expired_handler() -> CallbackQueryHandler[ContextTypes.DEFAULT_TYPE, None]:
    return CallbackQueryHandler(expired_button)
