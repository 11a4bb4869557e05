"""Bitget: ``GET /api/v2/spot/account/info``, or ``GET /api/v3/account/info`` for unified accounts.

Bitget runs two account modes whose private APIs exclude each other: a classic account answers
the v2 endpoints, a unified trading account (UTA, the only mode for accounts opened since 2026)
answers v2 with code 40085 and needs v3. The probe asks v2 first and falls back to v3, and tells
the ccxt client which mode it found, so ``fetch_balance`` reads the right wallet without spending
another signed call to find out.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import ccxt.async_support as ccxt

from bot.exchanges.permissions import PermissionSummary

#: Bitget's answer to a classic (v2) private endpoint called with a unified account's key.
UNIFIED_ACCOUNT_CODE = "40085"

# Classic ``authorities``: "…r" codes only read, "…w" codes read and write (Bitget's API docs).
# "readonly" and "trade" are the older coarse values the docs' example still shows.
_CLASSIC_READ_ONLY = frozenset(
    {"coor", "cpor", "stor", "smor", "ttor", "wtor", "taxr", "chor", "p2pr", "pllr", "readonly"}
)
_CLASSIC_SPOT_TRADE = frozenset({"stow", "smow", "trade"})
_CLASSIC_DERIVATIVES_TRADE = frozenset({"coow", "cpow", "ttow", "trade"})
_CLASSIC_WITHDRAW = frozenset({"wwow"})
# Wallet transfer reaches sub-accounts, sub-account management can move funds and mint keys,
# and P2P releases coins to another user: each can move money off this account.
_CLASSIC_TRANSFER_OUT = frozenset({"wtow", "chow", "p2p", "p2pw"})
_CLASSIC_OTHER_WRITE = frozenset({"pllw", "taxw"})
_CLASSIC_KNOWN = (
    _CLASSIC_READ_ONLY
    | _CLASSIC_SPOT_TRADE
    | _CLASSIC_DERIVATIVES_TRADE
    | _CLASSIC_WITHDRAW
    | _CLASSIC_TRANSFER_OUT
    | _CLASSIC_OTHER_WRITE
)

# Unified ``permissions`` are modules; ``permType`` says whether they are read-only.
_UNIFIED_KNOWN = frozenset(
    {"uta_mgt", "uta_trade", "withdraw", "copy_futures_position", "copy_futures_order"}
)
_READ_ONLY_TYPES = frozenset({"read-only", "readonly", "read_only"})


def _data(payload: dict[str, Any]) -> dict[str, Any]:
    data = payload.get("data")
    return data if isinstance(data, dict) else {}


def _codes(value: object) -> set[str] | None:
    """The permission list as a set; None when Bitget did not send one we can read."""
    if not isinstance(value, list):
        return None
    return {str(code).strip().lower() for code in value}


def _ip_restricted(data: dict[str, Any]) -> bool | None:
    ips = data.get("ips")
    if ips is None:
        return None
    return bool(str(ips).strip(" ,"))


def _unknown(codes: Collection[str] | None, known: frozenset[str]) -> bool:
    """A missing list or a code we have never seen may grant withdrawals: we cannot tell."""
    return codes is None or not set(codes) <= known


def summarize(payload: dict[str, Any]) -> PermissionSummary:
    """A classic account's ``spot/account/info`` envelope (``{"code", "data": {...}}``).

    Any readable answer proves the key reads. Unknown authority codes leave withdrawal unknown,
    so the user is asked to confirm rather than trusted blindly.
    """
    data = _data(payload)
    codes = _codes(data.get("authorities"))
    held = codes or set()
    return PermissionSummary(
        read=True,
        spot_trade=bool(held & _CLASSIC_SPOT_TRADE),
        derivatives_trade=bool(held & _CLASSIC_DERIVATIVES_TRADE),
        withdraw=bool(held & _CLASSIC_WITHDRAW),
        transfer_out=bool(held & _CLASSIC_TRANSFER_OUT),
        ip_restricted=_ip_restricted(data),
        withdraw_known=not _unknown(codes, _CLASSIC_KNOWN),
    )


def summarize_unified(payload: dict[str, Any]) -> PermissionSummary:
    """A unified account's ``v3/account/info`` envelope.

    ``uta_mgt`` with write access moves funds between main and sub-accounts and edits sub-account
    keys, so it counts as transfer-out. An unrecognised ``permType`` is treated as writable.
    """
    data = _data(payload)
    codes = _codes(data.get("permissions"))
    held = codes or set()
    writable = str(data.get("permType", "")).strip().lower() not in _READ_ONLY_TYPES
    trades = writable and "uta_trade" in held
    return PermissionSummary(
        read=True,
        spot_trade=trades,
        derivatives_trade=trades or (writable and "copy_futures_order" in held),
        withdraw="withdraw" in held,
        transfer_out=writable and "uta_mgt" in held,
        ip_restricted=_ip_restricted(data),
        withdraw_known=not _unknown(codes, _UNIFIED_KNOWN),
    )


async def probe(exchange: ccxt.Exchange) -> PermissionSummary:
    try:
        payload = await exchange.private_spot_get_v2_spot_account_info()
    except ccxt.PermissionDenied as error:
        if f'"{UNIFIED_ACCOUNT_CODE}"' not in str(error):
            raise
        payload = await exchange.private_uta_get_v3_account_info()
        exchange.options["uta"] = True
        return summarize_unified(payload)
    exchange.options["uta"] = False
    return summarize(payload)
