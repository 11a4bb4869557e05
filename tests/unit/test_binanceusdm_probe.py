"""Binance USDⓈ-M probe payloads → PermissionSummary: key restrictions, and the testnet's config.

No recorded payload of either endpoint is in ccxt's static data, so the base payloads are the
examples of Binance's API documentation.
"""

from __future__ import annotations

from typing import Any

import pytest

from bot.exchanges.permissions import PermissionSummary
from bot.exchanges.probes.binance import summarize
from bot.exchanges.probes.binanceusdm import summarize_account_config

#: ``GET /fapi/v1/accountConfig`` as documented (testnet probe).
ACCOUNT_CONFIG: dict[str, Any] = {
    "feeTier": 0,
    "canTrade": True,
    "canDeposit": True,
    "canWithdraw": True,
    "dualSidePosition": True,
    "updateTime": 0,
    "multiAssetsMargin": False,
    "tradeGroupId": -1,
}

#: ``GET /sapi/v1/account/apiRestrictions`` of a key made the way the howto says (mainnet probe).
FUTURES_KEY_RESTRICTIONS: dict[str, Any] = {
    "ipRestrict": True,
    "createTime": 1698645219000,
    "enableReading": True,
    "enableWithdrawals": False,
    "enableInternalTransfer": False,
    "enableMargin": False,
    "enableFutures": True,
    "permitsUniversalTransfer": False,
    "enableVanillaOptions": False,
    "enableFixApiTrade": False,
    "enableFixReadOnly": False,
    "enableSpotAndMarginTrading": False,
    "enablePortfolioMarginTrading": False,
}


@pytest.mark.parametrize(
    ("changes", "derivatives_trade"),
    [
        ({}, True),
        ({"canTrade": False}, False),
        ({"canWithdraw": False, "canDeposit": False}, True),
    ],
)
def test_testnet_config_reads_trading_and_never_withdrawal(
    changes: dict[str, Any], derivatives_trade: bool
) -> None:
    """``canWithdraw`` describes the testnet's play-money account, which nothing can leave."""
    summary = summarize_account_config({**ACCOUNT_CONFIG, **changes})

    assert summary == PermissionSummary(
        read=True, spot_trade=False, derivatives_trade=derivatives_trade, withdraw=False
    )
    assert summary.withdraw_known and summary.ip_restricted is None
    assert not summary.can_move_funds_out


@pytest.mark.parametrize(
    ("changes", "derivatives_trade", "moves_funds_out"),
    [
        ({}, True, False),
        # A key made without "Enable Futures" (the "spot tab" pitfall): fapi will answer -2015.
        ({"enableFutures": False}, False, False),
        ({"enableWithdrawals": True}, True, True),
        ({"enableInternalTransfer": True}, True, True),
        # Universal transfer only moves funds between this account's own wallets.
        ({"permitsUniversalTransfer": True}, True, False),
    ],
)
def test_mainnet_key_restrictions_as_a_futures_venue_reads_them(
    changes: dict[str, Any], derivatives_trade: bool, moves_funds_out: bool
) -> None:
    summary = summarize({**FUTURES_KEY_RESTRICTIONS, **changes})

    assert summary.read and not summary.spot_trade
    assert summary.derivatives_trade is derivatives_trade
    assert summary.can_move_funds_out is moves_funds_out
    assert summary.ip_restricted and summary.expires_at is None
