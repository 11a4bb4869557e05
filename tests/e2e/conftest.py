"""The e2e harness: the production bot (``running_bot``) against local Telegram and Binance.

Every test here also proves, on teardown, the two promises that hold for any flow: the local
Telegram server recorded no Bot API limit violation, and no canary secret or the bot token
reached a message, a log record, the bytes of the data dir, or the database: on SQLite its file
is in the data dir; on PostgreSQL every text value of every table of the test's database, and,
once per worker, every byte of the cluster after a CHECKPOINT.

Every test runs once per engine (``database_url``): SQLite in the data dir, the bot's default,
or a database of this worker's PostgreSQL cluster.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bot.app import running_bot
from bot.clock import Clock, utc_now
from bot.config import Settings, load_settings
from bot.exchanges.catalogue import VENUES
from bot.redaction import QUIET_LOGGERS
from bot.sandbox.exchanges.base import DemoKey, DemoPermissions
from bot.sandbox.exchanges.binance import BinanceServer
from bot.sandbox.telegram import ChatDriver, TelegramServer
from storage.vault import generate_master_key
from tests.postgres import PostgresCluster, database_text

BOT_TOKEN = "7700110022:CANARYbotTOKENzz9QwErTyUiOp"
CANARY_KEY = "CANARYkey" + "A1b2C3d4E5" * 5 + "Zz9Yy"  # 64 characters, like Binance keys
CANARY_SECRET = "CANARYsecret" + "Q9w8E7r6T5" * 5 + "Mm"
CANARIES = (BOT_TOKEN, BOT_TOKEN.split(":")[1], CANARY_KEY, CANARY_SECRET)


@dataclass
class World:
    """Everything an e2e test touches: the two servers, the settings, and the running bot."""

    telegram: TelegramServer
    binance: BinanceServer
    data_dir: Path
    master_key: str
    database_url: str | None = None  # None: SQLite in the data dir
    overrides: dict[str, Any] = field(default_factory=dict)

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "telegram_token": BOT_TOKEN,
            "telegram_api_url": self.telegram.base_url,
            "data_dir": self.data_dir,
            "database_url": self.database_url,
            "master_key": self.master_key,
            "exchange_endpoints": {"binance": self.binance.base_url},
            "exchange_pacing": False,  # local servers (ccxt's own pacing is not under test)
            **self.overrides,
            **overrides,
        }
        return load_settings(**values)

    def environment(self) -> dict[str, str]:
        """The variables that point ``python -m bot`` at this world's database."""
        environment = {
            "COINWARDEN_DATA_DIR": str(self.data_dir),
            "COINWARDEN_EXCHANGE_PACING": "false",
        }
        if self.database_url is not None:
            environment["COINWARDEN_DATABASE_URL"] = self.database_url
        return environment

    async def stored_text(self) -> str:
        """What the PostgreSQL database holds, as text ('' on SQLite: the data dir has it)."""
        return "" if self.database_url is None else await database_text(self.database_url)

    def canary_key(self, **flags: bool) -> DemoKey:
        """The canary credentials, issued on the Binance server with these permissions."""
        return self.binance.issue_key(
            DemoPermissions(**flags), material=DemoKey(CANARY_KEY, CANARY_SECRET, None)
        )

    async def leaks(self, log_text: str, *values: str | None) -> list[str]:
        """Where any of these values (the canaries unless given) shows up: Bot API calls the
        bot made, logs, data dir bytes, the PostgreSQL database's text."""
        calls = "\n".join(repr(call) for call in self.telegram.calls)
        stored = b"".join(p.read_bytes() for p in self.data_dir.rglob("*") if p.is_file())
        database = await self.stored_text()
        found = []
        for value in filter(None, values or CANARIES):
            where = [
                place
                for place, seen in (
                    ("a Bot API call", value in calls),
                    ("the logs", value in log_text),
                    ("the data dir", value.encode() in stored),
                    ("the database", value in database),
                )
                if seen
            ]
            found += [f"{value[:8]}… in {place}" for place in where]
        return found


def logged(caplog: pytest.LogCaptureFixture) -> str:
    """The whole test's log (setup, call and teardown), as production logging emits it.

    ``caplog.text`` read in a fixture's teardown holds the teardown phase only. Production keeps
    the QUIET_LOGGERS at WARNING (``configure_logging``): python-telegram-bot's DEBUG records
    print each raw update, pasted key included, before the bot has read it, and are left out
    here as they are there.
    """
    records = [*caplog.get_records("setup"), *caplog.get_records("call"), *caplog.records]
    return "\n".join(
        f"{record.getMessage()}\n{record.exc_text or ''}"
        for record in records
        if record.levelno >= logging.WARNING
        or not any(record.name == q or record.name.startswith(f"{q}.") for q in QUIET_LOGGERS)
    )


@pytest.fixture
async def world(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    database_url: str,
    request: pytest.FixtureRequest,
) -> AsyncIterator[World]:
    caplog.set_level(logging.DEBUG)
    cluster: PostgresCluster | None = None
    if not database_url.startswith("sqlite"):
        cluster = request.getfixturevalue("postgres_cluster")
    async with TelegramServer(BOT_TOKEN) as telegram, BinanceServer() as binance:
        here = World(
            telegram,
            binance,
            tmp_path / "data",
            generate_master_key(),
            database_url=None if cluster is None else database_url,
        )
        yield here
        assert telegram.violations == [], telegram.violations
    assert await here.leaks(logged(caplog)) == []
    if cluster is not None and not cluster.scanned and "v1." in await here.stored_text():
        cluster.scanned = True  # once per worker: the first test that stored a ciphertext
        stored = await cluster.stored_bytes()
        assert [c[:8] for c in CANARIES if c.encode() in stored] == []


@pytest.fixture
def start_bot(world: World) -> Callable[..., Any]:
    """``async with start_bot(**overrides) as app:`` runs the production bot until the block
    ends; ``clock=`` replaces the wall clock (tests move it instead of sleeping)."""

    def start(clock: Clock = utc_now, **overrides: Any) -> Any:
        return running_bot(world.settings(**overrides), clock=clock)

    return start


@pytest.fixture
async def bot(start_bot: Callable[..., Any]) -> AsyncIterator[None]:
    async with start_bot():
        yield


@pytest.fixture
def alice(world: World) -> ChatDriver:
    return world.telegram.private_chat(user_id=1001, first_name="Alice")


@pytest.fixture
def mallory(world: World) -> ChatDriver:
    return world.telegram.private_chat(user_id=6666, first_name="Mallory")


async def connect(
    chat: ChatDriver, venue_id: str, key: DemoKey, label: str = "Main", *, wrap: str = "{}"
) -> str:
    """Walk /connect as a user; returns the text of the final card."""
    await chat.send("/connect")
    picker = await chat.reply("Which exchange")
    await chat.press(picker, VENUES[venue_id].name)
    await chat.reply("Send a short label")
    await chat.send(label)
    await chat.reply("Now paste the")
    await chat.send(wrap.format(key.api_key))
    await chat.reply("Now paste the")
    await chat.send(wrap.format(key.secret))
    if VENUES[venue_id].needs_passphrase:
        assert key.passphrase is not None
        await chat.reply("Now paste the")
        await chat.send(wrap.format(key.passphrase))
    checking = await chat.reply("Checking the key")
    result = await chat.reply(timeout=10)  # the same message, edited with the outcome
    assert result.message_id == checking.message_id
    return result.text


async def connect_binance(
    chat: ChatDriver, key: DemoKey, label: str = "Main", *, wrap: str = "{}"
) -> str:
    return await connect(chat, "binance", key, label, wrap=wrap)


async def paste_key(chat: ChatDriver, key: DemoKey) -> str:
    """Answer the key-entry prompt already on screen; returns the check's outcome."""
    await chat.send(key.api_key)
    await chat.reply("Now paste the")
    await chat.send(key.secret)
    checking = await chat.reply("Checking the key")
    result = await chat.reply(timeout=10)
    assert result.message_id == checking.message_id
    return result.text
