"""Bybit v5: ``GET /v5/user/query-api`` (any key may call it, whatever its permissions)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import ccxt.async_support as ccxt

from bot.exchanges.permissions import PermissionSummary

#: Wallet scopes that move funds to another account: sub-account transfers from the master
#: (``SubMemberTransfer``) and from a sub-account (``SubMemberTransferList``). ``AccountTransfer``
#: only moves funds between this account's own wallets (Funding ↔ Unified), so it is not here.
TRANSFER_OUT_SCOPES = frozenset({"SubMemberTransfer", "SubMemberTransferList"})
#: Permission groups that trade derivatives: contracts, USDC options/perpetuals, UTA derivatives.
DERIVATIVES_GROUPS = ("ContractTrade", "Options", "Derivatives")
#: Bybit's way of saying "no IP bound".
ANY_IP = "*"


def _expiry(value: object) -> datetime | None:
    """``expiredAt`` (``2023-05-15T03:21:05Z``); Bybit sets it only for keys without an IP bound.

    Anything empty, unparsable or at the epoch means "does not expire".
    """
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed if parsed.year > 1970 else None


def summarize(key_info: Mapping[str, Any]) -> PermissionSummary:
    """Map the ``result`` object of ``/v5/user/query-api`` to a summary.

    Withdraw and transfer-out are read from ``permissions.Wallet`` whatever ``readOnly`` says:
    a read-only key should never list them, and if one does, refusing it is the safe mistake.
    Trading needs a read-write key (``readOnly`` 0) with the trade scope ticked.
    """
    permissions = key_info.get("permissions") or {}
    wallet = set(permissions.get("Wallet") or ())
    writable = str(key_info.get("readOnly", 1)) in ("0", "False", "false")
    ips = [ip for ip in key_info.get("ips") or () if ip]
    return PermissionSummary(
        read=True,  # every Bybit key reads; the endpoint answering proves the key is live
        spot_trade=writable and "SpotTrade" in (permissions.get("Spot") or ()),
        derivatives_trade=writable and any(permissions.get(name) for name in DERIVATIVES_GROUPS),
        withdraw="Withdraw" in wallet,
        transfer_out=bool(wallet & TRANSFER_OUT_SCOPES),
        ip_restricted=bool(ips) and ANY_IP not in ips,
        expires_at=_expiry(key_info.get("expiredAt")),
    )


def remember_account_mode(exchange: ccxt.Exchange, key_info: Mapping[str, Any]) -> None:
    """Tell ccxt whether the account is unified, which the key info already says.

    Without this, ccxt's ``fetch_balance`` asks ``query-api`` again plus ``account/info`` to
    find out, which would double the signed calls of every key check.
    """
    exchange.options["enableUnifiedMargin"] = str(key_info.get("unified")) == "1"
    exchange.options["enableUnifiedAccount"] = str(key_info.get("uta")) == "1"


async def probe(exchange: ccxt.Exchange) -> PermissionSummary:
    response = await exchange.private_get_v5_user_query_api()
    key_info = response.get("result") or {}
    remember_account_mode(exchange, key_info)
    return summarize(key_info)
