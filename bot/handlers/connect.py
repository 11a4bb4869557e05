"""Key entry: /connect, and /rotate or "Add … key" for a connection that exists.

/connect: pick venue → label → API key → secret → passphrase (if needed) → check → card.
/rotate and the Rotate / Add key buttons enter at the API key step for one key of one
connection; the new key gets the same deletion and checks, and replaces the old one only once it
has checked out.

Half-entered credentials live only in ``user_data`` (memory, never persisted) and are dropped on
completion, /cancel and timeout. Every message that may carry a secret is deleted first thing.

At a key, secret or passphrase step every text is input, command-looking or not: base64 keys
start with "/" one time in 64 and Telegram marks "/Y6uIk…" or "/cancel+Xy…" as a command. Only a
message that is exactly one of ``FLOW_COMMANDS`` (see ``bare_command``) acts as a command there.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import cast

from telegram import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.constants import ParseMode
from telegram.ext import (
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    ConversationHandler,
    MessageHandler,
    TypeHandler,
    filters,
)
from telegram.warnings import PTBUserWarning

from bot.exchanges.catalogue import VENUES, Venue
from bot.exchanges.connections import ConnectionService, fits_role
from bot.exchanges.key_check import KeyAccepted, KeyRefused, KeyRejected
from bot.exchanges.key_input import (
    LABEL_MAX,
    InputProblem,
    bare_command,
    clean_api_key,
    clean_label,
    clean_passphrase,
    clean_secret,
    looks_like_secret,
)
from bot.handlers.access import (
    KEY_AS_COMMAND,
    LOOKS_LIKE_SECRET,
    delete_secret_message,
    is_private,
    stray_text,
)
from bot.handlers.choose import connection_from_args, connection_from_button
from bot.handlers.commands import COMMANDS
from bot.handlers.context import services
from bot.handlers.render import (
    connected_card,
    diagnosis_text,
    esc,
    key_changed,
    key_entry_prompt,
    key_in_use,
    refused_withdraw,
    venue_title,
    withdrawals_unknown,
    wrong_slot,
)
from storage.connections import ConnectionLimitReached, ConnectionRecord, KeyInUse, LabelTaken
from storage.credentials import Credentials, KeyRole

PICK_VENUE, LABEL, API_KEY, SECRET, PASSPHRASE, CONFIRM_NO_WITHDRAWALS = range(6)
DRAFT = "connect.draft"
TIMEOUT_SECONDS = 600
HTML = ParseMode.HTML

#: The only commands a key step lets through, each when it is the whole message: /cancel,
#: /connect and /rotate end or restart this flow (fallbacks); /start and /help are answered by
#: their own handlers while the step keeps waiting. "/cancelXyz…", "/start+abc=", "/cancel now"
#: are input there, like any other text.
FLOW_COMMANDS = frozenset({"cancel", "connect", "rotate", "start", "help"})
KNOWN_COMMANDS = frozenset(name for name, _ in COMMANDS)


def _bot_username(message: Message) -> str | None:
    try:
        return message.get_bot().username
    except RuntimeError:  # no bot attached, or not initialised: no "@name" form is ours
        return None


class _BareCommand(filters.MessageFilter):
    """The whole message is one of these commands: ``/name`` or ``/name@<this bot>``, any case."""

    def __init__(self, names: frozenset[str]) -> None:
        super().__init__(name=f"BareCommand({', '.join(sorted(names))})")
        self.names = names

    def filter(self, message: Message) -> bool:
        return bare_command(message.text or "", _bot_username(message)) in self.names


#: What a key, secret or passphrase step takes as input: every text but a bare flow command.
KEY_INPUT = filters.TEXT & ~_BareCommand(FLOW_COMMANDS)
#: A command handler of this flow acts only when its command is the whole first word: Telegram
#: marks "/cancel" in "/cancel+Xy…" as a command, and CommandHandler alone would take it.
COMMAND_WORD = filters.UpdateType.MESSAGES & filters.Regex(
    r"^\s*/[A-Za-z0-9_]+(@[A-Za-z0-9_]+)?(\s|$)"
)


@dataclass(frozen=True)
class KeyTarget:
    """The key slot a /rotate or "Add … key" flow fills, in a connection the chat owns."""

    connection_id: int
    role: KeyRole
    replacing: bool  # a key is in that slot now (rotation) rather than none (adding)


@dataclass
class Draft:
    """What the user has entered so far; ``repr`` shows no secret."""

    picker_message_id: int
    venue: Venue | None = None
    target: KeyTarget | None = None
    sandbox: bool = False
    label: str | None = None
    api_key: str | None = None
    secret: str | None = None
    # A checked key waiting for "withdrawals are disabled"; memory only, like everything here.
    pending: tuple[Credentials, KeyAccepted] | None = None
    confirm_message_id: int | None = None

    def __repr__(self) -> str:
        return (
            f"Draft(venue={self.venue and self.venue.id}, label={self.label!r}, "
            f"target={self.target!r})"
        )


def _draft(context: ContextTypes.DEFAULT_TYPE) -> Draft | None:
    found = (context.user_data or {}).get(DRAFT)
    return found if isinstance(found, Draft) else None


def _forget(context: ContextTypes.DEFAULT_TYPE) -> None:
    if context.user_data is not None:
        context.user_data.pop(DRAFT, None)


def venue_picker() -> InlineKeyboardMarkup:
    rows = []
    for venue in VENUES.values():
        row = [InlineKeyboardButton(venue.name, callback_data=f"cv:{venue.id}")]
        if venue.has_testnet:
            row.append(InlineKeyboardButton("testnet", callback_data=f"cv:{venue.id}:t"))
        rows.append(row)
    rows.append([InlineKeyboardButton("Cancel", callback_data="cx")])
    return InlineKeyboardMarkup(rows)


PRIVATE_ONLY = (
    "🔒 For your safety I only accept API keys in a private chat. "
    "Open a private chat with me and send the command there."
)


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    message = cast(Message, update.effective_message)
    if not is_private(update.effective_chat):
        await message.reply_text(PRIVATE_ONLY)
        return ConversationHandler.END
    connections = services(context).connections
    if not await connections.has_room(message.chat_id):
        limit = connections.max_per_chat
        await message.reply_text(
            f"This chat has reached its limit of {limit} connection{'s' if limit != 1 else ''}. "
            "Revoke one with /revoke first."
        )
        return ConversationHandler.END
    picker = await message.reply_text(
        "Which exchange do you want to connect?\n\n"
        "Tip: create a <b>read-only</b> key with withdrawals <b>disabled</b>; "
        "I refuse keys that can withdraw.",
        parse_mode=HTML,
        reply_markup=venue_picker(),
    )
    _forget(context)
    cast(dict, context.user_data)[DRAFT] = Draft(picker_message_id=picker.message_id)
    return PICK_VENUE


async def pick_venue(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    query = update.callback_query
    assert query is not None and query.message is not None
    draft = _draft(context)
    parts = (query.data or "").split(":")
    venue = VENUES.get(parts[1]) if len(parts) in (2, 3) else None
    if draft is None or query.message.message_id != draft.picker_message_id or venue is None:
        await query.answer("This button has expired. Send /connect to start again.")
        return PICK_VENUE
    await query.answer()
    draft.venue, draft.sandbox = venue, len(parts) == 3 and venue.has_testnet
    await query.edit_message_text(
        f"<b>{esc(venue_title(venue, draft.sandbox))}</b>\n\n"
        "Send a short label for this account, e.g. <i>Main</i> or <i>Long-term</i> "
        "(up to 32 characters).\n/cancel stops at any time.",
        parse_mode=HTML,
    )
    return LABEL


async def text_while_picking(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    """The user typed instead of tapping an exchange; a pasted key is deleted all the same."""
    message = cast(Message, update.effective_message)
    if looks_like_secret(message.text or ""):
        services(context).connections.remember_secrets((message.text or "").strip())
        await delete_secret_message(message, context)
        await context.bot.send_message(
            message.chat_id,
            "🔑 That looked like a key, so I deleted it. First tap the exchange above; "
            "I ask for the key after the label.",
        )
    else:
        await message.reply_text("Tap the exchange in the list above first (or /cancel).")
    return PICK_VENUE


def _key_not_label(text: str) -> bool:
    """A pasted key where the label is asked for: it cannot be a label, so it is deleted."""
    value = text.strip()
    return looks_like_secret(value) and (value.startswith("/") or len(value) > LABEL_MAX)


async def receive_label(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    message = cast(Message, update.effective_message)
    if _key_not_label(message.text or ""):
        services(context).connections.remember_secrets((message.text or "").strip())
        await delete_secret_message(message, context)
        await context.bot.send_message(
            message.chat_id,
            "🔑 That looked like a key, so I deleted it. First send a short label for this "
            "account; I ask for the key right after.",
        )
        return LABEL
    draft = _draft(context)
    if draft is None or draft.venue is None:
        return ConversationHandler.END
    try:
        label = clean_label(message.text or "")
    except InputProblem as problem:
        await message.reply_text(f"{problem} Send the label again.")
        return LABEL
    existing = await services(context).connections.find(message.chat_id, label)
    if existing is not None:  # shown as stored: labels are compared ignoring case
        await message.reply_text(
            f"You already have a connection called <b>{esc(existing.label)}</b>. "
            "Send another label.",
            parse_mode=HTML,
        )
        return LABEL
    draft.label = label
    await message.reply_text(
        f"Label: <b>{esc(label)}</b>\n\n"
        f"Now paste the <b>{esc(draft.venue.key_label)}</b>. "
        "I delete your message as soon as it arrives.\n\n"
        # A first key is usually the read key; the card then offers a trade key, with its own
        # advice.
        f"💡 {draft.venue.read_key_howto}",
        parse_mode=HTML,
    )
    return API_KEY


async def _take_secret(
    update: Update, context: ContextTypes.DEFAULT_TYPE, clean: Callable[[str], str], state: int
) -> tuple[int, Draft, str] | int:
    """Delete first, then validate: how every step that receives a secret begins.

    Every text reaches it but a bare flow command (``KEY_INPUT``), so "/Y6uIk…" is a key here.
    Returns (chat id, draft, cleaned value), or the state to stay in / end on a problem.
    """
    message = cast(Message, update.effective_message)
    text = message.text or ""
    services(context).connections.remember_secrets(text.strip())
    await delete_secret_message(message, context)
    draft = _draft(context)
    if draft is None or draft.venue is None:
        return ConversationHandler.END
    command = bare_command(text, context.bot.username)
    if command in KNOWN_COMMANDS:  # e.g. /balance: not a key, and it does not leave this step
        await context.bot.send_message(
            message.chat_id,
            f"/{command} is a command, so I deleted it and did not take it as your "
            f"{_wanted(draft.venue, state)}. Paste the {_wanted(draft.venue, state)}, or send "
            "/cancel to stop first.",
        )
        return state
    try:
        return message.chat_id, draft, clean(text)
    except InputProblem as problem:
        await context.bot.send_message(message.chat_id, str(problem))
        return state


def _wanted(venue: Venue, state: int) -> str:
    """What the step in ``state`` asks for, in the venue's words."""
    if state == PASSPHRASE:
        return venue.passphrase_label
    return venue.secret_label if state == SECRET else venue.key_label


async def _ask(chat_id: int, context: ContextTypes.DEFAULT_TYPE, got: str, wanted: str) -> None:
    await context.bot.send_message(
        chat_id,
        f"🔑 Got the {esc(got)} and deleted your message.\nNow paste the <b>{esc(wanted)}</b>.",
        parse_mode=HTML,
    )


async def receive_api_key(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    taken = await _take_secret(update, context, clean_api_key, API_KEY)
    if isinstance(taken, int):
        return taken
    chat_id, draft, value = taken
    draft.api_key = value
    assert draft.venue is not None
    await _ask(chat_id, context, draft.venue.key_label, draft.venue.secret_label)
    return SECRET


async def receive_secret(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    taken = await _take_secret(update, context, clean_secret, SECRET)
    if isinstance(taken, int):
        return taken
    chat_id, draft, value = taken
    draft.secret = value
    assert draft.venue is not None
    if draft.venue.needs_passphrase:
        await _ask(chat_id, context, draft.venue.secret_label, draft.venue.passphrase_label)
        return PASSPHRASE
    return await _check_and_store(chat_id, context, draft, passphrase=None)


async def receive_passphrase(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    taken = await _take_secret(update, context, clean_passphrase, PASSPHRASE)
    if isinstance(taken, int):
        return taken
    chat_id, draft, passphrase = taken
    return await _check_and_store(chat_id, context, draft, passphrase=passphrase)


async def _check_and_store(
    chat_id: int, context: ContextTypes.DEFAULT_TYPE, draft: Draft, passphrase: str | None
) -> int:
    _forget(context)
    venue, label = draft.venue, draft.label
    assert venue is not None and label is not None and draft.api_key and draft.secret
    credentials = Credentials(draft.api_key, draft.secret, passphrase)
    connections = services(context).connections
    target = draft.target
    slot = (target.connection_id, target.role) if target is not None else None
    used = await connections.key_in_use(chat_id, credentials.api_key, slot)
    if used is not None:  # no exchange call is spent on a key that cannot be stored
        await context.bot.send_message(
            chat_id, _unchanged(key_in_use(used, label), target), parse_mode=HTML
        )
        return ConversationHandler.END
    status = await context.bot.send_message(
        chat_id, f"🔎 Checking the key with {esc(venue.name)}…", parse_mode=HTML
    )
    result = await connections.check_key(venue, credentials, draft.sandbox)
    record = await connections.get(chat_id, target.connection_id) if target is not None else None
    unfit = (
        isinstance(result, KeyAccepted)
        and target is not None
        and record is not None
        and not fits_role(venue, result.permissions, target.role)
    )
    if isinstance(result, KeyAccepted) and not result.permissions.withdraw_known and not unfit:
        draft.pending, draft.confirm_message_id = (credentials, result), status.message_id
        cast(dict, context.user_data)[DRAFT] = draft
        await status.edit_text(
            withdrawals_unknown(venue, result.permissions),
            parse_mode=HTML,
            reply_markup=InlineKeyboardMarkup(
                [
                    [InlineKeyboardButton("✅ Withdrawals are disabled", callback_data="cw")],
                    [InlineKeyboardButton("Cancel", callback_data="cx")],
                ]
            ),
        )
        return CONFIRM_NO_WITHDRAWALS
    keyboard: InlineKeyboardMarkup | None = None
    if isinstance(result, KeyAccepted) and unfit and record is not None and target is not None:
        text = _unchanged(wrong_slot(venue, result.permissions, record, target.role), target)
    elif isinstance(result, KeyRefused):
        role = target.role if target is not None else None
        text = refused_withdraw(venue, result.permissions, role=role)
        return await _ask_again(status, context, draft, "api_key", _unchanged(text, target))
    elif isinstance(result, KeyRejected):
        text = diagnosis_text(
            "The key did not pass the check. Nothing was stored.", result.diagnosis, venue
        )
        if result.diagnosis.suspect is not None:
            text = _unchanged(text, target)
            return await _ask_again(status, context, draft, result.diagnosis.suspect, text)
        text = _unchanged(f"{text}\n\nSend {esc(_retry(draft))} to try again.", target)
    else:
        text, keyboard = await _store(chat_id, context, draft, credentials, result)
    await status.edit_text(
        text, parse_mode=HTML, disable_web_page_preview=True, reply_markup=keyboard
    )
    return ConversationHandler.END


#: The step that asks again for a value the exchange refused.
ASK_AGAIN = {"api_key": API_KEY, "secret": SECRET, "passphrase": PASSPHRASE}


async def _ask_again(
    status: Message, context: ContextTypes.DEFAULT_TYPE, draft: Draft, suspect: str, text: str
) -> int:
    """Keep the flow open at the step of the refused value: the exchange, the label and the
    values that were right stay (in memory only, like everything half-entered)."""
    venue = draft.venue
    assert venue is not None
    if suspect == "api_key":
        draft.api_key = draft.secret = None
        wanted = f"a new <b>{esc(venue.key_label)}</b> (then its {esc(venue.secret_label)})"
    elif suspect == "secret":
        draft.secret = None
        wanted = f"the <b>{esc(venue.secret_label)}</b> again"
    else:
        wanted = f"the <b>{esc(venue.passphrase_label)}</b> again"
    cast(dict, context.user_data)[DRAFT] = draft
    kept = f"<b>{esc(draft.label)}</b> on {esc(venue_title(venue, draft.sandbox))}"
    await status.edit_text(
        f"{text}\n\nPaste {wanted} now; {kept} is kept. /cancel stops.",
        parse_mode=HTML,
        disable_web_page_preview=True,
    )
    return ASK_AGAIN[suspect]


def _unchanged(text: str, target: KeyTarget | None) -> str:
    """A failed rotation says that the key in place was not touched."""
    return f"{text}\n\n{KEY_UNCHANGED}" if target is not None and target.replacing else text


KEY_UNCHANGED = "Your current key is unchanged and keeps working."


def _retry(draft: Draft) -> str:
    """The command that starts this flow again."""
    if draft.target is None:
        return "/connect"
    return f"/rotate {draft.label}" if draft.target.replacing else "/connections"


async def confirm_no_withdrawals(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    """The user vouches that withdrawals are off on a key whose venue cannot tell."""
    query = cast(CallbackQuery, update.callback_query)
    message = cast(Message, query.message)
    draft = _draft(context)
    if draft is None or draft.pending is None or message.message_id != draft.confirm_message_id:
        await query.answer("This button has expired. Send /connect to start again.")
        return CONFIRM_NO_WITHDRAWALS
    _forget(context)
    await query.answer()
    credentials, accepted = draft.pending
    text, keyboard = await _store(
        message.chat_id, context, draft, credentials, accepted, confirmed=True
    )
    await query.edit_message_text(
        text, parse_mode=HTML, disable_web_page_preview=True, reply_markup=keyboard
    )
    return ConversationHandler.END


async def _store(
    chat_id: int,
    context: ContextTypes.DEFAULT_TYPE,
    draft: Draft,
    credentials: Credentials,
    accepted: KeyAccepted,
    *,
    confirmed: bool = False,
) -> tuple[str, InlineKeyboardMarkup | None]:
    assert draft.venue is not None and draft.label is not None
    hs = services(context)
    if draft.target is not None:
        target = draft.target
        before = await hs.connections.get(chat_id, target.connection_id)
        old_slot = before.key(target.role) if before is not None else None
        try:
            record = await hs.connections.replace_key(
                chat_id,
                target.connection_id,
                role=target.role,
                credentials=credentials,
                accepted=accepted,
                withdrawals_confirmed_off=confirmed,
            )
        except KeyInUse as used:  # stored meanwhile
            return _unchanged(key_in_use(used, draft.label), target), None
        if record is None:
            return f"<b>{esc(draft.label)}</b> was revoked meanwhile, so nothing was stored.", None
        return key_changed(
            record,
            draft.venue,
            target.role,
            target.replacing,
            accepted.permissions,
            hs.outbound_ips,
            old_slot.mask if old_slot is not None else None,
        ), None
    try:
        record = await hs.connections.connect(
            chat_id,
            venue=draft.venue,
            sandbox=draft.sandbox,
            label=draft.label,
            credentials=credentials,
            accepted=accepted,
            withdrawals_confirmed_off=confirmed,
        )
    except KeyInUse as used:
        return key_in_use(used, None), None
    except LabelTaken:
        return (
            f"A connection called <b>{esc(draft.label)}</b> was added meanwhile, so nothing was "
            "stored. Send /connect and choose another label."
        ), None
    except ConnectionLimitReached:
        return "This chat reached its connection limit meanwhile, so nothing was stored.", None
    return connected_card(record, draft.venue, accepted.permissions, hs.outbound_ips)


ROTATE_QUESTION = "Which connection's key do you want to replace?"


async def rotate_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    message = cast(Message, update.effective_message)
    if not is_private(update.effective_chat):
        await message.reply_text(PRIVATE_ONLY)
        return ConversationHandler.END
    record = await connection_from_args(message, context, context.args or [], "ro", ROTATE_QUESTION)
    if record is None:
        return ConversationHandler.END
    return await _begin_key_change(message.chat_id, context, record, role=None)


async def key_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    """Rotate (ro: which key?), or fill one slot: kr: read key, kt: trade key."""
    query = cast(CallbackQuery, update.callback_query)
    chat_id = cast(Message, query.message).chat_id
    if not is_private(update.effective_chat):
        await query.answer(PRIVATE_ONLY, show_alert=True)
        return ConversationHandler.END
    found = await connection_from_button(query, chat_id, context)
    if found is None:
        return ConversationHandler.END
    action, record = found
    await query.answer()
    role = {"kr": KeyRole.READ, "kt": KeyRole.TRADE}.get(action)
    return await _begin_key_change(chat_id, context, record, role)


async def _begin_key_change(
    chat_id: int,
    context: ContextTypes.DEFAULT_TYPE,
    record: ConnectionRecord,
    role: KeyRole | None,
) -> int:
    """Ask which key when the connection holds two; otherwise ask for the new key itself."""
    if role is None:
        if len(record.roles) > 1:
            await context.bot.send_message(
                chat_id,
                f"Which key of <b>{esc(record.label)}</b> do you want to replace?",
                parse_mode=HTML,
                reply_markup=InlineKeyboardMarkup(
                    [
                        [
                            InlineKeyboardButton("Read key", callback_data=f"kr:{record.id}"),
                            InlineKeyboardButton("Trade key", callback_data=f"kt:{record.id}"),
                        ],
                        [InlineKeyboardButton("Cancel", callback_data="pk:x")],
                    ]
                ),
            )
            return ConversationHandler.END
        role = record.roles[0]
    venue = ConnectionService.venue_of(record)
    target = KeyTarget(record.id, role, replacing=record.key(role) is not None)
    prompt = await context.bot.send_message(
        chat_id, key_entry_prompt(record, venue, target.role, target.replacing), parse_mode=HTML
    )
    _forget(context)
    cast(dict, context.user_data)[DRAFT] = Draft(
        picker_message_id=prompt.message_id,
        venue=venue,
        sandbox=record.sandbox,
        label=record.label,
        target=target,
    )
    return API_KEY


async def not_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int | None:
    """Non-text where a secret is expected: deleted too (it may be a screenshot of the key)."""
    message = cast(Message, update.effective_message)
    if message.caption:
        services(context).connections.remember_secrets(message.caption.strip())
    await delete_secret_message(message, context)
    await context.bot.send_message(
        message.chat_id, "Please send it as a plain text message (or /cancel)."
    )
    return None


async def not_text_label(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int | None:
    message = cast(Message, update.effective_message)
    await message.reply_text("Please send the label as a text message (or /cancel).")
    return None


async def stray_key(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    """Outside this flow, a pasted key that Telegram took for a command: deleted, with a hint."""
    await stray_text(update, context)
    return ConversationHandler.END  # not None: that would start a timeout for a flow never begun


async def stray_key_in_flow(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The same at a step that takes no text (confirming withdrawals are off); the step stays."""
    await stray_text(update, context)


async def cancel(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    draft = _draft(context)
    _forget(context)
    text = "Cancelled. Nothing was stored, and anything you entered is forgotten."
    if draft is not None and draft.target is not None and draft.target.replacing:
        text += f" {KEY_UNCHANGED}"
    query = update.callback_query
    if query is not None:
        await query.answer()
        await query.edit_message_text(text)
    elif update.effective_message is not None:
        await update.effective_message.reply_text(text)
    return ConversationHandler.END


async def timed_out(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    draft = _draft(context)
    _forget(context)
    if update.effective_chat is not None:
        text = "⌛ Key entry timed out after 10 minutes. Nothing was stored"
        if draft is not None and draft.target is not None:
            text += f"; {KEY_UNCHANGED[0].lower()}{KEY_UNCHANGED[1:]}"
            text += f" Send {_retry(draft)} to start over."
        else:
            text += "; send /connect to start over."
        await context.bot.send_message(update.effective_chat.id, text)


def handler() -> ConversationHandler:
    with warnings.catch_warnings():
        # Tracking per chat (not per message) is deliberate: pick_venue checks the message id.
        warnings.filterwarnings("ignore", message=".*per_message=False.*", category=PTBUserWarning)
        return _conversation()


Handlers = list[BaseHandler[Update, ContextTypes.DEFAULT_TYPE, object]]


Receive = Callable[[Update, ContextTypes.DEFAULT_TYPE], Coroutine[object, object, int]]


def _key_step(receive: Receive) -> Handlers:
    """A step that receives a key, secret or passphrase: all text is input, except a bare flow
    command, which goes on to the fallbacks; anything else is deleted too (a screenshot)."""
    other = ~filters.TEXT & ~filters.StatusUpdate.ALL
    return [MessageHandler(KEY_INPUT, receive), MessageHandler(other, not_text)]


def _entries() -> Handlers:
    """How the flow starts, and restarts from any step (after the step's own handlers)."""
    return [
        CommandHandler("connect", start, filters=COMMAND_WORD),
        CommandHandler("rotate", rotate_command, filters=COMMAND_WORD),
        CallbackQueryHandler(key_button, pattern=r"^(ro|kr|kt):"),
    ]


def _conversation() -> ConversationHandler:
    # Text a step asks for, and a key pasted there although Telegram took it for a command.
    text = filters.TEXT & (~filters.COMMAND | LOOKS_LIKE_SECRET)
    other = ~filters.TEXT & ~filters.COMMAND & ~filters.StatusUpdate.ALL
    return ConversationHandler(
        # Outside the flow too, a key-looking "/…" is deleted, before any command handler
        # (this conversation comes first in its group) can take "/cancel+Xy…" for /cancel.
        entry_points=[MessageHandler(KEY_AS_COMMAND, stray_key), *_entries()],
        states={
            PICK_VENUE: [
                CallbackQueryHandler(pick_venue, pattern=r"^cv:"),
                MessageHandler(text, text_while_picking),
            ],
            LABEL: [MessageHandler(text, receive_label), MessageHandler(other, not_text_label)],
            API_KEY: _key_step(receive_api_key),
            SECRET: _key_step(receive_secret),
            PASSPHRASE: _key_step(receive_passphrase),
            CONFIRM_NO_WITHDRAWALS: [CallbackQueryHandler(confirm_no_withdrawals, pattern=r"^cw$")],
            ConversationHandler.TIMEOUT: [TypeHandler(Update, timed_out)],
        },
        # Checked only after the step's own handlers: at a key step, only a bare /cancel,
        # /connect or /rotate gets here. (``allow_reentry`` would check the entry points first.)
        fallbacks=[
            MessageHandler(KEY_AS_COMMAND, stray_key_in_flow),
            CommandHandler("cancel", cancel, filters=COMMAND_WORD),
            CallbackQueryHandler(cancel, pattern=r"^cx$"),
            *_entries(),
        ],
        conversation_timeout=TIMEOUT_SECONDS,
        name="connect",
    )
