"""Check a freshly pasted key on a fresh ccxt instance: permissions first, then a balance read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ccxt.async_support as ccxt

from bot.clock import Clock
from bot.exchanges.call_log import CallLog
from bot.exchanges.catalogue import Venue
from bot.exchanges.clients import new_client
from bot.exchanges.diagnosis import WRONG_TAB, Diagnosis, diagnose
from bot.exchanges.permissions import PermissionSummary
from storage.activity import ActivityEntry
from storage.credentials import Credentials


@dataclass(frozen=True)
class KeyAccepted:
    permissions: PermissionSummary
    assets_held: int
    calls: tuple[ActivityEntry, ...]  # for the connection's activity log once it is stored


@dataclass(frozen=True)
class KeyRefused:
    """The key can move funds out (withdraw or transfer): refused, nothing stored."""

    permissions: PermissionSummary


@dataclass(frozen=True)
class KeyRejected:
    diagnosis: Diagnosis


KeyCheck = KeyAccepted | KeyRefused | KeyRejected


def assets_held(balance: dict[str, Any]) -> int:
    """How many assets a ccxt balance shows a non-zero total for."""
    return sum(1 for amount in (balance.get("total") or {}).values() if amount)


async def check_key(
    venue: Venue,
    credentials: Credentials,
    *,
    endpoint: str | None,
    sandbox: bool,
    clock: Clock,
    paced: bool = True,
) -> KeyCheck:
    """Never raises for exchange trouble: every outcome is a value the user is shown."""
    calls = CallLog(clock)
    client = new_client(
        venue, credentials, endpoint=endpoint, sandbox=sandbox, calls=calls, paced=paced
    )
    try:
        permissions = await venue.probe(client)
        if permissions.can_move_funds_out:
            return KeyRefused(permissions)
        if venue.requires_derivatives and not permissions.derivatives_trade:
            return KeyRejected(WRONG_TAB)
        held = assets_held(await client.fetch_balance())
        return KeyAccepted(permissions, held, tuple(calls.entries))
    except (ccxt.BaseError, ValueError) as exc:
        # ValueError: ccxt could not even sign with the secret (e.g. a malformed private key).
        return KeyRejected(diagnose(exc))
    finally:
        await client.close()
