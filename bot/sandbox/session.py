"""``python -m bot sandbox``: the real bot, a local Telegram, demo exchanges and a terminal chat
in one process, so anyone can walk every flow with no bot token and no exchange account.

The bot is the production one (``running_bot``), configured through ``Settings`` exactly as an
operator would: the Bot API URL and the exchange endpoints point at the local servers, and the
token is a throwaway. Only this module knows it is a sandbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import random
import secrets
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from telegram.ext import Application

from bot.app import running_bot
from bot.config import ConfigError, Settings, load_settings
from bot.exchanges.catalogue import VENUES
from bot.exchanges.health import HealthPolicy
from bot.handlers.context import SERVICES_KEY, HandlerServices
from bot.handlers.render import STATUS_LOOK, duration
from bot.handlers.schedule import sweeper_of
from bot.redaction import QUIET_LOGGERS, REDACTOR
from bot.sandbox.exchanges import SERVERS
from bot.sandbox.exchanges.base import DemoKey, VenueServer, plain
from bot.sandbox.telegram import ChatDriver, ChatEvent, TelegramServer
from bot.sandbox.terminal import (
    INDENT,
    KEY_KINDS,
    PROMPT,
    ButtonNotFound,
    ChatView,
    Command,
    Console,
    Deposit,
    Help,
    IssueKey,
    KeyPart,
    Mistake,
    Outage,
    Paste,
    Press,
    Price,
    Quit,
    RestoreKey,
    RevokeKey,
    SendText,
    ShownButton,
    Sweep,
    WithdrawFunds,
    format_price,
    help_text,
    paint,
    parse_line,
)
from storage.connections import ConnectionRecord, ConnectionStatus
from storage.credentials import mask

#: ccxt id -> the local server imitating it ("module:Class"). A venue runs in the sandbox when
#: its module exists and the bot's catalogue offers it; a new venue is one line here.
PRICE_STEP_SECONDS = 5.0
USER_ID = 1001
USER_NAME = "Trader"
LOG_FILE = "sandbox.log"
MARKER_FILE = ".coinwarden-sandbox"  # marks a data dir the sandbox made and may reuse
BOT_BUSY_TIMEOUT = 30.0  # the prompt comes back after this even if the bot is still working
DEMO_ACCOUNT = "demo"  # the exchange account every :key of a venue belongs to

log = logging.getLogger(__name__)


def venue_server_classes() -> dict[str, type[VenueServer]]:
    """The local server of every venue the bot offers, by ccxt id."""
    return {venue_id: server for venue_id, server in SERVERS.items() if venue_id in VENUES}


def throwaway_token() -> str:
    """A token in Telegram's shape, good for this run's local server only."""
    return f"{secrets.randbelow(9 * 10**9) + 10**9}:sandbox-{secrets.token_urlsafe(24)}"


@dataclass(frozen=True)
class SandboxOptions:
    """The command line's choices."""

    seed: int | None = None
    data_dir: Path | None = None
    database_url: str | None = None  # None: SQLite in the data dir


def run_sandbox(options: SandboxOptions) -> None:
    """Run until :quit, end of input, Ctrl-C or SIGTERM; all of them end cleanly."""
    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(_sandbox(options))


async def _sandbox(options: SandboxOptions) -> None:
    main = asyncio.current_task()
    assert main is not None
    with contextlib.suppress(NotImplementedError):  # no SIGTERM handlers on Windows
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main.cancel)
    seed = options.seed if options.seed is not None else secrets.randbelow(1_000_000)
    console = Console()
    started = False
    try:
        with _data_dir(options.data_dir) as data_dir:
            async with _world(data_dir, options.database_url, console) as world:
                started = True
                session = Session(world, console, ChatView(ansi=console.ansi, files_dir=data_dir))
                world.telegram.subscribe(session.on_event)
                walk = asyncio.create_task(walk_prices(world.venues, random.Random(seed)))
                try:
                    console.show(banner(world, seed, options.data_dir is None, ansi=console.ansi))
                    await session.run()
                finally:
                    walk.cancel()
    finally:
        console.close()
        if started:
            kept = f"kept in {options.data_dir}" if options.data_dir else "deleted"
            console.show(f"Bye. The sandbox data was {kept}.")


@contextlib.contextmanager
def _data_dir(chosen: Path | None) -> Iterator[Path]:
    """The given data dir (kept), or a temporary one deleted on the way out.

    A given dir must be new, empty or the sandbox's own: the sandbox points every connection
    at demo servers, which would mark a real bot's connections broken."""
    if chosen is not None:
        if chosen.is_dir() and any(chosen.iterdir()) and not (chosen / MARKER_FILE).exists():
            raise ConfigError(
                f"--data-dir {chosen} holds files the sandbox did not make; "
                "choose a new or empty directory (the sandbox never uses a real bot's data)"
            )
        yield chosen
        return
    temporary = Path(tempfile.mkdtemp(prefix="coinwarden-sandbox-"))
    try:
        yield temporary
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


@dataclass
class World:
    """What the sandbox runs: the servers, the bot's settings and the bot itself."""

    telegram: TelegramServer
    venues: dict[str, VenueServer]
    settings: Settings
    application: Application
    chat: ChatDriver
    log_path: Path


@contextlib.asynccontextmanager
async def _world(
    data_dir: Path, database_url: str | None, console: Console
) -> AsyncIterator[World]:
    async with AsyncExitStack() as stack:
        try:
            telegram = await stack.enter_async_context(
                TelegramServer(throwaway_token(), bot_username="coinwarden_sandbox_bot")
            )
            venues: dict[str, VenueServer] = {}
            for venue_id, server_class in venue_server_classes().items():
                server = server_class()
                server.seed_accounts = True  # a newcomer's /orders and /trades show something
                venues[venue_id] = await stack.enter_async_context(server)
        except FileNotFoundError as missing:  # the Bot API spec or the recorded market data
            raise ConfigError(f"the sandbox cannot start: {missing}") from None
        settings = sandbox_settings(telegram, venues, data_dir, database_url)
        settings.ensure_data_dir()  # a bad --data-dir is one line, before the log opens there
        (data_dir / MARKER_FILE).touch()
        log_path = data_dir / LOG_FILE
        _log_to_file(log_path, settings.log_level, console)
        application = await stack.enter_async_context(running_bot(settings))
        chat = telegram.private_chat(USER_ID, USER_NAME)
        yield World(telegram, venues, settings, application, chat, log_path)


def sandbox_settings(
    telegram: TelegramServer,
    venues: Mapping[str, VenueServer],
    data_dir: Path,
    database_url: str | None = None,
) -> Settings:
    """The operator's settings pointed at the local servers.

    Everything that could reach a real service or real secrets (token, database, master key,
    webhook) is set here, so a developer's .env cannot leak in (a database only as given on
    the command line); tuning knobs (log level, health check period, connection limit,
    outbound IPs) still come from the environment.
    """
    return load_settings(
        telegram_token=telegram.token,
        telegram_api_url=telegram.base_url,
        exchange_endpoints={venue_id: server.base_url for venue_id, server in venues.items()},
        exchange_pacing=False,  # the demo exchanges are not the venues: nothing to pace for
        data_dir=data_dir,
        database_url=database_url,
        master_key=None,
        master_key_file=None,
        previous_master_keys=[],
        allowed_users=[USER_ID],
        webhook_url=None,
    )


def _log_to_file(path: Path, level: str, console: Console) -> None:
    """Logs go to a file in the data dir, never into the chat; errors get a one-line notice."""
    REDACTOR.install()
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    to_file = logging.FileHandler(path, encoding="utf-8")
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(to_file)
    root.addHandler(_ErrorNotice(console, path))
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    logging.captureWarnings(True)


class _ErrorNotice(logging.Handler):
    """Tells the terminal user that the bot logged an error, and where to read it."""

    def __init__(self, console: Console, path: Path) -> None:
        super().__init__(logging.ERROR)
        self._console = console
        self._path = path

    def emit(self, record: logging.LogRecord) -> None:
        first_line = record.getMessage().split("\n", 1)[0]
        note = f"⚠ the bot logged an error: {first_line} (details in {self._path})"
        self._console.show(paint(note, "31", ansi=self._console.ansi))


async def walk_prices(venues: Mapping[str, VenueServer], rng: random.Random) -> None:
    """Every few seconds, one small random step for every market of every venue."""
    while True:
        await asyncio.sleep(PRICE_STEP_SECONDS)
        for server in venues.values():
            server.step_prices(rng)


def banner(world: World, seed: int, temporary: bool, *, ansi: bool) -> str:
    """What the newcomer reads first: what is running and how to start."""
    names = ", ".join(world.venues) or "none"
    kept = "deleted on exit" if temporary else "kept"
    first_venue = next(iter(world.venues), "binance")
    lines = [
        paint("Coinwarden sandbox", "1", ansi=ansi)
        + ": the real bot, a local Telegram and demo exchanges, all on this machine.",
        f"  exchanges: {names}; prices drift every {PRICE_STEP_SECONDS:g} s (--seed {seed})",
        f"  data: {world.settings.data_dir} ({kept}); bot log: {world.log_path}",
        "Chat as in Telegram: /connect, /connections, /revoke, /help.",
        f"Lines starting with ':' talk to the sandbox: :key {first_venue} read makes a demo key,",
        ":1 presses button [:1], :help lists the rest, :quit leaves.",
        "Connection health: :revoke-key, :restore-key, :outage VENUE and :sweep (see :help).",
    ]
    return "\n".join(lines)


class Session:
    """The chat loop: reads a line, does what it says, waits until the bot has answered."""

    def __init__(self, world: World, console: Console, view: ChatView) -> None:
        self.world = world
        self.console = console
        self.view = view
        self.chat = world.chat
        self.last_key: tuple[str, DemoKey] | None = None

    def on_event(self, event: ChatEvent) -> None:
        """Every chat event, as it happens (bot messages may come while the user types)."""
        if event.chat_id == self.chat.chat_id:
            shown = self.view.render(event)
            if shown is not None:
                self.console.show(shown)

    async def run(self) -> None:
        """Open the chat the way Telegram does (/start), then follow the user until :quit."""
        self.console.show(f"{PROMPT}/start")
        await self.send("/start")
        while True:
            line = await self.console.read_line()
            if line is None:
                return
            command = parse_line(line)
            if isinstance(command, Quit):
                return
            if command is not None:
                await self.execute(command)

    async def execute(self, command: Command) -> None:
        """Do what one typed line asked for."""
        match command:
            case SendText(text):
                await self.send(text)
            case Press():
                await self.press(command)
            case IssueKey():
                self.issue_key(command)
            case Paste(part):
                await self.paste(part)
            case Price(base, price):
                self.price(base, price)
            case RevokeKey():
                self.set_key_revoked(True)
            case RestoreKey():
                self.set_key_revoked(False)
            case Outage(venue_id, times):
                self.outage(venue_id, times)
            case Deposit(venue_id, asset, amount):
                self.move_funds(venue_id, asset, amount, deposit=True)
            case WithdrawFunds(venue_id, asset, amount):
                self.move_funds(venue_id, asset, amount, deposit=False)
            case Sweep():
                await self.sweep()
            case Help():
                seconds = self.world.settings.sync_seconds
                self.console.show(help_text(list(self.world.venues), seconds))
            case Mistake(message):
                self.note(message)

    def note(self, text: str) -> None:
        """A line from the sandbox itself (not the bot), set apart from the chat."""
        self.console.show(paint(f"{INDENT}{text}", "2", ansi=self.console.ansi))

    async def send(self, text: str) -> None:
        await self.chat.send(text)
        await self.bot_done()

    async def press(self, command: Press) -> None:
        """Tap a button the view still shows; a stale number is explained, never guessed."""
        try:
            button: ShownButton = (
                self.view.button(command.number)
                if command.number is not None
                else self.view.find(command.label or "")
            )
        except ButtonNotFound as problem:
            self.note(str(problem))
            return
        self.note(f"→ pressed [{button.text}] on #{button.message_id}")
        await self.chat.press(button.message_id, data=button.data)
        await self.bot_done()

    async def bot_done(self) -> None:
        """Wait until the bot has handled everything the user did, so its answers print
        before the next prompt (and a script's next line can press the buttons they carry).

        The local Telegram drops an update once the bot's next poll confirms it, and PTB
        queues an update before it polls again; so: no unconfirmed update, then an empty
        PTB queue, means every answer has been sent."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + BOT_BUSY_TIMEOUT
        updates = self.world.telegram.api.updates
        # The server announces no confirmation event, so look every few milliseconds.
        while updates.pending_count and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        with contextlib.suppress(TimeoutError):  # still busy: give the prompt back anyway
            queue = self.world.application.update_queue
            await asyncio.wait_for(queue.join(), max(deadline - loop.time(), 0))

    def venue_server(self, venue_id: str) -> VenueServer | None:
        """The venue's local server; if there is none, says which there are."""
        server = self.world.venues.get(venue_id)
        if server is None:
            self.note(f"no sandbox exchange {venue_id!r}; here: {', '.join(self.world.venues)}")
        return server

    def issue_key(self, command: IssueKey) -> None:
        """A fresh key on the venue's server, printed in full once and kept for :paste."""
        server = self.venue_server(command.venue)
        if server is None:
            return
        permissions, about = KEY_KINDS[command.kind]
        if command.ip_restricted:
            permissions = dataclasses.replace(permissions, ip_restricted=True)
            about += ", IP-restricted"
        venue = VENUES[command.venue]
        key = server.issue_key(
            permissions, account=DEMO_ACCOUNT, with_passphrase=venue.needs_passphrase
        )
        self.last_key = (command.venue, key)
        parts = [("key", venue.key_label, key.api_key), ("secret", venue.secret_label, key.secret)]
        if key.passphrase is not None:
            parts.append(("passphrase", venue.passphrase_label, key.passphrase))
        width = max(len(label) for _, label, _ in parts)
        pastes = " / ".join(f":paste {part}" for part, _, _ in parts)
        hint = f"Paste them when /connect asks, or type {pastes}."
        self.console.show(
            "\n".join(
                [
                    f"Demo {venue.name} key ({about}):",
                    *(f"{INDENT}{label:<{width}}  {value}" for _, label, value in parts),
                    paint(f"{INDENT}{hint}", "2", ansi=self.console.ansi),
                ]
            )
        )

    async def paste(self, part: KeyPart) -> None:
        """Send part of the last demo key as the user's message: scripts cannot copy."""
        if self.last_key is None:
            self.note("no demo key yet: make one with :key, e.g. :key binance read")
            return
        venue_id, key = self.last_key
        venue = VENUES[venue_id]
        value = {"key": key.api_key, "secret": key.secret, "passphrase": key.passphrase}[part]
        if value is None:
            self.note(f"{venue.name} keys have no passphrase")
            return
        if part == "key":
            self.note(f"→ sent the {venue.key_label} {mask(value)}")
        else:
            label = venue.secret_label if part == "secret" else venue.passphrase_label
            self.note(f"→ sent the {label} ({len(value)} characters)")
        await self.send(value)

    def price(self, base: str | None, price: Decimal | None) -> None:
        """List prices, or set ``base``/USDT everywhere it trades so venues stay consistent."""
        venues = self.world.venues
        symbols = sorted({s for server in venues.values() for s in server.prices})
        if base is not None:
            symbols = [s for s in symbols if s == f"{base}/USDT"]
            if not symbols:
                self.note(f"no sandbox exchange lists {base}/USDT")
                return
            if price is not None:
                for server in venues.values():
                    if symbols[0] in server.prices:
                        server.set_price(symbols[0], price)
        lines = []
        for symbol in symbols:
            quotes = " · ".join(
                f"{venue_id} {format_price(server.prices[symbol].last)}"
                for venue_id, server in venues.items()
                if symbol in server.prices
            )
            lines.append(f"{INDENT}{symbol:<10} {quotes}")
        self.console.show("\n".join(lines))

    # --- connection health -----------------------------------------------------------------

    def set_key_revoked(self, revoked: bool) -> None:
        """Revoke (or restore) the last demo key on its exchange, as its owner would there."""
        if self.last_key is None:
            self.note("no demo key yet: make one with :key, e.g. :key binance read")
            return
        venue_id, key = self.last_key
        server = self.world.venues[venue_id]
        record = server.key_record(key.api_key)
        which = f"the {VENUES[venue_id].name} key {mask(key.api_key)}"
        if record is not None and record.revoked == revoked:
            self.note(f"{which} is {'revoked' if revoked else 'valid'} already")
            return
        if revoked:
            server.revoke_key(key.api_key)
            self.note(f"→ revoked {which} on the exchange; the next health check will notice")
        else:
            server.restore_key(key.api_key)
            self.note(
                f"→ {which} is valid again on the exchange; the next health check will notice"
            )

    def outage(self, venue_id: str, times: int) -> None:
        """The venue answers its next ``times`` requests, whoever sends them, with 503."""
        server = self.venue_server(venue_id)
        if server is None:
            return
        server.fail_next(times, status=503)
        requests = "request" if times == 1 else f"{times} requests"
        name = VENUES[venue_id].name
        self.note(f"→ {name} answers its next {requests} with 503, as during maintenance")

    # --- demo accounts ---------------------------------------------------------------------

    def move_funds(
        self, venue_id: str, asset: str, amount: Decimal | None, *, deposit: bool
    ) -> None:
        """Move funds on the venue's demo account as its owner would on the exchange (None:
        all that is free). The bot is not told: its next balance read finds the change, as
        with a real account."""
        server = self.venue_server(venue_id)
        if server is None:
            return
        name = VENUES[venue_id].name
        if amount is None:
            amount = server.account(DEMO_ACCOUNT).balance(asset).free
            if not amount:
                self.note(f"{name}: the demo account has no free {asset}")
                return
        try:
            if deposit:
                balance = server.deposit(DEMO_ACCOUNT, asset, amount)
            else:
                balance = server.withdraw_funds(DEMO_ACCOUNT, asset, amount)
        except ValueError as refused:
            self.note(f"{name} refused: {refused}")
            return
        done = "deposited" if deposit else "withdrew"
        onto = "to" if deposit else "from"
        held = f" ({plain(balance.used)} held by open orders)" if balance.used else ""
        self.note(
            f"→ {done} {plain(amount)} {asset} {onto} {name}: the demo account holds "
            f"{plain(balance.total)} {asset}{held}; the bot sees it at its next balance sweep"
        )

    async def sweep(self) -> None:
        """Run the balance sweep (each read is also a health check) now; its messages are sent
        before it returns. Says what it checked, since a check that changes nothing makes the
        bot say nothing."""
        services = self.world.application.bot_data[SERVICES_KEY]
        assert isinstance(services, HandlerServices)
        before = {r.id: r for r in await services.connections.list_for_chat(self.chat.chat_id)}
        if not before:
            self.note("no connections to check yet: /connect one first")
            return
        try:
            ran = await sweeper_of(self.world.application).run("balance")
        except Exception:
            log.exception("the balance sweep started by :sweep failed")  # noticed on screen
            return
        if not ran:
            self.note("the scheduled balance sweep is running right now; its messages print here")
            return
        after = await services.connections.list_for_chat(self.chat.chat_id)
        now = services.clock()
        checked = [r for r in after if r.id in before and _checked_since(before[r.id], r)]
        for record in checked:
            self.note(
                f"→ checked {record.label}: {self.health_summary(before[record.id], record, now)}"
            )
        if not checked:
            waiting = [(r.next_check_at, r.label) for r in after if r.next_check_at is not None]
            when = f"; next: {min(waiting)[1]} {_until(min(waiting)[0], now)}" if waiting else ""
            self.note(f"nothing was due: checks run one period after the last one{when}")

    def health_policy(self) -> HealthPolicy:
        """The bot's policy, from the same setting the bot reads."""
        return HealthPolicy(timedelta(seconds=self.world.settings.sync_seconds))

    def health_summary(
        self, then: ConnectionRecord, record: ConnectionRecord, now: datetime
    ) -> str:
        """What one check left behind, including what the bot does not say."""
        icon, words = STATUS_LOOK[record.status]
        failures = record.failure_streak
        in_a_row = f"{failures} failed check{'' if failures == 1 else 's'} in a row"
        if record.status is not then.status:
            _, was = STATUS_LOOK[then.status]
            state = f"{icon} {words}, was {was} (the bot's message is above)"
        elif failures and record.status is ConnectionStatus.CONNECTED:
            error_after = self.health_policy().error_after
            state = (
                f"{icon} {words} still, but {in_a_row} (Error at {error_after}), so no message yet"
            )
        elif failures:
            state = f"{icon} {words} still, {in_a_row}, so no new message"
        else:
            state = f"{icon} {words}, no change, so no message"
        return f"{state}; next check {_until(record.next_check_at, now)}"


def _checked_since(then: ConnectionRecord, record: ConnectionRecord) -> bool:
    """A health check always moves the next check; a failing one also counts the failure."""
    return (record.next_check_at, record.failure_streak, record.status) != (
        then.next_check_at,
        then.failure_streak,
        then.status,
    )


def _until(when: datetime | None, now: datetime) -> str:
    """How long until ``when``, as "in 42 s" (rounded up: never sooner than said) or "now"."""
    if when is None:
        return "now"
    seconds = math.ceil((when - now).total_seconds())
    return f"in {duration(seconds)}" if seconds > 0 else "now"
