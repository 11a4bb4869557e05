"""/check in domain terms: walk a stored key through each thing that can go wrong, in order.

Reachability, clock offset, key and signature, permissions, IP restriction, balance read. Each
step is a value (found, ok?, fix); the first hard failure stops the walk, since later steps
would only repeat it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import ccxt.async_support as ccxt

from bot.clock import Clock
from bot.exchanges.call_log import CallLog
from bot.exchanges.catalogue import Venue
from bot.exchanges.clients import new_client
from bot.exchanges.diagnosis import WRONG_TAB, Diagnosis, diagnose
from bot.exchanges.health import ROLE_NAMES, unusable
from bot.exchanges.key_check import assets_held
from bot.exchanges.permissions import PermissionSummary
from storage.activity import ActivityEntry
from storage.connections import ConnectionStatus
from storage.credentials import Credentials, KeyRole

CLOCK_TOLERANCE_MS = 1000


@dataclass(frozen=True)
class CheckStep:
    """``ok`` None means the step could not tell (or was skipped after a failure);
    ``advice``: it works, but ``fix`` would make it safer (not a failure)."""

    name: str
    ok: bool | None
    found: str
    fix: str | None = None
    advice: bool = False


@dataclass(frozen=True)
class KeyReport:
    steps: tuple[CheckStep, ...]
    status: ConnectionStatus
    diagnosis: Diagnosis | None
    permissions: PermissionSummary | None
    calls: tuple[ActivityEntry, ...]


STEP_NAMES = (
    "Exchange reachable",
    "Clock in sync",
    "Key and signature",
    "Permissions",
    "IP restriction",
    "Balance read",
)


def _failed(name: str, diagnosis: Diagnosis) -> CheckStep:
    found = diagnosis.cause
    if diagnosis.exchange_message:
        found += f" (the exchange said: {diagnosis.exchange_message})"
    return CheckStep(name, False, found, diagnosis.fix)


async def _reachability(client: ccxt.Exchange) -> tuple[CheckStep, int | None]:
    """Returns the step and, where the venue tells its time, the clock offset in ms."""
    started = time.monotonic()
    if client.has.get("fetchTime"):
        before = client.milliseconds()
        server_ms = await client.fetch_time()
        after = client.milliseconds()
        offset = int(server_ms - (before + after) / 2) if server_ms else None
    else:
        await client.load_markets()
        offset = None
    elapsed = int((time.monotonic() - started) * 1000)
    return CheckStep(STEP_NAMES[0], True, f"answered in {elapsed} ms"), offset


def _clock(offset: int | None) -> CheckStep:
    if offset is None:
        return CheckStep(STEP_NAMES[1], None, "this exchange does not report its time")
    seconds = abs(offset) / 1000
    if abs(offset) <= CLOCK_TOLERANCE_MS:
        return CheckStep(STEP_NAMES[1], True, f"{seconds:.1f} s apart")
    return CheckStep(
        STEP_NAMES[1],
        False,
        f"this server's clock is {seconds:.1f} s {'behind' if offset > 0 else 'ahead'}",
        "Sync the server clock (NTP); signed requests fail when clocks drift apart.",
    )


def _permissions(summary: PermissionSummary, venue: Venue) -> CheckStep:
    if venue.requires_derivatives and not summary.derivatives_trade:
        return CheckStep(STEP_NAMES[3], False, WRONG_TAB.cause, WRONG_TAB.fix)
    if summary.can_move_funds_out:
        return CheckStep(
            STEP_NAMES[3],
            False,
            "this key can move funds out (withdraw or transfer)",
            "Delete this key on the exchange now and connect a read-only one.",
        )
    if not summary.withdraw_known:
        return CheckStep(
            STEP_NAMES[3],
            None,
            "this exchange does not report whether the key can withdraw (you confirmed it cannot)",
            "Check on the exchange that withdrawals stay disabled for this key.",
        )
    if not summary.read:
        return CheckStep(
            STEP_NAMES[3], False, "this key cannot read the account", "Enable reading on the key."
        )
    if summary.can_trade:
        return CheckStep(STEP_NAMES[3], True, "read and trade; withdrawals off")
    return CheckStep(STEP_NAMES[3], True, "read-only; withdrawals off")


def _ip(summary: PermissionSummary, outbound_ips: Sequence[str]) -> CheckStep:
    if summary.ip_restricted is None:
        return CheckStep(STEP_NAMES[4], None, "this exchange does not report it")
    if summary.ip_restricted:
        return CheckStep(STEP_NAMES[4], True, "the key only works from allowed IPs")
    where = ", ".join(outbound_ips) if outbound_ips else "this server's public IP"
    return CheckStep(
        STEP_NAMES[4],
        True,
        "the key works from any IP",
        f"Restrict the key to {where}.",
        advice=True,
    )


async def diagnose_key(
    venue: Venue,
    credentials: Credentials,
    *,
    endpoint: str | None,
    sandbox: bool,
    outbound_ips: Sequence[str],
    clock: Clock,
    paced: bool = True,
) -> KeyReport:
    """Never raises for exchange trouble; the report says what failed and how to fix it."""
    calls = CallLog(clock)
    client = new_client(
        venue, credentials, endpoint=endpoint, sandbox=sandbox, calls=calls, paced=paced
    )
    steps: list[CheckStep] = []
    permissions: PermissionSummary | None = None
    diagnosis: Diagnosis | None = None
    current = STEP_NAMES[0]  # the step an exception belongs to
    try:
        reach, offset = await _reachability(client)
        steps += [reach, _clock(offset)]
        current = STEP_NAMES[2]
        permissions = await venue.probe(client)
        steps.append(CheckStep(current, True, "the exchange accepted the key and its signature"))
        steps += [_permissions(permissions, venue), _ip(permissions, outbound_ips)]
        current = STEP_NAMES[5]
        held = assets_held(await client.fetch_balance())
        plural = "s" if held != 1 else ""
        steps.append(CheckStep(current, True, f"{held} asset{plural} with a balance"))
    except (ccxt.BaseError, ValueError) as exc:
        diagnosis = diagnose(exc)
        steps.append(_failed(current, diagnosis))
    finally:
        await client.close()
    done = {s.name for s in steps}
    steps += [CheckStep(name, None, "skipped") for name in STEP_NAMES if name not in done]
    status = diagnosis.status if diagnosis else ConnectionStatus.CONNECTED
    return KeyReport(tuple(steps), status, diagnosis, permissions, tuple(calls.entries))


@dataclass(frozen=True)
class SecondKeyCheck:
    """The other key of a connection that holds two: probed, not walked step by step."""

    step: CheckStep
    problem: Diagnosis | None
    permissions: PermissionSummary | None
    calls: tuple[ActivityEntry, ...]


async def check_second_key(
    venue: Venue,
    credentials: Credentials,
    role: KeyRole,
    *,
    endpoint: str | None,
    sandbox: bool,
    clock: Clock,
    paced: bool = True,
) -> SecondKeyCheck:
    """Does the exchange still accept this key, and may it still serve in ``role``?"""
    name = ROLE_NAMES[role].capitalize()
    calls = CallLog(clock)
    client = new_client(
        venue, credentials, endpoint=endpoint, sandbox=sandbox, calls=calls, paced=paced
    )
    try:
        summary = await venue.probe(client)
    except (ccxt.BaseError, ValueError) as exc:
        diagnosis = diagnose(exc)
        return SecondKeyCheck(_failed(name, diagnosis), diagnosis, None, tuple(calls.entries))
    finally:
        await client.close()
    problem = unusable(summary, role, venue)
    if problem is not None:
        return SecondKeyCheck(_failed(name, problem), problem, summary, tuple(calls.entries))
    trades = "can trade" if summary.can_trade else "read-only"
    step = CheckStep(name, True, f"the exchange accepts it; {trades}; withdrawals off")
    return SecondKeyCheck(step, None, summary, tuple(calls.entries))
