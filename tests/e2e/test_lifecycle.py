"""Restarts, master keys, commands: the bot as an operator runs it."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.app import open_core
from bot.handlers.commands import COMMANDS
from bot.sandbox.telegram import ChatDriver
from storage.master_key import MasterKeyError
from storage.vault import generate_master_key
from tests.e2e.conftest import World, connect_binance


def data_bytes(data_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(data_dir.iterdir()) if p.is_file()}


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
    before = data_bytes(world.data_dir)
    with pytest.raises(MasterKeyError, match="COINWARDEN_MASTER_KEY"):
        await open_core(world.settings(master_key=generate_master_key()))
    with pytest.raises(MasterKeyError, match="no master key was found"):
        await open_core(world.settings(master_key=None))
    assert data_bytes(world.data_dir) == before
    assert not (world.data_dir / "master.key").exists()


async def test_the_cli_refuses_a_wrong_master_key_in_one_line(
    world: World, start_bot: Callable[..., Any], alice: ChatDriver
) -> None:
    async with start_bot():
        await connect_binance(alice, world.canary_key(read=True))
    before = data_bytes(world.data_dir)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("COINWARDEN_")},
        "COINWARDEN_TELEGRAM_TOKEN": "1:unused",
        "COINWARDEN_TELEGRAM_API_URL": "http://127.0.0.1:9/bot",
        "COINWARDEN_DATA_DIR": str(world.data_dir),
        "COINWARDEN_MASTER_KEY": generate_master_key(),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", env=env, stderr=asyncio.subprocess.PIPE
    )
    _, stderr_bytes = await asyncio.wait_for(process.communicate(), timeout=60)
    stderr = stderr_bytes.decode()
    assert process.returncode == 3
    assert "refusing to start" in stderr and "COINWARDEN_MASTER_KEY" in stderr
    assert "Traceback" not in stderr
    assert data_bytes(world.data_dir) == before


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
