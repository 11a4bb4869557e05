"""Reading an account's holdings: one signed call (ccxt ``fetch_balance``) → ``Holdings``.

This one read is also the connection's health signal, so the sweep makes no other signed call
per period. Venue quirks of the balance payload live here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import ccxt.async_support as ccxt

from bot.exchanges.catalogue import Venue

ZERO = Decimal(0)


def to_decimal(value: object) -> Decimal | None:
    """A number as the exchange wrote it. ccxt hands out floats parsed from the exchange's
    strings; ``str(float)`` is the shortest text that round-trips, so it is the exchange's own
    digits for every amount of up to 15 significant digits."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


@dataclass(frozen=True)
class AssetBalance:
    """One asset: ``used`` is what open orders (or margin) hold."""

    free: Decimal
    used: Decimal = ZERO

    @property
    def total(self) -> Decimal:
        return self.free + self.used


@dataclass(frozen=True)
class FuturesAccount:
    """A derivatives account's own figures, in its settlement asset."""

    settle: str
    wallet_balance: Decimal
    unrealised_pnl: Decimal
    margin_balance: Decimal
    initial_margin: Decimal
    available: Decimal


@dataclass(frozen=True)
class Holdings:
    """What an account holds right now: non-zero assets only, by the venue's asset code."""

    assets: Mapping[str, AssetBalance]
    futures: FuturesAccount | None = None


def parse_holdings(balance: Mapping[str, Any], venue: Venue) -> Holdings:
    """ccxt's unified balance → Holdings; zero rows (venues list every coin) are dropped."""
    assets: dict[str, AssetBalance] = {}
    for asset, row in balance.items():
        if not isinstance(row, Mapping) or asset in ("info", "free", "used", "total"):
            continue
        free, used, total = (to_decimal(row.get(part)) for part in ("free", "used", "total"))
        if free is None and used is None and total is None:
            continue
        if free is None:
            free = total - (used or ZERO) if total is not None else ZERO
        if used is None:
            used = (total or free) - free
        if free == 0 and used == 0:
            continue
        assets[str(asset)] = AssetBalance(free, used)
    futures = _binance_futures(balance.get("info")) if venue.requires_derivatives else None
    return Holdings(assets, futures)


def _binance_futures(info: object) -> FuturesAccount | None:
    """USDⓈ-M ``/fapi/v3/account`` totals: wallet, unrealised PnL, margin, in USDT."""
    if not isinstance(info, Mapping) or "totalWalletBalance" not in info:
        return None

    def figure(name: str) -> Decimal:
        return to_decimal(info.get(name)) or ZERO

    return FuturesAccount(
        settle="USDT",
        wallet_balance=figure("totalWalletBalance"),
        unrealised_pnl=figure("totalUnrealizedProfit"),
        margin_balance=figure("totalMarginBalance"),
        initial_margin=figure("totalInitialMargin"),
        available=figure("availableBalance"),
    )


#: ccxt's Binance turns -2015 into DDoSProtection once a client has made one signed call (its
#: guess at a temporary ban). Binance answers -2015 for a deleted or IP-refused key too, and a
#: long-lived client must then say "Re-auth needed", not "rate limited" forever; real rate
#: limits and bans come as 429/418 and are still mapped as such.
_BINANCE_AUTH_GUESS = "hasAlreadyAuthenticatedSuccessfully"


async def read_holdings(client: ccxt.Exchange, venue: Venue) -> Holdings:
    """The one signed call of a balance read."""
    if _BINANCE_AUTH_GUESS in client.options:
        client.options[_BINANCE_AUTH_GUESS] = False
    return parse_holdings(await client.fetch_balance(), venue)
