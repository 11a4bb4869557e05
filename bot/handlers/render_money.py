"""Pure rendering of the money views: balances, portfolio, orders, fills, positions.

Plain values in, HTML text and inline keyboards out. Tables are ``<pre>`` blocks that fit a
phone (about 32 columns); amounts keep the precision they need and no more.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.exchanges.account_reads import Fill, Listing, OpenOrder, Position
from bot.exchanges.catalogue import Venue
from bot.handlers.dates import when
from bot.handlers.layout import format_amount, format_money, format_percent, pre_table
from bot.handlers.render import esc, venue_title
from bot.rules.portfolio import Holdings, Portfolio
from storage.connections import ConnectionRecord
from storage.snapshots import Snapshot

REFRESHING = "⏳ refreshing…"
NO_SNAPSHOT = "No balance read yet."


def age(moment: datetime, now: datetime) -> str:
    seconds = max(0, int((now - moment).total_seconds()))
    if seconds < 5:
        return "just now"
    if seconds < 60:
        return f"{seconds} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    days = seconds // 86400
    return f"{days} day{'s' if days > 1 else ''} ago"


def as_of(moment: datetime | None, now: datetime) -> str:
    return "never read" if moment is None else f"as of {when(moment, now)} ({age(moment, now)})"


def holdings_table(holdings: Holdings, quote: str) -> str:
    """Asset, amount, value and share per line; dust rolled into one line; ``<pre>`` block."""
    rows: list[list[str]] = [["Asset", "Amount", quote, "%"]]
    for line in holdings.lines:
        rows.append(
            [
                line.asset,
                format_amount(line.amount),
                format_money(line.value, quote).removesuffix(f" {quote}")
                if line.value is not None
                else "no price",
                format_percent(line.share) if line.share is not None else "",
            ]
        )
    table = pre_table(rows, align=("l", "r", "r", "r"))
    parts = [f"<pre>{table}</pre>"]
    if holdings.dust.count:
        plural = "s" if holdings.dust.count > 1 else ""
        parts.append(
            f"{holdings.dust.count} small balance{plural}: "
            f"{esc(format_money(holdings.dust.value, quote))}"
        )
    return "\n".join(parts)


def _total_line(holdings: Holdings, quote: str) -> str:
    priced = any(line.value is not None for line in holdings.lines) or holdings.dust.count
    if holdings.unpriced and not priced:
        names = ", ".join(esc(name) for name in holdings.unpriced)
        return f"<b>Total: unknown</b>: no {esc(quote)} price for {names}"
    line = f"<b>Total: {esc(format_money(holdings.total, quote))}</b>"
    if holdings.unpriced:
        names = ", ".join(esc(name) for name in holdings.unpriced)
        line += f"\n(without {names}: no price)"
    return line


def balance_message(
    record: ConnectionRecord,
    venue: Venue,
    snapshot: Snapshot | None,
    holdings: Holdings | None,
    now: datetime,
    *,
    warning: str | None = None,
) -> tuple[str, InlineKeyboardMarkup]:
    """/balance: one connection's holdings from its latest snapshot."""
    lines = [f"💰 <b>{esc(record.label)}</b> · {esc(venue_title(venue, record.sandbox))}"]
    if snapshot is None or holdings is None:
        lines.append(NO_SNAPSHOT)
    else:
        lines.append(as_of(snapshot.taken_at, now))
        if warning:
            lines.append(warning)
        lines.append("")
        if holdings.lines or holdings.dust.count:
            lines.append(holdings_table(holdings, snapshot.quote))
        else:
            lines.append("The account is empty.")
        lines.append(_total_line(holdings, snapshot.quote))
        futures = futures_lines(snapshot)
        if futures:
            lines += ["", *futures]
    if (snapshot is None or holdings is None) and warning:
        lines.append(warning)
    return "\n".join(lines), balance_keyboard(record.id)


def futures_lines(snapshot: Snapshot) -> list[str]:
    """Wallet balance, unrealised PnL and margin of a derivatives account."""
    extra = snapshot.extra
    if "wallet_balance" not in extra:
        return []
    settle = extra.get("settle", "")

    def money(key: str) -> str:
        return esc(f"{format_amount(Decimal(extra[key]))} {settle}")

    pnl = Decimal(extra["unrealised_pnl"])
    sign = "+" if pnl > 0 else ""
    return [
        "<b>Futures account</b>",
        f"Wallet balance: {money('wallet_balance')}",
        f"Unrealised PnL: {sign}{money('unrealised_pnl')}",
        f"Margin balance: {money('margin_balance')}",
        f"Initial margin: {money('initial_margin')} · available: {money('available')}",
    ]


def balance_keyboard(connection_id: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton("🔄 Refresh", callback_data=f"br:{connection_id}"),
                InlineKeyboardButton("📊 Portfolio", callback_data="pf:0"),
                InlineKeyboardButton("📋 Orders", callback_data=f"bo:{connection_id}"),
            ]
        ]
    )


def _change(label: str, value: Decimal | None) -> str:
    return f"{label}: {format_percent(value, signed=True) if value is not None else 'n/a'}"


def portfolio_message(
    portfolio: Portfolio, now: datetime, *, by_exchange: bool = False, warning: str | None = None
) -> tuple[str, InlineKeyboardMarkup]:
    """/portfolio: every connection aggregated per asset, or per connection (By exchange)."""
    quote = portfolio.quote
    lines = ["📊 <b>Portfolio</b>", as_of(portfolio.as_of, now)]
    if warning:
        lines.append(warning)
    lines.append("")
    if by_exchange:
        rows = [["Connection", quote]]
        for part in portfolio.connections:
            value = part.value
            shown = (
                format_money(value, quote).removesuffix(f" {quote}")
                if value is not None and part.snapshot is not None and part.snapshot.quote == quote
                else "—"
            )
            rows.append([part.record.label, shown])
        lines.append(f"<pre>{pre_table(rows, align=('l', 'r'))}</pre>")
    else:
        lines.append(holdings_table(portfolio.holdings, quote))
    lines.append(_total_line(portfolio.holdings, quote))
    lines.append(f"{_change('24 h', portfolio.change_24h)} · {_change('7 d', portfolio.change_7d)}")
    notes = [
        f"⚠️ {esc(part.record.label)}: {esc(part.problem)}"
        for part in portfolio.connections
        if part.problem is not None
    ]
    if notes:
        lines += ["", *notes]
    toggle = (
        InlineKeyboardButton("🪙 By asset", callback_data="pf:0")
        if by_exchange
        else InlineKeyboardButton("🏦 By exchange", callback_data="px:0")
    )
    keyboard = InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton("🔄 Refresh", callback_data=f"pr:{int(by_exchange)}"),
                toggle,
                InlineKeyboardButton("📈 Chart", callback_data="pc:7"),
            ]
        ]
    )
    return "\n".join(lines), keyboard


def chart_caption(quote: str, days: int, total: Decimal) -> tuple[str, InlineKeyboardMarkup]:
    other = 30 if days == 7 else 7
    text = f"Portfolio: {esc(format_money(total, quote))} · value over the last {days} days"
    keyboard = InlineKeyboardMarkup(
        [[InlineKeyboardButton(f"📈 {other} days", callback_data=f"pc:{other}")]]
    )
    return text, keyboard


def _header(record: ConnectionRecord, venue: Venue, title: str) -> str:
    return f"{title} · <b>{esc(record.label)}</b> · {esc(venue_title(venue, record.sandbox))}"


def _covered(listing: Listing) -> list[str]:
    if not listing.markets:
        return []
    names = ", ".join(esc(m) for m in listing.markets)
    return [f"<i>This exchange is asked market by market: {names}.</i>"]


def orders_message(record: ConnectionRecord, venue: Venue, listing: Listing, now: datetime) -> str:
    lines = [_header(record, venue, "📋 <b>Open orders</b>"), f"as of {when(now, now)}", ""]
    orders: Sequence[OpenOrder] = listing.items
    if not orders:
        lines.append("No open orders.")
    else:
        rows = [["Market", "Side", "Amount", "Price"]]
        for order in orders:
            amount = format_amount(order.amount)
            if order.filled:
                amount = f"{format_amount(order.filled)}/{amount}"
            price = format_amount(order.price) if order.price is not None else order.type
            rows.append([order.symbol, order.side, amount, price])
        lines.append(f"<pre>{pre_table(rows, align=('l', 'l', 'r', 'r'))}</pre>")
    return "\n".join([*lines, *_covered(listing)])


def trades_message(record: ConnectionRecord, venue: Venue, listing: Listing, now: datetime) -> str:
    lines = [_header(record, venue, "🧾 <b>Last fills</b>"), f"as of {when(now, now)}", ""]
    fills: Sequence[Fill] = listing.items
    if not fills:
        lines.append("No fills.")
    for fill in fills:
        fee = (
            f" · fee {esc(format_amount(fill.fee))} {esc(fill.fee_currency or '')}"
            if fill.fee
            else ""
        )
        at = when(fill.at, now) if fill.at is not None else "?"
        lines.append(
            f"{esc(at)} {esc(fill.side)} {esc(format_amount(fill.amount))} {esc(fill.symbol)} "
            f"@ {esc(format_amount(fill.price))}{fee}"
        )
    return "\n".join([*lines, *_covered(listing)])


def positions_message(
    record: ConnectionRecord, venue: Venue, listing: Listing, now: datetime
) -> str:
    lines = [_header(record, venue, "📐 <b>Positions</b>"), f"as of {when(now, now)}", ""]
    positions: Sequence[Position] = listing.items
    if not positions:
        lines.append("No open positions.")
    for p in positions:

        def number(value: Decimal | None) -> str:
            return esc(format_amount(value)) if value is not None else "?"

        pnl = p.unrealised_pnl
        pnl_text = f"{'+' if pnl and pnl > 0 else ''}{number(pnl)}"
        leverage = f" · {number(p.leverage)}×" if p.leverage else ""
        lines += [
            f"<b>{esc(p.symbol)}</b> {esc(p.side)} {number(p.contracts)}{leverage}",
            f"  entry {number(p.entry)} · mark {number(p.mark)}",
            f"  uPnL {pnl_text} · liquidation {number(p.liquidation)}",
        ]
    return "\n".join(lines)


def no_derivatives(record: ConnectionRecord, venue: Venue) -> str:
    return (
        f"{esc(venue_title(venue, record.sandbox))} is connected for spot trading here, so "
        f"<b>{esc(record.label)}</b> has no derivatives positions. Positions are shown for "
        "Binance USDⓈ-M Futures connections."
    )
