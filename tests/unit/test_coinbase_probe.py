"""Coinbase's ``key_permissions`` answers, as Coinbase documents and sends them, as summaries."""

from __future__ import annotations

from typing import Any

import pytest

from bot.exchanges.permissions import PermissionSummary
from bot.exchanges.probes.coinbase import summarize

PORTFOLIO = "8bfc20d7-f7c6-4422-bf07-8243ca4169fe"


def answer(**flags: Any) -> dict[str, Any]:
    """A ``GET /api/v3/brokerage/key_permissions`` body shaped like Coinbase's documented one."""
    return {"portfolio_uuid": PORTFOLIO, "portfolio_type": "DEFAULT", **flags}


def summary(
    read: bool = True, trade: bool = False, moves: bool = False, known: bool = True
) -> PermissionSummary:
    return PermissionSummary(
        read=read,
        spot_trade=trade,
        derivatives_trade=False,
        withdraw=moves,
        transfer_out=moves,
        ip_restricted=None,
        withdraw_known=known,
    )


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (answer(can_view=True, can_trade=False, can_transfer=False), summary()),
        (answer(can_view=True, can_trade=True, can_transfer=False), summary(trade=True)),
        (answer(can_view=True, can_trade=True, can_transfer=True), summary(trade=True, moves=True)),
        (answer(can_view=True, can_trade=False, can_transfer=True), summary(moves=True)),
        (answer(can_view=False, can_trade=False, can_transfer=False), summary(read=False)),
        # A portfolio other than the default one changes nothing about the key's powers.
        (
            {**answer(can_view=True, can_trade=True, can_transfer=False), "portfolio_type": "INTX"},
            summary(trade=True),
        ),
        # No transfer flag: we cannot tell whether the key moves funds, so the user confirms.
        (answer(can_view=True, can_trade=True), summary(trade=True, known=False)),
        (answer(can_view=True, can_transfer="maybe"), summary(known=False)),
        (answer(can_view="true", can_trade="TRUE", can_transfer="true"), summary(True, True, True)),
        (answer(can_view=True, can_transfer=" false "), summary()),
        # Should Coinbase add a withdraw flag, it is honoured.
        (
            answer(can_view=True, can_trade=False, can_transfer=False, can_withdraw=True),
            PermissionSummary(read=True, spot_trade=False, derivatives_trade=False, withdraw=True),
        ),
    ],
)
def test_key_permissions_map_to_a_summary(
    payload: dict[str, Any], expected: PermissionSummary
) -> None:
    assert summarize(payload) == expected


def test_transfer_keys_are_ones_the_bot_refuses() -> None:
    assert summarize(answer(can_view=True, can_trade=True, can_transfer=True)).can_move_funds_out
    assert not summarize(
        answer(can_view=True, can_trade=True, can_transfer=False)
    ).can_move_funds_out
