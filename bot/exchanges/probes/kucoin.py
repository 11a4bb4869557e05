"""KuCoin: ``GET /api/v1/user/api-key`` (the key's own permissions, IP whitelist and owner)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ccxt.async_support as ccxt

from bot.exchanges.permissions import PermissionSummary

#: KuCoin's permission names, compared case-insensitively. ``Margin`` is leveraged spot.
SPOT_SCOPES = frozenset({"spot", "margin"})
DERIVATIVES_SCOPES = frozenset({"futures", "leadtradefutures"})
WITHDRAW_SCOPES = frozenset({"withdrawal", "withdraw"})
#: ``Transfer`` and ``InnerTransfer`` (KuCoin's "Flex Transfer") can move funds between the
#: master account and its sub-accounts, so both count as transfer-out; refusing a key that
#: could only shuffle funds between its own wallets is the safe mistake.
TRANSFER_OUT_SCOPES = frozenset({"transfer", "innertransfer", "flextransfer", "flextransfers"})


def scopes(permission: object) -> frozenset[str]:
    """``"General,Spot,Transfer"`` as lower-case names."""
    if not isinstance(permission, str):
        return frozenset()
    return frozenset(part.strip().casefold() for part in permission.split(",") if part.strip())


def summarize(key_info: Mapping[str, Any]) -> PermissionSummary:
    """Map the ``data`` object of ``/api/v1/user/api-key`` to a summary.

    KuCoin reports no expiry for keys, and ``ipWhitelist`` is a comma list (masked, e.g.
    ``203.**.154``), empty when the key may be used from anywhere.
    """
    granted = scopes(key_info.get("permission"))
    whitelist = key_info.get("ipWhitelist")
    return PermissionSummary(
        read="general" in granted,
        spot_trade=bool(granted & SPOT_SCOPES),
        derivatives_trade=bool(granted & DERIVATIVES_SCOPES),
        withdraw=bool(granted & WITHDRAW_SCOPES),
        transfer_out=bool(granted & TRANSFER_OUT_SCOPES),
        ip_restricted=bool(whitelist.strip()) if isinstance(whitelist, str) else bool(whitelist),
    )


async def probe(exchange: ccxt.Exchange) -> PermissionSummary:
    response = await exchange.private_get_user_api_key()
    return summarize(response.get("data") or {})
