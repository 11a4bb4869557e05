"""KuCoin's ``/api/v1/user/api-key`` answers, as KuCoin documents and sends them, as summaries."""

from __future__ import annotations

from typing import Any

import pytest

from bot.exchanges.permissions import PermissionSummary
from bot.exchanges.probes.kucoin import scopes, summarize


def key_info(permission: str, ip_whitelist: str = "") -> dict[str, Any]:
    """A ``data`` object shaped like KuCoin's documented example."""
    return {
        "remark": "account1",
        "apiKey": "6705f5c311545b000157d3eb",
        "apiVersion": 3,
        "permission": permission,
        "ipWhitelist": ip_whitelist,
        "createdAt": 1728443843000,
        "uid": 165111215,
        "isMaster": True,
    }


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        pytest.param(
            key_info("General"),
            PermissionSummary(True, False, False, False, ip_restricted=False),
            id="read-only key, any IP",
        ),
        pytest.param(
            key_info("General,Spot", "203.**.154,103.**.34"),
            PermissionSummary(True, True, False, False, ip_restricted=True),
            id="spot trade key with a (masked) IP whitelist",
        ),
        pytest.param(
            key_info("General,Margin"),
            PermissionSummary(True, True, False, False, ip_restricted=False),
            id="margin is leveraged spot",
        ),
        pytest.param(
            key_info("General, Futures ,LeadtradeFutures"),
            PermissionSummary(True, False, True, False, ip_restricted=False),
            id="futures, with stray spaces",
        ),
        pytest.param(
            key_info("General,Futures,Spot,Earn,InnerTransfer,Transfer,Margin", "203.**.154"),
            PermissionSummary(True, True, True, False, True, ip_restricted=True),
            id="documented example: transfers count as transfer-out",
        ),
        pytest.param(
            key_info("General,InnerTransfer"),
            PermissionSummary(True, False, False, False, True, ip_restricted=False),
            id="flex transfer alone is transfer-out",
        ),
        pytest.param(
            key_info("General,Spot,Withdrawal", "10.**.1"),
            PermissionSummary(True, True, False, True, ip_restricted=True),
            id="withdrawal",
        ),
        pytest.param(
            key_info("general,WITHDRAWAL"),
            PermissionSummary(True, False, False, True, ip_restricted=False),
            id="names compared case-insensitively",
        ),
        pytest.param(
            key_info("Spot") | {"ipWhitelist": None},
            PermissionSummary(False, True, False, False, ip_restricted=False),
            id="no General: the key cannot read",
        ),
        pytest.param(
            {},
            PermissionSummary(False, False, False, False, ip_restricted=False),
            id="empty answer grants nothing",
        ),
    ],
)
def test_summarize_api_key_info(payload: dict[str, Any], expected: PermissionSummary) -> None:
    assert summarize(payload) == expected


def test_scopes_split_a_comma_list_and_ignore_other_types() -> None:
    assert scopes("General,,Spot ") == frozenset({"general", "spot"})
    assert scopes(["General"]) == frozenset()
    assert scopes(None) == frozenset()
