"""Pure rendering: plain values in, HTML text and inline keyboards out.

Everything from users or exchanges goes through ``esc`` before it meets ``parse_mode=HTML``.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.exchanges.catalogue import Venue
from bot.exchanges.diagnosis import Diagnosis
from bot.exchanges.key_diagnosis import KeyReport
from bot.exchanges.permissions import PermissionSummary
from storage.activity import ActivityEntry
from storage.connections import ConnectionRecord, ConnectionStatus

EXPIRED_BUTTON = "This button has expired. Send the command again."
NO_CONNECTIONS = "No exchange accounts are connected here yet. Send /connect to add one."


def esc(text: object) -> str:
    return html.escape(str(text), quote=False)


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
    p: PermissionSummary, outbound_ips: Sequence[str], venue: Venue | None = None
) -> list[str]:
    """Advice for a monitoring key that could be safer."""
    warnings = []
    if venue is not None and venue.requires_derivatives and not p.spot_trade:
        warnings.append(
            f"ℹ️ {esc(venue.name)} only answers keys with futures rights, so this key can place "
            "futures orders. Keep it IP-restricted and never share it."
        )
    elif p.can_trade:
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


def connection_card(
    record: ConnectionRecord, venue: Venue, now: datetime
) -> tuple[str, InlineKeyboardMarkup]:
    icon, status = STATUS_LOOK[record.status]
    lines = [f"{icon} <b>{esc(record.label)}</b> · {esc(venue_title(venue, record.sandbox))}"]
    lines.append(f"Status: {status}")
    if record.status is not ConnectionStatus.CONNECTED and record.status_detail:
        lines.append(f"<i>{esc(record.status_detail)}</i>")
    if record.read_key is not None:
        permissions = PermissionSummary.from_flags(record.read_key.permissions)
        lines.append(f"Permissions: {permission_line(permissions)}")
        lines.append(f"API key: <code>{esc(record.read_key.mask)}</code>")
        added = record.read_key.added_at
        lines.append(f"Key added: {added:%Y-%m-%d} ({ago(added, now)})")
    lines.append(f"Last sync: {ago(record.last_sync_at, now)}")
    keyboard = InlineKeyboardMarkup(
        [[InlineKeyboardButton("🗑 Revoke", callback_data=f"rv:{record.id}")]]
    )
    return "\n".join(lines), keyboard


def connected_card(
    record: ConnectionRecord,
    venue: Venue,
    permissions: PermissionSummary,
    outbound_ips: Sequence[str],
) -> str:
    assert record.read_key is not None
    lines = [
        f"✅ <b>{esc(record.label)}</b> is connected to {esc(venue_title(venue, record.sandbox))}.",
        "",
        f"Permissions: {permission_line(permissions)}",
        f"API key: <code>{esc(record.read_key.mask)}</code> "
        "(the secret is stored encrypted and never shown)",
    ]
    warnings = key_warnings(permissions, outbound_ips, venue)
    if warnings:
        lines += ["", *warnings]
    lines += ["", "See it any time with /connections."]
    return "\n".join(lines)


def refused_withdraw(venue: Venue, permissions: PermissionSummary) -> str:
    what = "withdraw funds" if permissions.withdraw else "transfer funds out of the account"
    return (
        f"⛔ This key can <b>{what}</b>, so I refused it and stored nothing.\n\n"
        "A key that can move money out would let anyone who steals it empty your account. "
        f"Make a safe key instead:\n{venue.safe_key_howto}\n\n"
        "Then delete the refused key on the exchange and send /connect again."
    )


def withdrawals_unknown(venue: Venue, permissions: PermissionSummary) -> str:
    return (
        f"⚠️ The key works, but {esc(venue.name)} does not tell whether it can "
        "<b>withdraw</b>. I only keep keys that cannot.\n\n"
        f"Permissions I could read: {permission_line(permissions)}\n\n"
        f"Check the key on {esc(venue.name)}: withdrawals must be off. "
        "Then confirm below; nothing is stored until you do."
    )


def diagnosis_text(headline: str, diagnosis: Diagnosis) -> str:
    lines = [f"❌ {esc(headline)}", "", esc(diagnosis.cause), f"Fix: {esc(diagnosis.fix)}"]
    if diagnosis.exchange_message:
        lines.append(f"The exchange said: <i>{esc(diagnosis.exchange_message)}</i>")
    return "\n".join(lines)


STEP_MARK = {True: "✅", False: "❌", None: "➖"}


def check_report(record: ConnectionRecord, venue: Venue, report: KeyReport) -> str:
    lines = [
        f"🩺 <b>Check of {esc(record.label)}</b> · {esc(venue_title(venue, record.sandbox))}",
        "",
    ]
    for step in report.steps:
        lines.append(f"{STEP_MARK[step.ok]} <b>{esc(step.name)}</b>: {esc(step.found)}")
        if step.fix and step.ok is False:
            lines.append(f"    ↳ Fix: {esc(step.fix)}")
    icon, status = STATUS_LOOK[report.status]
    lines += ["", f"Status: {icon} {status}"]
    return "\n".join(lines)


def activity_log(record: ConnectionRecord, venue: Venue, entries: Sequence[ActivityEntry]) -> str:
    title = f"📜 <b>{esc(record.label)}</b> · {esc(venue_title(venue, record.sandbox))}"
    if not entries:
        return f"{title}\nNo activity recorded yet."
    lines = [f"{title} · last {len(entries)}", ""]
    for entry in entries:
        mark = "✅" if entry.outcome == "ok" else "❌"
        what = esc(entry.endpoint or entry.action)
        parts = [f"{entry.at:%m-%d %H:%M:%S}", mark, f"<code>{what}</code>"]
        if entry.http_status is not None:
            parts.append(str(entry.http_status))
        if entry.latency_ms is not None:
            parts.append(f"{entry.latency_ms} ms")
        if entry.error_class:
            parts.append(esc(entry.error_class))
        lines.append(" ".join(parts))
    lines += ["", "Times are UTC. Only calls are logged: never keys, headers or bodies."]
    return "\n".join(lines)
