"""Binance (spot and USDⓈ-M): ``GET /sapi/v1/account/apiRestrictions``; on the spot testnet,
which has no ``/sapi`` (ccxt has no testnet URL for it), ``GET /api/v3/account``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import ccxt.async_support as ccxt

from bot.exchanges.permissions import PermissionSummary


def summarize(payload: dict[str, Any]) -> PermissionSummary:
    """Map Binance's restriction flags to a summary.

    ``enableInternalTransfer`` lets the key move funds to other (sub-)accounts, so it counts as
    transfer-out; ``permitsUniversalTransfer`` only moves funds between this account's own wallets.
    """
    expires_ms = payload.get("tradingAuthorityExpirationTime")
    return PermissionSummary(
        read=bool(payload.get("enableReading")),
        spot_trade=bool(payload.get("enableSpotAndMarginTrading")),
        derivatives_trade=bool(payload.get("enableFutures") or payload.get("enableVanillaOptions")),
        withdraw=bool(payload.get("enableWithdrawals")),
        transfer_out=bool(payload.get("enableInternalTransfer")),
        ip_restricted=bool(payload.get("ipRestrict")),
        expires_at=(datetime.fromtimestamp(int(expires_ms) / 1000, tz=UTC) if expires_ms else None),
    )


def summarize_testnet_account(payload: dict[str, Any]) -> PermissionSummary:
    """Map the spot testnet's account flags to a summary. The testnet reports no IP allow-list
    and no transfer rights; ``canWithdraw`` is honoured anyway (a key that says it can withdraw
    is refused, even with play money)."""
    return PermissionSummary(
        read=True,  # the signed call that produced the payload succeeded
        spot_trade=bool(payload.get("canTrade")),
        derivatives_trade=False,
        withdraw=bool(payload.get("canWithdraw")),
    )


async def probe(exchange: ccxt.Exchange) -> PermissionSummary:
    if exchange.isSandboxModeEnabled and exchange.id == "binance":
        return summarize_testnet_account(await exchange.private_get_account())
    payload = await exchange.sapi_get_account_apirestrictions()
    return summarize(payload)
