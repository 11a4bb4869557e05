"""Bybit's ``/v5/user/query-api`` answers, as Bybit documents and sends them, read as summaries."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bot.exchanges.permissions import PermissionSummary
from bot.exchanges.probes.bybit import summarize

NO_PERMISSIONS: dict[str, list[str]] = {
    "ContractTrade": [],
    "Spot": [],
    "Wallet": [],
    "Options": [],
    "Derivatives": [],
    "CopyTrading": [],
    "BlockTrade": [],
    "Exchange": [],
    "NFT": [],
}


def key_info(
    readonly: int | bool = 1, ips: list[str] | None = None, **scopes: Any
) -> dict[str, Any]:
    """A query-api ``result`` shaped like Bybit's documented example."""
    return {
        "id": "13770661",
        "note": "coinwarden",
        "apiKey": "XXXXXX",
        "readOnly": readonly,
        "secret": "",
        "permissions": {**NO_PERMISSIONS, **scopes},
        "ips": ["*"] if ips is None else ips,
        "type": 1,
        "deadlineDay": 83,
        "expiredAt": "2023-05-15T03:21:05Z",
        "createdAt": "2022-10-16T02:24:40Z",
        "unified": 0,
        "uta": 1,
        "userID": 24600000,
        "inviterID": 0,
        "vipLevel": "No VIP",
        "mktMakerLevel": "0",
        "affiliateID": 0,
        "rsaPublicKey": "",
        "isMaster": True,
    }


EXPIRES = datetime(2023, 5, 15, 3, 21, 5, tzinfo=UTC)
TRADE_EVERYTHING = {
    "ContractTrade": ["Order", "Position"],
    "Spot": ["SpotTrade"],
    "Options": ["OptionsTrade"],
    "Derivatives": ["DerivativesTrade"],
}


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        pytest.param(
            key_info(),
            PermissionSummary(True, False, False, False, ip_restricted=False, expires_at=EXPIRES),
            id="read-only, no IP bound: lapses on expiredAt",
        ),
        pytest.param(
            key_info(0, ["203.0.113.7"], Spot=["SpotTrade"]) | {"expiredAt": ""},
            PermissionSummary(True, True, False, False, ip_restricted=True),
            id="spot trade key bound to an IP: no expiry",
        ),
        pytest.param(
            key_info(1, Spot=["SpotTrade"], ContractTrade=["Order", "Position"]),
            PermissionSummary(True, False, False, False, ip_restricted=False, expires_at=EXPIRES),
            id="read-only key with trade scopes ticked cannot trade",
        ),
        pytest.param(
            key_info(0, ["1.2.3.4", "5.6.7.8"], **TRADE_EVERYTHING) | {"expiredAt": None},
            PermissionSummary(True, True, True, False, ip_restricted=True),
            id="spot and derivatives",
        ),
        pytest.param(
            key_info(False, Derivatives=["DerivativesTrade"]),  # sub-apikeys style boolean
            PermissionSummary(True, False, True, False, ip_restricted=False, expires_at=EXPIRES),
            id="UTA derivatives only, boolean readOnly",
        ),
        pytest.param(
            key_info(0, Wallet=["AccountTransfer"]),
            PermissionSummary(True, False, False, False, ip_restricted=False, expires_at=EXPIRES),
            id="transfers between own wallets are not transfer-out",
        ),
        pytest.param(
            key_info(0, Wallet=["AccountTransfer", "SubMemberTransfer", "Withdraw"]),
            PermissionSummary(
                True, False, False, True, True, ip_restricted=False, expires_at=EXPIRES
            ),
            id="master key with withdraw and sub-account transfer",
        ),
        pytest.param(
            key_info(0, ["10.0.0.1"], Wallet=["SubMemberTransferList"]),
            PermissionSummary(
                True, False, False, False, True, ip_restricted=True, expires_at=EXPIRES
            ),
            id="sub-account key that can send funds to other sub-accounts",
        ),
        pytest.param(
            key_info(1, Wallet=["Withdraw"]),
            PermissionSummary(True, False, False, True, ip_restricted=False, expires_at=EXPIRES),
            id="withdraw listed on a read-only key is still refused",
        ),
        pytest.param(
            {"readOnly": 0, "permissions": {"Spot": ["SpotTrade"]}, "ips": []},
            PermissionSummary(True, True, False, False, ip_restricted=False),
            id="sparse answer: missing fields mean no power and no expiry",
        ),
        pytest.param(
            key_info() | {"expiredAt": "1970-01-01T00:00:00Z"},
            PermissionSummary(True, False, False, False, ip_restricted=False),
            id="epoch expiry means none",
        ),
        pytest.param(
            key_info() | {"expiredAt": "soon"},
            PermissionSummary(True, False, False, False, ip_restricted=False),
            id="unparsable expiry means none",
        ),
    ],
)
def test_summarize_query_api(payload: dict[str, Any], expected: PermissionSummary) -> None:
    assert summarize(payload) == expected


def test_empty_answer_is_a_read_key_that_cannot_trade_or_move_funds() -> None:
    summary = summarize({})
    assert summary.read and not summary.can_trade and not summary.can_move_funds_out
    assert summary.withdraw_known and summary.ip_restricted is False
