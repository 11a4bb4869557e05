"""OKX: ``GET /api/v5/account/config``, whose ``perm`` and ``ip`` describe the calling key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ccxt.async_support as ccxt

from bot.exchanges.permissions import PermissionSummary


def summarize(config: Mapping[str, Any]) -> PermissionSummary:
    """Map one ``account/config`` entry (``data[0]``) to a summary.

    ``perm`` is a comma list of ``read_only``, ``trade`` and ``withdraw``. OKX has one trade
    permission for spot and derivatives alike, and the account mode can be switched without
    touching the key, so ``trade`` counts as both. ``ip`` lists the bound IPs, empty when the key
    is usable from anywhere. Without a ``perm`` field nothing can be said about withdrawals.
    """
    perm = config.get("perm")
    granted = {part.strip() for part in str(perm or "").split(",")}
    trade = "trade" in granted
    return PermissionSummary(
        read="read_only" in granted,
        spot_trade=trade,
        derivatives_trade=trade,
        withdraw="withdraw" in granted,
        ip_restricted=bool(str(config.get("ip") or "").strip()),
        withdraw_known=perm is not None,
    )


async def probe(exchange: ccxt.Exchange) -> PermissionSummary:
    response = await exchange.private_get_account_config()
    entries = response.get("data") or []
    if not entries:
        raise ccxt.ExchangeError("okx account/config returned no entry for this key")
    return summarize(entries[0])
