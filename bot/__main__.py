"""Command line: ``python -m bot [run|worker|sandbox|rotate-master-key|doctor]`` (no argument =
run).

Configuration, database and master-key problems print one line and exit non-zero, never a
traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from bot.app import master_key_config, open_core, running_bot
from bot.config import ConfigError, Settings, load_settings
from bot.redaction import configure_logging
from bot.worker import work
from storage.database import Database, DatabaseUnreachable, SchemaTooNew
from storage.master_key import MasterKeyError, open_vault
from storage.rotation import rotate_master_key

EXIT_CONFIG = 2
EXIT_MASTER_KEY = 3


async def run(settings: Settings) -> None:
    settings.require_token()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with running_bot(settings):
        await stop.wait()


async def rotate(settings: Settings) -> None:
    core = await open_core(settings)
    try:
        count = await rotate_master_key(core.database, core.vault)
    finally:
        await core.close()
    print(
        f"Re-encrypted {count} secret value(s) with master key {core.vault.current_key_id}. "
        "Keep the new key safe; COINWARDEN_PREVIOUS_MASTER_KEYS can now be emptied."
    )


async def doctor(settings: Settings) -> None:
    """Say what would happen at start, without starting (and without migrating)."""
    settings.ensure_data_dir()
    print(f"data dir: {settings.data_dir.resolve()} (writable)")
    database = Database(settings.effective_database_url)
    try:
        current, head = await database.schema()
        secrets = await database.stored_secrets()
        vault = open_vault(master_key_config(settings), secrets, may_generate=False)
    finally:
        await database.dispose()
    print(f"database: reachable, {len(secrets)} encrypted value(s)")
    if current == head:
        print(f"schema: {head} (current)")
    else:
        print(f"schema: {current or 'empty'}; migrated to {head} at start")
    if vault is None:
        print("master key: none yet; one is generated on first start")
    else:
        print(f"master key: {vault.current_key_id} opens every stored secret")
    token = "set" if settings.telegram_token else "missing (COINWARDEN_TELEGRAM_TOKEN)"
    print(f"telegram token: {token}")
    print(f"telegram api: {settings.telegram_api_url}")
    endpoints = ", ".join(f"{k}→{v}" for k, v in settings.exchange_endpoints.items()) or "none"
    print(f"exchange endpoint overrides: {endpoints}")


COMMANDS = {"run": run, "worker": work, "rotate-master-key": rotate, "doctor": doctor}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="coinwarden", description="Coinwarden: a self-hosted Telegram bot for crypto traders."
    )
    commands = parser.add_subparsers(
        dest="command", metavar="{run,worker,sandbox,rotate-master-key,doctor}"
    )
    commands.add_parser("run", help="run the bot (the default)")
    commands.add_parser(
        "worker",
        help="run the sweeps (balances, alerts, reminders, rebalancing) without Telegram, "
        "beside one `run` process on the same database",
    )
    sandbox = commands.add_parser(
        "sandbox",
        help="try the bot in this terminal: local Telegram, demo exchanges, no token needed",
    )
    sandbox.add_argument(
        "--seed", type=int, help="seed of the price random walk (default: a random one, shown)"
    )
    sandbox.add_argument(
        "--data-dir",
        type=Path,
        help="keep the bot's data here (default: a temporary dir); the demo exchanges and "
        "their keys start afresh on every run",
    )
    sandbox.add_argument(
        "--database-url",
        help="the bot's database (default: SQLite in the data dir), e.g. "
        "postgresql+asyncpg://user@127.0.0.1:5432/coinwarden_sandbox; the master key stays "
        "in the data dir",
    )
    commands.add_parser(
        "rotate-master-key", help="re-encrypt every secret under COINWARDEN_MASTER_KEY"
    )
    commands.add_parser("doctor", help="check configuration, database and master key")
    args = parser.parse_args(argv)
    try:
        if args.command == "sandbox":
            # Imported here only: nothing of the sandbox is loaded when the bot runs for real.
            from bot.sandbox.session import SandboxOptions, run_sandbox

            options = SandboxOptions(args.seed, args.data_dir, args.database_url)
            run_sandbox(options)
            return 0
        settings = load_settings()
        configure_logging(settings.log_level)
        asyncio.run(COMMANDS[args.command or "run"](settings))
    except ConfigError as exc:
        print(f"coinwarden: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except DatabaseUnreachable as exc:
        where = "--database-url" if args.command == "sandbox" else "COINWARDEN_DATABASE_URL"
        print(f"coinwarden: {where}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except SchemaTooNew as exc:
        print(f"coinwarden: refusing to start: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except MasterKeyError as exc:
        print(f"coinwarden: refusing to start: {exc}", file=sys.stderr)
        return EXIT_MASTER_KEY
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
