"""OKX ``account/config`` payloads → PermissionSummary, starting from ccxt's recorded answer."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.exchanges.permissions import PermissionSummary
from bot.exchanges.probes.okx import summarize
from bot.sandbox.exchanges.base import find_reference_dir


def recorded_config() -> dict[str, Any]:
    """``data[0]`` of the real ``GET /api/v5/account/config`` answer in ccxt's static tests."""
    recorded = json.loads((find_reference_dir() / "response" / "okx.json").read_text())
    (example,) = recorded["methods"]["fetchAccounts"]
    entry: dict[str, Any] = example["httpResponse"]["data"][0]
    return entry


def test_recorded_key_with_withdraw_permission_can_move_funds_out() -> None:
    config = recorded_config()
    assert config["perm"] == "read_only,withdraw,trade" and config["ip"] == ""

    summary = summarize(config)

    assert summary == PermissionSummary(
        read=True,
        spot_trade=True,
        derivatives_trade=True,
        withdraw=True,
        ip_restricted=False,
    )
    assert summary.can_move_funds_out


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"perm": "read_only", "ip": "203.0.113.7"},
            PermissionSummary(
                read=True,
                spot_trade=False,
                derivatives_trade=False,
                withdraw=False,
                ip_restricted=True,
            ),
        ),
        (
            {"perm": "read_only,trade", "ip": "203.0.113.7,198.51.100.20"},
            PermissionSummary(
                read=True,
                spot_trade=True,
                derivatives_trade=True,
                withdraw=False,
                ip_restricted=True,
            ),
        ),
        (
            {"perm": "read_only, trade", "ip": " "},
            PermissionSummary(
                read=True,
                spot_trade=True,
                derivatives_trade=True,
                withdraw=False,
                ip_restricted=False,
            ),
        ),
        (
            {"perm": "withdraw,read_only", "ip": None},
            PermissionSummary(
                read=True,
                spot_trade=False,
                derivatives_trade=False,
                withdraw=True,
                ip_restricted=False,
            ),
        ),
        (
            {"perm": ""},
            PermissionSummary(
                read=False,
                spot_trade=False,
                derivatives_trade=False,
                withdraw=False,
                ip_restricted=False,
            ),
        ),
    ],
)
def test_perm_and_ip_map_to_the_summary(
    changes: dict[str, Any], expected: PermissionSummary
) -> None:
    assert summarize({**recorded_config(), **changes}) == expected


def test_without_perm_withdrawal_is_unknown_and_must_be_confirmed() -> None:
    config = recorded_config()
    del config["perm"]

    summary = summarize(config)

    assert not summary.withdraw_known and not summary.can_move_funds_out
    assert "withdraw?" in summary.to_flags()
