"""The terminal chat of ``python -m bot sandbox``: what a typed line means, and how the bot's
messages look in a terminal.

One rule keeps input unambiguous: a line starting with ``:`` talks to the sandbox (``:1``
presses button 1, ``:key binance read`` issues a demo key); every other line goes to the bot
exactly as typed, so ``1`` is the text "1" (a label, say). ``::text`` sends ":text".

``parse_line``, ``format_text`` and ``ChatView`` are pure (apart from saving photos), so the
unit tests pin what a user sees; ``Console`` is the only part that touches stdin and stdout.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import queue
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal, TextIO

from bot.sandbox.exchanges.base import DemoPermissions
from bot.sandbox.telegram import ChatEvent, ChatMessage, FormattedText

PROMPT = "you> "
INDENT = "    "

#: Demo key kinds for ``:key``: the permissions, and how the terminal names them.
KEY_KINDS: Mapping[str, tuple[DemoPermissions, str]] = {
    "read": (DemoPermissions(read=True), "read-only"),
    "trade": (DemoPermissions(read=True, spot_trade=True), "read + spot trading"),
    "futures": (DemoPermissions(read=True, futures_trade=True), "read + futures trading"),
    "withdraw": (DemoPermissions(read=True, withdraw=True), "read + withdrawals"),
    "transfer": (DemoPermissions(read=True, internal_transfer=True), "read + internal transfer"),
}
KeyPart = Literal["key", "secret", "passphrase"]
KEY_PARTS: tuple[KeyPart, ...] = ("key", "secret", "passphrase")
DEFAULT_OUTAGE = 3  # requests answered 503 by ``:outage``: as many as make a connection Error
MAX_OUTAGE = 1000

# --- what a typed line means -----------------------------------------------------------------


@dataclass(frozen=True)
class SendText:
    """A message to the bot, as typed."""

    text: str


@dataclass(frozen=True)
class Press:
    """Press a button by the number shown beside it, or by (part of) its label."""

    number: int | None = None
    label: str | None = None


@dataclass(frozen=True)
class IssueKey:
    """``:key VENUE KIND [ip]``: a fresh demo key on a sandbox venue."""

    venue: str
    kind: str
    ip_restricted: bool = False


@dataclass(frozen=True)
class Paste:
    """Send one part of the last demo key as a message, as if pasted."""

    part: KeyPart


@dataclass(frozen=True)
class Price:
    """Show prices (``base`` None: all), or set ``base``/USDT on every venue listing it."""

    base: str | None = None
    price: Decimal | None = None


@dataclass(frozen=True)
class RevokeKey:
    """``:revoke-key``: revoke the last demo key on its exchange, as if deleted there."""


@dataclass(frozen=True)
class RestoreKey:
    """``:restore-key``: make the last demo key valid again on its exchange."""


@dataclass(frozen=True)
class Outage:
    """``:outage VENUE [N]``: the venue answers its next ``times`` requests with 503."""

    venue: str
    times: int = DEFAULT_OUTAGE


@dataclass(frozen=True)
class Deposit:
    """``:deposit VENUE ASSET AMOUNT``: funds arrive on the venue's demo account."""

    venue: str
    asset: str
    amount: Decimal


@dataclass(frozen=True)
class WithdrawFunds:
    """``:withdraw-funds VENUE ASSET AMOUNT|all``: funds leave the venue's demo account
    (``all``: every free unit of it, None here)."""

    venue: str
    asset: str
    amount: Decimal | None


@dataclass(frozen=True)
class Sweep:
    """``:sweep``: run the health sweep now (it checks only the connections that are due)."""


@dataclass(frozen=True)
class Help:
    """List the terminal commands."""


@dataclass(frozen=True)
class Quit:
    """Leave the sandbox."""


@dataclass(frozen=True)
class Mistake:
    """A ``:`` line that means nothing; explained to the user, nothing is sent."""

    message: str


Command = (
    SendText
    | Press
    | IssueKey
    | Paste
    | Price
    | RevokeKey
    | RestoreKey
    | Outage
    | Deposit
    | WithdrawFunds
    | Sweep
    | Help
    | Quit
    | Mistake
)

_KEY_USAGE = f"usage: :key VENUE {'|'.join(KEY_KINDS)} [ip]   e.g. :key binance read"
_PASTE_USAGE = "usage: :paste key|secret|passphrase (after :key)"
_PRICE_USAGE = "usage: :price [COIN [PRICE]]   e.g. :price BTC 50000"
_OUTAGE_USAGE = (
    f"usage: :outage VENUE [N]   e.g. :outage binance (its next N requests get 503, "
    f"default {DEFAULT_OUTAGE})"
)
#: The commands that move a demo account's funds, and what they make.
_FUNDS: Mapping[str, type[Deposit] | type[WithdrawFunds]] = {
    "deposit": Deposit,
    "withdraw-funds": WithdrawFunds,
}
#: Terminal commands that take no argument, and what they mean.
_BARE: Mapping[str, Command] = {
    "revoke-key": RevokeKey(),
    "restore-key": RestoreKey(),
    "sweep": Sweep(),
}


def parse_line(line: str) -> Command | None:
    """What a typed line asks for; None for a blank line (Telegram sends no empty message)."""
    text = line.rstrip("\r\n")
    if not text.strip():
        return None
    stripped = text.strip()
    if not stripped.startswith(":"):
        return SendText(text)
    if stripped.startswith("::"):
        return SendText(stripped[1:])
    words = stripped[1:].split()
    if not words:
        return Mistake("a lone ':' means nothing; :help lists the commands")
    name, args = words[0].lower(), words[1:]
    if name.isdecimal():
        return Press(number=int(name)) if not args else Mistake("usage: :N presses button N")
    if name in ("help", "h", "?"):
        return Help()
    if name in ("quit", "q", "exit"):
        return Quit()
    if name == "press":
        return _press(args)
    if name == "key":
        return _issue_key(args)
    if name == "paste":
        wanted = args[0].lower() if len(args) == 1 else None
        part = next((part for part in KEY_PARTS if part == wanted), None)
        return Paste(part) if part is not None else Mistake(_PASTE_USAGE)
    if name == "price":
        return _price(args)
    if name == "outage":
        return _outage(args)
    if name in _FUNDS:
        return _funds(name, args)
    if name in _BARE:
        return _BARE[name] if not args else Mistake(f"usage: :{name} (no arguments)")
    return Mistake(f"unknown command :{words[0]}; :help lists the commands")


def _press(args: list[str]) -> Command:
    if not args:
        return Mistake("usage: :press N, or :press LABEL (e.g. :press Revoke)")
    if len(args) == 1 and args[0].isdecimal():
        return Press(number=int(args[0]))
    return Press(label=" ".join(args))


def _issue_key(args: list[str]) -> Command:
    words = [arg.lower() for arg in args]
    ip_restricted = words[2:] == ["ip"]
    if len(words) not in (2, 3) or (len(words) == 3 and not ip_restricted):
        return Mistake(_KEY_USAGE)
    venue, kind = words[0], words[1]
    if kind not in KEY_KINDS:
        return Mistake(f"no key kind {kind!r}; {_KEY_USAGE}")
    return IssueKey(venue, kind, ip_restricted)


def _price(args: list[str]) -> Command:
    if not args:
        return Price()
    if len(args) > 2:
        return Mistake(_PRICE_USAGE)
    base = args[0].upper().removesuffix("/USDT")
    if not base.isalnum():
        return Mistake(_PRICE_USAGE)
    if len(args) == 1:
        return Price(base)
    try:
        price = Decimal(args[1])
    except InvalidOperation:
        price = Decimal(0)
    if not price.is_finite() or price <= 0:
        return Mistake(f"{args[1]!r} is not a price; {_PRICE_USAGE}")
    return Price(base, price)


def _outage(args: list[str]) -> Command:
    if len(args) not in (1, 2):
        return Mistake(_OUTAGE_USAGE)
    if len(args) == 1:
        return Outage(args[0].lower())
    count = args[1]
    if not (count.isdecimal() and 1 <= int(count) <= MAX_OUTAGE):
        return Mistake(
            f"{count!r} is not a number of requests (1 to {MAX_OUTAGE}); {_OUTAGE_USAGE}"
        )
    return Outage(args[0].lower(), int(count))


def _funds(name: str, args: list[str]) -> Command:
    usage = f"usage: :{name} VENUE ASSET AMOUNT   e.g. :{name} binance BTC 0.5"
    if len(args) != 3:
        return Mistake(usage)
    venue, asset, typed = args[0].lower(), args[1].upper(), args[2]
    if not asset.isascii() or not asset.isalnum():
        return Mistake(f"{args[1]!r} is not an asset; {usage}")
    if name == "withdraw-funds" and typed.lower() == "all":
        return WithdrawFunds(venue, asset, None)
    try:
        amount = Decimal(typed)
    except InvalidOperation:
        amount = Decimal(0)
    if not amount.is_finite() or amount <= 0:
        return Mistake(f"{typed!r} is not an amount; {usage}")
    return _FUNDS[name](venue, asset, amount)


def help_text(venues: Sequence[str], health_check_seconds: int = 60) -> str:
    """The ``:help`` page, naming the venues this sandbox runs and its health-check period."""
    kinds = "\n".join(f"{'':<35}{name:<9}{about}" for name, (_, about) in KEY_KINDS.items())
    return "\n".join(
        [
            "Talking to the bot",
            "  any line not starting with ':'   is sent to the bot as typed (1 is the text '1')",
            "  :N   or   :press N               press the button shown as [:N]",
            "  :press LABEL                     press the newest button whose label has LABEL",
            "  ::text                           send a message that starts with ':'",
            "Demo keys (paste them when /connect asks)",
            f"  :key VENUE KIND [ip]             VENUE: {', '.join(venues)}; KIND:",
            kinds,
            "                                   (withdraw and transfer keys: watch the bot refuse",
            "                                   them); ip = restricted to this machine's IP",
            "  :paste key|secret|passphrase     send that part of the last :key as a message",
            "Prices (they drift a little every few seconds)",
            "  :price                           list them",
            "  :price BTC 50000                 set BTC/USDT on every venue that lists it",
            f"Balance reads and health (a read every {health_check_seconds} s; "
            "the bot writes only when a status changes)",
            "  :revoke-key                      revoke the last :key on its exchange, as if",
            "                                   deleted there (next check: Re-auth needed)",
            "  :restore-key                     make that key valid again (next check: recovered)",
            "  :outage VENUE [N]                VENUE answers its next N requests with 503, as in",
            f"                                   maintenance (default {DEFAULT_OUTAGE}: three "
            "failed checks in a row",
            "                                   make a connection Error)",
            "  :sweep                           run the balance sweep now; it reads only what is",
            "                                   due: one period after the last check (failing",
            "                                   connections back off to 2×, 4×, 8×), so nothing",
            "                                   is due right after /connect",
            "Demo accounts (:deposit and :withdraw-funds take VENUE ASSET AMOUNT)",
            "  :deposit binance BTC 0.5         "
            "the demo account's balance moves, as if you deposited;",
            "                                   shows up at the next balance sweep",
            "  :withdraw-funds binance BTC 0.5  "
            "the demo account's balance moves, as if you withdrew;",
            "                                   shows up at the next balance sweep (only free",
            "                                   funds leave: what open orders hold stays);",
            "                                   AMOUNT all takes every free unit",
            "                                   With /alert Main BTC below 0.5 set, a move past",
            "                                   the line alerts you once, at that sweep",
            "The sandbox",
            "  :help   this list        :quit   leave (Ctrl-D and Ctrl-C too)",
        ]
    )


# --- how messages look --------------------------------------------------------------------

_RESET = "\x1b[0m"
_KIND_NAMES = {"text": "message", "photo": "photo", "document": "file", "sticker": "sticker"}
_ENTITY_CODES = {
    "bold": "1",
    "italic": "3",
    "underline": "4",
    "strikethrough": "9",
    "spoiler": "2",
    "code": "36",
    "pre": "36",
    "text_link": "4",
}


def _sgr(codes: Sequence[str]) -> str:
    return f"\x1b[{';'.join(codes)}m"


def paint(text: str, codes: str, *, ansi: bool) -> str:
    """``text`` in the SGR ``codes`` (e.g. "1;33") on a colour terminal, unchanged otherwise."""
    return f"\x1b[{codes}m{text}{_RESET}" if ansi else text


def format_text(formatted: FormattedText, *, ansi: bool) -> str:
    """Message text with its entities as ANSI styles (plain without ``ansi``).

    Link targets are written after the link text either way, since a terminal cannot hide
    them behind a tap. Styles are closed at line ends so indentation stays unstyled.
    """
    text = formatted.text
    starts = _utf16_starts(text)
    index = {unit: i for i, unit in enumerate(starts)}
    entities = [e for e in formatted.entities if e.type in _ENTITY_CODES]
    targets: dict[int, list[str]] = {}  # character index -> link targets to write before it
    for entity in entities:
        begin, end = index.get(entity.offset), index.get(entity.offset + entity.length)
        if entity.type != "text_link" or not entity.url or begin is None or end is None:
            continue
        if entity.url not in (text[begin:end], f"http://{text[begin:end]}"):
            targets.setdefault(end, []).append(f" ({entity.url})")
    out: list[str] = []
    active: tuple[str, ...] = ()
    for i in range(len(text) + 1):
        for target in targets.get(i, ()):
            if active:
                out.append(_RESET)
                active = ()
            out.append(paint(target, "2", ansi=ansi))
        if i == len(text):
            break
        codes: tuple[str, ...] = ()
        if ansi and text[i] != "\n":
            unit = starts[i]
            covering = (e for e in entities if e.offset <= unit < e.offset + e.length)
            codes = tuple(sorted({_ENTITY_CODES[e.type] for e in covering}))
        if codes != active:
            out.append(_RESET if active else "")
            out.append(_sgr(codes) if codes else "")
            active = codes
        out.append(text[i])
    if active:
        out.append(_RESET)
    return "".join(out)


def _utf16_starts(text: str) -> list[int]:
    """Where each character starts in UTF-16 code units (the unit of entity offsets), plus
    the end of the text."""
    starts = [0]
    for char in text:
        starts.append(starts[-1] + (2 if ord(char) > 0xFFFF else 1))
    return starts


def format_price(value: Decimal) -> str:
    """Thousands separated, cents for prices above 1, six significant digits below."""
    return f"{value:,.2f}" if value >= 1 else f"{value:.6g}"


@dataclass(frozen=True)
class ShownButton:
    """A callback button as the terminal numbered it."""

    number: int
    message_id: int
    text: str
    data: str


class ButtonNotFound(Exception):
    """The button a user asked to press is not (or no longer) on screen; says why."""


class ChatView:
    """Turns chat events into terminal text and numbers the buttons it shows.

    A button keeps its number while its message shows it (edits that keep a button keep its
    number); numbers are never reused, so ``:3`` can only ever mean one button.
    """

    def __init__(self, *, ansi: bool, files_dir: Path) -> None:
        self.ansi = ansi
        self.files_dir = files_dir
        self._numbers: dict[tuple[int, str, str], int] = {}
        self._buttons: dict[int, ShownButton] = {}
        self._live: dict[int, list[int]] = {}  # message id -> numbers it shows now
        self._gone: dict[int, str] = {}  # message id -> why its old buttons cannot be pressed

    # --- rendering -------------------------------------------------------------------------

    def render(self, event: ChatEvent) -> str | None:
        """The lines to print for one event, or None for what a user would not notice."""
        message = event.message
        if event.kind == "callback_answer" and event.answer is not None and event.answer.text:
            kind = "alert" if event.answer.show_alert else "notice"
            return f"{INDENT}{self._dim(f'({kind})')} {event.answer.text}"
        if message is None:
            return None
        if event.kind == "delete":
            return self._deleted(message)
        if not message.from_bot or event.kind not in ("new", "edit"):
            return None  # the user's own lines are on screen already
        edited = event.kind == "edit"
        head = paint(f"#{message.message_id}", "2", ansi=self.ansi) + " "
        head += paint("bot", "1;34", ansi=self.ansi)
        if edited:
            head += " " + paint("(edited)", "33", ansi=self.ansi)
        body = self._attachment(message)
        text = format_text(FormattedText(message.text, message.entities), ansi=self.ansi)
        body += text.split("\n") if text else []
        body += self._button_rows(message)
        first, *rest = body or [""]
        return "\n".join([f"{head}: {first}", *(f"{INDENT}{line}".rstrip() for line in rest)])

    def _deleted(self, message: ChatMessage) -> str:
        self._retire(message.message_id, f"message #{message.message_id} was deleted")
        if message.from_bot:
            first_line = message.text.split("\n", 1)[0]
            shown = first_line if len(first_line) <= 40 else first_line[:39] + "…"
            note = f"#{message.message_id} deleted: the bot's message “{shown}”"
        else:
            # What the bot deletes may be a secret: say which message, never what it held.
            note = f"#{message.message_id} deleted: your {_KIND_NAMES[message.kind]}"
        return paint(note, "2", ansi=self.ansi)

    def _attachment(self, message: ChatMessage) -> list[str]:
        if message.kind == "sticker":
            return [f"[sticker {message.text}]"]
        if message.file is None:
            return []
        self.files_dir.mkdir(parents=True, exist_ok=True)
        suffix = ".png" if message.kind == "photo" else ""
        name = Path(message.file.file_name or "").name
        path = self.files_dir / f"message-{message.message_id}{'-' + name if name else suffix}"
        path.write_bytes(message.file.data)
        return [f"[{message.kind} saved to {path}]"]

    def _button_rows(self, message: ChatMessage) -> list[str]:
        numbers: list[int] = []
        rows = []
        for row in message.buttons:
            chips = []
            for button in row:
                if button.data is None:
                    link = paint(f"({button.url})", "2", ansi=self.ansi)
                    chips.append(f"[{button.text} {link}]")
                    continue
                key = (message.message_id, button.text, button.data)
                number = self._numbers.setdefault(key, len(self._numbers) + 1)
                self._buttons[number] = ShownButton(
                    number, message.message_id, button.text, button.data
                )
                numbers.append(number)
                chips.append(f"[{paint(f':{number}', '1;33', ansi=self.ansi)} {button.text}]")
            rows.append("  ".join(chips))
        self._retire(message.message_id, f"message #{message.message_id} changed since")
        self._live[message.message_id] = numbers
        return rows

    def _retire(self, message_id: int, reason: str) -> None:
        self._live.pop(message_id, None)
        self._gone[message_id] = reason

    def _dim(self, text: str) -> str:
        return paint(text, "2", ansi=self.ansi)

    # --- pressing --------------------------------------------------------------------------

    def button(self, number: int) -> ShownButton:
        """The button shown as ``:number``, if a message still shows it."""
        shown = self._buttons.get(number)
        if shown is None:
            raise ButtonNotFound(f"there is no button :{number}")
        if number not in self._live.get(shown.message_id, ()):
            raise ButtonNotFound(
                f"button :{number} ({shown.text}) is gone: {self._gone[shown.message_id]}"
            )
        return shown

    def find(self, label: str) -> ShownButton:
        """The newest message's button whose label is (or contains) ``label``, any case."""
        wanted = label.casefold()
        for message_id in sorted(self._live, reverse=True):
            buttons = [self._buttons[n] for n in self._live[message_id]]
            exact = [b for b in buttons if b.text.casefold() == wanted]
            matches = exact or [b for b in buttons if wanted in b.text.casefold()]
            if len(matches) == 1:
                return matches[0]
            if matches:
                choices = ", ".join(f":{b.number} {b.text}" for b in matches)
                raise ButtonNotFound(f"several buttons match {label!r}: {choices}")
        raise ButtonNotFound(f"no button on screen matches {label!r}")


# --- stdin and stdout -------------------------------------------------------------------------


class Console:
    """The terminal: prints chat output and reads typed lines without blocking the loop.

    Lines are read in a thread, one per request, so no read is in flight when the sandbox
    exits normally (readline is never left half-way through a line). Output that arrives
    while the user is typing is printed above the prompt, and the half-typed line redrawn.
    """

    def __init__(self, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout) -> None:
        self.interactive = stdin.isatty() and stdout.isatty()
        self.echo = not stdin.isatty()  # piped input: echo it so the transcript reads well
        colour_term = os.environ.get("TERM", "") != "dumb" and "NO_COLOR" not in os.environ
        self.ansi = stdout.isatty() and colour_term
        if isinstance(stdout, io.TextIOWrapper):
            stdout.reconfigure(errors="replace")  # an emoji never kills the chat
        self._stdin_fd = stdin.fileno()
        self._out = stdout
        self._requests: queue.SimpleQueue[asyncio.Future[str | None]] = queue.SimpleQueue()
        self._typing = False
        self._unread = b""
        self._saved_tty: list[Any] | None = None
        self._line_buffer: Callable[[], str] = lambda: ""
        if self.interactive:
            self._prepare_tty()
        threading.Thread(target=self._read_forever, name="sandbox-stdin", daemon=True).start()

    def _prepare_tty(self) -> None:
        with contextlib.suppress(ImportError):
            import termios

            self._saved_tty = termios.tcgetattr(self._stdin_fd)
        with contextlib.suppress(ImportError):
            import readline  # line editing and history for input()

            self._line_buffer = readline.get_line_buffer

    def show(self, text: str) -> None:
        """Print ``text``; if a prompt is open, above it, then redraw the prompt."""
        if self._typing:
            self._out.write(f"\r\x1b[K{text}\n{PROMPT}{self._line_buffer()}")
        else:
            self._out.write(text + "\n")
        self._out.flush()

    async def read_line(self) -> str | None:
        """The next typed line (without its newline); None at end of input."""
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._requests.put(future)
        line = await future
        if line is not None and self.echo:
            self.show(f"{PROMPT}{line}")
        elif line is None and self.interactive:
            self.show("")  # Ctrl-D leaves the cursor after the prompt
        return line

    def close(self) -> None:
        """Give the terminal back as it was, even if Ctrl-C hit in the middle of a line."""
        if self._typing:
            self._typing = False  # from now on, output goes below the abandoned prompt
            self.show("")
        if self._saved_tty is not None:
            import termios

            termios.tcsetattr(self._stdin_fd, termios.TCSADRAIN, self._saved_tty)

    def _read_forever(self) -> None:
        at_end = False
        while True:
            future = self._requests.get()
            line = None if at_end else self._prompt() if self.interactive else self._raw_line()
            at_end = line is None
            with contextlib.suppress(RuntimeError):  # the loop closed while we read
                future.get_loop().call_soon_threadsafe(_resolve, future, line)

    def _prompt(self) -> str | None:
        self._typing = True
        try:
            return input(PROMPT)
        except EOFError:
            return None
        finally:
            self._typing = False

    def _raw_line(self) -> str | None:
        """One line straight from the file descriptor: no Python-level lock is held, so a
        read still waiting at exit cannot block the interpreter's shutdown."""
        while b"\n" not in self._unread:
            chunk = os.read(self._stdin_fd, 65536)
            if not chunk:
                if not self._unread:
                    return None
                break
            self._unread += chunk
        line, _, self._unread = self._unread.partition(b"\n")
        return line.decode("utf-8", "replace").rstrip("\r")


def _resolve(future: asyncio.Future[str | None], line: str | None) -> None:
    if not future.done():
        future.set_result(line)
