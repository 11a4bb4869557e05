"""/pause and /resume: the chat's kill switch for every automated trading action.

Monitoring, health checks and alerts keep running while paused; only trading stops.
"""

from __future__ import annotations

from typing import cast

from telegram import Message, Update
from telegram.constants import ParseMode
from telegram.ext import BaseHandler, CommandHandler, ContextTypes

from bot.handlers.context import services
from bot.handlers.dates import when


async def pause(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = cast(Message, update.effective_message)
    hs = services(context)
    was = await hs.chats.pause_state(message.chat_id)
    now = hs.clock()
    state = await hs.chats.set_paused(message.chat_id, True, now)
    assert state.since is not None
    already = "was already" if was.paused else "is now"
    await message.reply_text(
        f"⏸ Automated trading {already} <b>paused</b> for this chat "
        f"(since {when(state.since, now)}).\n\n"
        "No automated order will be placed on any of your accounts until you send /resume. "
        "Health checks and alerts keep running.",
        parse_mode=ParseMode.HTML,
    )


async def resume(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = cast(Message, update.effective_message)
    hs = services(context)
    was = await hs.chats.pause_state(message.chat_id)
    if not was.paused:
        await message.reply_text("Automated trading is not paused; nothing to resume.")
        return
    await hs.chats.set_paused(message.chat_id, False, hs.clock())
    await message.reply_text(
        "▶️ Automated trading is <b>resumed</b> for this chat. It acts only on connections "
        "that are Connected and have a trade key; /pause stops it again at once.",
        parse_mode=ParseMode.HTML,
    )


def handlers() -> list[BaseHandler[Update, ContextTypes.DEFAULT_TYPE, None]]:
    return [CommandHandler("pause", pause), CommandHandler("resume", resume)]
