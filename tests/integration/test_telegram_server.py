"""The local Bot API server, driven over real HTTP by python-telegram-bot and by raw requests.

These tests pin the behaviour the e2e suite relies on: the server answers like Telegram (same
limits, same error texts, same update semantics) and records everything it refused.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest, Forbidden, RetryAfter
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
)

from bot.sandbox.telegram import (
    Button,
    ChatEvent,
    SpecNotFoundError,
    TelegramServer,
    UploadedFile,
)
from bot.sandbox.telegram.driver import TINY_PNG

TOKEN = "123456:ABC-canary"
USER = 1001


@pytest.fixture
async def server() -> AsyncIterator[TelegramServer]:
    async with TelegramServer(TOKEN, bot_username="coinwarden_test_bot") as running:
        yield running


@pytest.fixture
async def bot(server: TelegramServer) -> AsyncIterator[Bot]:
    async with Bot(TOKEN, base_url=server.base_url) as client:
        yield client


async def raw(
    server: TelegramServer,
    method: str,
    *,
    token: str = TOKEN,
    json: dict[str, Any] | None = None,
    query: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    """One request without PTB in between, to see status codes and exact bodies."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{server.base_url}{token}/{method}", json=json, params=query) as response,
    ):
        return response.status, await response.json()


def last_refusal(server: TelegramServer) -> str:
    assert server.violations, "expected the server to record a refusal"
    return server.violations[-1].description


def keyboard(*labels_and_data: tuple[str, str]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(label, callback_data=data)] for label, data in labels_and_data]
    )


# --- bot identity and updates --------------------------------------------------------------


async def test_get_me_describes_the_bot(bot: Bot) -> None:
    me = await bot.get_me()
    assert (me.id, me.username, me.is_bot) == (123456, "coinwarden_test_bot", True)


async def test_long_poll_answers_as_soon_as_the_user_writes(
    server: TelegramServer, bot: Bot
) -> None:
    chat = server.private_chat(USER, "Alice")
    poll = asyncio.create_task(bot.get_updates(timeout=10))
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await chat.send("/connect@coinwarden_test_bot binance")
    updates = await poll
    assert time.monotonic() - started < 1.0
    message = updates[0].message
    assert message is not None
    assert message.text == "/connect@coinwarden_test_bot binance"
    assert message.from_user is not None and message.from_user.first_name == "Alice"
    assert [(e.type, e.offset, e.length) for e in message.entities] == [
        ("bot_command", 0, len("/connect@coinwarden_test_bot"))
    ]


async def test_updates_stay_until_a_higher_offset_confirms_them(
    server: TelegramServer, bot: Bot
) -> None:
    chat = server.private_chat(USER)
    first_id = await chat.send("one")
    await chat.send("two")
    first = await bot.get_updates(timeout=0)
    again = await bot.get_updates(timeout=0)
    assert [u.update_id for u in first] == [u.update_id for u in again]
    assert first[0].message is not None and first[0].message.message_id == first_id
    rest = await bot.get_updates(offset=first[0].update_id + 1, timeout=0)
    assert [u.message.text for u in rest if u.message] == ["two"]
    assert await bot.get_updates(offset=rest[-1].update_id + 1, timeout=0) == ()


async def test_allowed_updates_filter_out_other_kinds(server: TelegramServer, bot: Bot) -> None:
    chat = server.private_chat(USER)
    sent = await bot.send_message(USER, "Pick", reply_markup=keyboard(("A", "a")))
    await chat.press(sent.message_id, "A")
    await chat.send("hello")
    updates = await bot.get_updates(timeout=0, allowed_updates=["message"])
    assert [u.message.text for u in updates if u.message] == ["hello"]
    assert all(u.callback_query is None for u in updates)


async def test_stopping_the_server_ends_pending_long_polls(
    server: TelegramServer, bot: Bot
) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=30))
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await server.stop()
    assert await poll == ()
    assert time.monotonic() - started < 2.0


async def test_get_updates_conflicts_with_an_active_webhook(
    server: TelegramServer, bot: Bot
) -> None:
    await bot.set_webhook("https://example.invalid/hook")
    assert (await bot.get_webhook_info()).url == "https://example.invalid/hook"
    status, body = await raw(server, "getUpdates")
    assert status == 409
    assert body["description"].startswith("Conflict: can't use getUpdates method while webhook")
    await bot.delete_webhook()
    assert await bot.get_updates(timeout=0) == ()


# --- sending and its limits ----------------------------------------------------------------


async def test_sent_message_comes_back_as_telegram_returns_it(
    server: TelegramServer, bot: Bot
) -> None:
    chat = server.private_chat(USER)
    sent = await bot.send_message(
        USER,
        "<b>Pick</b> an exchange &amp; role",
        parse_mode="HTML",
        reply_markup=keyboard(("Binance Spot", "venue:binance")),
    )
    assert sent.text == "Pick an exchange & role"
    assert sent.from_user is not None and sent.from_user.id == server.bot.id
    assert sent.entities[0].type == "bold"
    assert sent.reply_markup is not None
    assert sent.reply_markup.inline_keyboard[0][0].callback_data == "venue:binance"
    shown = chat.messages[-1]
    assert (shown.from_bot, shown.text, shown.html) == (
        True,
        "Pick an exchange & role",
        "<b>Pick</b> an exchange &amp; role",
    )
    assert shown.buttons == [[Button("Binance Spot", data="venue:binance")]]
    assert server.violations == []


async def test_the_longest_allowed_text_counts_utf16_units(
    server: TelegramServer, bot: Bot
) -> None:
    server.private_chat(USER)
    await bot.send_message(USER, "x" * 4096)
    await bot.send_message(USER, "📈" * 2048)  # each is two UTF-16 units
    assert server.violations == []
    with pytest.raises(BadRequest):
        await bot.send_message(USER, "📈" * 2048 + "x")
    assert last_refusal(server) == "Bad Request: message is too long"


@pytest.mark.parametrize(
    ("text", "description"),
    [
        ("", "Bad Request: message text is empty"),
        ("   \n ", "Bad Request: message text is empty"),
        ("<b></b>", "Bad Request: message text is empty"),
        ("x" * 4097, "Bad Request: message is too long"),
        ("a<b>" + "x" * 4096 + "</b>", "Bad Request: message is too long"),
        (
            "Balance <div>1 BTC</div>",
            'Bad Request: can\'t parse entities: Unsupported start tag "div" at byte offset 8',
        ),
        (
            "<b>Balance",
            "Bad Request: can't parse entities: "
            'Can\'t find end tag corresponding to start tag "b"',
        ),
        (
            "Balance</b>",
            "Bad Request: can't parse entities: Unexpected end tag at byte offset 7",
        ),
        (
            "P&L report",
            "Bad Request: can't parse entities: Character entity expected at byte offset 1",
        ),
        (
            "Price < 5",
            'Bad Request: can\'t parse entities: Unsupported start tag "" at byte offset 6',
        ),
    ],
)
async def test_text_the_real_api_refuses_is_refused(
    server: TelegramServer, bot: Bot, text: str, description: str
) -> None:
    server.private_chat(USER)
    status, body = await raw(
        server, "sendMessage", json={"chat_id": USER, "text": text, "parse_mode": "HTML"}
    )
    assert (status, body) == (400, {"ok": False, "error_code": 400, "description": description})
    assert last_refusal(server) == description


@pytest.mark.parametrize(
    ("button", "description"),
    [
        ({"text": "Go", "callback_data": "x" * 65}, "Bad Request: BUTTON_DATA_INVALID"),
        ({"text": "Go", "callback_data": "é" * 33}, "Bad Request: BUTTON_DATA_INVALID"),
        (
            {"text": "Go"},
            "Bad Request: can't parse inline keyboard button: "
            "Text buttons are unallowed in the inline keyboard",
        ),
        (
            {"text": "Go", "callback_data": ""},
            "Bad Request: can't parse inline keyboard button: "
            "Text buttons are unallowed in the inline keyboard",
        ),
        ({"text": "", "callback_data": "go"}, "Bad Request: BUTTON_TEXT_INVALID"),
    ],
)
async def test_invalid_inline_buttons_are_refused(
    server: TelegramServer, bot: Bot, button: dict[str, str], description: str
) -> None:
    server.private_chat(USER)
    status, body = await raw(
        server,
        "sendMessage",
        json={"chat_id": USER, "text": "Pick", "reply_markup": {"inline_keyboard": [[button]]}},
    )
    assert (status, body["description"]) == (400, description)


async def test_callback_data_of_64_bytes_is_accepted_and_65_refused(
    server: TelegramServer, bot: Bot
) -> None:
    server.private_chat(USER)
    await bot.send_message(USER, "ok", reply_markup=keyboard(("Go", "x" * 64)))
    with pytest.raises(BadRequest):
        await bot.send_message(USER, "too long", reply_markup=keyboard(("Go", "x" * 65)))
    assert [v.description for v in server.violations] == ["Bad Request: BUTTON_DATA_INVALID"]


async def test_unknown_chat_and_missing_fields_get_telegrams_texts(server: TelegramServer) -> None:
    assert (await raw(server, "sendMessage", json={"chat_id": 42, "text": "hi"}))[1][
        "description"
    ] == "Bad Request: chat not found"
    assert (await raw(server, "sendMessage", json={"text": "hi"}))[1][
        "description"
    ] == "Bad Request: chat_id is empty"
    server.private_chat(USER)
    assert (await raw(server, "sendMessage", json={"chat_id": USER}))[1][
        "description"
    ] == "Bad Request: message text is empty"
    assert (await raw(server, "deleteMessage", json={"chat_id": USER}))[1][
        "description"
    ] == "Bad Request: message identifier is not specified"
    assert len(server.violations) == 4


async def test_query_string_parameters_and_any_method_case_work(server: TelegramServer) -> None:
    chat = server.private_chat(USER)
    status, body = await raw(server, "SENDMESSAGE", query={"chat_id": str(USER), "text": "hi"})
    assert (status, body["result"]["text"]) == (200, "hi")
    assert chat.messages[-1].text == "hi"
    assert server.calls[-1].method == "sendMessage"


async def test_markdown_is_accepted_but_reported(server: TelegramServer, bot: Bot) -> None:
    server.private_chat(USER)
    await bot.send_message(USER, "*bold*", parse_mode="MarkdownV2")
    assert "MarkdownV2" in last_refusal(server)


async def test_blocked_user_makes_sends_forbidden(server: TelegramServer, bot: Bot) -> None:
    server.private_chat(USER)
    server.block_bot(USER)
    with pytest.raises(Forbidden):
        await bot.send_message(USER, "Your alert fired")
    assert last_refusal(server) == "Forbidden: bot was blocked by the user"
    server.unblock_bot(USER)
    await bot.send_message(USER, "Welcome back")


async def test_groups_deliver_only_commands_and_replies_to_the_bot(
    server: TelegramServer, bot: Bot
) -> None:
    group = server.group_chat(-5001, "Traders", user_id=USER)
    prompt = await bot.send_message(-5001, "Which venue?")
    await group.send("chatter between traders")
    await group.send("/balance@other_bot")
    await group.send("/balance")
    await group.send("binance", reply_to=prompt.message_id)
    updates = await bot.get_updates(timeout=0)
    messages = [u.message for u in updates if u.message]
    assert [m.text for m in messages] == ["/balance", "binance"]
    assert messages[1].reply_to_message is not None
    assert messages[1].reply_to_message.message_id == prompt.message_id
    assert len(group.messages) == 5


async def test_replying_to_a_deleted_message_is_refused(server: TelegramServer, bot: Bot) -> None:
    chat = server.private_chat(USER)
    secret = await chat.send("api-secret")
    await bot.delete_message(USER, secret)
    with pytest.raises(BadRequest):
        await bot.send_message(USER, "Saved", reply_to_message_id=secret)
    assert last_refusal(server) == "Bad Request: message to be replied not found"
    await bot.send_message(
        USER, "Saved", reply_to_message_id=secret, allow_sending_without_reply=True
    )


# --- files --------------------------------------------------------------------------------


async def test_photos_and_documents_are_uploaded_and_kept(server: TelegramServer, bot: Bot) -> None:
    chat = server.private_chat(USER)
    photo = await bot.send_photo(USER, TINY_PNG, caption="<b>Portfolio</b>", parse_mode="HTML")
    assert photo.caption == "Portfolio" and photo.photo[0].width == 1
    await bot.send_document(USER, b"date,usd\n", filename="balances.csv", caption="export")
    shown_photo, shown_document = chat.messages
    assert (shown_photo.kind, shown_photo.photo, shown_photo.text) == (
        "photo",
        TINY_PNG,
        "Portfolio",
    )
    assert shown_document.document == b"date,usd\n"
    assert shown_document.file is not None and shown_document.file.file_name == "balances.csv"
    upload = server.calls[-1].params["document"]
    assert isinstance(upload, UploadedFile) and upload.data == b"date,usd\n"
    assert server.violations == []


async def test_photo_caption_and_content_are_checked(server: TelegramServer, bot: Bot) -> None:
    server.private_chat(USER)
    with pytest.raises(BadRequest):
        await bot.send_photo(USER, TINY_PNG, caption="x" * 1025)
    assert last_refusal(server) == "Bad Request: message caption is too long"
    with pytest.raises(BadRequest):
        await bot.send_photo(USER, b"not an image")
    assert last_refusal(server) == "Bad Request: IMAGE_PROCESS_FAILED"


# --- editing and deleting -----------------------------------------------------------------


async def test_edit_to_identical_content_is_not_modified(server: TelegramServer, bot: Bot) -> None:
    chat = server.private_chat(USER)
    markup = keyboard(("Refresh", "refresh"))
    sent = await bot.send_message(USER, "<b>1 BTC</b>", parse_mode="HTML", reply_markup=markup)
    with pytest.raises(BadRequest, match="not modified"):
        # different HTML, same text and entities after parsing
        await bot.edit_message_text(
            "<strong>1 BTC</strong>", USER, sent.message_id, parse_mode="HTML", reply_markup=markup
        )
    assert last_refusal(server).startswith("Bad Request: message is not modified: specified new")
    await bot.edit_message_text("<b>2 BTC</b>", USER, sent.message_id, parse_mode="HTML")
    edited = chat.messages[-1]
    assert (edited.text, edited.edits, edited.buttons) == ("2 BTC", ["1 BTC"], [])
    with pytest.raises(BadRequest, match="not modified"):
        await bot.edit_message_reply_markup(USER, sent.message_id)


async def test_only_the_bots_existing_messages_can_be_edited(
    server: TelegramServer, bot: Bot
) -> None:
    chat = server.private_chat(USER)
    user_message = await chat.send("my secret key")
    with pytest.raises(BadRequest):
        await bot.edit_message_text("masked", USER, user_message)
    assert last_refusal(server) == "Bad Request: message can't be edited"
    with pytest.raises(BadRequest):
        await bot.edit_message_text("x", USER, 999)
    assert last_refusal(server) == "Bad Request: message to edit not found"


async def test_private_chat_deletes_both_sides_once(server: TelegramServer, bot: Bot) -> None:
    chat = server.private_chat(USER)
    secret = await chat.send("api-secret-123")
    prompt = await bot.send_message(USER, "Paste the secret")
    assert await bot.delete_message(USER, secret)
    assert await bot.delete_messages(USER, [prompt.message_id, 999])
    assert chat.deleted_ids == {secret, prompt.message_id}
    with pytest.raises(BadRequest):
        await bot.delete_message(USER, secret)
    assert last_refusal(server) == "Bad Request: message to delete not found"


async def test_group_deletes_others_messages_only_as_admin(
    server: TelegramServer, bot: Bot
) -> None:
    group = server.group_chat(-5001, "Traders", user_id=USER)
    mine = await bot.send_message(-5001, "Rebalance proposal")
    theirs = await group.send("my key is abc")
    with pytest.raises(BadRequest):
        await bot.delete_message(-5001, theirs)
    assert last_refusal(server) == "Bad Request: message can't be deleted"
    assert await bot.delete_message(-5001, mine.message_id)
    assert (await bot.get_chat_member(-5001, server.bot.id)).status == "member"

    admin_group = server.group_chat(-5002, "Desk", user_id=USER, bot_can_delete=True)
    theirs = await admin_group.send("my key is abc")
    assert await bot.delete_message(-5002, theirs)
    member = await bot.get_chat_member(-5002, server.bot.id)
    assert member.status == "administrator"
    assert getattr(member, "can_delete_messages", False) is True
    assert (await bot.get_chat(-5002)).title == "Desk"


# --- callback queries ---------------------------------------------------------------------


async def test_a_callback_query_is_answered_once(server: TelegramServer, bot: Bot) -> None:
    chat = server.private_chat(USER)
    sent = await bot.send_message(USER, "Approve?", reply_markup=keyboard(("Approve", "ok")))
    query_id = await chat.press(sent.message_id, "Approve")
    (update,) = await bot.get_updates(timeout=0)
    assert update.callback_query is not None
    assert (update.callback_query.id, update.callback_query.data) == (query_id, "ok")
    with pytest.raises(BadRequest):
        await bot.answer_callback_query(query_id, text="x" * 201)
    assert last_refusal(server) == "Bad Request: MESSAGE_TOO_LONG"
    assert await bot.answer_callback_query(query_id, text="Approved", show_alert=True)
    with pytest.raises(BadRequest):
        await bot.answer_callback_query(query_id)
    assert last_refusal(server) == (
        "Bad Request: query is too old and response timeout expired or query ID is invalid"
    )
    assert chat.callback_answers == [(query_id, "Approved", True)]


async def test_forged_callback_data_reaches_the_bot(server: TelegramServer, bot: Bot) -> None:
    chat = server.private_chat(USER)
    sent = await bot.send_message(USER, "Pick", reply_markup=keyboard(("A", "a")))
    await chat.press(sent.message_id, data="raw:forged")
    (update,) = await bot.get_updates(timeout=0)
    assert update.callback_query is not None and update.callback_query.data == "raw:forged"


# --- flood control and injected failures --------------------------------------------------


@pytest.fixture
def timedelta_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    """PTB 22 warns on every RetryAfter unless it may use timedelta (its future default)."""
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@pytest.mark.usefixtures("timedelta_retry_after")
async def test_flood_control_answers_429_with_retry_after_per_chat() -> None:
    async with TelegramServer(TOKEN, flood_limit_per_second=3) as server:
        server.private_chat(USER)
        server.private_chat(2002)
        async with Bot(TOKEN, base_url=server.base_url) as bot:
            for n in range(3):
                await bot.send_message(USER, f"alert {n}")
            with pytest.raises(RetryAfter) as limited:
                await bot.send_message(USER, "one too many")
            await bot.send_message(2002, "other chats are not limited")
        assert limited.value.retry_after == timedelta(seconds=1)
        assert last_refusal(server) == "Too Many Requests: retry after 1"
        status, body = await raw(server, "sendMessage", json={"chat_id": USER, "text": "again"})
        assert (status, body["parameters"]) == (429, {"retry_after": 1})


@pytest.mark.usefixtures("timedelta_retry_after")
async def test_injected_failures_are_answered_but_not_violations(
    server: TelegramServer, bot: Bot
) -> None:
    server.private_chat(USER)
    server.fail_next("sendMessage", error_code=429, retry_after=2)
    with pytest.raises(RetryAfter) as limited:
        await bot.send_message(USER, "first try")
    assert limited.value.retry_after == timedelta(seconds=2)
    await bot.send_message(USER, "second try")
    assert server.violations == []


# --- protocol edges -----------------------------------------------------------------------


async def test_wrong_token_is_unauthorized(server: TelegramServer) -> None:
    status, body = await raw(server, "getMe", token="123456:wrong")
    assert (status, body) == (401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
    assert last_refusal(server) == "Unauthorized"


async def test_method_outside_the_spec_is_not_found(server: TelegramServer) -> None:
    status, body = await raw(server, "sendTelepathy")
    assert (status, body) == (404, {"ok": False, "error_code": 404, "description": "Not Found"})


async def test_spec_method_we_do_not_implement_is_refused_and_reported(
    server: TelegramServer,
) -> None:
    status, body = await raw(server, "sendPoll", json={"chat_id": USER, "question": "?"})
    assert status == 400
    assert body["description"] == ("Bad Request: method is not supported by the local test server")
    assert server.violations[-1].method == "sendPoll"


async def test_missing_spec_fails_loudly_at_start(tmp_path: Path) -> None:
    server = TelegramServer(TOKEN, spec_path=tmp_path / "api.json")
    with pytest.raises(SpecNotFoundError, match=r"api\.json"):
        await server.start()


async def test_commands_are_validated_and_kept(server: TelegramServer, bot: Bot) -> None:
    await bot.set_my_commands([("connect", "Connect an exchange"), ("keys", "List your keys")])
    assert server.commands == {"connect": "Connect an exchange", "keys": "List your keys"}
    assert [c.command for c in await bot.get_my_commands()] == ["connect", "keys"]
    for command, description, error in [
        ("Connect", "x", "Bad Request: BOT_COMMAND_INVALID"),
        ("c" * 33, "x", "Bad Request: command length must not exceed 32"),
        ("connect", " ", "Bad Request: command description must be non-empty"),
        ("connect", "d" * 257, "Bad Request: command description length must not exceed 256"),
    ]:
        with pytest.raises(BadRequest):
            await bot.set_my_commands([(command, description)])
        assert last_refusal(server) == error
    with pytest.raises(BadRequest):
        await bot.set_my_commands([(f"c{n}", "d") for n in range(101)])
    assert last_refusal(server) == "Bad Request: BOT_COMMANDS_TOO_MUCH"
    await bot.delete_my_commands()
    assert server.commands == {}


async def test_chat_actions_are_checked(server: TelegramServer, bot: Bot) -> None:
    chat = server.private_chat(USER)
    assert await bot.send_chat_action(USER, "typing")
    assert (await chat.settle(quiet=0.01))[-1].action == "typing"
    status, body = await raw(server, "sendChatAction", json={"chat_id": USER, "action": "dance"})
    assert (status, body["description"]) == (
        400,
        "Bad Request: wrong parameter action in request",
    )


# --- the test-side driver -----------------------------------------------------------------


async def test_reply_timeout_shows_the_transcript(server: TelegramServer) -> None:
    chat = server.private_chat(USER, "Alice")
    await chat.send("/start")
    with pytest.raises(AssertionError, match=r"(?s)did not reply.*#1 Alice: /start"):
        await chat.reply(timeout=0.05)


async def test_subscribers_see_every_chat_event(server: TelegramServer, bot: Bot) -> None:
    seen: list[ChatEvent] = []
    unsubscribe = server.subscribe(seen.append)
    chat = server.private_chat(USER)
    await chat.send("hi")
    sent = await bot.send_message(USER, "hello")
    await bot.edit_message_text("hello again", USER, sent.message_id)
    await bot.delete_message(USER, sent.message_id)
    unsubscribe()
    await chat.send("unseen")
    assert [(e.kind, e.message.text if e.message else None) for e in seen] == [
        ("new", "hi"),
        ("new", "hello"),
        ("edit", "hello again"),
        ("delete", "hello again"),
    ]


# --- a real PTB Application ---------------------------------------------------------------


async def start_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message is not None
    await update.effective_message.reply_html(
        "<b>Pick</b> an exchange",
        reply_markup=keyboard(("Binance Spot", "venue:binance"), ("OKX", "venue:okx")),
    )


async def pick_venue(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    assert query is not None and query.data is not None
    await query.answer("Saved")
    await query.edit_message_text(f"You picked <code>{query.data}</code>", parse_mode="HTML")


async def test_a_real_application_converses_through_the_server(server: TelegramServer) -> None:
    app: Application[Any, Any, Any, Any, Any, Any] = (
        ApplicationBuilder().token(TOKEN).base_url(server.base_url).build()
    )
    app.add_handler(CommandHandler("start", start_command))
    app.add_handler(CallbackQueryHandler(pick_venue))
    chat = server.private_chat(USER, "Alice")
    group = server.group_chat(-5001, "Traders", user_id=2002, first_name="Bob")
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=1)

        await chat.send("/start")
        menu = await chat.reply(contains="Pick")
        assert menu.button_labels() == ["Binance Spot", "OKX"]
        await chat.press(menu, "Binance")
        picked = await chat.reply(contains="You picked")
        assert picked.text == "You picked venue:binance"
        assert picked.message_id == menu.message_id and picked.buttons == []
        await chat.settle(quiet=0.05)
        assert chat.callback_answers[0][1:] == ("Saved", False)

        await group.send("/start@coinwarden_test_bot")
        assert (await group.reply()).text == "Pick an exchange"

        stopping = time.monotonic()
        await app.updater.stop()
        await app.stop()
    assert time.monotonic() - stopping < 3.0
    assert server.violations == []
    assert all(TOKEN not in str(call.params) for call in server.calls)
