"""One poller and sweep workers on one database, as real processes: ``python -m bot worker``
beside the polling bot (its notices delivered by the poller), a second poller of the same
token refused in one line, and Telegram's 409 Conflict said once instead of a traceback per
retry."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

import pytest

from bot.sandbox.telegram import ChatDriver
from tests.e2e.conftest import BOT_TOKEN, CANARIES, World, connect_binance

TIMEOUT = 60
#: The balance period of this file's bots and workers (seconds).
PERIOD = 2


def environment(world: World, **variables: str) -> dict[str, str]:
    """``python -m bot``'s environment for this world: its database, key, venues and bot."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("COINWARDEN_")},
        **world.environment(),
        "COINWARDEN_MASTER_KEY": world.master_key,
        "COINWARDEN_TELEGRAM_TOKEN": BOT_TOKEN,
        "COINWARDEN_TELEGRAM_API_URL": world.telegram.base_url,
        "COINWARDEN_EXCHANGE_ENDPOINTS": json.dumps({"binance": world.binance.base_url}),
        **{f"COINWARDEN_{name.upper()}": value for name, value in variables.items()},
    }


async def test_a_second_poller_of_the_token_exits_2_naming_the_first(
    world: World, start_bot: Callable[..., Any]
) -> None:
    async with start_bot():
        second = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "run",
            env=environment(world),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr_bytes = await asyncio.wait_for(second.communicate(), timeout=TIMEOUT)
    stderr = stderr_bytes.decode()
    assert second.returncode == 2, stderr
    *startup, line = stderr.strip().splitlines()  # startup: the migration's log lines
    assert not [earlier for earlier in startup if "coinwarden:" in earlier or "Trace" in earlier]
    assert line.startswith(
        "coinwarden: another Coinwarden process is already polling this bot "
        f"(host {os.uname().nodename}, pid {os.getpid()}, since "
    )
    assert line.endswith("run `python -m bot worker` to add sweep capacity")
    # It never reached Telegram: the first poller's getUpdates were the only ones.
    assert all(value not in stderr for value in CANARIES)


async def test_two_worker_processes_share_the_sweeps_and_the_poller_delivers_what_they_queued(
    world: World,
    start_bot: Callable[..., Any],
    alice: ChatDriver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The issue's setup: one poller (no sweeps) and two workers on one database. The one
    connection is read by one worker at a time, never twice in a period, and its alert is
    delivered once, by the poller."""
    async with start_bot(sweeps=False, balance_sync_seconds=PERIOD):
        assert "is connected" in await connect_binance(alice, world.canary_key(read=True))
        await alice.send("/alert Main BTC below 0.5")  # the demo account holds 0.5234
        await alice.reply("Alert set")
        world.binance.set_balance("demo", "BTC", "0.1")
        before = len(balance_reads(world))  # the key check's read at /connect

        workers = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "worker",
                env=environment(world, worker_id=name, balance_sync_seconds=str(PERIOD)),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            for name in ("worker-1", "worker-2")
        ]
        try:
            alert = await alice.reply("dropped below", timeout=TIMEOUT)
            for _ in range(TIMEOUT * 10):  # three periods' reads, whichever worker made them
                if len(balance_reads(world)) >= before + 3:
                    break
                await asyncio.sleep(0.1)
        finally:
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
            outputs = [
                await asyncio.wait_for(worker.communicate(), timeout=TIMEOUT) for worker in workers
            ]
        await alice.settle()

    stderrs = [stderr.decode() for _, stderr in outputs]
    for worker, stderr in zip(workers, stderrs, strict=True):
        assert worker.returncode == 0, stderr
        assert "Traceback" not in stderr
        assert all(value not in stderr for value in CANARIES)
    for name, stderr in zip(("worker-1", "worker-2"), stderrs, strict=True):
        assert f"worker {name} is sweeping" in stderr
        assert f"worker {name} stopped; its leases are released" in stderr
    assert "BTC on Main" in alert.text
    assert len([m for m in alice.messages if "dropped below" in m.text]) == 1
    reads = balance_reads(world)[before:]
    assert len(reads) >= 3
    # Never two reads in one period: one read twice would be milliseconds apart (the margin
    # is for the two processes' clocks, not for double work).
    gaps = [later - earlier for earlier, later in itertools.pairwise(reads)]
    assert min(gaps) > PERIOD * 0.75, gaps
    # The poller swept nothing itself: it left the sweeps to the workers.
    assert not any("sweep:" in record.getMessage() for record in caplog.records)


def balance_reads(world: World) -> list[float]:
    """When the Binance server answered a balance read, in order."""
    return [r.time for r in world.binance.request_log if r.path == "/api/v3/account"]


async def test_telegrams_409_conflict_is_said_in_one_line_not_a_traceback_per_retry(
    world: World, start_bot: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    world.telegram.fail_next(
        "getUpdates",
        error_code=409,
        description="Conflict: terminated by other getUpdates request; make sure that only "
        "one bot instance is running",
        times=2,
    )
    async with start_bot():
        for _ in range(TIMEOUT * 10):
            if sum(call.method == "getUpdates" for call in world.telegram.calls) > 2:
                break
            await asyncio.sleep(0.1)
    conflict = [r for r in caplog.records if r.name == "bot.app" and "409" in r.getMessage()]
    assert len(conflict) == 1 and conflict[0].levelno == logging.ERROR
    assert "another process polls this bot's token" in conflict[0].getMessage()
    assert not [r for r in caplog.records if r.exc_info and r.name.startswith("telegram")]
