"""Restarts, master keys, commands: the bot as an operator runs it."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import Callable
from typing import Any

import pytest

from bot.app import open_core
from bot.handlers.commands import COMMANDS
from bot.sandbox.telegram import ChatDriver
from storage.master_key import MasterKeyError
from storage.vault import generate_master_key
from tests.e2e.conftest import World, connect_binance


async def stored(world: World) -> tuple[dict[str, bytes], str]:
    """The data dir's files and, on PostgreSQL, the database's rows."""
    files = {p.name: p.read_bytes() for p in sorted(world.data_dir.iterdir()) if p.is_file()}
    return files, await world.stored_text()


async def test_a_restart_with_the_same_data_dir_keeps_the_connection(
    world: World, start_bot: Callable[..., Any], alice: ChatDriver
) -> None:
    async with start_bot():
        await connect_binance(alice, world.canary_key(read=True))
    async with start_bot():
        await alice.send("/connections")
        card = await alice.reply("Main")
        assert "Connected" in card.text


async def test_a_generated_master_key_is_reused_after_a_restart(
    world: World, start_bot: Callable[..., Any], alice: ChatDriver
) -> None:
    async with start_bot(master_key=None):
        await connect_binance(alice, world.canary_key(read=True))
    assert (world.data_dir / "master.key").exists()
    async with start_bot(master_key=None):
        await alice.send("/connections")
        assert "Connected" in (await alice.reply("Main")).text


async def test_a_wrong_master_key_refuses_to_start_and_changes_nothing(
    world: World, start_bot: Callable[..., Any], alice: ChatDriver
) -> None:
    async with start_bot():
        await connect_binance(alice, world.canary_key(read=True))
    before = await stored(world)
    with pytest.raises(MasterKeyError, match="COINWARDEN_MASTER_KEY"):
        await open_core(world.settings(master_key=generate_master_key()))
    with pytest.raises(MasterKeyError, match="no master key was found"):
        await open_core(world.settings(master_key=None))
    assert await stored(world) == before
    assert not (world.data_dir / "master.key").exists()


async def cli(world: World, command: str, **variables: str) -> tuple[int | None, str, str]:
    """``python -m bot <command>`` on this world's data dir and database, as an operator runs
    it; returns the exit status, stdout and stderr."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("COINWARDEN_")},
        **world.environment(),
        "COINWARDEN_TELEGRAM_TOKEN": "1:unused",
        "COINWARDEN_TELEGRAM_API_URL": "http://127.0.0.1:9/bot",
        **{f"COINWARDEN_{name.upper()}": value for name, value in variables.items()},
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", command, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode, stdout.decode(), stderr.decode()


async def test_the_cli_refuses_a_wrong_master_key_in_one_line(
    world: World, start_bot: Callable[..., Any], alice: ChatDriver
) -> None:
    async with start_bot():
        await connect_binance(alice, world.canary_key(read=True))
    before = await stored(world)
    status, _, stderr = await cli(world, "run", master_key=generate_master_key())
    assert status == 3
    assert "refusing to start" in stderr and "COINWARDEN_MASTER_KEY" in stderr
    assert "Traceback" not in stderr
    assert await stored(world) == before


async def test_doctor_then_rotate_master_key_from_the_cli_and_the_bot_runs_on_the_new_key(
    world: World, start_bot: Callable[..., Any], alice: ChatDriver
) -> None:
    async with start_bot():
        await connect_binance(alice, world.canary_key(read=True))

    status, out, err = await cli(world, "doctor", master_key=world.master_key)
    assert status == 0, err
    assert "database: reachable, 2 encrypted value(s)" in out
    assert re.search(r"^schema: \d{4} \(current\)$", out, re.MULTILINE), out
    assert re.search(r"^master key: \S+ opens every stored secret$", out, re.MULTILINE), out

    new_key = generate_master_key()
    status, out, err = await cli(
        world, "rotate-master-key", master_key=new_key, previous_master_keys=world.master_key
    )
    assert status == 0, err
    assert out.startswith("Re-encrypted 2 secret value(s) with master key")

    async with start_bot(master_key=new_key):
        await alice.send("/connections")
        assert "Connected" in (await alice.reply("Main")).text


@pytest.mark.usefixtures("bot")
async def test_start_and_help_explain_the_bot_and_match_the_registered_commands(
    world: World, alice: ChatDriver
) -> None:
    await alice.send("/start")
    welcome = await alice.reply()
    assert "withdraw" in welcome.text and "deleted the moment they arrive" in welcome.text
    await alice.send("/help")
    help_text = (await alice.reply()).text
    for name, _ in COMMANDS:
        assert f"/{name}" in help_text
    assert list(world.telegram.commands) == [name for name, _ in COMMANDS]


async def test_only_allowed_users_are_served(
    world: World, start_bot: Callable[..., Any], alice: ChatDriver, mallory: ChatDriver
) -> None:
    async with start_bot(allowed_users=[alice.user.id]):
        await mallory.send("/connect")
        assert "this Coinwarden bot is private" in (await mallory.reply()).text
        await alice.send("/connect")
        assert "Which exchange" in (await alice.reply()).text


async def test_the_connection_limit_is_enforced(
    world: World, start_bot: Callable[..., Any], alice: ChatDriver
) -> None:
    async with start_bot(max_connections_per_chat=1):
        await connect_binance(alice, world.binance.issue_key(), "One")
        await alice.send("/connect")
        assert "reached its limit of 1 connection." in (await alice.reply()).text
