"""The venue catalogue: a venue is an entry here, not a code path elsewhere."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from bot.exchanges.probes import PermissionProbe
from bot.exchanges.probes import binance as binance_probe
from bot.exchanges.probes import binanceusdm as binanceusdm_probe
from bot.exchanges.probes import kraken as kraken_probe
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
    requires_derivatives: bool = False  # a futures venue: a key without futures rights fails
    key_label: str = "API key"
    secret_label: str = "secret key"
    passphrase_label: str = "passphrase"
    ccxt_options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    # Top-level ccxt settings (not options), e.g. the rate limiter algorithm.
    ccxt_config: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


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
            id="binanceusdm",
            name="Binance USDⓈ-M Futures",
            probe=binanceusdm_probe.probe,
            requires_derivatives=True,
            safe_key_howto=(
                "Open your USDⓈ-M Futures account first, then on Binance go to Account → API "
                "Management → Create API (system generated). Tick “Enable Reading” and “Enable "
                "Futures” (Binance answers futures requests only for keys that have it, created "
                "after the futures account was opened). Leave “Enable Withdrawals” and “Enable "
                "Internal Transfer” off, and restrict access to trusted IPs."
            ),
            # Currencies are a signed /sapi call we do not need. No testnet: ccxt no longer
            # supports Binance's futures testnet (it points to demo trading instead).
            ccxt_options=MappingProxyType({"fetchCurrencies": False}),
        ),
        Venue(
            id="kraken",
            name="Kraken",
            probe=kraken_probe.probe,
            secret_label="private key",  # Kraken calls the secret "Private key"
            safe_key_howto=(
                "On Kraken open Settings → API → Create API key. Under Funds tick only “Query "
                "Funds”; under Orders &amp; Trades tick “Query Open Orders &amp; Trades” and "
                "“Query Closed Orders &amp; Trades” (add “Create &amp; Modify Orders” and "
                "“Cancel/Close Orders” for a trade key). Leave “Withdraw Funds” off, and under "
                "the advanced settings add this server's IP to the IP allowlist."
            ),
            # Kraken's budget is a rolling window; ccxt's default leaky bucket makes a key
            # check wait ~5 s for calls Kraken would accept at once.
            ccxt_config=MappingProxyType({"rateLimiterAlgorithm": "rollingWindow"}),
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
