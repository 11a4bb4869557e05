"""The sandbox terminal as a user meets it: what a typed line means, how messages look, and
which venues and settings the sandbox runs with."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from bot.exchanges.catalogue import VENUES
from bot.sandbox.exchanges.binance import BinanceServer
from bot.sandbox.session import sandbox_settings, venue_server_classes
from bot.sandbox.telegram import (
    Button,
    CallbackAnswer,
    ChatEvent,
    ChatMessage,
    StoredFile,
    TelegramServer,
    TelegramUser,
    parse_html,
)
from bot.sandbox.telegram.driver import TINY_PNG
from bot.sandbox.terminal import (
    DEFAULT_OUTAGE,
    KEY_KINDS,
    ButtonNotFound,
    ChatView,
    Deposit,
    Help,
    IssueKey,
    Mistake,
    Outage,
    Paste,
    Press,
    Price,
    Quit,
    RestoreKey,
    RevokeKey,
    SendText,
    Sweep,
    WithdrawFunds,
    format_price,
    format_text,
    help_text,
    parse_line,
)

BOT = TelegramUser(42, "Coinwarden", is_bot=True)
USER = TelegramUser(1001, "Trader")

# --- typed lines -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "command"),
    [
        ("/connect\n", SendText("/connect")),
        ("1", SendText("1")),  # a plain number is a message (a label, say), never a press
        ("  Main  ", SendText("  Main  ")),  # sent exactly as typed
        ("::1", SendText(":1")),
        ("  ::-) hi", SendText(":-) hi")),
        (":1", Press(number=1)),
        (":12", Press(number=12)),
        (":press 3", Press(number=3)),
        (":press Yes, revoke", Press(label="Yes, revoke")),
        (":help", Help()),
        (":?", Help()),
        (":quit", Quit()),
        (":Q", Quit()),
        (":key binance read", IssueKey("binance", "read")),
        (":key OKX Withdraw ip", IssueKey("okx", "withdraw", ip_restricted=True)),
        (":paste key", Paste("key")),
        (":paste Secret", Paste("secret")),
        (":price", Price()),
        (":price btc", Price("BTC")),
        (":price BTC/USDT 50000", Price("BTC", Decimal("50000"))),
        (":price eth 3999.5", Price("ETH", Decimal("3999.5"))),
        (":revoke-key", RevokeKey()),
        (":Restore-Key", RestoreKey()),
        (":outage binance", Outage("binance", DEFAULT_OUTAGE)),
        (":outage OKX 5", Outage("okx", 5)),
        (":sweep", Sweep()),
        (":deposit binance BTC 0.5", Deposit("binance", "BTC", Decimal("0.5"))),
        (":Deposit OKX usdt 1000", Deposit("okx", "USDT", Decimal("1000"))),
        (":withdraw-funds kraken eth 1.25", WithdrawFunds("kraken", "ETH", Decimal("1.25"))),
        (":withdraw-funds bybit USDT 1e3", WithdrawFunds("bybit", "USDT", Decimal("1000"))),
        (":withdraw-funds binance USDT all", WithdrawFunds("binance", "USDT", None)),
    ],
)
def test_each_line_means_one_thing(line: str, command: object) -> None:
    assert parse_line(line) == command


@pytest.mark.parametrize("line", ["", "   ", "\n"])
def test_a_blank_line_sends_nothing(line: str) -> None:
    assert parse_line(line) is None


@pytest.mark.parametrize(
    ("line", "explained"),
    [
        (":", "lone ':'"),
        (":frobnicate", "unknown command :frobnicate"),
        (":press", "usage: :press N"),
        (":1 2", "usage: :N"),
        (":key binance", "usage: :key VENUE"),
        (":key binance admin", "no key kind 'admin'"),
        (":key binance read everything", "usage: :key VENUE"),
        (":paste", "usage: :paste"),
        (":paste password", "usage: :paste"),
        (":price BTC -5", "'-5' is not a price"),
        (":price BTC lots", "'lots' is not a price"),
        (":price BTC NaN", "'NaN' is not a price"),
        (":price B-T-C", "usage: :price"),
        (":revoke-key now", "usage: :revoke-key (no arguments)"),
        (":restore-key binance", "usage: :restore-key (no arguments)"),
        (":sweep all", "usage: :sweep (no arguments)"),
        (":outage", "usage: :outage VENUE [N]"),
        (":outage binance 3 4", "usage: :outage VENUE [N]"),
        (":outage binance 0", "'0' is not a number of requests"),
        (":outage binance -2", "'-2' is not a number of requests"),
        (":outage binance 1001", "'1001' is not a number of requests (1 to 1000)"),
        (":outage binance ²", "'²' is not a number of requests"),
        (":outage binance lots", "usage: :outage VENUE [N]"),
        (":deposit", "usage: :deposit VENUE ASSET AMOUNT   e.g. :deposit binance BTC 0.5"),
        (":deposit binance BTC", "usage: :deposit VENUE ASSET AMOUNT"),
        (":withdraw-funds binance BTC 1 2", "usage: :withdraw-funds VENUE ASSET AMOUNT"),
        (":deposit binance BTC 0", "'0' is not an amount"),
        (":withdraw-funds binance BTC -1", "'-1' is not an amount"),
        (":deposit binance BTC all", "'all' is not an amount"),
        (":withdraw-funds binance BTC lots", "'lots' is not an amount"),
        (":deposit binance BTC NaN", "'NaN' is not an amount"),
        (":deposit binance BTC Infinity", "'Infinity' is not an amount"),
        (":deposit binance B-T-C 1", "'B-T-C' is not an asset"),
        (":withdraw binance BTC 1", "unknown command :withdraw"),
    ],
)
def test_a_terminal_command_that_means_nothing_is_explained_not_sent(
    line: str, explained: str
) -> None:
    command = parse_line(line)
    assert isinstance(command, Mistake)
    assert explained in command.message


def test_help_names_the_venues_every_key_kind_and_the_button_scheme() -> None:
    text = help_text(["binance", "okx"])
    assert "binance, okx" in text
    assert all(kind in text for kind in KEY_KINDS)
    for command in (":N", ":press LABEL", "::text", ":paste", ":price", ":quit", "Ctrl-D"):
        assert command in text
    assert "1 is the text '1'" in text


def test_help_groups_the_health_commands_and_says_why_a_sweep_may_check_nothing() -> None:
    text = help_text(["binance"], health_check_seconds=2)
    health = text[text.index("Balance reads and health") : text.index("The sandbox")]
    assert "a read every 2 s" in health
    for command in (":revoke-key", ":restore-key", ":outage VENUE [N]", ":sweep"):
        assert command in health
    assert f"default {DEFAULT_OUTAGE}" in health
    assert "one period after the last check" in health and "balance sweep" in health
    assert "nothing\n" in health and "is due right after /connect" in health


def test_help_says_what_moving_demo_funds_does_and_when_the_bot_sees_it() -> None:
    text = help_text(["binance"])
    funds = text[text.index("Demo accounts") : text.index("The sandbox")]
    lines = [" ".join(line.split()) for line in funds.splitlines()]
    for command, done in (("deposit", "deposited"), ("withdraw-funds", "withdrew")):
        line = f":{command} binance BTC 0.5 the demo account's balance moves, as if you {done};"
        assert line in lines
    assert lines.count("shows up at the next balance sweep") == 1
    assert "VENUE ASSET AMOUNT" in lines[0] and "only free" in funds


# --- formatting --------------------------------------------------------------------------


def test_plain_output_has_the_text_without_escape_codes() -> None:
    html = "Tip: a <b>read-only</b> key, <i>Main</i>, <code>abcd…wxyz</code>"
    assert format_text(parse_html(html), ansi=False) == "Tip: a read-only key, Main, abcd…wxyz"


def test_a_terminal_gets_bold_italic_and_code_as_ansi_styles() -> None:
    shown = format_text(parse_html("a <b>bold</b> <i>it</i> <code>x</code>"), ansi=True)
    assert shown == "a \x1b[1mbold\x1b[0m \x1b[3mit\x1b[0m \x1b[36mx\x1b[0m"


def test_nested_styles_combine_and_reopen_after_the_inner_one_ends() -> None:
    shown = format_text(parse_html("<b>a<i>b</i>c</b>"), ansi=True)
    assert shown == "\x1b[1ma\x1b[0m\x1b[1;3mb\x1b[0m\x1b[1mc\x1b[0m"


def test_styles_close_at_line_ends_so_indentation_stays_plain() -> None:
    shown = format_text(parse_html("<b>one\ntwo</b>"), ansi=True)
    assert shown.split("\n") == ["\x1b[1mone\x1b[0m", "\x1b[1mtwo\x1b[0m"]


def test_offsets_after_emoji_count_utf16_like_telegram() -> None:
    shown = format_text(parse_html("👋 <b>Coinwarden</b> keeps"), ansi=True)
    assert shown == "👋 \x1b[1mCoinwarden\x1b[0m keeps"


def test_a_link_shows_where_it_goes_since_a_terminal_cannot_tap() -> None:
    formatted = parse_html('See <a href="https://example.com/api">the docs</a>.')
    assert format_text(formatted, ansi=False) == "See the docs (https://example.com/api)."
    assert format_text(parse_html("<a>example.com</a>"), ansi=False) == "example.com"


@pytest.mark.parametrize(
    ("value", "shown"),
    [("73369.84", "73,369.84"), ("50000", "50,000.00"), ("0.17215", "0.17215")],
)
def test_prices_read_like_prices(value: str, shown: str) -> None:
    assert format_price(Decimal(value)) == shown


# --- the chat view -----------------------------------------------------------------------


def bot_message(
    message_id: int, html: str, buttons: list[list[Button]] | None = None
) -> ChatMessage:
    parsed = parse_html(html)
    return ChatMessage(
        message_id=message_id,
        from_bot=True,
        sender=BOT,
        date=0,
        text=parsed.text,
        html=html,
        entities=parsed.entities,
        buttons=buttons or [],
    )


PICKER = [
    [Button("Binance Spot", "cv:binance"), Button("testnet", "cv:binance:t")],
    [Button("Cancel", "cx")],
]


@pytest.fixture
def view(tmp_path: Path) -> ChatView:
    return ChatView(ansi=False, files_dir=tmp_path / "files")


def test_a_bot_message_shows_its_number_text_and_numbered_buttons(view: ChatView) -> None:
    shown = view.render(ChatEvent("new", 1001, bot_message(4, "Which exchange?\n\nTip", PICKER)))
    assert shown == (
        "#4 bot: Which exchange?\n\n    Tip\n    [:1 Binance Spot]  [:2 testnet]\n    [:3 Cancel]"
    )
    assert view.button(2).data == "cv:binance:t"


def test_an_edit_is_shown_as_an_edit_of_the_same_message(view: ChatView) -> None:
    view.render(ChatEvent("new", 1001, bot_message(4, "Which exchange?", PICKER)))
    shown = view.render(ChatEvent("edit", 1001, bot_message(4, "<b>Binance Spot</b>\nLabel?")))
    assert shown == "#4 bot (edited): Binance Spot\n    Label?"


def test_buttons_an_edit_removed_cannot_be_pressed_and_kept_ones_keep_their_number(
    view: ChatView,
) -> None:
    card = [[Button("🗑 Revoke", "rv:1")]]
    view.render(ChatEvent("new", 1001, bot_message(7, "Main", card)))
    confirm = [[Button("🗑 Yes, revoke", "rvy:1"), Button("Keep it", "rvn:1")]]
    shown = view.render(ChatEvent("edit", 1001, bot_message(7, "Revoke Main?", confirm)))
    assert shown is not None and "[:2 🗑 Yes, revoke]  [:3 Keep it]" in shown
    with pytest.raises(ButtonNotFound, match="gone: message #7 changed since"):
        view.button(1)
    again = view.render(ChatEvent("edit", 1001, bot_message(7, "Revoke Main??", confirm)))
    assert again is not None and "[:2 🗑 Yes, revoke]" in again


def test_pressing_by_label_takes_the_newest_message_and_refuses_to_guess(
    view: ChatView,
) -> None:
    view.render(ChatEvent("new", 1001, bot_message(3, "A", [[Button("🗑 Revoke", "rv:1")]])))
    view.render(ChatEvent("new", 1001, bot_message(5, "B", [[Button("🗑 Revoke", "rv:2")]])))
    assert view.find("revoke").data == "rv:2"
    view.render(ChatEvent("new", 1001, bot_message(6, "?", PICKER)))
    assert view.find("binance spot").data == "cv:binance"  # exact label beats "contains"
    with pytest.raises(ButtonNotFound, match="several buttons match 'n'"):
        view.find("n")
    with pytest.raises(ButtonNotFound, match="no button on screen matches 'Sell'"):
        view.find("Sell")


def test_a_deleted_message_is_marked_and_a_users_secret_is_never_echoed(view: ChatView) -> None:
    secret = "wU0hLFJ51MHmSCSXhhrmMkilwSoiayVeD6GrnxWb0UJTbAUk8tkXk9wf823hhvmn"
    pasted = ChatMessage(message_id=9, from_bot=False, sender=USER, date=0, text=secret)
    shown = view.render(ChatEvent("delete", 1001, pasted))
    assert shown == "#9 deleted: your message"
    view.render(ChatEvent("new", 1001, bot_message(4, "Which exchange?", PICKER)))
    gone = view.render(ChatEvent("delete", 1001, bot_message(4, "Which exchange?", PICKER)))
    assert gone == "#4 deleted: the bot's message “Which exchange?”"
    with pytest.raises(ButtonNotFound, match="message #4 was deleted"):
        view.button(1)


def test_the_users_own_messages_and_typing_are_not_repeated(view: ChatView) -> None:
    typed = ChatMessage(message_id=3, from_bot=False, sender=USER, date=0, text="/connect")
    assert view.render(ChatEvent("new", 1001, typed)) is None
    assert view.render(ChatEvent("chat_action", 1001, action="typing")) is None


def test_button_answers_show_as_notices_or_alerts(view: ChatView) -> None:
    notice = ChatEvent("callback_answer", 1001, answer=CallbackAnswer("1", "Revoked.", False))
    alert = ChatEvent("callback_answer", 1001, answer=CallbackAnswer("2", "Gone.", True))
    silent = ChatEvent("callback_answer", 1001, answer=CallbackAnswer("3", None, False))
    assert view.render(notice) == "    (notice) Revoked."
    assert view.render(alert) == "    (alert) Gone."
    assert view.render(silent) is None


def test_a_photo_is_saved_to_a_file_and_its_path_printed(view: ChatView, tmp_path: Path) -> None:
    chart = ChatMessage(
        message_id=11,
        from_bot=True,
        sender=BOT,
        date=0,
        kind="photo",
        text="Portfolio",
        file=StoredFile("f1", "u1", TINY_PNG),
    )
    shown = view.render(ChatEvent("new", 1001, chart))
    path = tmp_path / "files" / "message-11.png"
    assert shown == f"#11 bot: [photo saved to {path}]\n    Portfolio"
    assert path.read_bytes() == TINY_PNG


def test_a_colour_terminal_gets_styled_headers_and_button_numbers(tmp_path: Path) -> None:
    view = ChatView(ansi=True, files_dir=tmp_path)
    shown = view.render(ChatEvent("new", 1001, bot_message(4, "<b>Hi</b>", [[Button("Go", "g")]])))
    assert shown == (
        "\x1b[2m#4\x1b[0m \x1b[1;34mbot\x1b[0m: \x1b[1mHi\x1b[0m\n    [\x1b[1;33m:1\x1b[0m Go]"
    )


# --- what the sandbox runs ---------------------------------------------------------------


def test_every_sandbox_venue_is_offered_by_the_bot_and_served_locally() -> None:
    servers = venue_server_classes()
    assert "binance" in servers
    for venue_id, server_class in servers.items():
        assert venue_id in VENUES
        assert server_class.venue_id == venue_id


async def test_a_developers_env_cannot_point_the_sandbox_at_real_services(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("COINWARDEN_TELEGRAM_TOKEN", "123:real-token")
    monkeypatch.setenv("COINWARDEN_DATABASE_URL", "postgresql+asyncpg://prod/db")
    monkeypatch.setenv("COINWARDEN_MASTER_KEY", "cmVhbA==")
    monkeypatch.setenv("COINWARDEN_WEBHOOK_URL", "https://bot.example.com/hook")
    monkeypatch.setenv("COINWARDEN_MAX_CONNECTIONS_PER_CHAT", "3")  # a knob: kept
    async with TelegramServer("42:sandbox") as telegram, BinanceServer() as binance:
        settings = sandbox_settings(telegram, {"binance": binance}, tmp_path)
        assert settings.require_token() == "42:sandbox"
        assert settings.telegram_api_url == telegram.base_url
        assert settings.exchange_endpoints == {"binance": binance.base_url}
    assert settings.effective_database_url.endswith(f"{tmp_path}/coinwarden.db")
    assert settings.master_key is None and settings.webhook_url is None
    assert settings.max_connections_per_chat == 3
