"""/rename <old label> <new label>: give a connection of this chat another label.

Labels may hold spaces, so the old label is the longest run of first words that names one of the
chat's connections (``"My main" Spare`` with quotes works too); the rest is the new label, held
to the same rules as in /connect. Keys, alerts, targets and history follow the connection's id,
so nothing else changes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import cast

from telegram import Message, Update
from telegram.constants import ParseMode
from telegram.ext import BaseHandler, CommandHandler, ContextTypes

from bot.exchanges.key_input import LABEL_MAX, InputProblem, clean_label, looks_like_secret
from bot.handlers.access import delete_secret_message
from bot.handlers.context import services
from bot.handlers.render import NO_CONNECTIONS, esc
from storage.connections import LabelTaken
from storage.labels import rename

HTML = ParseMode.HTML
USAGE = "Send /rename &lt;old label&gt; &lt;new label&gt;, e.g. /rename Main Long-term."
_QUOTED = re.compile(r'"(?P<old>[^"]+)"\s*(?P<new>.*)', re.DOTALL)


def split_labels(text: str, labels: Sequence[str]) -> tuple[str, str] | None:
    """(old, new) from what follows /rename: the old label as the chat stores it, and the rest.

    The longest run of first words that is one of ``labels`` (ignoring case) is the old label,
    or a double-quoted first part. None when no label starts the text. The new label may be
    empty (not given) and may be in double quotes.
    """
    stored = {label.casefold(): label for label in labels}
    quoted = _QUOTED.fullmatch(text.strip())
    if quoted is not None:
        old = stored.get(" ".join(quoted.group("old").split()).casefold())
        return None if old is None else (old, _unquote(quoted.group("new")))
    words = text.split()
    for count in range(len(words), 0, -1):
        old = stored.get(" ".join(words[:count]).casefold())
        if old is not None:
            return old, " ".join(words[count:])
    return None


def _unquote(text: str) -> str:
    value = text.strip()
    return value[1:-1] if len(value) > 1 and value[0] == value[-1] == '"' else value


def _yours(labels: Sequence[str]) -> str:
    return ", ".join(f"<b>{esc(label)}</b>" for label in labels)


def _arguments(message: Message) -> str:
    """The text after the command word."""
    parts = (message.text or "").split(maxsplit=1)
    return parts[1] if len(parts) > 1 else ""


async def rename_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = cast(Message, update.effective_message)
    hs = services(context)
    records = await hs.connections.list_for_chat(message.chat_id)
    if not records:
        await message.reply_text(NO_CONNECTIONS)
        return
    labels = [record.label for record in records]
    text = _arguments(message)
    if not text.strip():
        await message.reply_text(f"{USAGE}\nYours: {_yours(labels)}.", parse_mode=HTML)
        return
    found = split_labels(text, labels)
    if found is None:
        await message.reply_text(
            f"None of your connections is called that. Yours: {_yours(labels)}.\n{USAGE}",
            parse_mode=HTML,
        )
        return
    old, wanted = found
    if looks_like_secret(wanted) and len(wanted) > LABEL_MAX:  # a key pasted as the label
        hs.connections.remember_secrets(wanted)
        await delete_secret_message(message, context)
        await context.bot.send_message(
            message.chat_id,
            "🔑 That looked like an API key or secret, so I deleted it. A label is a short "
            "name such as Main.",
        )
        return
    if not wanted.strip():
        await message.reply_text(
            f"What should <b>{esc(old)}</b> be called? Send /rename {esc(old)} &lt;new label&gt;.",
            parse_mode=HTML,
        )
        return
    try:
        new = clean_label(wanted)
    except InputProblem as problem:
        await message.reply_text(f"{esc(str(problem))} Nothing was renamed.", parse_mode=HTML)
        return
    if new == old:
        await message.reply_text(f"It is already called <b>{esc(old)}</b>.", parse_mode=HTML)
        return
    record = next(record for record in records if record.label == old)
    try:
        before = await rename(hs.database, message.chat_id, record.id, new, hs.clock())
    except LabelTaken as taken:
        existing = str(taken.args[0]) if taken.args else new
        await message.reply_text(
            f"You already have a connection called <b>{esc(existing)}</b>. "
            "Choose another label; nothing was renamed.",
            parse_mode=HTML,
        )
        return
    if before is None:
        await message.reply_text(f"<b>{esc(old)}</b> is not here any more.", parse_mode=HTML)
        return
    await message.reply_text(
        f"✏️ <b>{esc(before)}</b> is now called <b>{esc(new)}</b>. Its keys, alerts and "
        "history stay as they were.",
        parse_mode=HTML,
    )


def handlers() -> list[BaseHandler[Update, ContextTypes.DEFAULT_TYPE, None]]:
    return [CommandHandler("rename", rename_command)]
