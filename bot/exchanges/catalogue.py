"""The venue catalogue: a venue is an entry here, not a code path elsewhere."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import ccxt.async_support as ccxt

from bot.exchanges.probes import PermissionProbe
from bot.exchanges.probes import binance as binance_probe
from bot.exchanges.probes import binanceusdm as binanceusdm_probe
from bot.exchanges.probes import bitget as bitget_probe
from bot.exchanges.probes import bybit as bybit_probe
from bot.exchanges.probes import coinbase as coinbase_probe
from bot.exchanges.probes import kraken as kraken_probe
from bot.exchanges.probes import kucoin as kucoin_probe
from bot.exchanges.probes import okx as okx_probe
from storage.credentials import KeyRole


@dataclass(frozen=True)
class Venue:
    """Everything the rest of the bot needs to know about one exchange (a ccxt id)."""

    id: str
    name: str
    probe: PermissionProbe
    # How to create a safe key of each kind on the venue (HTML-safe, at most 250 characters).
    read_key_howto: str
    trade_key_howto: str
    # Where the user deletes a key on the exchange (after /revoke or /rotate); HTML-safe text.
    delete_key_howto: str
    needs_passphrase: bool = False
    has_testnet: bool = False
    requires_derivatives: bool = False  # a futures venue: a key without futures rights fails
    key_label: str = "API key"
    secret_label: str = "secret key"
    passphrase_label: str = "passphrase"
    ccxt_options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    # Top-level ccxt settings (not options), e.g. the rate limiter algorithm.
    ccxt_config: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    # What a keyed client must learn about its account that shared markets cannot carry
    # (run once per pooled client).
    account_setup: Callable[[ccxt.Exchange], Awaitable[object]] | None = None
    # The share of the venue's per-IP request budget that scheduled sweeps may use.
    sweep_calls_per_second: float = 5.0
    sweep_concurrency: int = 4


VENUES: dict[str, Venue] = {
    venue.id: venue
    for venue in (
        Venue(
            id="binance",
            name="Binance Spot",
            # The probe weighs 1 of the 6,000 per minute an IP may spend: 10% of it.
            sweep_calls_per_second=10.0,
            probe=binance_probe.probe,
            has_testnet=True,
            delete_key_howto=(
                "On Binance open Account → API Management, find the key and press Delete."
            ),
            read_key_howto=(
                "On Binance: Account → API Management → Create API (system generated). Tick "
                "only “Enable Reading”; leave “Enable Withdrawals” and “Enable Internal "
                "Transfer” off; restrict access to trusted IPs."
            ),
            trade_key_howto=(
                "On Binance: Account → API Management → Create API (system generated). Tick "
                "“Enable Reading” and “Enable Spot &amp; Margin Trading”; leave withdrawals "
                "and internal transfer off; restrict access to trusted IPs."
            ),
            # Currencies and margin pairs are signed calls we do not need: skip them.
            ccxt_options=MappingProxyType(
                {
                    "defaultType": "spot",
                    "fetchMarkets": {"types": ["spot"]},
                    "fetchCurrencies": False,
                    "fetchMargins": False,
                    # /orders asks for every market at once (weight 80, on request only).
                    "warnOnFetchOpenOrdersWithoutSymbol": False,
                }
            ),
        ),
        Venue(
            id="binanceusdm",
            name="Binance USDⓈ-M Futures",
            probe=binanceusdm_probe.probe,
            requires_derivatives=True,
            delete_key_howto=(
                "On Binance open Account → API Management, find the key and press Delete."
            ),
            read_key_howto=(
                "Open your USDⓈ-M Futures account first. Then Account → API Management → "
                "Create API (system generated): tick “Enable Reading” and “Enable Futures”, "
                "leave withdrawals and internal transfer off, restrict to trusted IPs."
            ),
            trade_key_howto=(
                "Open your USDⓈ-M Futures account first. Then Account → API Management → "
                "Create API (system generated): tick “Enable Reading” and “Enable Futures”, "
                "leave withdrawals and internal transfer off, restrict to trusted IPs."
            ),
            # Currencies are a signed /sapi call we do not need. No testnet: ccxt no longer
            # supports Binance's futures testnet (it points to demo trading instead).
            ccxt_options=MappingProxyType(
                {"fetchCurrencies": False, "warnOnFetchOpenOrdersWithoutSymbol": False}
            ),
        ),
        Venue(
            id="coinbase",
            name="Coinbase Advanced",
            probe=coinbase_probe.probe,
            key_label="API key name",
            secret_label="private key",
            delete_key_howto=(
                "On the Coinbase Developer Platform (portal.cdp.coinbase.com) open API Keys, "
                "open the key's menu and choose Delete."
            ),
            read_key_howto=(
                "On portal.cdp.coinbase.com: API Keys → Create API key, Advanced: ECDSA. Tick "
                "only “View”, leave “Transfer” off, allowlist this server's IP. Paste the key "
                "name, then the whole private key (BEGIN to END line)."
            ),
            trade_key_howto=(
                "On portal.cdp.coinbase.com: API Keys → Create API key, Advanced: ECDSA. Tick "
                "“View” and “Trade”, leave “Transfer” off, allowlist this server's IP. Paste "
                "the key name, then the whole private key (BEGIN to END line)."
            ),
            # Balances from Advanced Trade's own accounts list (ccxt's default is the v2 API).
            ccxt_options=MappingProxyType({"fetchBalance": "v3PrivateGetBrokerageAccounts"}),
        ),
        Venue(
            id="kraken",
            name="Kraken",
            probe=kraken_probe.probe,
            secret_label="private key",  # Kraken calls the secret "Private key"
            delete_key_howto=(
                "On Kraken open Settings → API, open the key's menu and choose Delete."
            ),
            read_key_howto=(
                "On Kraken: Settings → API → Create API key. Tick only “Query Funds”, “Query "
                "Open Orders &amp; Trades” and “Query Closed Orders &amp; Trades”; leave "
                "“Withdraw Funds” off; allowlist this server's IP."
            ),
            trade_key_howto=(
                "On Kraken: Settings → API → Create API key. Tick the three “Query” boxes "
                "plus “Create &amp; Modify Orders” and “Cancel/Close Orders”; leave “Withdraw "
                "Funds” off; allowlist this server's IP."
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
            delete_key_howto=(
                "On OKX open your profile menu → API and press Delete next to the key."
            ),
            read_key_howto=(
                "On OKX: profile → API → Create API key (testnet: Demo trading API). Choose "
                "“API trading”, tick only “Read”, leave “Withdraw” off, set a passphrase you "
                "keep, bind this server's IP."
            ),
            trade_key_howto=(
                "On OKX: profile → API → Create API key (testnet: Demo trading API). Choose "
                "“API trading”, tick “Read” and “Trade”, leave “Withdraw” off, set a "
                "passphrase you keep, bind this server's IP."
            ),
            # One instrument list (spot) instead of four.
            ccxt_options=MappingProxyType({"fetchMarkets": {"types": ["spot"]}}),
        ),
        Venue(
            id="bitget",
            name="Bitget",
            probe=bitget_probe.probe,
            needs_passphrase=True,
            has_testnet=True,
            passphrase_label="API passphrase",
            delete_key_howto=(
                "On Bitget open your profile → API Management and press Delete next to the key."
            ),
            read_key_howto=(
                "On Bitget: profile → API Management → Create API Key → System-generated. Set "
                "a passphrase, select “Read-only”, leave Withdraw, Transfer and Sub-account "
                "unticked, bind this server's IP."
            ),
            trade_key_howto=(
                "On Bitget: profile → API Management → Create API Key → System-generated. Set "
                "a passphrase, select “Read and write” with only Spot trade ticked, no "
                "Withdraw or Transfer, bind this server's IP."
            ),
            # Spot only; markets and tickers from the public v2 lists whatever the account mode.
            ccxt_options=MappingProxyType(
                {
                    "defaultType": "spot",
                    "fetchMarkets": {"types": ["spot"], "uta": False},
                    "fetchTicker": {"uta": False},
                    "fetchTickers": {"uta": False},
                }
            ),
        ),
        Venue(
            id="bybit",
            name="Bybit",
            probe=bybit_probe.probe,
            has_testnet=True,
            delete_key_howto=("On Bybit open Account → API and press Delete next to the key."),
            read_key_howto=(
                "On Bybit: Account → API → Create New Key → System-generated. Choose "
                "“Read-Only”, leave every Wallet box unticked, and “Only IPs with permissions "
                "granted” with this server's IP."
            ),
            trade_key_howto=(
                "On Bybit: Account → API → Create New Key → System-generated. Choose "
                "“Read-Write” with only Spot “Trade” ticked, leave every Wallet box unticked, "
                "and allow only this server's IP."
            ),
            # Spot markets only: one instruments-info call instead of four product pages.
            ccxt_options=MappingProxyType(
                {"defaultType": "spot", "fetchMarkets": {"types": ["spot"]}}
            ),
            # Coin info is a signed, rate-limit-heavy call we do not need.
            ccxt_config=MappingProxyType({"has": {"fetchCurrencies": False}}),
        ),
        Venue(
            id="kucoin",
            name="KuCoin",
            probe=kucoin_probe.probe,
            needs_passphrase=True,
            passphrase_label="API passphrase",
            delete_key_howto=(
                "On KuCoin open Account → API Management and press Delete next to the key."
            ),
            read_key_howto=(
                "On KuCoin: Account → API Management → Create API → API Trading. Set a "
                "passphrase (you paste it here too), tick only “General”, leave Withdrawal, "
                "Transfer and Futures off, restrict to this server's IP."
            ),
            trade_key_howto=(
                "On KuCoin: Account → API Management → Create API → API Trading. Set a "
                "passphrase (you paste it here too), tick “General” and “Spot Trading” only, "
                "no Withdrawal or Transfer, restrict to this server's IP."
            ),
            # Spot markets only, and no all-tickers call just to read fee coefficients.
            ccxt_options=MappingProxyType(
                {"fetchMarkets": {"types": ["spot"], "fetchTickersFees": False}}
            ),
            # The currency list (chains, fees) is not needed for balances and prices.
            ccxt_config=MappingProxyType({"has": {"fetchCurrencies": False}}),
            # Whether the account trades from KuCoin's high-frequency account; without it ccxt
            # reads balances from the classic trade account, which is empty for HF accounts.
            account_setup=lambda client: client.load_migration_status(),
        ),
    )
}


def get_venue(venue_id: str) -> Venue:
    """Look a venue up by ccxt id; KeyError for anything not in the catalogue."""
    return VENUES[venue_id]


def key_howto(venue: Venue, role: KeyRole) -> str:
    """How to make a safe key for ``role`` on ``venue``."""
    return venue.trade_key_howto if role is KeyRole.TRADE else venue.read_key_howto
