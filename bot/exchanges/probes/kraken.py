"""Kraken spot: ``POST /0/private/GetApiKeyInfo`` (any live key may call it, whatever its rights).

Kraken answers with the key's own permission list (``query-funds``, ``modify-trades``,
``withdraw-funds``, ...), its IP allow-list and its expiry (``validUntil``, ``"0"`` for never).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import ccxt.async_support as ccxt

from bot.exchanges.permissions import PermissionSummary

#: Kraken's "Query Funds": Balance, BalanceEx, TradeBalance.
READ_FUNDS = "query-funds"
#: "Create & Modify Orders" and "Cancel/Close Orders" (closing a margin position is a trade too).
TRADE_PERMISSIONS = frozenset({"modify-trades", "close-trades"})
#: "Withdraw Funds"; Kraken also requires it for wallet and subaccount transfers.
WITHDRAW_FUNDS = "withdraw-funds"


def _expiry(valid_until: object) -> datetime | None:
    """``validUntil`` is unix seconds as a string; ``"0"`` or absent: the key never lapses."""
    text = str(valid_until or 0)
    return datetime.fromtimestamp(int(text), tz=UTC) if text.isdigit() and int(text) else None


def summarize(payload: dict[str, Any]) -> PermissionSummary:
    """Map a ``GetApiKeyInfo`` response (``{"error": [], "result": {...}}``) to a summary.

    Without a ``permissions`` list nothing can be said about withdrawals, so the summary says
    ``withdraw_known=False`` and the user is asked, rather than assuming the key is safe.
    """
    info = payload.get("result") or {}
    listed = info.get("permissions")
    permissions = set(listed) if isinstance(listed, list) else set()
    return PermissionSummary(
        read=READ_FUNDS in permissions,
        spot_trade=bool(permissions & TRADE_PERMISSIONS),
        derivatives_trade=False,  # Kraken Futures keys are separate keys on a separate API
        withdraw=WITHDRAW_FUNDS in permissions,
        ip_restricted=bool(info.get("ipAllowlist")) if "ipAllowlist" in info else None,
        expires_at=_expiry(info.get("validUntil")),
        withdraw_known=isinstance(listed, list),
    )


async def probe(exchange: ccxt.Exchange) -> PermissionSummary:
    """Ask Kraken what the key may do.

    A secret that is not base64 would make ccxt fail with a bare ``ValueError`` while signing;
    it is reported as the authentication error it is, without echoing the secret.
    """
    try:
        exchange.base64_to_binary(exchange.secret or "")
    except ValueError:  # binascii.Error
        raise ccxt.AuthenticationError(
            "kraken API-Sign needs the base64 private key; this secret is not valid base64"
        ) from None
    payload = await exchange.private_post_getapikeyinfo()
    return summarize(payload)
