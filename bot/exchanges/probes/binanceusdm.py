"""Binance USDⓈ-M futures: the key's restrictions, or the futures account config on the testnet.

On Binance itself a futures key is an ordinary Binance key, so its restrictions come from the same
``GET /sapi/v1/account/apiRestrictions`` as spot (see :mod:`bot.exchanges.probes.binance`);
``enableFutures`` is what the futures API needs. The futures testnet has no ``/sapi`` at all (ccxt
has no testnet URL for it), so there the probe reads ``GET /fapi/v1/accountConfig`` instead.
"""

from __future__ import annotations

from typing import Any

import ccxt.async_support as ccxt

from bot.exchanges.permissions import PermissionSummary
from bot.exchanges.probes import binance


def summarize_account_config(payload: dict[str, Any]) -> PermissionSummary:
    """Map a testnet futures account configuration to a summary.

    ``canWithdraw`` is deliberately ignored: it describes the simulated account, and the futures
    testnet has no withdrawal or transfer API, so its play money cannot leave. The testnet does not
    report an IP allow-list either.
    """
    return PermissionSummary(
        read=True,  # the signed call that produced the payload succeeded
        spot_trade=False,
        derivatives_trade=bool(payload.get("canTrade")),
        withdraw=False,
    )


async def probe(exchange: ccxt.Exchange) -> PermissionSummary:
    if exchange.isSandboxModeEnabled:
        return summarize_account_config(await exchange.fapiprivate_get_accountconfig())
    return await binance.probe(exchange)
