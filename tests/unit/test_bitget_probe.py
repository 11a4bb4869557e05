"""Bitget's account-info answers, as Bitget documents and sends them, read as summaries."""

from __future__ import annotations

from typing import Any

import pytest

from bot.exchanges.permissions import PermissionSummary
from bot.exchanges.probes.bitget import summarize, summarize_unified


def classic(authorities: Any, ips: str | None = "") -> dict[str, Any]:
    """A ``GET /api/v2/spot/account/info`` envelope shaped like Bitget's documented example."""
    data: dict[str, Any] = {
        "userId": "7265981253",
        "inviterId": "0",
        "authorities": authorities,
        "parentId": 7265981253,
        "traderType": "not_trader",
        "channelCode": "",
        "channel": "",
        "regisTime": "1695808949356",
    }
    if ips is not None:
        data["ips"] = ips
    return {"code": "00000", "msg": "success", "requestTime": 1695808949356, "data": data}


def unified(perm_type: str, permissions: Any, ips: str = "") -> dict[str, Any]:
    """A ``GET /api/v3/account/info`` envelope shaped like Bitget's documented example."""
    return {
        "code": "00000",
        "msg": "success",
        "requestTime": 1744617600000,
        "data": {
            "uid": "123456789",
            "inviterId": "987654321",
            "parentId": "",
            "channelCode": "6258",
            "channel": "official",
            "ips": ips,
            "permType": perm_type,
            "permissions": permissions,
            "regisTime": "1704067200000",
        },
    }


def summary(
    spot: bool = False,
    deriv: bool = False,
    withdraw: bool = False,
    transfer: bool = False,
    ip: bool | None = False,
    known: bool = True,
) -> PermissionSummary:
    return PermissionSummary(
        read=True,
        spot_trade=spot,
        derivatives_trade=deriv,
        withdraw=withdraw,
        transfer_out=transfer,
        ip_restricted=ip,
        withdraw_known=known,
    )


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        # The docs' own example: the older coarse values, bound to one IP.
        (classic(["trade", "readonly"], ips="127.0.0.1"), summary(True, True, ip=True)),
        (classic(["stor", "coor", "cpor"]), summary()),
        (classic(["stor", "stow"], ips="203.0.113.7,198.51.100.2"), summary(True, ip=True)),
        (classic(["smow"]), summary(spot=True)),
        (classic(["coor", "coow", "cpow"]), summary(deriv=True)),
        (classic(["ttow"]), summary(deriv=True)),
        (classic(["stor", "stow", "wwow"]), summary(True, withdraw=True)),
        (classic(["wtow"]), summary(transfer=True)),
        (classic(["chow"]), summary(transfer=True)),
        (classic(["p2p"]), summary(transfer=True)),
        (classic(["STOR", " stow "]), summary(spot=True)),
        (classic(["pllw", "taxw", "taxr", "pllr"]), summary()),
        (classic(["stor", "zzow"]), summary(known=False)),
        (classic(None), summary(known=False)),
        (classic("stor"), summary(known=False)),
        (classic([]), summary()),
        (classic(["stor"], ips=" , "), summary()),
        (classic(["stor"], ips=None), summary(ip=None)),
    ],
)
def test_classic_authorities_map_to_a_summary(
    payload: dict[str, Any], expected: PermissionSummary
) -> None:
    assert summarize(payload) == expected


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (unified("read-only", []), summary()),
        (unified("read-only", ["uta_trade", "uta_mgt"]), summary()),
        (unified("read-and-write", ["uta_trade"]), summary(True, True)),
        (unified("read_and_write", ["uta_trade"], ips="192.168.1.1"), summary(True, True, ip=True)),
        (unified("read-and-write", ["copy_futures_order"]), summary(deriv=True)),
        (unified("read-and-write", ["copy_futures_position"]), summary()),
        (unified("read-and-write", ["uta_mgt"]), summary(transfer=True)),
        (unified("read-and-write", ["uta_trade", "withdraw"]), summary(True, True, withdraw=True)),
        # The docs' own example: everything, withdrawals included.
        (
            unified(
                "read-and-write",
                ["uta_mgt", "uta_trade", "withdraw", "copy_futures_position", "copy_futures_order"],
                ips="192.168.1.1,192.168.1.2",
            ),
            summary(True, True, withdraw=True, transfer=True, ip=True),
        ),
        (unified("something-new", ["uta_trade"]), summary(True, True)),
        (unified("read-only", ["uta_trade", "earn"]), summary(known=False)),
        (unified("read-only", None), summary(known=False)),
    ],
)
def test_unified_permissions_map_to_a_summary(
    payload: dict[str, Any], expected: PermissionSummary
) -> None:
    assert summarize_unified(payload) == expected


def test_a_payload_without_data_still_reads_but_leaves_withdrawal_unknown() -> None:
    for read in (summarize, summarize_unified):
        result = read({"code": "00000", "msg": "success", "data": None})
        assert result.read and not result.can_move_funds_out and not result.withdraw_known
