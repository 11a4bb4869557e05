"""What only the local OKX server has: its ISO-stamped signed headers, its config and codes.

The behaviour every venue shares is in ``test_venue_contract.py`` (row ``okx``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from bot.exchanges.probes import okx as okx_probe
from bot.sandbox.exchanges import DemoKey, DemoPermissions, OkxServer
from tests.integration.venue_client import raw_request


@pytest.fixture
async def server() -> AsyncIterator[OkxServer]:
    async with OkxServer() as running:
        yield running


def signed_headers(key: DemoKey, path: str, *, timestamp: str | None = None) -> dict[str, str]:
    """Headers for a GET signed by hand, to check the wire details ccxt hides."""
    stamp = timestamp or datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    digest = hmac.new(key.secret.encode(), f"{stamp}GET{path}".encode(), hashlib.sha256).digest()
    return {
        "OK-ACCESS-KEY": key.api_key,
        "OK-ACCESS-SIGN": base64.b64encode(digest).decode(),
        "OK-ACCESS-TIMESTAMP": stamp,
        "OK-ACCESS-PASSPHRASE": key.passphrase or "",
    }


async def test_summarize_reads_the_servers_own_config_payload(server: OkxServer) -> None:
    key = server.issue_key(DemoPermissions(spot_trade=True, withdraw=True, ip_restricted=True))
    path = "/api/v5/account/config"
    payload = (await raw_request(server, f"GET {path}", headers=signed_headers(key, path))).json()

    config = payload["data"][0]
    assert payload["code"] == "0" and config["perm"] == "read_only,withdraw,trade"
    assert config["ip"] == "127.0.0.1,::1"
    summary = okx_probe.summarize(config)
    assert summary.withdraw and summary.ip_restricted and summary.spot_trade


@pytest.mark.parametrize(
    ("path", "drop", "timestamp", "status", "code"),
    [
        ("/api/v5/account/balance", "OK-ACCESS-KEY", None, 401, "50103"),
        ("/api/v5/account/balance", "OK-ACCESS-SIGN", None, 401, "50106"),
        ("/api/v5/account/balance", "OK-ACCESS-TIMESTAMP", None, 401, "50107"),
        ("/api/v5/account/balance", "OK-ACCESS-PASSPHRASE", None, 401, "50104"),
        ("/api/v5/account/balance", None, "1732170000000", 401, "50112"),
        ("/api/v5/account/balance", None, "2024-11-21T06:20:00.000Z", 401, "50102"),
        ("/api/v5/public/instruments", None, None, 400, "50014"),
        ("/api/v5/public/instruments?instType=STOCK", None, None, 400, "51000"),
    ],
)
async def test_malformed_requests_get_okx_codes(
    server: OkxServer,
    path: str,
    drop: str | None,
    timestamp: str | None,
    status: int,
    code: str,
) -> None:
    headers = signed_headers(server.issue_key(), path, timestamp=timestamp)
    headers.pop(drop or "", None)
    answer = await raw_request(server, f"GET {path}", headers=headers)
    assert (answer.status, answer.json()["code"]) == (status, code)


async def test_signature_covers_the_query_string(server: OkxServer) -> None:
    key = server.issue_key()
    signed = "/api/v5/account/balance?ccy=BTC"
    answer = await raw_request(server, f"GET {signed}", headers=signed_headers(key, signed))
    tampered = await raw_request(
        server, "GET /api/v5/account/balance?ccy=ETH", headers=signed_headers(key, signed)
    )

    assert [detail["ccy"] for detail in answer.json()["data"][0]["details"]] == ["BTC"]
    assert tampered.json() == {"msg": "Invalid Sign", "code": "50113"}


def test_demo_keys_look_like_okx_keys() -> None:
    server = OkxServer()
    first = server.issue_key()
    assert len(first.secret) == 32 and first.secret == first.secret.upper()
    int(first.secret, 16)
    passphrase = first.passphrase or ""
    assert 8 <= len(passphrase) <= 32
    assert any(c.isupper() for c in passphrase) and any(c.islower() for c in passphrase)
    assert any(c.isdigit() for c in passphrase) and not passphrase.isalnum()
    with pytest.raises(ValueError, match="passphrase"):
        server.issue_key(material=DemoKey(first.api_key[::-1], first.secret))
    with pytest.raises(ValueError, match="format"):
        server.issue_key(material=DemoKey("not-a-uuid", first.secret, "Pass-word1"))
