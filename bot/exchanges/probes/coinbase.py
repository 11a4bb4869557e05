"""Coinbase Advanced Trade (CDP keys): ``GET /api/v3/brokerage/key_permissions``.

A CDP key has three switches, View, Trade and Transfer, and belongs to one portfolio. Transfer
lets the key send crypto off Coinbase, so it counts as both withdraw and transfer-out. Coinbase
reports neither the key's IP allow-list nor an expiry here, so those stay unknown.
"""

from __future__ import annotations

from typing import Any

import ccxt.async_support as ccxt

from bot.exchanges.permissions import PermissionSummary


def _flag(value: object) -> bool | None:
    """A permission flag as Coinbase sends it (JSON booleans, tolerating "true"/"false")."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
        return value.strip().lower() == "true"
    return None


def summarize(payload: dict[str, Any]) -> PermissionSummary:
    """Map ``can_view`` / ``can_trade`` / ``can_transfer`` to a summary.

    Without a readable ``can_transfer`` we cannot tell whether the key moves funds: the user
    is then asked to confirm. A ``can_withdraw`` flag is honoured should Coinbase add one.
    """
    transfer = _flag(payload.get("can_transfer"))
    return PermissionSummary(
        read=bool(_flag(payload.get("can_view"))),
        spot_trade=bool(_flag(payload.get("can_trade"))),
        derivatives_trade=False,
        withdraw=bool(transfer) or bool(_flag(payload.get("can_withdraw"))),
        transfer_out=bool(transfer),
        ip_restricted=None,
        withdraw_known=transfer is not None,
    )


async def probe(exchange: ccxt.Exchange) -> PermissionSummary:
    payload = await exchange.v3_private_get_brokerage_key_permissions()
    return summarize(payload)
