"""Kraken's GetApiKeyInfo answers turned into permission summaries, and the probe's secret guard."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import ccxt.async_support as ccxt
import pytest

from bot.exchanges.permissions import PermissionSummary
from bot.exchanges.probes.kraken import probe, summarize


def key_info(**fields: Any) -> dict[str, Any]:
    """A GetApiKeyInfo response shaped like the example in Kraken's API reference."""
    result = {
        "apiKeyName": "my-api-key",
        "apiKey": "4/SDrDBcOOPnm3nPlNfEMMJDeRcIVqPz+QhRxIodyZbI9po/aVRiHsgX",
        "nonce": "1772627060997",
        "nonceWindow": 0,
        "permissions": ["query-funds", "query-open-trades", "query-closed-trades"],
        "iban": "AA88 N84G WOAK NMOI",
        "validUntil": "0",
        "queryFrom": "0",
        "queryTo": "0",
        "createdTime": "1772542900",
        "modifiedTime": "1772543095",
        "ipAllowlist": [],
        "lastUsed": "1772627061",
    }
    result.update(fields)
    return {"error": [], "result": {k: v for k, v in result.items() if v is not None}}


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        pytest.param(
            key_info(),
            PermissionSummary(
                read=True,
                spot_trade=False,
                derivatives_trade=False,
                withdraw=False,
                ip_restricted=False,
            ),
            id="read-only monitoring key",
        ),
        pytest.param(
            # The permissions of the example in Kraken's reference: it may withdraw.
            key_info(
                permissions=["query-funds", "withdraw-funds", "query-open-trades", "modify-trades"]
            ),
            PermissionSummary(
                read=True,
                spot_trade=True,
                derivatives_trade=False,
                withdraw=True,
                ip_restricted=False,
            ),
            id="reference example with withdraw-funds",
        ),
        pytest.param(
            key_info(
                permissions=["query-funds", "query-open-trades", "modify-trades", "close-trades"],
                ipAllowlist=["203.0.113.7/32", "2001:db8::/64"],
                validUntil="1798761600",
            ),
            PermissionSummary(
                read=True,
                spot_trade=True,
                derivatives_trade=False,
                withdraw=False,
                ip_restricted=True,
                expires_at=datetime(2027, 1, 1, tzinfo=UTC),
            ),
            id="IP-pinned trade key that expires",
        ),
        pytest.param(
            key_info(permissions=["close-trades"]),
            PermissionSummary(
                read=False,
                spot_trade=True,
                derivatives_trade=False,
                withdraw=False,
                ip_restricted=False,
            ),
            id="cancel/close only still trades",
        ),
        pytest.param(
            key_info(permissions=[], ipAllowlist=None, validUntil=None),
            PermissionSummary(
                read=False, spot_trade=False, derivatives_trade=False, withdraw=False
            ),
            id="no rights, no allow-list field",
        ),
        pytest.param(
            key_info(permissions=None),
            PermissionSummary(
                read=False,
                spot_trade=False,
                derivatives_trade=False,
                withdraw=False,
                ip_restricted=False,
                withdraw_known=False,
            ),
            id="no permissions list: withdrawal unknown",
        ),
        pytest.param(
            key_info(permissions="withdraw-funds"),
            PermissionSummary(
                read=False,
                spot_trade=False,
                derivatives_trade=False,
                withdraw=False,
                ip_restricted=False,
                withdraw_known=False,
            ),
            id="permissions not a list: withdrawal unknown",
        ),
    ],
)
def test_summarize_key_info(payload: dict[str, Any], expected: PermissionSummary) -> None:
    summary = summarize(payload)
    assert summary == expected
    assert PermissionSummary.from_flags(summary.to_flags()) == summary


def test_a_key_that_withdraws_cannot_be_stored() -> None:
    summary = summarize(key_info(permissions=["query-funds", "withdraw-funds"]))
    assert summary.can_move_funds_out and summary.withdraw_known


@pytest.mark.parametrize("secret", ["abcde", "not a base64 key!", "é" * 8])
async def test_probe_reports_a_secret_that_is_not_base64_without_calling_kraken(
    secret: str,
) -> None:
    """ccxt would fail signing with a bare ValueError; the probe says what is wrong instead."""
    exchange = ccxt.kraken({"apiKey": "A" * 56, "secret": secret})
    exchange.urls["api"] = {"public": "http://127.0.0.1:9", "private": "http://127.0.0.1:9"}
    exchange.timeout_on_exit = 0  # nothing was opened; close() need not wait for TLS shutdowns
    try:
        with pytest.raises(ccxt.AuthenticationError, match="not valid base64") as raised:
            await probe(exchange)
    finally:
        await exchange.close()
    assert secret not in str(raised.value)
