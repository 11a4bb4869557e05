"""The venue catalogue: a venue is an entry here, not a code path elsewhere."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from bot.exchanges.probes import PermissionProbe
from bot.exchanges.probes import binance as binance_probe
from bot.exchanges.probes import okx as okx_probe


@dataclass(frozen=True)
class Venue:
    """Everything the rest of the bot needs to know about one exchange (a ccxt id)."""

    id: str
    name: str
    probe: PermissionProbe
    safe_key_howto: str
    needs_passphrase: bool = False
    has_testnet: bool = False
    key_label: str = "API key"
    secret_label: str = "secret key"
    passphrase_label: str = "passphrase"
    ccxt_options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


VENUES: dict[str, Venue] = {
    venue.id: venue
    for venue in (
        Venue(
            id="binance",
            name="Binance Spot",
            probe=binance_probe.probe,
            has_testnet=True,
            safe_key_howto=(
                "On Binance open Account → API Management → Create API (system generated). "
                "Tick only “Enable Reading” (add “Enable Spot &amp; Margin Trading” for a trade "
                "key), leave “Enable Withdrawals” and “Enable Internal Transfer” off, and "
                "restrict access to trusted IPs."
            ),
            # Currencies and margin pairs are signed calls we do not need: skip them.
            ccxt_options=MappingProxyType(
                {
                    "defaultType": "spot",
                    "fetchMarkets": {"types": ["spot"]},
                    "fetchCurrencies": False,
                    "fetchMargins": False,
                }
            ),
        ),
        Venue(
            id="okx",
            name="OKX",
            probe=okx_probe.probe,
            needs_passphrase=True,
            has_testnet=True,
            passphrase_label="API passphrase",
            safe_key_howto=(
                "On OKX open your profile menu → API → Create API key (for the testnet: Trade → "
                "Demo trading, then your profile → Demo trading API). Choose “API trading”, tick "
                "only “Read” (add “Trade” for a trade key), leave “Withdraw” off, set a "
                "passphrase you keep, and bind this server's IP address."
            ),
            # One instrument list (spot) instead of four.
            ccxt_options=MappingProxyType({"fetchMarkets": {"types": ["spot"]}}),
        ),
    )
}


def get_venue(venue_id: str) -> Venue:
    """Look a venue up by ccxt id; KeyError for anything not in the catalogue."""
    return VENUES[venue_id]
