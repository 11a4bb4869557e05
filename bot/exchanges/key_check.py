"""Check a freshly pasted key on a fresh ccxt instance: permissions first, then a balance read."""

from __future__ import annotations

import time
from dataclasses import dataclass

import ccxt.async_support as ccxt

from bot.exchanges.catalogue import Venue
from bot.exchanges.clients import new_client
from bot.exchanges.diagnosis import Diagnosis, diagnose
from bot.exchanges.permissions import PermissionSummary
from storage.credentials import Credentials


@dataclass(frozen=True)
class KeyAccepted:
    permissions: PermissionSummary
    assets_held: int
    latency_ms: int


@dataclass(frozen=True)
class KeyRefused:
    """The key can move funds out (withdraw or transfer): refused, nothing stored."""

    permissions: PermissionSummary


@dataclass(frozen=True)
class KeyRejected:
    diagnosis: Diagnosis


KeyCheck = KeyAccepted | KeyRefused | KeyRejected


async def check_key(
    venue: Venue, credentials: Credentials, *, endpoint: str | None, sandbox: bool
) -> KeyCheck:
    """Never raises for exchange trouble: every outcome is a value the user is shown."""
    started = time.monotonic()
    client = new_client(venue, credentials, endpoint=endpoint, sandbox=sandbox)
    try:
        permissions = await venue.probe(client)
        if permissions.can_move_funds_out:
            return KeyRefused(permissions)
        balance = await client.fetch_balance()
        held = sum(1 for amount in (balance.get("total") or {}).values() if amount)
        return KeyAccepted(permissions, held, int((time.monotonic() - started) * 1000))
    except ccxt.BaseError as exc:
        return KeyRejected(diagnose(exc))
    finally:
        await client.close()
