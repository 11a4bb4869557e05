"""Turn what an exchange said into a status and a fix the user can act on.

Errors are values here: a `Diagnosis` is shown to the user, so its texts are ours, in plain
words; the exchange's own message is kept short and only ever shown escaped.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import ccxt.async_support as ccxt

from storage.connections import ConnectionStatus

EXCHANGE_MESSAGE_LIMIT = 160


@dataclass(frozen=True)
class Diagnosis:
    """``final`` errors (authentication) are never retried; the others may heal on their own."""

    status: ConnectionStatus
    cause: str
    fix: str
    final: bool
    exchange_message: str | None = None
    rate_limited: bool = False  # the venue asks us to slow down: no more calls to it for now
    #: Which pasted value the venue refused ("api_key", "secret", "passphrase"), where it says:
    #: key entry asks for just that one again.
    suspect: str | None = None


def exchange_message(exc: BaseException) -> str | None:
    """The venue's own error text, without ccxt's prefix, URLs or query strings."""
    text = str(exc)
    match = re.search(r"\{.*\}", text, re.DOTALL)
    if match:
        try:
            body = json.loads(match.group(0))
        except json.JSONDecodeError:
            body = None
        if isinstance(body, dict):
            for key in ("msg", "message", "error", "retMsg"):
                value = body.get(key)
                if isinstance(value, str | list) and value:
                    text = value if isinstance(value, str) else "; ".join(map(str, value))
                    break
    text = re.sub(r"https?://\S+", "", text).strip()
    # ccxt starts its own messages with its id ("kraken EService:Unavailable"): the user
    # reads the venue's display name beside the message instead.
    first, _, rest = text.partition(" ")
    if first in ccxt.exchanges and rest:
        text = rest.strip()
    if re.search(r"<!doctype|<html", text, re.IGNORECASE):
        # A web page (a gateway's or a 404's): its heading says all a user can use.
        page = re.search(r"<h\d>([^<]+)</h\d>", text, re.IGNORECASE) or re.search(
            r"<title>([^<]+)</title>", text, re.IGNORECASE
        )
        return page.group(1).strip()[:EXCHANGE_MESSAGE_LIMIT] if page is not None else None
    return text[:EXCHANGE_MESSAGE_LIMIT] or None


SIGNATURE_HINTS = ("signature", "-1022", "invalid sign", "api-sign")
IP_HINTS = ("ip ", "ip,", "whitelist", "ip address")


def diagnose(exc: BaseException) -> Diagnosis:
    """Map a ccxt exception to a Diagnosis; order matters (subclasses before parents)."""
    if not isinstance(exc, ccxt.BaseError):
        # The request could not even be signed: the secret is not in the venue's format.
        return Diagnosis(
            ConnectionStatus.REAUTH,
            "The secret is not in the format this exchange uses, so no request could be signed.",
            "Copy the secret again from the exchange, exactly as shown there.",
            final=True,
        )
    said = exchange_message(exc)
    lowered = str(exc).lower()
    if isinstance(exc, ccxt.InvalidNonce):
        return Diagnosis(
            ConnectionStatus.ERROR,
            "The exchange rejected the request's time stamp or nonce: this server's clock is "
            "off, or another program is using the same API key.",
            "Sync the server clock (NTP) and give every program its own API key; the connection "
            "heals by itself once that is right.",
            final=False,
            exchange_message=said,
        )
    # Some venues (Kraken) report a bad signature as a plain exchange error.
    signature = any(hint in lowered for hint in SIGNATURE_HINTS)
    unauthenticated = "unauthenticated" in lowered  # Coinbase's JSON variant is unmapped
    if isinstance(exc, ccxt.AuthenticationError) or (
        isinstance(exc, ccxt.ExchangeError) and (signature or unauthenticated)
    ):
        suspect: str | None = "api_key"
        if "passphrase" in lowered or "password is incorrect" in lowered:
            cause = "The passphrase does not match this API key."
            fix = "Enter the passphrase you chose when you created this key on the exchange."
            suspect = "passphrase"
        elif signature:
            cause = "The secret does not match this API key."
            fix = (
                "Copy the secret again from the exchange (it is shown only once) or make a new key."
            )
            suspect = "secret"
        elif isinstance(exc, ccxt.PermissionDenied):
            cause = "The key lacks a permission this action needs, or this IP is not allowed."
            fix = "Check the key's permissions and IP allow-list on the exchange."
            suspect = None
        else:
            cause = "The exchange did not accept this API key: it is wrong, expired or deleted."
            fix = (
                "Check that you pasted the right key for this exchange; if it was deleted or "
                "expired, create a new one. If the key is IP-restricted, allow this server's IP."
            )
        return Diagnosis(
            ConnectionStatus.REAUTH,
            cause,
            fix,
            final=True,
            exchange_message=said,
            suspect=suspect,
        )
    if isinstance(exc, ccxt.RateLimitExceeded | ccxt.DDoSProtection):
        return Diagnosis(
            ConnectionStatus.ERROR,
            "The exchange is rate-limiting requests.",
            "Nothing to do: Coinwarden backs off and tries again later.",
            final=False,
            exchange_message=said,
            rate_limited=True,
        )
    # OperationFailed is the parent of NetworkError; Binance's -1000 (500) lands there too.
    if isinstance(exc, ccxt.OperationFailed):
        return Diagnosis(
            ConnectionStatus.ERROR,
            "The exchange is unreachable or under maintenance.",
            "Nothing to do: Coinwarden retries and the connection heals by itself.",
            final=False,
            exchange_message=said,
        )
    return Diagnosis(
        ConnectionStatus.ERROR,
        "The exchange answered with an error.",
        "Try again in a minute; if it persists, check the key on the exchange.",
        final=False,
        exchange_message=said,
    )


WRONG_TAB = Diagnosis(
    ConnectionStatus.REAUTH,
    "This key cannot use futures: it was made without “Enable Futures” (under the wrong tab, "
    "or before the futures account was opened).",
    "Edit the key on the exchange and tick “Enable Futures”, or create a new key under the "
    "Futures tab, then connect it again.",
    final=True,
)
