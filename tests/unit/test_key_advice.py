"""How to make a safe key, per venue and per kind: short enough to read on a phone, and the
trade-key advice is about trading."""

from __future__ import annotations

import html

import pytest

from bot.exchanges.catalogue import VENUES, key_howto
from storage.credentials import KeyRole


@pytest.mark.parametrize("venue_id", sorted(VENUES))
@pytest.mark.parametrize("role", list(KeyRole))
def test_each_hint_is_at_most_250_characters_as_shown(venue_id: str, role: KeyRole) -> None:
    assert len(html.unescape(key_howto(VENUES[venue_id], role))) <= 250


@pytest.mark.parametrize(
    "venue_id", sorted(v for v in VENUES if not VENUES[v].requires_derivatives)
)
def test_read_and_trade_hints_differ_and_the_read_hint_never_asks_for_trading(
    venue_id: str,
) -> None:
    venue = VENUES[venue_id]
    assert venue.read_key_howto != venue.trade_key_howto
    assert "trade key" not in venue.read_key_howto
    assert "only" in venue.read_key_howto.lower() or "Read-Only" in venue.read_key_howto
