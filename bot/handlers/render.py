"""Pure rendering: plain values in, HTML text and inline keyboards out.

Everything from users or exchanges goes through ``esc`` before it meets ``parse_mode=HTML``.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.exchanges.catalogue import Venue, get_venue, key_howto
from bot.exchanges.diagnosis import Diagnosis
from bot.exchanges.health import ROLE_NAMES
from bot.exchanges.key_diagnosis import KeyReport
from bot.exchanges.permissions import PermissionSummary
from bot.handlers.dates import when
from bot.rules.trading import TradingBlock, trading_block
from storage.activity import ActivityEntry
from storage.chats import PauseState
from storage.connections import ConnectionRecord, ConnectionStatus, KeyInUse, KeySlot
from storage.credentials import KeyRole
from storage.outbox import Notice, NoticeKind

EXPIRED_BUTTON = "This button has expired. Send the command again."
NO_CONNECTIONS = "No exchange accounts are connected here yet. Send /connect to add one."


def esc(text: object) -> str:
    return html.escape(str(text), quote=False)


ROLE_TITLE = {role: name.capitalize() for role, name in ROLE_NAMES.items()}
#: The card's button that fills an empty slot.
ADD_KEY = {KeyRole.READ: "➕ Add read-only key", KeyRole.TRADE: "➕ Add trade key"}

STATUS_LOOK = {
    ConnectionStatus.CONNECTED: ("🟢", "Connected"),
    ConnectionStatus.REAUTH: ("🔴", "Re-auth needed"),
    ConnectionStatus.ERROR: ("🟠", "Error"),
}


def venue_title(venue: Venue, sandbox: bool) -> str:
    return f"{venue.name} (testnet)" if sandbox else venue.name


def ago(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "never"
    seconds = max(0, int((now - when).total_seconds()))
    if seconds < 60:
        return "just now"
    for size, unit in ((86400, "day"), (3600, "h"), (60, "min")):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if unit == 'day' and count > 1 else ''} ago"
    return "just now"


def permission_line(p: PermissionSummary) -> str:
    def mark(on: bool) -> str:
        return "✅" if on else "❌"

    parts = [
        f"{mark(p.read)} read",
        f"{mark(p.spot_trade)} spot trade",
        f"{mark(p.derivatives_trade)} futures",
        f"{mark(p.withdraw)} withdraw" if p.withdraw_known else "❔ withdraw (not reported)",
    ]
    if p.ip_restricted is not None:
        parts.append("🔒 IP restricted" if p.ip_restricted else "🌐 no IP restriction")
    return " · ".join(parts)


def key_warnings(
    p: PermissionSummary,
    outbound_ips: Sequence[str],
    venue: Venue | None = None,
    role: KeyRole = KeyRole.READ,
) -> list[str]:
    """Advice for a key that could be safer."""
    warnings = []
    if venue is not None and venue.requires_derivatives and not p.spot_trade:
        warnings.append(
            f"ℹ️ {esc(venue.name)} only answers keys with futures rights, so this key can place "
            "futures orders. Keep it IP-restricted and never share it."
        )
    elif p.can_trade and role is KeyRole.READ:
        warnings.append(
            "⚠️ This key can <b>trade</b>. For monitoring, a read-only key is safer: "
            "anyone holding it could place orders."
        )
    if p.ip_restricted is False:
        if outbound_ips:
            ips = ", ".join(f"<code>{esc(ip)}</code>" for ip in outbound_ips)
            warnings.append(f"⚠️ No IP restriction. Restrict the key to: {ips}")
        else:
            warnings.append(
                "⚠️ No IP restriction. Restrict the key to this server's public IP on the exchange."
            )
    return warnings


def _key_lines(record: ConnectionRecord, role: KeyRole, now: datetime, rotate_after: int) -> list:
    slot = record.key(role)
    name = ROLE_TITLE[role]
    if slot is None:
        if role is KeyRole.TRADE:
            return [f"{name}: none (monitoring only)"]
        return [f"{name}: none, so the trade key is also used for reading"]
    age = (now - slot.added_at).days
    old = " · 🔁 due for rotation" if age >= rotate_after else ""
    permissions = PermissionSummary.from_flags(slot.permissions)
    return [
        f"{name}: <code>{esc(slot.mask)}</code> · added {when(slot.added_at, now)} "
        f"({ago(slot.added_at, now)}){old}",
        f"    {permission_line(permissions)}",
    ]


TRADING_LOOK = {
    None: "✅ allowed",
    TradingBlock.PAUSED: "⏸ paused for this chat (/resume)",
    TradingBlock.NOT_CONNECTED: "⛔ stopped until the connection is Connected again",
}


def fix_line(fix: str) -> str:
    """The fix, labelled as one only when there is something to do."""
    return esc(fix) if fix.startswith("Nothing to do") else f"Fix: {esc(fix)}"


def said(venue: Venue, message: str) -> str:
    """The exchange's own words, under its display name (not ccxt's id)."""
    return f"{esc(venue.name)} said: <i>{esc(message)}</i>"


def status_lines(record: ConnectionRecord, now: datetime) -> list[str]:
    """The status with its cause, the exchange's words and the fix, when it is not plain."""
    icon, status = STATUS_LOOK[record.status]
    if record.status is ConnectionStatus.CONNECTED:
        lines = [f"Status: {icon} {status}"]
        if record.failure_streak and record.status_detail:
            lines.append(f"⚠️ The last check failed ({esc(record.status_detail)}); I keep trying.")
        return lines
    lines = [f"Status: {icon} {status} since {when(record.status_at, now)}"]
    if record.status_detail:
        lines.append(f"<i>{esc(record.status_detail)}</i>")
    if record.status_message:
        lines.append(said(get_venue(record.venue), record.status_message))
    if record.status_fix:
        lines.append(fix_line(record.status_fix))
    return lines


def connection_card(
    record: ConnectionRecord, venue: Venue, pause: PauseState, now: datetime, rotate_after: int
) -> tuple[str, InlineKeyboardMarkup]:
    icon, _ = STATUS_LOOK[record.status]
    lines = [f"{icon} <b>{esc(record.label)}</b> · {esc(venue_title(venue, record.sandbox))}"]
    lines += status_lines(record, now)
    for role in KeyRole:
        lines += _key_lines(record, role, now, rotate_after)
    if record.trade_key is not None:  # a read-only connection never trades: nothing to say
        lines.append(f"Automated trading: {TRADING_LOOK[trading_block(record, pause)]}")
    lines.append(f"Last sync: {ago(record.last_ok_at, now)}")
    if record.status is not ConnectionStatus.CONNECTED:
        lines.append(f"Last checked: {ago(record.last_sync_at, now)}")
    return "\n".join(lines), card_buttons(record)


#: Under what a card's button replaced the card with (a check, a kept revoke): the way back.
def back_to_card(record: ConnectionRecord) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton("« Back to the card", callback_data=f"cc:{record.id}")]]
    )


def connections_summary(
    records: Sequence[ConnectionRecord],
) -> tuple[str, InlineKeyboardMarkup]:
    """/connections with several accounts: one line each (status, label, venue) and a button
    to open each card."""
    lines = [f"<b>Your connections</b> ({len(records)})"]
    for record in records:
        icon, _ = STATUS_LOOK[record.status]
        venue = get_venue(record.venue)
        lines.append(
            f"{icon} <b>{esc(record.label)}</b> · {esc(venue_title(venue, record.sandbox))}"
        )
    lines.append("\nOpen one for its keys, status and buttons.")
    keyboard = InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(record.label, callback_data=f"cc:{record.id}")]
            for record in records
        ]
    )
    return "\n".join(lines), keyboard


def card_buttons(record: ConnectionRecord) -> InlineKeyboardMarkup:
    """Check / Rotate / Revoke / Add the missing key; ``action:id`` stays far below 64 bytes."""
    rows = [
        [
            InlineKeyboardButton("🩺 Check", callback_data=f"ck:{record.id}"),
            InlineKeyboardButton("🔁 Rotate", callback_data=f"ro:{record.id}"),
        ],
        [InlineKeyboardButton("🗑 Revoke", callback_data=f"rv:{record.id}")],
    ]
    if record.trade_key is None:
        rows[1].append(
            InlineKeyboardButton(ADD_KEY[KeyRole.TRADE], callback_data=f"kt:{record.id}")
        )
    elif record.read_key is None:
        rows[1].append(InlineKeyboardButton(ADD_KEY[KeyRole.READ], callback_data=f"kr:{record.id}"))
    return InlineKeyboardMarkup(rows)


def _stored_key(
    slot: KeySlot,
    role: KeyRole,
    venue: Venue,
    permissions: PermissionSummary,
    outbound_ips: Sequence[str],
) -> list[str]:
    """What a result card says about the key just stored, with advice to make it safer."""
    lines = [
        "",
        f"Permissions: {permission_line(permissions)}",
        f"{ROLE_TITLE[role]}: <code>{esc(slot.mask)}</code> "
        "(the secret is stored encrypted and never shown)",
    ]
    warnings = key_warnings(permissions, outbound_ips, venue, role)
    return [*lines, "", *warnings] if warnings else lines


def connected_card(
    record: ConnectionRecord,
    venue: Venue,
    permissions: PermissionSummary,
    outbound_ips: Sequence[str],
) -> tuple[str, InlineKeyboardMarkup]:
    """The result of /connect, with the offer of the second key."""
    role = KeyRole.READ if record.read_key is not None else KeyRole.TRADE
    slot = record.key(role)
    assert slot is not None
    lines = [
        f"✅ <b>{esc(record.label)}</b> is connected to {esc(venue_title(venue, record.sandbox))}.",
        *_stored_key(slot, role, venue, permissions, outbound_ips),
    ]
    if role is KeyRole.READ:
        offer = (
            "To let Coinwarden trade later, add a separate <b>trade key</b> (trade on, "
            "withdrawals off). The read key stays for monitoring."
        )
        button = InlineKeyboardButton(ADD_KEY[KeyRole.TRADE], callback_data=f"kt:{record.id}")
    else:
        offer = (
            "This key can trade, so it is kept as the <b>trade key</b> and also used for "
            "reading. Safer: add a <b>read-only key</b> for monitoring."
        )
        button = InlineKeyboardButton(ADD_KEY[KeyRole.READ], callback_data=f"kr:{record.id}")
    lines += ["", offer, "See it any time with /connections."]
    return "\n".join(lines), InlineKeyboardMarkup([[button]])


def refused_withdraw(
    venue: Venue, permissions: PermissionSummary, role: KeyRole | None = None
) -> str:
    """A key that can move money out: refused, with how to make a safe one of the kind that
    was asked for (``role``; on /connect, the kind this key would have been)."""
    what = "withdraw funds" if permissions.withdraw else "transfer funds out of the account"
    wanted = role or (KeyRole.TRADE if permissions.can_trade else KeyRole.READ)
    return (
        f"⛔ This key can <b>{what}</b>, so I refused it and stored nothing.\n\n"
        "A key that can move money out would let anyone who steals it empty your account. "
        f"Make a safe key instead:\n{key_howto(venue, wanted)}\n\n"
        "And delete the refused key on the exchange."
    )


def wrong_slot(
    venue: Venue, permissions: PermissionSummary, record: ConnectionRecord, role: KeyRole
) -> str:
    """A checked key offered for the slot it does not fit, with advice that leads to the slot
    it does fit (never a /rotate that would put it in the other one)."""
    label = esc(record.label)
    again = (
        f"send /rotate {label} again"
        if record.key(role) is not None
        else f"tap {ADD_KEY[role]} on {label}'s card in /connections again"
    )
    seen = f"Permissions I could read: {permission_line(permissions)}"
    if role is KeyRole.TRADE:
        return (
            "⛔ This key cannot <b>trade</b>, so it cannot be the trade key. Nothing was stored."
            f"\n\n{seen}\n\nMake a key with trading on and withdrawals off:\n"
            f"{venue.trade_key_howto}\n\nThen {again}."
        )
    elsewhere = (
        f"\n\nOr let this key be the trade key: tap {ADD_KEY[KeyRole.TRADE]} on {label}'s card."
        if record.trade_key is None
        else ""
    )
    return (
        "⛔ This key can <b>trade</b>, so it cannot be the read-only key. Nothing was stored."
        f"\n\n{seen}\n\nA read key only reads: make one with reading on and trading and "
        f"withdrawals off:\n{venue.read_key_howto}\n\nThen {again}.{elsewhere}"
    )


def key_in_use(used: KeyInUse, label: str | None) -> str:
    """The API key is stored in the chat already: where, and why it cannot go in twice."""
    name, where = ROLE_NAMES[used.role], esc(used.label)
    if used.same_slot:
        return (
            f"That is the {name} already in place on <b>{where}</b>, so nothing changed. To "
            "rotate, create a new key on the exchange and paste that one."
        )
    if used.label == label:
        return (
            f"This is already the {name} of <b>{where}</b>. Its read key and trade key must be "
            "two different keys, so nothing was stored: create another key on the exchange."
        )
    return (
        f"This API key is already connected here as <b>{where}</b> (its {name}). Nothing was "
        "stored: one key belongs to one connection, or revoking one would break the other."
    )


def key_entry_prompt(record: ConnectionRecord, venue: Venue, role: KeyRole, replacing: bool) -> str:
    """The first message of /rotate or "Add … key": what is being replaced, and how."""
    title = f"<b>{esc(record.label)}</b> · {esc(venue_title(venue, record.sandbox))}"
    name = ROLE_TITLE[role].lower()
    if replacing:
        head = f"🔁 New {name} for {title}"
        body = (
            "Create a new key on the exchange first. Your current key keeps working until the "
            "new one checks out; only then is the old one wiped."
        )
    else:
        head = f"➕ Add a {name} to {title}"
        body = (
            "A trade key places orders; it must not be able to withdraw."
            if role is KeyRole.TRADE
            else "A read-only key is used for monitoring; the trade key then only trades."
        )
    return (
        f"{head}\n\n{body}\n\nPaste the <b>{esc(venue.key_label)}</b>. I delete your message "
        f"as soon as it arrives. /cancel stops at any time.\n\n💡 {key_howto(venue, role)}"
    )


def key_changed(
    record: ConnectionRecord,
    venue: Venue,
    role: KeyRole,
    replaced: bool,
    permissions: PermissionSummary,
    outbound_ips: Sequence[str],
    old_mask: str | None = None,
) -> str:
    """The result of a rotation (with the reminder to delete the old key, named by its
    fingerprint) or of an added key."""
    slot = record.key(role)
    assert slot is not None
    name = ROLE_TITLE[role].lower()
    title = f"<b>{esc(record.label)}</b> · {esc(venue_title(venue, record.sandbox))}"
    if replaced:
        lines = [f"✅ The new {name} of {title} checked out and is in place."]
    else:
        lines = [f"✅ {title} now has a {name}."]
    lines += _stored_key(slot, role, venue, permissions, outbound_ips)
    if replaced:
        old = f" (<code>{esc(old_mask)}</code>)" if old_mask else ""
        lines += [
            "",
            f"The old key{old} is wiped from Coinwarden. <b>Now delete it on the exchange</b>, "
            f"or it keeps working for anyone who has a copy:\n{venue.delete_key_howto}",
        ]
    return "\n".join(lines)


def withdrawals_unknown(venue: Venue, permissions: PermissionSummary) -> str:
    return (
        f"⚠️ The key works, but {esc(venue.name)} does not tell whether it can "
        "<b>withdraw</b>. I only keep keys that cannot.\n\n"
        f"Permissions I could read: {permission_line(permissions)}\n\n"
        f"Check the key on {esc(venue.name)}: withdrawals must be off. "
        "Then confirm below; nothing is stored until you do."
    )


def diagnosis_text(headline: str, diagnosis: Diagnosis, venue: Venue) -> str:
    lines = [f"❌ {esc(headline)}", "", esc(diagnosis.cause), fix_line(diagnosis.fix)]
    if diagnosis.exchange_message:
        lines.append(said(venue, diagnosis.exchange_message))
    return "\n".join(lines)


STEP_MARK = {True: "✅", False: "❌", None: "➖"}


def check_report(record: ConnectionRecord, venue: Venue, report: KeyReport) -> str:
    lines = [
        f"🩺 <b>Check of {esc(record.label)}</b> · {esc(venue_title(venue, record.sandbox))}",
        "",
    ]
    for step in report.steps:
        mark = "⚠️" if step.advice else STEP_MARK[step.ok]
        lines.append(f"{mark} <b>{esc(step.name)}</b>: {esc(step.found)}")
        if step.fix and step.advice:
            lines.append(f"    ↳ Advice: {esc(step.fix)}")
        elif step.fix and step.ok is False:
            lines.append(f"    ↳ Fix: {esc(step.fix)}")
    icon, status = STATUS_LOOK[report.status]
    lines += ["", f"Status: {icon} {status}"]
    return "\n".join(lines)


def activity_log(
    record: ConnectionRecord, venue: Venue, entries: Sequence[ActivityEntry], now: datetime
) -> str:
    title = f"📜 <b>{esc(record.label)}</b> · {esc(venue_title(venue, record.sandbox))}"
    if not entries:
        return f"{title}\nNo activity recorded yet."
    lines = [f"{title} · last {len(entries)}", ""]
    for entry in entries:
        mark = "✅" if entry.outcome == "ok" else "❌"
        what = esc(entry.endpoint or entry.action)
        parts = [when(entry.at, now, seconds=True), mark, f"<code>{what}</code>"]
        if entry.http_status is not None:
            parts.append(str(entry.http_status))
        if entry.latency_ms is not None:
            parts.append(f"{entry.latency_ms} ms")
        if entry.error_class:
            parts.append(esc(entry.error_class))
        lines.append(" ".join(parts))
    lines += ["", "Only calls are logged: never keys, headers or bodies."]
    return "\n".join(lines)


def duration(seconds: float) -> str:
    """A short human duration: 45 s, 12 min, 3 h, 2 days."""
    seconds = max(0, int(seconds))
    for size, unit in ((86400, " days"), (3600, " h"), (60, " min")):
        if seconds >= size:
            count = seconds // size
            return f"{count}{unit if count > 1 or unit != ' days' else ' day'}"
    return f"{seconds} s"


def notice_message(
    notice: Notice, record: ConnectionRecord | None, now: datetime
) -> tuple[str, InlineKeyboardMarkup | None] | None:
    """The chat message for an outbox notice; None when its connection no longer exists."""
    if record is None:
        return None
    venue = get_venue(record.venue)
    title = f"<b>{esc(record.label)}</b> · {esc(venue_title(venue, record.sandbox))}"
    payload = notice.payload
    buttons = InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton("🩺 Check", callback_data=f"ck:{record.id}"),
                InlineKeyboardButton("🔁 Rotate", callback_data=f"ro:{record.id}"),
            ]
        ]
    )
    if notice.kind is NoticeKind.ROTATE_KEY:
        role = KeyRole(payload["role"])
        added = datetime.fromisoformat(payload["added_at"])
        text = (
            f"🔁 The {ROLE_TITLE[role].lower()} of {title} is {(now - added).days} days old.\n\n"
            "Rotating keys regularly limits what a leak nobody noticed can do. Create a new key "
            f"on {esc(venue.name)} (same permissions), then send /rotate {esc(record.label)}: "
            "the old key stays in place until the new one checks out."
        )
        return text, buttons
    status = ConnectionStatus(payload["status"])
    since = datetime.fromisoformat(payload["since"])
    if status is ConnectionStatus.CONNECTED:
        _, before = STATUS_LOOK[ConnectionStatus(payload["previous"])]
        took = duration((now - since).total_seconds())
        text = f"🟢 {title} recovered: Connected again (it was “{before}” for {took})."
        return text, None
    icon, words = STATUS_LOOK[status]
    lines = [f"{icon} {title}: <b>{words}</b>", ""]
    if payload.get("cause"):
        lines.append(esc(payload["cause"]))
    if payload.get("exchange_message"):
        lines.append(said(venue, payload["exchange_message"]))
    if payload.get("fix"):
        lines.append(fix_line(payload["fix"]))
    lines.append("")
    trading = record.trade_key is not None
    if status is ConnectionStatus.REAUTH:
        lines.append(
            ("Automated trading on this account is stopped. " if trading else "")
            + "When the key works again I notice by myself; to use a new key, send "
            f"/rotate {esc(record.label)}."
        )
        return "\n".join(lines), buttons
    lines.append(
        ("Automated trading on this account waits until it recovers. " if trading else "")
        + "I keep checking and tell you when it recovers."
    )
    # An outage has nothing to rotate: Check only.
    return "\n".join(lines), InlineKeyboardMarkup([buttons.inline_keyboard[0][:1]])
